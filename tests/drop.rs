//! A deeply nested structure drops without overflowing, when its `Drop`
//! impl is `#[growable]`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Node {
    value: u64,
    next: Option<Box<Node>>,
}

#[growstack::growable]
impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        // Dropping the tail here keeps the recursion inside `drop`, where
        // the check is.
        drop(self.next.take());
    }
}

#[test]
fn million_long_list_drops() {
    growstack::set_max_stack(32 << 30);
    let n = 1_000_000;
    let (sum, dropped) = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            let mut list = Node {
                value: 0,
                next: None,
            };
            for i in 1..n {
                list = Node {
                    value: i,
                    next: Some(Box::new(list)),
                };
            }
            let mut sum = 0;
            let mut cur = Some(&list);
            while let Some(node) = cur {
                sum += node.value;
                cur = node.next.as_deref();
            }
            drop(list);
            (sum, DROPPED.load(Ordering::Relaxed))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(dropped, n as usize);
}

mod large_frame_slow_path {
    // Regression test (medium-high, crash in optimised builds; no preemption needed, found by review):
    // for `#[growable] impl Drop` the macro's slow path is
    // `morestack_body(&DESC, move || #block)` -- the *raw* body, not
    // `out_of_line(...)` as on the fast path. `morestack_body` is generic and
    // `run_with_room` calls `f()` directly on its preempt branch, so LLVM
    // inlines the body into `morestack_body` (objdump of the release
    // tests/drop.rs binary: `lock incq DROPPED` and `drop_in_place<Node>`
    // sit inside `growstack_runtime::grow::morestack_body`, no closure symbol
    // left). A body with a 100 KB local then puts that local in
    // morestack_body's *own* frame, allocated by its prologue on the caller's
    // stack -- exactly where the check said there is no room -- before any
    // switch to a segment. Debug builds (the whole suite but frame_size) do
    // not inline, so nothing catches it.
    // Interleaving: none; release build, ~7 KiB above the limit, drop a value
    // whose #[growable] Drop has a 100 KB array: has_room_for(200_000) fails
    // -> morestack_body -> prologue probes 100 KB down -> guard region.
    // Before the fix (cargo test --release): the child dies with
    // growstack's stack-overflow report (SIGABRT) instead of exiting 0.
    #![cfg(not(debug_assertions))]

    use std::hint::black_box;

    #[allow(unused_imports)]
    use super::common;

    struct Big;

    #[growstack::growable]
    impl Drop for Big {
        fn drop(&mut self) {
            let buf = [1u8; 100_000];
            black_box(&buf);
        }
    }

    use super::common::near_the_limit;

    #[test]
    fn a_drop_with_a_large_frame_gets_its_room_in_release_builds() {
        let name = "a_drop_with_a_large_frame_gets_its_room_in_release_builds";
        let out = common::child(name, || {
            common::on_thread(256 << 10, || near_the_limit(&mut || drop(black_box(Big))));
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}

mod preempted_large_frame {
    // Regression test (medium, crash; preemption on, found by review): `run_with_room` lets a preempted
    // call through with `preempt_point() && guard::has_room()`, i.e. with room
    // for an ordinary frame only. For `Entry::Recall` that is harmless (the
    // re-call checks `has_room_for(frame)` again), but for `Entry::Body` --
    // a `#[growable] impl Drop` whose body has large locals, checked with
    // `has_room_for(frame)` -- `f()` is the body itself: it runs in place with
    // its 100 KB array although there is no room for it.
    //
    // Interleaving (preempt(1 ms), 1 worker): a task sits ~7 KiB above its
    // limit and drops `Big` values in a loop (each drop normally continues on
    // a cached segment). The monitor poisons the guard; the next check is
    // Big::drop's has_room_for(200_000): it fails, preempt_point() yields and
    // returns true, has_room() is true (a few KiB left), so the body runs
    // here, ~100 KB below the stack pointer: into the slot's guard region.
    // Before the fix: the child aborts with growstack's stack-overflow
    // report (SIGABRT/SIGSEGV) instead of exiting 0.

    use std::hint::black_box;
    use std::time::{Duration, Instant};

    #[allow(unused_imports)]
    use super::common;

    struct Big;

    #[growstack::growable]
    impl Drop for Big {
        fn drop(&mut self) {
            let buf = [1u8; 100_000];
            black_box(&buf);
        }
    }

    use super::common::near_the_limit;

    #[test]
    fn a_preempted_drop_with_a_large_frame_still_gets_room() {
        let name = "a_preempted_drop_with_a_large_frame_still_gets_room";
        let out = common::child(name, || {
            // SAFETY: no task here initialises a thread-local.
            let rt = unsafe { growstack::Runtime::builder().preempt(Duration::from_millis(1)) }
                .workers(1)
                .build()
                .unwrap();
            let before = growstack::stats().preemptions;
            let drops = rt.block_on(|| {
                let mut drops = 0u64;
                near_the_limit(&mut || {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(300) {
                        drop(black_box(Big));
                        drops += 1;
                    }
                });
                drops
            });
            assert!(drops > 0);
            assert!(
                growstack::stats().preemptions > before,
                "precondition: preempted"
            );
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}
