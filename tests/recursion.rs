//! Deep recursion on small threads: results, stack pointers, panics.

use std::cell::Cell;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::on_thread;
use growstack::growable;

mod common;

/// Millions of levels need more than the default 1 GiB in stress mode and
/// in debug builds (a few hundred bytes per level); every test of this
/// binary sets the same limit.
fn raise_limit() {
    growstack::set_max_stack(32 << 30);
}

/// Not tail-recursive with an associative accumulator, so the compiler
/// cannot turn it into a loop.
#[growable]
fn mix(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        mix(n - 1).rotate_left(5) ^ n
    }
}

fn mix_loop(n: u64) -> u64 {
    (1..=n).fold(0, |acc, i| acc.rotate_left(5) ^ i)
}

#[test]
fn millions_of_levels_on_a_64k_thread() {
    raise_limit();
    let n = 2_000_000;
    assert_eq!(on_thread(64 << 10, move || mix(n)), mix_loop(n));
}

#[test]
fn remaining_stack_is_refilled_on_a_segment() {
    raise_limit();
    #[growable]
    fn remaining_range(n: u32) -> (usize, usize) {
        let here = growstack::remaining_stack();
        if n == 0 {
            (here, here)
        } else {
            let (lo, hi) = remaining_range(n - 1);
            (lo.min(here), hi.max(here))
        }
    }
    let (lo, hi) = on_thread(64 << 10, || remaining_range(200_000));
    // Growth waits until the stack is nearly used up...
    assert!(lo < 16 << 10, "lowest remaining {lo}");
    // ...and a segment brings room the 64 KiB thread never had (nearly
    // 128 KiB even with the small segments of stress mode).
    assert!(hi > 96 << 10, "highest remaining {hi}");
}

/// Go's runtime test: pass pointers to stack variables down a growing call
/// chain and check nothing was corrupted.
struct Link<'a> {
    depth: u64,
    scratch: [u64; 4],
    up: Option<&'a Link<'a>>,
}

#[growable]
fn descend(up: &Link<'_>, out: &mut [u64; 4], n: u64) -> u64 {
    let mut here = Link {
        depth: up.depth + 1,
        scratch: [up.depth; 4],
        up: Some(up),
    };
    let mut below = [0u64; 4];
    let walked = if n == 0 {
        // At the bottom: walk every frame's local back to the top.
        let mut count = 0;
        let mut link = Some(&here);
        while let Some(l) = link {
            assert_eq!(l.depth, here.depth - count);
            assert_eq!(l.scratch, [l.depth.saturating_sub(1); 4]);
            count += 1;
            link = l.up;
        }
        count
    } else {
        descend(&here, &mut below, n - 1)
    };
    if n > 0 {
        // The callee wrote into our local through a pointer.
        assert_eq!(
            below,
            [here.depth + 1, here.depth + 2, here.depth + 3, !here.depth]
        );
    }
    here.scratch = [0; 4];
    *out = [
        here.depth,
        here.depth + 1,
        here.depth + 2,
        !(here.depth - 1),
    ];
    walked
}

#[test]
fn pointers_to_stack_locals_stay_valid() {
    raise_limit();
    let n = 300_000;
    let (walked, out) = on_thread(64 << 10, move || {
        let top = Link {
            depth: 0,
            scratch: [0; 4],
            up: None,
        };
        let mut out = [0; 4];
        let walked = descend(&top, &mut out, n);
        (walked, out)
    });
    assert_eq!(walked, n + 2);
    assert_eq!(out, [1, 2, 3, !0]);
}

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[growable]
fn panic_at_bottom(n: u32) -> u32 {
    let _guard = Counted;
    if n == 0 {
        panic!(
            "bottom reached with {} drops so far",
            DROPS.load(Ordering::Relaxed)
        );
    }
    panic_at_bottom(n - 1) + 1
}

#[test]
fn panic_at_depth_keeps_payload_and_runs_every_destructor() {
    raise_limit();
    let n = 500_000;
    let (drops, payload) = on_thread(64 << 10, move || {
        let before = DROPS.load(Ordering::Relaxed);
        let err = catch_unwind(|| panic_at_bottom(n)).unwrap_err();
        (DROPS.load(Ordering::Relaxed) - before, err)
    });
    assert_eq!(drops, n as usize + 1);
    let msg = payload.downcast_ref::<String>().expect("a String payload");
    assert!(msg.starts_with("bottom reached with "), "{msg}");
    // The thread that panicked can grow again.
    assert_eq!(on_thread(64 << 10, || mix(100_000)), mix_loop(100_000));
}

#[test]
fn panic_payload_of_any_type_crosses_segments() {
    raise_limit();
    #[derive(Debug, PartialEq)]
    struct Custom(u64, &'static str);
    #[growable]
    fn throw(n: u64) -> u64 {
        if n == 0 {
            std::panic::panic_any(Custom(42, "deep"));
        }
        throw(n - 1) * 2
    }
    let err = on_thread(64 << 10, || catch_unwind(|| throw(300_000)).unwrap_err());
    assert_eq!(err.downcast_ref::<Custom>(), Some(&Custom(42, "deep")));
}

#[test]
fn maybe_grow_makes_foreign_recursion_safe() {
    raise_limit();
    // Stands for recursive code in another crate that we cannot annotate.
    fn foreign_depth(v: &Nested, hook: &dyn Fn(&Nested) -> usize) -> usize {
        match v {
            Nested::Leaf => 0,
            Nested::List(items) => 1 + items.iter().map(hook).max().unwrap_or(0),
        }
    }
    fn depth(v: &Nested) -> usize {
        growstack::maybe_grow(|| foreign_depth(v, &depth))
    }
    enum Nested {
        Leaf,
        List(Vec<Nested>),
    }
    let n = 200_000;
    let got = on_thread(64 << 10, move || {
        let mut v = Nested::Leaf;
        for _ in 0..n {
            v = Nested::List(vec![v]);
        }
        let d = depth(&v);
        while let Nested::List(mut items) = v {
            v = items.pop().unwrap();
        }
        d
    });
    assert_eq!(got, n);
}

#[test]
fn thread_locals_work_on_segments() {
    raise_limit();
    thread_local!(static SEEN: Cell<u32> = const { Cell::new(0) });
    #[growable]
    fn touch(n: u32) {
        SEEN.with(|s| s.set(s.get() + 1));
        if n > 0 {
            touch(n - 1);
        }
    }
    let seen = on_thread(64 << 10, || {
        touch(250_000);
        SEEN.with(Cell::get)
    });
    assert_eq!(seen, 250_001);
}

#[test]
fn large_frames_run_out_of_line() {
    raise_limit();
    /// 50 KB of locals per level: more than fits below the guard.
    #[growable]
    fn big(n: u32) -> u64 {
        let mut buf = [0u8; 50_000];
        buf[n as usize % 50_000] = n as u8;
        std::hint::black_box(&mut buf);
        let here = buf.iter().map(|&b| u64::from(b)).sum::<u64>();
        if n == 0 { here } else { here + big(n - 1) }
    }
    /// A large local the macro cannot see, declared with `frame`.
    struct Opaque([u64; 12_500]);
    #[growable(frame = 100_000)]
    fn hidden(n: u32) -> u64 {
        let mut o = Opaque([1; 12_500]);
        std::hint::black_box(&mut o);
        let here = o.0[n as usize % 12_500];
        if n == 0 { here } else { here + hidden(n - 1) }
    }
    let (a, b) = on_thread(64 << 10, || (big(2_000), hidden(1_000)));
    assert_eq!(a, (0..=2_000u64).map(|n| n % 256).sum::<u64>());
    assert_eq!(b, 1_001);
}
