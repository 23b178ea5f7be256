//! Tasks: join values and panics, spawning from tasks, pinning to one
//! worker, sleeping, deep recursion beyond the slot, many tasks at once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::CountDrop;
use growstack::{Runtime, chan};

mod common;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn join_returns_each_tasks_value() {
    let rt = runtime(2);
    let handles: Vec<_> = (0..1000u64).map(|i| rt.spawn(move || i * 3)).collect();
    let values: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(values, (0..1000u64).map(|i| i * 3).collect::<Vec<_>>());
}

#[test]
fn join_returns_the_panic_payload_and_the_task_drops_what_it_owned() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let owned = CountDrop(drops.clone());
    let h = rt.spawn(move || -> u32 {
        let _owned = owned;
        let _local = CountDrop(_owned.0.clone());
        std::panic::panic_any(String::from("task failed on purpose"));
    });
    let payload = h.join().unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("task failed on purpose")
    );
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

/// A result whose alignment is above what a worker's cell cache serves.
#[repr(align(256))]
struct Aligned(u64);

#[test]
fn task_cells_of_every_size_and_alignment_hold_their_values_and_drop_once() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    // Rounds of small, large (past the cached sizes) and over-aligned cells,
    // joined from a task (cells freed on a worker, then reused) and from
    // this thread (freed here).
    for round in 0..4u64 {
        let d = drops.clone();
        let from_task = rt.block_on(move || {
            let small: Vec<_> = (0..300u64)
                .map(|i| {
                    let c = CountDrop(d.clone());
                    growstack::spawn(move || (i + round, c).0)
                })
                .collect();
            let large: Vec<_> = (0..50u64)
                .map(|i| {
                    let pad = [i; 512];
                    growstack::spawn(move || pad.iter().sum::<u64>())
                })
                .collect();
            let aligned: Vec<_> = (0..50u64)
                .map(|i| growstack::spawn(move || Aligned(i * round)))
                .collect();
            let small: u64 = small.into_iter().map(|h| h.join().unwrap()).sum();
            let large: u64 = large.into_iter().map(|h| h.join().unwrap()).sum();
            let aligned: Vec<u64> = aligned
                .into_iter()
                .map(|h| {
                    let a = h.join().unwrap();
                    assert_eq!(&a as *const Aligned as usize % 256, 0);
                    a.0
                })
                .collect();
            (small, large, aligned)
        });
        assert_eq!(from_task.0, (0..300).map(|i| i + round).sum::<u64>());
        assert_eq!(from_task.1, (0..50u64).map(|i| i * 512).sum::<u64>());
        assert_eq!(
            from_task.2,
            (0..50u64).map(|i| i * round).collect::<Vec<_>>()
        );
        let from_thread: u64 = (0..100u64)
            .map(|i| rt.spawn(move || i + round))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(from_thread, (0..100).map(|i| i + round).sum::<u64>());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 4 * 300);
}

#[test]
fn block_on_returns_the_value_and_resumes_a_panic_on_the_caller() {
    let rt = runtime(2);
    assert_eq!(rt.block_on(|| 6 * 7), 42);
    let err = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(|| panic!("inside block_on"))
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"inside block_on"));
}

fn tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let children: Vec<_> = (0..3)
        .map(|_| growstack::spawn(move || tree(depth - 1)))
        .collect();
    children.into_iter().map(|h| h.join().unwrap()).sum::<u64>() + 1
}

#[test]
fn tasks_spawn_and_join_tasks() {
    let rt = runtime(2);
    // 3^0 + 3^1 + ... + 3^6 tasks
    assert_eq!(rt.block_on(|| tree(6)), 1093);
    assert_eq!(
        rt.block_on(|| growstack::task::Builder::new()
            .name("named")
            .spawn(|| 9)
            .join()
            .unwrap()),
        9
    );
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_message() {
    let err = catch_unwind(|| growstack::spawn(|| ())).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("outside a growstack runtime"), "{msg}");
}

#[test]
fn a_runtime_needs_a_worker() {
    let err = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_task_never_changes_thread_after_its_first_run() {
    let rt = runtime(2);
    let (tx, rx) = chan::unbounded::<u32>();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let rx = rx.clone();
            rt.spawn(move || {
                let first = std::thread::current().id();
                let mut moved = 0;
                for round in 0..50 {
                    match round % 3 {
                        0 => growstack::yield_now(),
                        1 => growstack::sleep(Duration::from_micros(50 + i)),
                        _ => {
                            rx.recv().unwrap();
                        }
                    }
                    moved += u32::from(std::thread::current().id() != first);
                }
                moved
            })
        })
        .collect();
    // Wake the receivers from a plain thread, as they ask.
    for _ in 0..64 * 16 {
        tx.send(0).unwrap();
    }
    for h in handles {
        assert_eq!(h.join().unwrap(), 0, "a task ran on another thread");
    }
}

#[test]
fn a_task_yielding_in_a_loop_starves_no_one() {
    const LOCAL: usize = 1;
    const TIMER: usize = 2;
    const FROM_OUTSIDE: usize = 4;
    const WOKEN_FROM_A_THREAD: usize = 8;
    const ALL: usize = 15;
    let rt = runtime(1);
    let seen = Arc::new(AtomicUsize::new(0));
    let mark = |bit: usize| {
        let seen = seen.clone();
        move || {
            seen.fetch_or(bit, Ordering::SeqCst);
        }
    };
    let (wake_tx, wake_rx) = chan::bounded::<()>(1);
    let parked = {
        let mark = mark(WOKEN_FROM_A_THREAD);
        rt.spawn(move || {
            wake_rx.recv().unwrap();
            mark();
        })
    };
    let spinner = {
        let seen = seen.clone();
        let (local, timer) = (mark(LOCAL), mark(TIMER));
        rt.spawn(move || {
            let local = growstack::spawn(local);
            let sleeper = growstack::spawn(move || {
                growstack::sleep(Duration::from_millis(2));
                timer();
            });
            // Gives up rather than hang if some task never gets a turn.
            let mut yields = 0u64;
            while seen.load(Ordering::SeqCst) != ALL && yields < 50_000_000 {
                growstack::yield_now();
                yields += 1;
            }
            let seen_while_yielding = seen.load(Ordering::SeqCst);
            local.join().unwrap();
            sleeper.join().unwrap();
            (seen_while_yielding, yields)
        })
    };
    // From outside the runtime: a task through the injector, and a wake
    // through the worker's inbox.
    let from_outside = rt.spawn(mark(FROM_OUTSIDE));
    wake_tx.send(()).unwrap();
    let (seen_while_yielding, yields) = spinner.join().unwrap();
    assert_eq!(
        seen_while_yielding, ALL,
        "someone starved during {yields} yields"
    );
    from_outside.join().unwrap();
    parked.join().unwrap();
}

#[test]
fn sleeping_tasks_wake_in_deadline_order() {
    let rt = runtime(1);
    let (tx, rx) = chan::unbounded();
    for ms in [60u64, 20, 40, 0] {
        let tx = tx.clone();
        rt.spawn(move || {
            growstack::sleep(Duration::from_millis(ms));
            tx.send(ms).unwrap();
        });
    }
    drop(tx);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 20, 40, 60]);
}

#[growstack::growable]
fn depth(n: u64, pad: [u64; 8]) -> u64 {
    if n == 0 {
        pad[7]
    } else {
        // black_box: in release builds `depth(n - 1) + 1` becomes a loop.
        std::hint::black_box(depth(n - 1, pad)) + 1
    }
}

#[test]
fn recursion_in_a_task_continues_on_segments_and_comes_back() {
    // Room for stress mode (GROWSTACK_STRESS=1), which uses ~1 KiB a level.
    let rt = Runtime::builder().max_stack(16 << 30).build().unwrap();
    let before = growstack::stats();
    // Far beyond the 256 KiB slot (~30 MB of frames), twice.
    for _ in 0..2 {
        assert_eq!(rt.block_on(|| depth(300_000, [0; 8])), 300_000);
    }
    let after = growstack::stats();
    assert!(after.growths > before.growths);
    // The task's stack is usable in place again after the recursion.
    assert!(rt.block_on(growstack::remaining_stack) > 64 << 10);
}

/// Recurses `n` levels, swapping one message with a partner task at every
/// level on the way down and one on the way up; returns the sum of what it
/// received.
#[growstack::growable]
fn relay(n: u64, tx: &chan::Sender<u64>, rx: &chan::Receiver<u64>, pad: [u64; 8]) -> u64 {
    if n == 0 {
        return pad[0];
    }
    tx.send(n).unwrap();
    let down = rx.recv().unwrap();
    let below = std::hint::black_box(relay(n - 1, tx, rx, pad));
    tx.send(n).unwrap();
    below + down + rx.recv().unwrap()
}

#[test]
fn tasks_handing_the_worker_to_each_other_at_depth_keep_their_own_stacks() {
    // One worker: every receive that parks hands the worker straight to the
    // other task, deep in its own segments (20,000 levels are megabytes,
    // far past the 256 KiB slot). A handoff that left the thread's guard
    // at the other task's limit made this abort in a guard region.
    let rt = Runtime::builder()
        .workers(1)
        .max_stack(4 << 30)
        .build()
        .unwrap();
    let before = growstack::stats().growths;
    let (a_tx, b_rx) = chan::bounded(1);
    let (b_tx, a_rx) = chan::bounded(1);
    const N: u64 = 20_000;
    let a = rt.spawn(move || relay(N, &a_tx, &a_rx, [0; 8]));
    let b = rt.spawn(move || relay(N, &b_tx, &b_rx, [0; 8]));
    assert_eq!(a.join().unwrap(), N * (N + 1));
    assert_eq!(b.join().unwrap(), N * (N + 1));
    assert!(growstack::stats().growths > before);
}

#[test]
fn a_task_growing_past_its_max_stack_panics_naming_it() {
    let rt = Runtime::builder().max_stack(8 << 20).build().unwrap();
    let h = rt.block_on(|| {
        growstack::task::Builder::new()
            .name("greedy")
            .spawn(|| depth(u64::MAX / 2, [1; 8]))
    });
    let err = h.join().unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("exceeds 8388608-byte limit"), "{msg}");
    assert!(msg.contains("task #") && msg.contains("'greedy'"), "{msg}");
}

/// Lines of /proc/self/maps: the process's memory mappings.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn many_parked(n: usize) {
    let rt = runtime(2);
    let (ready_tx, ready_rx) = chan::unbounded();
    let (go_tx, go_rx) = chan::unbounded::<u64>();
    let handles: Vec<_> = (0..n as u64)
        .map(|i| {
            let ready_tx = ready_tx.clone();
            let go_rx = go_rx.clone();
            rt.spawn(move || {
                ready_tx.send(()).unwrap();
                go_rx.recv().unwrap() + i
            })
        })
        .collect();
    for _ in 0..n {
        ready_rx.recv().unwrap();
    }
    // Every task is parked on go_rx now.
    assert!(growstack::stats().tasks_live >= n);
    let maps = mappings();
    assert!(maps < 1000, "{n} parked tasks use {maps} mappings");
    for _ in 0..n {
        go_tx.send(1).unwrap();
    }
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let n = n as u64;
    assert_eq!(sum, n * (n - 1) / 2 + n);
}

/// Minor page faults taken by the calling thread so far.
fn thread_page_faults() -> u64 {
    use std::io::Read;
    // Read into the stack: a heap buffer could take a fault of its own.
    let mut buf = [0u8; 1024];
    let mut file = std::fs::File::open("/proc/thread-self/stat").unwrap();
    let len = file.read(&mut buf).unwrap();
    let stat = std::str::from_utf8(&buf[..len]).unwrap();
    // The fields after the command name, which is in parentheses, start
    // with the state (field 3); minflt is field 10.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

#[test]
fn spawning_in_steady_state_takes_no_page_fault() {
    // In a child process: another test's `shrink_now` asks every runtime
    // of the process to give idle memory back, and a page given back in
    // the middle of the rounds faults in again (seen once in CI's stress
    // pass).
    let name = "spawning_in_steady_state_takes_no_page_fault";
    let Some(out) = common::child(name, spawn_rounds_without_faults) else {
        return;
    };
    common::assert_exited_ok(&out);
}

fn spawn_rounds_without_faults() {
    let rt = runtime(1);
    // The task runs on the worker's thread, where every task of this
    // runtime runs, so the thread's counter sees all their faults.
    let (faults, sum) = rt.block_on(|| {
        let round = || {
            let handles: Vec<_> = (0..1000u64)
                .map(|i| growstack::spawn(move || std::hint::black_box(i) * 2))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        };
        let rounds = |n| (0..n).map(|_| round()).sum::<u64>();
        // The first rounds fault in the slots, cells and queues (and this
        // task's stack down to the depth of a round).
        rounds(5);
        let before = thread_page_faults();
        let sum = rounds(200);
        (thread_page_faults() - before, sum)
    });
    assert_eq!(sum, 200 * 999 * 1000);
    assert_eq!(faults, 0, "200,000 spawns on reused slots took page faults");
    std::process::exit(0);
}

#[test]
fn a_hundred_thousand_tasks_parked_at_once() {
    many_parked(100_000);
}

#[test]
#[ignore = "a million tasks: ~4 GiB of memory; run with --ignored"]
fn a_million_tasks_parked_at_once() {
    many_parked(1_000_000);
}

#[growstack::test]
fn the_test_attribute_runs_the_body_as_a_task() {
    assert!(growstack::task::current_id().is_some());
    let h = growstack::spawn(|| 5);
    assert_eq!(h.join().unwrap(), 5);
}

/// Records where it was dropped: in a task or not.
struct WhereDropped(chan::Sender<bool>);
impl Drop for WhereDropped {
    fn drop(&mut self) {
        let in_task = growstack::task::current_id().is_some();
        let _ = self.0.send(in_task);
    }
}

#[test]
fn a_detached_tasks_result_is_dropped_once_by_the_task_itself() {
    let rt = runtime(1);
    // The handle goes before the task finishes: the task drops its result.
    let (dropped_tx, dropped_rx) = chan::unbounded();
    let (go_tx, go_rx) = chan::bounded::<()>(1);
    let h = rt.spawn(move || {
        go_rx.recv().unwrap();
        WhereDropped(dropped_tx)
    });
    drop(h);
    go_tx.send(()).unwrap();
    assert_eq!(dropped_rx.recv(), Ok(true));
    assert!(dropped_rx.recv_timeout(Duration::from_millis(50)).is_err());

    // The handle goes after it finished: the result drops with the handle.
    let (dropped_tx, dropped_rx) = chan::unbounded();
    let h = rt.spawn(move || WhereDropped(dropped_tx));
    while !h.is_finished() {
        std::thread::yield_now();
    }
    drop(h);
    assert_eq!(dropped_rx.recv(), Ok(false));
    assert!(dropped_rx.recv_timeout(Duration::from_millis(50)).is_err());
}

#[test]
fn shrink_now_from_destructors_in_a_task_and_at_shutdown_returns() {
    struct ShrinkOnDrop;
    impl Drop for ShrinkOnDrop {
        fn drop(&mut self) {
            growstack::shrink_now();
        }
    }
    let rt = runtime(1);
    // In a task: the task parks while its (only) worker runs the pass.
    let (block_tx, block_rx) = chan::bounded::<()>(1);
    let blocker = rt.spawn(move || block_rx.recv().is_err());
    let payload = ShrinkOnDrop;
    let h = rt.spawn(move || drop(payload));
    drop(block_tx);
    assert!(blocker.join().unwrap());
    h.join().unwrap();
    // At shutdown: a closure that never ran is dropped by its exiting
    // worker, whose own pass is then no longer asked for.
    let rt2 = runtime(1);
    let busy = rt2.spawn(|| std::thread::sleep(Duration::from_millis(50)));
    let payload = ShrinkOnDrop;
    let never = rt2.spawn(move || drop(payload));
    drop((busy, never));
    drop(rt2);
}

/// A joiner that consumed the wake of a completion claiming it before the
/// completion said done parked again for good (issue 13: 2 workers, rounds
/// of spawn and join hung within seconds).
#[test]
fn rounds_of_spawn_and_join_on_two_workers_never_hang() {
    let rounds = common::within(Duration::from_secs(60), "spawn/join rounds", || {
        let rt = runtime(2);
        for round in 0..2000u64 {
            let sum = rt.block_on(move || {
                let hs: Vec<_> = (0..200u64)
                    .map(|i| growstack::spawn(move || i + round))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(sum, 200 * 199 / 2 + 200 * round);
        }
        2000
    });
    assert_eq!(rounds, 2000);
}

/// A task that waits for a blocking call through `spawn_blocking` parks,
/// so another task of its (only) worker runs meanwhile: here the blocking
/// call waits for that very task, which would deadlock if it ran on the
/// worker.
#[test]
fn spawn_blocking_keeps_the_worker_free_for_its_other_tasks() {
    let got = common::within(Duration::from_secs(60), "spawn_blocking", || {
        let rt = runtime(1);
        rt.block_on(|| {
            let (tx, rx) = std::sync::mpsc::channel::<u32>();
            let waiting = growstack::spawn(move || {
                growstack::spawn_blocking(move || rx.recv().unwrap() * 2)
                    .join()
                    .unwrap()
            });
            let sender = growstack::spawn(move || tx.send(21).unwrap());
            sender.join().unwrap();
            waiting.join().unwrap()
        })
    });
    assert_eq!(got, 42);
    // From a plain thread, and a panic comes back through join.
    let payload = growstack::spawn_blocking(|| -> u32 { panic!("blocking job failed") })
        .join()
        .unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"blocking job failed"));
}

/// Settings no runtime can honour are refused by `build`, with a message
/// naming the setting (a 2 TiB slot was accepted, and every task then
/// failed to get its stack; a size that wraps in `next_power_of_two`
/// panicked or wrapped to a tiny slot).
#[test]
fn build_refuses_settings_it_cannot_honour() {
    for (what, builder) in [
        ("stack (slot)", Runtime::builder().stack_size(2 << 40)),
        ("stack (slot)", Runtime::builder().stack_size(usize::MAX)),
        ("max_stack", Runtime::builder().max_stack(64 << 10)),
        ("workers", Runtime::builder().workers(1 << 20)),
        ("at least one worker", Runtime::builder().workers(0)),
    ] {
        let err = builder.build().expect_err(what);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{what}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}

mod blocking_pool_accounting {
    // The blocking pool counted a notified thread as idle until it woke:
    // with N idle threads, N+1 jobs spawned back to back started no thread,
    // and N+1 jobs waiting for each other at a barrier hung. Found by
    // review; notifying now counts the thread out.

    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::common;

    #[test]
    fn jobs_spawned_back_to_back_each_get_a_thread() {
        common::within(
            Duration::from_secs(30),
            "blocking jobs waiting for each other",
            || {
                for round in 0..10usize {
                    let n = round + 2;
                    let barrier = Arc::new(Barrier::new(n));
                    let hs: Vec<_> = (0..n)
                        .map(|_| {
                            let b = barrier.clone();
                            growstack::spawn_blocking(move || {
                                b.wait();
                            })
                        })
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                    // Let every pool thread go back to waiting (idle).
                    std::thread::sleep(Duration::from_millis(50));
                }
            },
        );
    }
}

mod reservation_table_full {
    // With 1 GiB task slots every stack is an arena reservation of its own,
    // and the table of 4096 reservations filled at about 4090 tasks: an
    // assert under the pool lock stopped the whole runtime (aborted on g0).
    // Found by review; the arena now returns an error, and only the tasks
    // that cannot get a stack fail.

    use std::time::Duration;

    use super::common;

    #[test]
    #[ignore = "10 s: run with --ignored"]
    fn many_tasks_with_1_gib_slots_fail_one_by_one_not_the_runtime() {
        const N: usize = 4200;
        common::within(
            Duration::from_secs(300),
            "4200 tasks with 1 GiB slots",
            || {
                let rt = growstack::Runtime::builder()
                    .workers(1)
                    .stack_size(1 << 30)
                    .build()
                    .unwrap();
                let (started_tx, started) = growstack::chan::unbounded::<()>();
                let (gate_tx, gate) = growstack::chan::bounded::<()>(1);
                let hs: Vec<_> = (0..N)
                    .map(|_| {
                        let started_tx = started_tx.clone();
                        let gate = gate.clone();
                        rt.spawn(move || {
                            started_tx.send(()).unwrap();
                            let _ = gate.recv(); // parked until the gate closes
                        })
                    })
                    .collect();
                drop(started_tx);
                let mut n = 0;
                while started.recv_timeout(Duration::from_secs(10)).is_ok() {
                    n += 1;
                    if n == N {
                        break;
                    }
                }
                drop(gate_tx);
                let mut cancelled = 0;
                for h in hs {
                    if let Err(payload) = h.join() {
                        let msg = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .unwrap_or_default();
                        if !msg.contains("no memory") {
                            cancelled += 1;
                        }
                    }
                }
                assert_eq!(cancelled, 0, "{n} of {N} tasks started; the runtime died");
            },
        );
    }
}

#[growstack::test(workers = 3)]
fn test_attribute_starts_the_workers_it_is_asked_for() {
    // In a child process, where this runtime is the only one: its worker
    // threads are the threads named growstack-worker-N (the kernel keeps
    // 15 bytes of a name: "growstack-worke").
    let name = "test_attribute_starts_the_workers_it_is_asked_for";
    let Some(out) = common::child(name, || {
        let count = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter(|t| {
                    let comm = t.as_ref().unwrap().path().join("comm");
                    std::fs::read_to_string(comm).unwrap().trim() == "growstack-worke"
                })
                .count()
        };
        // A thread takes its name once it runs: wait (at most 10 s) for
        // the third to have started.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::process::exit(count() as i32);
    }) else {
        return;
    };
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn a_panic_in_a_task_names_the_task_and_where_it_was_spawned() {
    // std names only the worker thread.
    let Some(out) = common::child(
        "a_panic_in_a_task_names_the_task_and_where_it_was_spawned",
        || {
            let rt = growstack::Runtime::builder().workers(1).build().unwrap();
            let h = rt.block_on(|| {
                growstack::task::Builder::new()
                    .name("parser")
                    .spawn(|| panic!("unexpected token"))
            });
            let _ = h.join();
            std::process::exit(0);
        },
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    common::assert_exited_ok(&out);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("growstack: task #"))
        .unwrap_or_else(|| panic!("no task line: {stderr}"));
    assert!(
        line.contains(" 'parser' (on thread 'growstack-worker-0')"),
        "{line}"
    );
    assert!(line.contains(" (spawned at tests/tasks.rs:"), "{line}");
    assert!(line.contains(") panicked at tests/tasks.rs:"), "{line}");
    assert!(line.ends_with(": unexpected token"), "{line}");
    // std's own message follows, from the hook that was in place.
    assert!(stderr.contains("panicked at tests/tasks.rs:"), "{stderr}");
    assert!(stderr.contains("unexpected token"), "{stderr}");
}

#[test]
fn a_handle_spawns_from_a_plain_thread_and_cancels_once_the_runtime_is_gone() {
    let rt = growstack::Runtime::builder().workers(2).build().unwrap();
    assert!(
        growstack::Handle::try_current().is_none(),
        "not in a runtime"
    );
    let handle = rt.block_on(growstack::Handle::current);
    // From a plain thread, as a task hands the runtime on.
    let h2 = handle.clone();
    let sum = std::thread::spawn(move || {
        let tasks: Vec<_> = (0..10u64).map(|i| h2.spawn(move || i * 2)).collect();
        tasks.into_iter().map(|t| t.join().unwrap()).sum::<u64>()
    })
    .join()
    .unwrap();
    assert_eq!(sum, 90);
    assert_eq!(handle.block_on(|| 5), 5);
    drop(rt);
    // The runtime is gone: a task spawned now never runs; its closure is
    // dropped and its join says Cancelled (it did not hang).
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = common::CountDrop(Arc::clone(&dropped));
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::clone(&ran);
    let late = handle.spawn(move || {
        let _guard = guard;
        ran2.fetch_add(1, Ordering::SeqCst);
    });
    let payload = late.join().unwrap_err();
    assert!(
        payload
            .downcast_ref::<growstack::task::Cancelled>()
            .is_some()
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    // Detached at once, never joined: its closure is dropped all the same
    // (it stayed in the stopped runtime's queue before).
    let guard = common::CountDrop(Arc::clone(&dropped));
    drop(handle.spawn(move || drop(guard)));
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn spawns_through_a_handle_racing_the_runtime_s_drop_each_run_or_are_cancelled() {
    common::within(
        Duration::from_secs(120),
        "handle spawns racing a drop",
        || {
            for _ in 0..200 {
                let rt = growstack::Runtime::builder().workers(2).build().unwrap();
                let handle = rt.handle();
                let dropped = Arc::new(AtomicUsize::new(0));
                let d = Arc::clone(&dropped);
                let spawner = std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let guard = common::CountDrop(Arc::clone(&d));
                            handle.spawn(move || {
                                let _guard = guard;
                                i
                            })
                        })
                        .collect::<Vec<_>>()
                });
                drop(rt);
                let mut outcomes = 0;
                for h in spawner.join().unwrap() {
                    match h.join() {
                        Ok(_) => outcomes += 1,
                        Err(p) => {
                            assert!(p.downcast_ref::<growstack::task::Cancelled>().is_some());
                            outcomes += 1;
                        }
                    }
                }
                assert_eq!(outcomes, 50);
                // Every closure was dropped once: run, or cancelled unrun.
                assert_eq!(dropped.load(Ordering::SeqCst), 50);
            }
        },
    );
}

#[test]
fn a_task_panic_with_stderr_a_closed_pipe_still_returns_from_join() {
    // The hook's line used eprintln!, which panics when the write fails: a
    // panic in a panic hook aborts the process.
    let name = "a_task_panic_with_stderr_a_closed_pipe_still_returns_from_join";
    if std::env::var(common::CHILD).as_deref() == Ok(name) {
        // Wait for the parent to close the pipe's read end.
        std::thread::sleep(Duration::from_millis(200));
        let rt = growstack::Runtime::new().unwrap();
        let joined = rt.spawn(|| panic!("nobody reads this")).join();
        std::process::exit(if joined.is_err() { 0 } else { 1 });
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(common::CHILD, name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn the_first_runtime_may_be_built_in_a_destructor_during_unwinding() {
    // Installing the panic hook then panicked ("cannot modify the panic
    // hook from a panicking thread") and poisoned every later build.
    let Some(out) = common::child(
        "the_first_runtime_may_be_built_in_a_destructor_during_unwinding",
        || {
            struct BuildsOnDrop;
            impl Drop for BuildsOnDrop {
                fn drop(&mut self) {
                    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
                    assert_eq!(rt.block_on(|| 3), 3);
                }
            }
            let caught = std::panic::catch_unwind(|| {
                let _d = BuildsOnDrop;
                panic!("unwinding");
            });
            assert!(caught.is_err());
            let rt = growstack::Runtime::builder().workers(1).build().unwrap();
            assert_eq!(rt.block_on(|| 4), 4);
            std::process::exit(0);
        },
    ) else {
        return;
    };
    common::assert_exited_ok(&out);
}

#[test]
fn join_timeout_gives_the_handle_back_then_the_outcome_in_tasks_and_threads() {
    let rt = growstack::Runtime::builder().workers(2).build().unwrap();
    for in_task in [false, true] {
        let (tx, rx) = growstack::chan::bounded::<u32>(0);
        let waiting = rt.spawn(move || rx.recv().unwrap() * 2);
        let check = move || {
            let waiting = waiting
                .join_timeout(Duration::from_millis(10))
                .expect_err("the task waits for a message");
            tx.send(21).unwrap();
            waiting
                .join_timeout(Duration::from_secs(60))
                .ok()
                .unwrap()
                .unwrap()
        };
        let got = if in_task { rt.block_on(check) } else { check() };
        assert_eq!(got, 42, "in a task: {in_task}");
    }
    // A timeout past any instant waits as join does.
    let h = rt.spawn(|| 9);
    assert_eq!(h.join_timeout(Duration::MAX).ok().unwrap().unwrap(), 9);
    // A panic's payload comes back as from join.
    let boom = rt.spawn(|| -> u32 { panic!("boom") });
    let payload = boom
        .join_timeout(Duration::from_secs(60))
        .ok()
        .unwrap()
        .unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    // A task its dropped runtime will never finish: Cancelled, not a timeout.
    let (_keep, rx) = growstack::chan::bounded::<()>(0);
    let (started_tx, started_rx) = growstack::chan::bounded(1);
    let stuck = rt.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
    });
    started_rx.recv().unwrap();
    drop(rt);
    let payload = stuck
        .join_timeout(Duration::from_secs(60))
        .ok()
        .unwrap()
        .unwrap_err();
    assert!(
        payload
            .downcast_ref::<growstack::task::Cancelled>()
            .is_some()
    );
}

#[test]
fn sleeping_past_any_instant_sleeps_instead_of_panicking() {
    // `Instant::now() + Duration::MAX` panicked in the task.
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = growstack::chan::bounded(1);
    let sleeper = rt.spawn(move || {
        tx.send(()).unwrap();
        growstack::sleep(Duration::MAX);
    });
    rx.recv().unwrap();
    let sleeper = sleeper
        .join_timeout(Duration::from_millis(50))
        .expect_err("still asleep, not panicked");
    drop(rt);
    let payload = sleeper.join().unwrap_err();
    assert!(
        payload
            .downcast_ref::<growstack::task::Cancelled>()
            .is_some()
    );
}

#[test]
fn a_task_panic_while_another_thread_holds_stderr_does_not_hang_its_worker() {
    // The hook's line took std's stderr lock, held here for good by the
    // main thread: the panicking worker waited forever.
    let name = "a_task_panic_while_another_thread_holds_stderr_does_not_hang_its_worker";
    let Some(out) = common::child(name, || {
        let rt = growstack::Runtime::builder().workers(1).build().unwrap();
        let stderr = std::io::stderr();
        let _held = stderr.lock();
        let h = rt.spawn(|| panic!("while stderr is locked"));
        let joined = common::within(Duration::from_secs(30), "a panic in a task", move || {
            h.join().is_err()
        });
        std::process::exit(if joined { 0 } else { 1 });
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
}

/// Spawns a copy of itself through `handle` when dropped, `left` more times.
struct Respawner {
    handle: growstack::Handle,
    left: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Respawner {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.left > 0 {
            let next = Respawner {
                handle: self.handle.clone(),
                left: self.left - 1,
                drops: Arc::clone(&self.drops),
            };
            drop(self.handle.spawn(move || drop(next)));
        }
    }
}

#[test]
fn closures_that_respawn_on_drop_after_the_runtime_stopped_do_not_recurse() {
    // Each late spawn was cancelled in place, dropping the closure, whose
    // drop spawned again: 100k nested cancellations overflowed the stack.
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle();
    drop(rt);
    let drops = Arc::new(AtomicUsize::new(0));
    let first = Respawner {
        handle: handle.clone(),
        left: 100_000,
        drops: Arc::clone(&drops),
    };
    drop(handle.spawn(move || drop(first)));
    assert_eq!(drops.load(Ordering::SeqCst), 100_001);
}

#[test]
fn panic_note_off_leaves_only_std_s_message() {
    let Some(out) = common::child("panic_note_off_leaves_only_std_s_message", || {
        let rt = growstack::Runtime::builder()
            .workers(1)
            .panic_note(false)
            .build()
            .unwrap();
        let _ = rt.spawn(|| panic!("quietly")).join();
        std::process::exit(0);
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("growstack: task #"), "{stderr}");
    assert!(stderr.contains("quietly"), "{stderr}");
}
