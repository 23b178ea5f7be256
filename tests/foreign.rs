//! Stackful coroutines of another crate (corosensei) on a thread that
//! also runs `#[growable]` code. All contexts of a thread share its stack
//! chain; a coroutine's stack is not part of it, so growstack must never
//! grow a coroutine onto the thread's segments (two coroutines that grew
//! and suspended out of order made `lessstack` treat a live segment as
//! cached, and a shrink released it under the suspended coroutine).

use std::hint::black_box;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use growstack::growable;

/// Recurses `n` levels, each keeping a value on its frame and a pointer to
/// the frame above; suspends at the bottom; checks every level on the way
/// back (Go's runtime tests do the same across stack moves).
#[growable]
fn down(n: u32, above: &u64, y: &Yielder<(), u32>) -> u64 {
    let mine = u64::from(n) * 7 + *above;
    let pad = [n; 16];
    black_box(&pad);
    let below = if n == 0 {
        y.suspend(n);
        0
    } else {
        down(n - 1, &mine, y)
    };
    assert_eq!(mine, u64::from(n) * 7 + *above, "a frame changed under us");
    assert_eq!(pad[15], n);
    below + 1
}

fn coroutine(levels: u32) -> Coroutine<(), u32, u64, DefaultStack> {
    let stack = DefaultStack::new(8 << 20).unwrap();
    Coroutine::with_stack(stack, move |y, ()| down(levels, &0, y))
}

#[test]
fn coroutines_of_another_crate_suspended_mid_recursion_in_any_order_keep_their_frames() {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            // C1 runs and suspends deep down; C2 is made afterwards and does
            // the same; the thread recurses deeply meanwhile; C1 finishes
            // first; a shrink gives back what is cached; C2 finishes.
            let growths = || growstack::stats().growths;
            let g0 = growths();
            let mut c1 = coroutine(2000);
            assert!(matches!(c1.resume(()), CoroutineResult::Yield(0)));
            let mut c2 = coroutine(2000);
            assert!(matches!(c2.resume(()), CoroutineResult::Yield(0)));
            // Growths are counted process-wide; tests of this binary run
            // one at a time (there is one), so these are the coroutines'.
            assert_eq!(
                growths() - g0,
                0,
                "a coroutine grew onto the thread's segments"
            );
            // The thread's own deep recursion grows as usual (its guard is
            // its own, not a coroutine's).
            assert_eq!(plain_depth(200_000), 200_000);
            let CoroutineResult::Return(r1) = c1.resume(()) else {
                panic!("c1 did not finish")
            };
            growstack::shrink_now();
            let CoroutineResult::Return(r2) = c2.resume(()) else {
                panic!("c2 did not finish")
            };
            assert_eq!((r1, r2), (2001, 2001));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[growable]
fn plain_depth(n: u32) -> u32 {
    let pad = [n; 8];
    black_box(&pad);
    if n == 0 { 0 } else { plain_depth(n - 1) + 1 }
}
