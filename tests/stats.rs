//! What `stats()` counts: hot splits reuse one cached segment; a thread's
//! segments go back to the arena when it exits. The counters are
//! process-wide, so the tests of this binary take turns.

mod common;

use std::sync::Mutex;

use common::{at_the_edge, on_thread};
use growstack::{growable, stats};

static TURN: Mutex<()> = Mutex::new(());

#[growable]
fn leaf(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7
}

#[growable]
fn mix(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        mix(n - 1).rotate_left(5) ^ n
    }
}

#[test]
fn hot_split_loop_reuses_one_segment() {
    let _turn = TURN.lock().unwrap();
    let iterations = 100_000u64;
    let (delta, sum) = on_thread(256 << 10, move || {
        at_the_edge(|| {
            let before = stats();
            let mut sum = 0u64;
            for i in 0..iterations {
                sum = sum.wrapping_add(leaf(i));
            }
            let after = stats();
            ((before, after), sum)
        })
    });
    let (before, after) = delta;
    let want = (0..iterations).fold(0u64, |s, i| {
        s.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7)
    });
    assert_eq!(sum, want);
    // Every call sat on the boundary and grew...
    assert!(
        after.growths - before.growths >= iterations,
        "{before:?} -> {after:?}"
    );
    // ...onto the same cached segment.
    assert!(
        after.segments_allocated - before.segments_allocated <= 1,
        "{before:?} -> {after:?}"
    );
}

#[test]
fn thread_exit_returns_its_segments() {
    let _turn = TURN.lock().unwrap();
    growstack::set_max_stack(32 << 30);
    let before = stats().segments_live;
    let during = on_thread(64 << 10, || {
        assert_ne!(mix(500_000), 0);
        stats().segments_live
    });
    assert!(
        during > before,
        "the thread held segments: {before} -> {during}"
    );
    assert_eq!(
        stats().segments_live,
        before,
        "and gave them all back when it exited"
    );
}
