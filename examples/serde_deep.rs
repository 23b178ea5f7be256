//! Parses a JSON array nested a million levels deep with serde_json and
//! serde_stacker, unchanged, on growstack: this workspace patches `stacker`
//! with growstack's (`compat/stacker`), so serde_stacker's growths continue
//! on growstack segments and show in its profile.
//!
//! ```text
//! cargo run --release --example serde_deep -- [LEVELS]   # default 1000000
//! ```
//!
//! serde_json's `Value` has no `Drop` of its own: its drop glue calls
//! itself once per level, and would overflow the stack at this depth. The
//! value is taken apart by a `#[growable]` function instead.

use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let levels: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1_000_000,
    };
    let json = "[".repeat(levels) + &"]".repeat(levels);

    let start = Instant::now();
    let mut de = serde_json::Deserializer::from_str(&json);
    de.disable_recursion_limit();
    let value = Value::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    let parsed = start.elapsed();

    assert_eq!(depth(&value), levels);

    let start = Instant::now();
    take_apart(value);
    let dropped = start.elapsed();

    let stats = growstack::stats();
    println!("{levels} levels of nesting");
    println!("parse (serde_json + serde_stacker): {parsed:.2?}");
    println!("drop (#[growable]):                 {dropped:.2?}");
    println!(
        "peak stack {:.1} MiB in {} growths; peak RSS {:.1} MiB",
        stats.peak_stack_bytes as f64 / (1 << 20) as f64,
        stats.growths,
        peak_rss_kib() as f64 / 1024.0
    );
    println!("\ngrowth profile:\n{}", growstack::profile_report());
    Ok(())
}

/// Levels of array nesting.
#[growstack::growable]
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Drops `value` one level per call, each with the stack check: the
/// containers it empties drop without recursing.
#[growstack::growable]
fn take_apart(value: Value) {
    match value {
        Value::Array(items) => items.into_iter().for_each(take_apart),
        Value::Object(map) => map.into_iter().for_each(|(_, v)| take_apart(v)),
        _ => {}
    }
}

/// The peak resident set of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
