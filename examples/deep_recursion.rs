//! Evaluates a deeply nested arithmetic expression with a plain recursive
//! descent parser: `(((1+1)+1)+1)...` with one level of parentheses per
//! step. Without growstack the parser overflows the 8 MiB main-thread
//! stack after some tens of thousands of levels; with `#[growable]` it goes
//! as deep as memory allows.
//!
//! ```text
//! cargo run --release --example deep_recursion              # 10 million levels
//! cargo run --release --example deep_recursion 100000000    # 100 million
//! cargo run --release --example deep_recursion 1000000 --plain   # crashes: no growstack
//! ```
//!
//! The input is generated on the fly (no 400 MB string), so what grows is the
//! stack and nothing else.

use std::time::Instant;

/// Produces the bytes of `(((...(1+1)+1)...)+1)` with `depth` parentheses.
struct Nested {
    depth: u64,
    pos: u64,
}

impl Nested {
    fn len(&self) -> u64 {
        // depth × "(" + "1" + depth × "+1)"
        4 * self.depth + 1
    }

    fn peek(&self) -> Option<u8> {
        let (d, p) = (self.depth, self.pos);
        match p {
            _ if p >= self.len() => None,
            _ if p < d => Some(b'('),
            _ if p == d => Some(b'1'),
            _ => Some(b"+1)"[((p - d - 1) % 3) as usize]),
        }
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        match self.bump() {
            Some(c) if c == want => Ok(()),
            other => Err(format!(
                "expected {:?} at byte {}, found {:?}",
                want as char,
                self.pos - 1,
                other.map(char::from)
            )),
        }
    }
}

/// Defines the parser, `expr := term ('+' term)*` and
/// `term := digit | '(' expr ')'`, as module `$name` with attributes `$attr`:
/// once with `#[growable]` and once plain, for comparison.
macro_rules! parser {
    ($(#[$attr:meta])* mod $name:ident) => {
        $(#[$attr])*
        mod $name {
            use super::Nested;

            pub fn expr(input: &mut Nested) -> Result<u64, String> {
                let mut value = term(input)?;
                while input.peek() == Some(b'+') {
                    input.bump();
                    value += term(input)?;
                }
                Ok(value)
            }

            fn term(input: &mut Nested) -> Result<u64, String> {
                match input.bump() {
                    Some(b'(') => {
                        let value = expr(input)?;
                        input.expect(b')')?;
                        Ok(value)
                    }
                    Some(c @ b'0'..=b'9') => Ok(u64::from(c - b'0')),
                    other => Err(format!("unexpected {:?}", other.map(char::from))),
                }
            }
        }
    };
}

parser!(#[growstack::growable] mod parser);
parser!(mod plain);

fn main() {
    let mut args = std::env::args().skip(1);
    let depth: u64 = match args.next() {
        Some(s) => s.replace('_', "").parse().unwrap_or_else(|e| {
            eprintln!("usage: deep_recursion [DEPTH] [--plain]  ({s:?}: {e})");
            std::process::exit(2)
        }),
        None => 10_000_000,
    };
    let use_plain = args.next().as_deref() == Some("--plain");
    // Each level (an `expr` and a `term` frame) takes about 200 bytes, and
    // doubling segments may hold up to twice what is in use: allow 512
    // bytes per level instead of the default 1 GiB.
    growstack::set_max_stack((depth as usize).saturating_mul(512).max(1 << 30));

    let mut input = Nested { depth, pos: 0 };
    println!("parsing {} bytes nested {depth} deep", input.len());
    let start = Instant::now();
    let result = if use_plain {
        plain::expr(&mut input)
    } else {
        parser::expr(&mut input)
    };
    let elapsed = start.elapsed();
    let value = match result {
        Ok(value) => value,
        Err(e) => {
            eprintln!("parse error: {e}");
            std::process::exit(1);
        }
    };
    let stats = growstack::stats();
    println!("depth:       {depth}");
    println!("result:      {value} (expected {})", depth + 1);
    println!(
        "time:        {elapsed:.2?} ({:.1} ns per level)",
        elapsed.as_nanos() as f64 / depth.max(1) as f64
    );
    println!(
        "peak stack:  {:.1} MiB ({} growths, {} segments)",
        stats.peak_stack_bytes as f64 / (1 << 20) as f64,
        stats.growths,
        stats.segments_allocated
    );
    println!("where the stack grew (growstack::profile_report):");
    print!("{}", growstack::profile_report());
    assert_eq!(value, depth + 1);
}
