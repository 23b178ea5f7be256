//! Stackful coroutines of another crate (corosensei) on a thread that
//! also runs `#[growable]` code. All contexts of a thread share its stack
//! chain; a coroutine's stack is not part of it, so growstack must never
//! grow a coroutine onto the thread's segments (two coroutines that grew
//! and suspended out of order made `lessstack` treat a live segment as
//! cached, and a shrink released it under the suspended coroutine).

mod common;

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

mod resumed_at_another_depth {
    // A coroutine whose checks fail (its stack lies below the thread's
    // guard) suspends inside 11 calls; the thread recurses onto segments
    // and resumes it there. Each of its calls, returning, restored the
    // chain state saved when it began (depth 0) while the thread ran on a
    // segment, and the shrink that followed released that live segment
    // (SIGSEGV). Found by review; a foreign call now saves nothing.

    use std::hint::black_box;

    use corosensei::stack::DefaultStack;
    use corosensei::{Coroutine, CoroutineResult, Yielder};
    use growstack::growable;

    use super::common;

    #[growable]
    fn down(n: u32, y: &Yielder<(), bool>) -> u32 {
        let pad = [n; 16];
        black_box(&pad);
        let r = if n == 0 {
            // Precondition: C's stack is below the thread's guard, so its
            // checks fail and its calls go through foreign brackets.
            y.suspend(growstack::remaining_stack() == 0);
            0
        } else {
            down(n - 1, y) + 1
        };
        assert_eq!(pad[15], n);
        r
    }

    #[growable]
    fn deep(n: u32, at_bottom: &mut dyn FnMut()) -> u32 {
        let pad = [n; 8];
        black_box(&pad);
        let r = if n == 0 {
            at_bottom();
            0
        } else {
            deep(n - 1, at_bottom) + 1
        };
        assert_eq!(pad[7], n, "a frame changed under us");
        r
    }

    #[test]
    fn a_foreign_coroutine_resumed_at_another_depth_does_not_rewrite_the_chain() {
        let out = common::child(
            "a_foreign_coroutine_resumed_at_another_depth_does_not_rewrite_the_chain",
            || {
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(|| {
                        let stack = DefaultStack::new(8 << 20).unwrap();
                        let mut c = Coroutine::with_stack(stack, |y, ()| down(10, y));
                        let CoroutineResult::Yield(below) = c.resume(()) else {
                            panic!()
                        };
                        assert!(
                            below,
                            "precondition: C's checks must fail (C's stack below the guard)"
                        );
                        let segments_before = growstack::stats().growths;
                        let depth = deep(100_000, &mut || {
                            assert!(growstack::stats().growths > segments_before, "on a segment");
                            assert!(matches!(c.resume(()), CoroutineResult::Return(10)));
                            // The chain now says depth 0 while we run on a segment.
                            growstack::shrink_now();
                        });
                        assert_eq!(depth, 100_000);
                    })
                    .unwrap()
                    .join()
                    .unwrap();
                std::process::exit(0);
            },
        );
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}

mod bypass_of_a_foreign_call {
    // The thread's first check runs inside a coroutine whose stack lies
    // above the thread's: the foreign call set the one-shot bypass for its
    // re-call, whose check then passed and left it set, and a much later
    // check of a 100 KB frame near the limit took it and ran in place
    // (stack overflow). Found by review; the bypass is now set only when
    // the re-call's check would fail.

    use std::hint::black_box;

    use corosensei::stack::DefaultStack;
    use corosensei::{Coroutine, CoroutineResult};

    use super::common;

    #[growstack::growable]
    fn touch(x: u32) -> u32 {
        black_box(x)
    }

    #[growstack::growable]
    fn big() -> u8 {
        let buf = [7u8; 100_000];
        black_box(&buf);
        buf[99_999]
    }

    use super::common::near_the_limit;

    #[test]
    fn a_bypass_set_in_a_foreign_context_does_not_outlive_it() {
        let name = "a_bypass_set_in_a_foreign_context_does_not_outlive_it";
        let out = common::child(name, || {
            let stack = DefaultStack::new(1 << 20).unwrap(); // mapped before the thread
            std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn(move || {
                    let here = 0u8;
                    let native = black_box(&here as *const u8 as usize);
                    let mut c: Coroutine<(), (), usize, DefaultStack> =
                        Coroutine::with_stack(stack, |_, ()| {
                            let m = 0u8;
                            let at = black_box(&m as *const u8 as usize);
                            touch(1); // this thread's first check
                            at
                        });
                    let CoroutineResult::Return(at) = c.resume(()) else {
                        panic!()
                    };
                    assert!(
                        at > native,
                        "precondition: the coroutine's stack is above the thread's"
                    );
                    let mut r = 0;
                    near_the_limit(&mut || r = big());
                    assert_eq!(r, 7);
                })
                .unwrap()
                .join()
                .unwrap();
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}
