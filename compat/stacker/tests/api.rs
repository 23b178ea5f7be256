//! stacker's documented behaviour, checked on every kind of stack
//! growstack runs code on: a thread's native stack, a segment, a task's
//! slot, and another library's coroutine.

use std::cell::Cell;
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::rc::Rc;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};

const MIB: usize = 1 << 20;

/// Runs `f` on a new thread with a native stack of `size` bytes.
fn on_thread<T: Send + 'static>(size: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(size)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// The stack pointer, roughly: the address of a local.
#[inline(never)]
fn here() -> usize {
    let x = 0u8;
    black_box(&x) as *const u8 as usize
}

#[test]
fn remaining_stack_on_a_thread_counts_down_to_the_end_of_its_native_stack() {
    let (left, deeper) = on_thread(2 * MIB, || {
        let left = stacker::remaining_stack().unwrap();
        let deeper = use_stack(100, &|| stacker::remaining_stack().unwrap());
        (left, deeper)
    });
    // Near the top of a 2 MiB stack (std puts a little above main).
    assert!(left <= 2 * MIB && left > 2 * MIB - 64 * 1024, "{left}");
    // 100 frames of at least 1 KiB each lower.
    assert!(deeper < left - 100 * 1024, "{deeper} vs {left}");
}

/// Recurses `n` levels of 1 KiB frames, then calls `f`.
#[inline(never)]
fn use_stack<T>(n: u32, f: &dyn Fn() -> T) -> T {
    let pad = [n as u8; 1024];
    black_box(&pad);
    if n == 0 { f() } else { use_stack(n - 1, f) }
}

#[test]
fn grow_gives_the_closure_at_least_stack_size_bytes() {
    for size in [4096, 64 * 1024, MIB, 3 * MIB, 16 * MIB, 100 * MIB] {
        let (left, sp) = stacker::grow(size, || (stacker::remaining_stack().unwrap(), here()));
        assert!(left >= size, "grow({size}): only {left} bytes");
        // The closure runs on a segment, not on the caller's stack.
        let outer = here();
        assert!(sp.abs_diff(outer) > 64 * 1024, "grow({size}) ran in place");
    }
}

#[test]
fn grow_always_switches_and_nests_without_doubling() {
    // 500 nested grows of 64 KiB each: each gets a segment of its own,
    // just big enough (stacker maps 500 small stacks). Doubling segments
    // would pass the 1 GiB limit after ten levels.
    fn nest(n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            stacker::grow(64 * 1024, || {
                assert!(stacker::remaining_stack().unwrap() >= 64 * 1024);
                nest(n - 1) + 1
            })
        }
    }
    assert_eq!(on_thread(MIB, || nest(500)), 500);
}

#[test]
fn maybe_grow_runs_in_place_with_room_and_on_a_new_stack_without() {
    on_thread(4 * MIB, || {
        let left = stacker::remaining_stack().unwrap();
        let outer = here();
        // Room: runs here.
        let inner = stacker::maybe_grow(left / 2, MIB, here);
        assert!(inner.abs_diff(outer) < 4096, "ran elsewhere with room");
        // Not enough room (a red zone larger than what is left): a new
        // stack with at least `stack_size`.
        let (inner, room) = stacker::maybe_grow(left + 64 * 1024, 2 * MIB, || {
            (here(), stacker::remaining_stack().unwrap())
        });
        assert!(
            inner.abs_diff(outer) > 64 * 1024,
            "did not switch: {inner:x} {outer:x} {room}"
        );
        assert!(room >= 2 * MIB, "{room}");
    });
}

#[test]
fn deep_recursion_through_maybe_grow_on_a_small_thread() {
    // stacker's own `deep` test, on a 256 KiB thread and 10x deeper.
    fn foo(n: usize, s: &mut [u8]) -> usize {
        black_box(s.as_ptr());
        if n == 0 {
            return 0;
        }
        stacker::maybe_grow(64 * 1024, MIB, || {
            let mut s = [0u8; 256];
            let below = foo(n - 1, &mut s);
            black_box(s.as_ptr());
            below + 1
        })
    }
    assert_eq!(on_thread(256 * 1024, || foo(1_000_000, &mut [])), 1_000_000);
}

#[test]
fn a_panic_crosses_back_with_its_payload_after_dropping_what_was_on_the_new_stack() {
    struct Counted(Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let outer = Counted(drops.clone());
    let result = catch_unwind(AssertUnwindSafe(|| {
        stacker::grow(MIB, || {
            let _inner = Counted(drops.clone());
            stacker::grow(MIB, || {
                let _deeper = Counted(drops.clone());
                panic_any(42u32)
            })
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
    assert_eq!(drops.get(), 2, "the two values on the new stacks");
    drop(outer);
    assert_eq!(drops.get(), 3);
}

#[test]
fn a_growth_is_profiled_at_the_callers_line() {
    on_thread(MIB, || {
        let line = line!() + 1;
        stacker::maybe_grow(usize::MAX / 2, MIB, || black_box(1));
        let site = growstack::profile()
            .into_iter()
            .find(|s| s.file == file!() && s.line == line)
            .expect("no profile entry at the call");
        assert_eq!((site.module_path, site.name), ("stacker", "maybe_grow"));
        assert!(site.growths >= 1);
        assert!(site.bytes >= MIB as u64);
    });
}

#[test]
fn remaining_stack_in_a_task_counts_down_to_the_end_of_its_slot() {
    let rt = growstack::Runtime::builder()
        .workers(1)
        .stack_size(256 * 1024)
        .build()
        .unwrap();
    let (left, grown) = rt
        .spawn(|| {
            let left = stacker::remaining_stack().unwrap();
            // The task's slot: 256 KiB less its 64 KiB guard region.
            assert!(left <= 192 * 1024, "{left}");
            // A red zone bigger than the slot: this grows.
            let grown =
                stacker::maybe_grow(256 * 1024, 2 * MIB, || stacker::remaining_stack().unwrap());
            (left, grown)
        })
        .join()
        .unwrap();
    assert!(left > 100 * 1024, "{left}");
    assert!(grown >= 2 * MIB, "{grown}");
}

#[test]
fn recursion_through_maybe_grow_in_many_tasks() {
    fn depth(n: u64) -> u64 {
        stacker::maybe_grow(32 * 1024, MIB, || if n == 0 { 0 } else { 1 + depth(n - 1) })
    }
    let rt = growstack::Runtime::builder().workers(2).build().unwrap();
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            rt.spawn(move || {
                growstack::yield_now();
                depth(20_000 + i)
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), 20_000 + i as u64);
    }
}

#[test]
fn on_another_librarys_coroutine_growth_uses_stacks_of_its_own() {
    on_thread(MIB, || {
        // A 64 KiB coroutine stack: 100,000 levels need far more.
        let stack = DefaultStack::new(64 * 1024).unwrap();
        let mut co = Coroutine::with_stack(stack, |y, ()| {
            assert_eq!(
                stacker::remaining_stack(),
                None,
                "a stack growstack does not know"
            );
            fn depth(n: u64) -> u64 {
                stacker::maybe_grow(32 * 1024, MIB, || if n == 0 { 0 } else { 1 + depth(n - 1) })
            }
            let inner = stacker::grow(MIB, || {
                // On a stack of growstack's own: known.
                let left = stacker::remaining_stack().unwrap();
                assert!(left >= MIB, "{left}");
                depth(100_000)
            });
            y.suspend(inner);
            depth(50_000)
        });
        let CoroutineResult::Yield(first) = co.resume(()) else {
            panic!("did not yield")
        };
        // The thread grows on its own segments meanwhile.
        let mine = stacker::grow(MIB, || stacker::remaining_stack().unwrap());
        assert!(mine >= MIB);
        let CoroutineResult::Return(second) = co.resume(()) else {
            panic!("did not return")
        };
        assert_eq!((first, second), (100_000, 50_000));
    });
}

#[test]
fn grow_and_maybe_grow_in_a_thread_local_destructor_run_in_place() {
    struct Late;
    impl Drop for Late {
        fn drop(&mut self) {
            // Runs after growstack's own state may be gone: must not panic.
            let v = stacker::grow(MIB, || stacker::maybe_grow(64 * 1024, MIB, || 7));
            assert_eq!(v, 7);
            let _ = stacker::remaining_stack();
        }
    }
    thread_local!(static LATE: Late = const { Late });
    on_thread(MIB, || {
        stacker::grow(MIB, || ());
        LATE.with(|_| ());
    });
}

#[test]
fn a_stack_size_no_stack_can_have_is_an_ordinary_panic() {
    // No limit is set in this binary (stacker has none): the arena refuses.
    for size in [usize::MAX, 1 << 41] {
        let err = catch_unwind(|| stacker::grow(size, || ())).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("no memory for a stack segment"), "{msg}");
        assert!(msg.contains("stacker::grow"), "{msg}");
    }
    // The thread goes on.
    assert_eq!(stacker::grow(MIB, || 3), 3);
}

#[test]
fn a_task_looping_through_maybe_grow_is_preempted_there() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    // SAFETY: no task of this runtime initialises a thread-local.
    let rt = unsafe { growstack::Runtime::builder().preempt(Duration::from_millis(1)) }
        .workers(1)
        .build()
        .unwrap();
    let other_ran = Arc::new(AtomicBool::new(false));
    let seen = other_ran.clone();
    // Spins on the only worker, never blocking: only a preemption taken in
    // maybe_grow lets the other task run. (The time bound only keeps a
    // failure from hanging the suite.)
    let spinner = rt.spawn(move || {
        let give_up = Instant::now() + Duration::from_secs(30);
        while !seen.load(Ordering::SeqCst) && Instant::now() < give_up {
            stacker::maybe_grow(32 * 1024, MIB, || black_box(1));
        }
        seen.load(Ordering::SeqCst)
    });
    let other = rt.spawn(move || other_ran.store(true, Ordering::SeqCst));
    assert!(
        spinner.join().unwrap(),
        "the spinning task was never preempted"
    );
    other.join().unwrap();
}

#[test]
fn tasks_of_one_worker_interleave_inside_grow_and_maybe_grow() {
    // Every task yields inside its grown stacks, at many depths, so the
    // worker switches between tasks that are each several segments deep;
    // each checks its frames on the way back.
    fn down(n: u64, seed: u64) -> u64 {
        let mine = [seed ^ n; 8];
        let below = if n == 0 {
            0
        } else {
            stacker::maybe_grow(32 * 1024, 256 * 1024, || {
                if n.is_multiple_of(500) {
                    growstack::yield_now();
                }
                if n.is_multiple_of(2000) {
                    stacker::grow(64 * 1024, || down(n - 1, seed))
                } else {
                    down(n - 1, seed)
                }
            })
        };
        assert_eq!(black_box(mine), [seed ^ n; 8], "a frame changed under us");
        below + 1
    }
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|seed| rt.spawn(move || down(20_000, seed)))
        .collect();
    for t in tasks {
        assert_eq!(t.join().unwrap(), 20_001);
    }
}

#[test]
fn a_tasks_max_stack_bounds_its_growths_through_stacker() {
    let rt = growstack::Runtime::builder()
        .workers(1)
        .max_stack(8 * MIB)
        .build()
        .unwrap();
    let err = rt
        .spawn(|| stacker::grow(16 * MIB, || ()))
        .join()
        .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("exceeds 8388608-byte limit"), "{msg}");
}
