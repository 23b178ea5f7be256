//! Growth past `set_max_stack` is an ordinary, catchable panic. In a binary
//! of its own: the limit is process-wide.

use std::panic::catch_unwind;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Live;

impl Live {
    fn new() -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

#[growstack::growable]
fn forever(n: u64) -> u64 {
    let _live = Live::new();
    forever(n + 1).wrapping_add(n)
}

#[growstack::growable]
fn bounded(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        bounded(n - 1).rotate_left(1) ^ n
    }
}

#[test]
fn growth_past_the_limit_panics_and_unwinds() {
    let limit = 64 << 20;
    growstack::set_max_stack(limit);
    assert_eq!(growstack::max_stack(), limit);
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let err = catch_unwind(|| forever(0)).unwrap_err();
            let msg = err.downcast_ref::<String>().expect("a String payload");
            assert!(
                msg.contains(&format!("exceeds {limit}-byte limit")),
                "{msg}"
            );
            assert_eq!(
                LIVE.load(Ordering::Relaxed),
                0,
                "every frame's destructor ran"
            );
            // The thread recovers and grows again within the limit.
            let want = (1..=10_000u64).fold(0u64, |acc, i| acc.rotate_left(1) ^ i);
            assert_eq!(bounded(10_000), want);
        })
        .unwrap()
        .join()
        .unwrap();
}
