//! Stack compaction (`Builder::compact_after`): parked tasks' stacks moved
//! to buffers and their pages released, then copied back before the tasks
//! run. Values on the stacks survive, every kind of wait is woken by each
//! of its causes with nothing lost, and the memory really goes.
//!
//! The tests take a lock each: they read the process-wide compaction
//! counters, which the tests of other runtimes would move.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use growstack::chan::select;
use growstack::task::{ParkedOn, TaskState};
use growstack::{Runtime, chan};

mod common;
use common::CountDrop;

const AFTER: Duration = Duration::from_millis(20);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn compacting(workers: usize, after: Duration) -> Runtime {
    // SAFETY: no task of these tests lends its stack to anyone while it is
    // parked.
    unsafe { Runtime::builder().compact_after(after) }
        .workers(workers)
        .build()
        .unwrap()
}

/// Waits until `n` more stacks were compacted than `before` counted.
fn await_compactions(before: u64, n: u64) {
    let start = Instant::now();
    while growstack::stats().compactions < before + n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "expected {n} compactions: {:?}",
            growstack::stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn compactions() -> u64 {
    growstack::stats().compactions
}

/// VmRSS and VmPTE of this process, in bytes.
fn rss_and_pte() -> (i64, i64) {
    (
        common::status_bytes("VmRSS") as i64,
        common::status_bytes("VmPTE") as i64,
    )
}

/// Recurses `depth` frames, each holding an array derived from its
/// caller's and a reference to it, then parks in `recv`; sums everything on
/// the way back, reading the references down the chain.
#[inline(never)]
fn deep(depth: u64, parent: &[u64; 8], entry: &str, rx: &chan::Receiver<u64>) -> u64 {
    let mine: [u64; 8] =
        core::array::from_fn(|i| parent[i].wrapping_mul(31).wrapping_add(depth + i as u64));
    let got = if depth == 0 {
        rx.recv().unwrap()
    } else {
        deep(depth - 1, &mine, entry, rx)
    };
    // `parent` points into the caller's frame, `entry` into the task's
    // closure: both must read as before the park.
    got.wrapping_add(sum(&mine))
        .wrapping_add(parent[7])
        .wrapping_add(entry.len() as u64)
}

fn sum(values: &[u64]) -> u64 {
    values.iter().fold(0, |a, &b| a.wrapping_add(b))
}

fn expected(depth: u64, seed: u64, entry: &str, msg: u64) -> u64 {
    let mut frames = vec![[seed; 8]];
    for d in (0..=depth).rev() {
        let p = *frames.last().unwrap();
        frames.push(core::array::from_fn(|i| {
            p[i].wrapping_mul(31).wrapping_add(d + i as u64)
        }));
    }
    let mut total = msg;
    for k in (1..frames.len()).rev() {
        total = total
            .wrapping_add(sum(&frames[k]))
            .wrapping_add(frames[k - 1][7])
            .wrapping_add(entry.len() as u64);
    }
    total
}

#[test]
fn frames_and_borrows_survive_compaction() {
    let _serial = serial();
    let rt = compacting(2, AFTER);
    let before = compactions();
    const TASKS: u64 = 200;
    const DEPTH: u64 = 40;
    let (tx, rx) = chan::unbounded::<u64>();
    let tasks: Vec<_> = (0..TASKS)
        .map(|seed| {
            let rx = rx.clone();
            rt.spawn(move || {
                let entry = format!("task {seed} with a name on the heap");
                let seeds = [seed; 8];
                deep(DEPTH, &seeds, &entry, &rx)
            })
        })
        .collect();
    await_compactions(before, TASKS);
    let s = growstack::stats();
    assert!(s.compacted_tasks >= TASKS as usize, "{s:?}");
    assert!(s.compacted_bytes >= TASKS as usize * 1000, "{s:?}");
    // Every task gets 1000 + its seed: messages go to parked receivers in
    // arrival order, so send one at a time and see who answers.
    let mut total = 0u64;
    let mut want = 0u64;
    for seed in 0..TASKS {
        let entry = format!("task {seed} with a name on the heap");
        want = want.wrapping_add(expected(DEPTH, seed, &entry, 0));
    }
    for i in 0..TASKS {
        tx.send(1000 + i).unwrap();
        want = want.wrapping_add(1000 + i);
    }
    for t in tasks {
        total = total.wrapping_add(t.join().unwrap());
    }
    assert_eq!(total, want);
}

#[test]
fn compacted_waits_wake_on_messages_timeouts_and_disconnects() {
    let _serial = serial();
    let rt = compacting(2, AFTER);
    let before = compactions();
    // A receive woken by a message, one by its timeout, one by the
    // disconnect of its senders.
    let (msg_tx, msg_rx) = chan::bounded::<String>(0);
    let (quiet_tx, quiet_rx) = chan::bounded::<String>(0);
    let (gone_tx, gone_rx) = chan::bounded::<String>(0);
    let by_msg = rt.spawn(move || msg_rx.recv_timeout(Duration::from_secs(30)));
    let by_timeout = rt.spawn(move || quiet_rx.recv_timeout(Duration::from_millis(600)));
    let by_disconnect = rt.spawn(move || gone_rx.recv());
    // A send woken when its message is taken, and one when every receiver
    // is gone (the message comes back).
    let (full_tx, full_rx) = chan::bounded::<String>(0);
    let (lost_tx, lost_rx) = chan::bounded::<String>(0);
    let sent = rt.spawn(move || full_tx.send("taken".to_string()));
    let refused = rt.spawn(move || lost_tx.send("back".to_string()));
    await_compactions(before, 5);

    msg_tx.send("hello".to_string()).unwrap();
    assert_eq!(by_msg.join().unwrap().unwrap(), "hello");
    assert_eq!(
        by_timeout.join().unwrap(),
        Err(chan::RecvTimeoutError::Timeout)
    );
    drop(gone_tx);
    assert!(by_disconnect.join().unwrap().is_err());
    assert_eq!(full_rx.recv().unwrap(), "taken");
    sent.join().unwrap().unwrap();
    drop(lost_rx);
    assert_eq!(refused.join().unwrap().unwrap_err().into_inner(), "back");
    drop(quiet_tx);
}

#[test]
fn compacted_joins_locks_selects_and_sleeps_wake() {
    let _serial = serial();
    let rt = compacting(2, AFTER);
    let before = compactions();
    // A join of a task that waits on a channel.
    let (go_tx, go_rx) = chan::bounded::<u64>(0);
    let joiner = rt.spawn(move || {
        let inner = growstack::spawn(move || go_rx.recv().unwrap() * 2);
        inner.join().unwrap() + 1
    });
    // A lock held by this thread.
    let lock = Arc::new(growstack::sync::Mutex::new(Vec::<u64>::new()));
    let held = lock.lock().unwrap();
    let locker = {
        let lock = Arc::clone(&lock);
        rt.spawn(move || {
            lock.lock().unwrap().push(7);
            lock.lock().unwrap().len()
        })
    };
    // A condvar wait.
    let pair = Arc::new((
        growstack::sync::Mutex::new(false),
        growstack::sync::Condvar::new(),
    ));
    let waiter = {
        let pair = Arc::clone(&pair);
        rt.spawn(move || {
            let (m, cv) = &*pair;
            let mut ready = m.lock().unwrap();
            while !*ready {
                ready = cv.wait(ready).unwrap();
            }
            42
        })
    };
    // A select over two channels woken by its second arm, one woken by the
    // disconnect of its channel, and one by its timeout.
    let (a_tx, a_rx) = chan::bounded::<u64>(0);
    let (b_tx, b_rx) = chan::bounded::<u64>(0);
    let selector = rt.spawn(move || {
        select! {
            recv(a_rx) -> m => (0, m.unwrap()),
            recv(b_rx) -> m => (1, m.unwrap()),
        }
    });
    let (gone_tx, gone_rx) = chan::bounded::<u64>(0);
    let disconnected = rt.spawn(move || {
        select! {
            recv(gone_rx) -> m => m.is_err(),
        }
    });
    let (_never_tx, never_rx) = chan::bounded::<u64>(0);
    let timed = rt.spawn(move || {
        select! {
            recv(never_rx) -> _ => false,
            default(Duration::from_millis(600)) => true,
        }
    });
    // A sleep.
    let sleeper = rt.spawn(|| {
        let start = Instant::now();
        growstack::sleep(Duration::from_millis(600));
        start.elapsed()
    });
    // Two for the join (the joiner and the task it joins), one each for the
    // others.
    await_compactions(before, 8);

    go_tx.send(20).unwrap();
    assert_eq!(joiner.join().unwrap(), 41);
    drop(held);
    assert_eq!(locker.join().unwrap(), 1);
    *pair.0.lock().unwrap() = true;
    pair.1.notify_all();
    assert_eq!(waiter.join().unwrap(), 42);
    b_tx.send(9).unwrap();
    assert_eq!(selector.join().unwrap(), (1, 9));
    drop(gone_tx);
    assert!(disconnected.join().unwrap());
    assert!(timed.join().unwrap());
    assert!(sleeper.join().unwrap() >= Duration::from_millis(600));
    drop(a_tx);
}

#[test]
fn a_compacted_socket_read_wakes_with_its_bytes() {
    use std::io::{Read, Write};
    let _serial = serial();
    let rt = compacting(1, AFTER);
    let before = compactions();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = rt.spawn(move || {
        let mut stream = growstack::net::TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        buf
    });
    let (mut peer, _) = listener.accept().unwrap();
    await_compactions(before, 1);
    peer.write_all(b"bytes").unwrap();
    assert_eq!(&reader.join().unwrap(), b"bytes");
}

#[test]
fn a_task_woken_often_is_never_compacted() {
    let _serial = serial();
    let rt = compacting(1, AFTER);
    let stop = Arc::new(AtomicUsize::new(0));
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let echo = rt.spawn(move || ping_rx.iter().map(|v| pong_tx.send(v).unwrap()).count());
    let driver = {
        let stop = Arc::clone(&stop);
        rt.spawn(move || {
            let mut n = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                ping_tx.send(n).unwrap();
                assert_eq!(pong_rx.recv().unwrap(), n);
                n += 1;
            }
            n
        })
    };
    let before = compactions();
    // Many sweeps, each past the threshold since the pair started.
    std::thread::sleep(15 * AFTER);
    let during = compactions() - before;
    stop.store(1, Ordering::Relaxed);
    let rounds = driver.join().unwrap();
    assert_eq!(echo.join().unwrap() as u64, rounds);
    assert!(rounds > 1000, "the pair ran: {rounds}");
    assert_eq!(during, 0, "a ping-pong pair was compacted");
}

#[test]
fn compaction_gives_back_pages_and_page_tables() {
    let _serial = serial();
    // Long enough a threshold to measure the tasks parked first; slots of
    // a size no other test uses, so that whole 2 MiB chunks are this test's
    // (a chunk shared with a task that is not compacted keeps its page
    // table).
    // SAFETY: as in `compacting`.
    let rt = unsafe { Runtime::builder().compact_after(Duration::from_millis(500)) }
        .workers(1)
        .stack_size(512 << 10)
        .build()
        .unwrap();
    const TASKS: usize = 4096;
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let (go_tx, go_rx) = chan::unbounded::<()>();
    let base = rss_and_pte();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (ready_tx, go_rx) = (ready_tx.clone(), go_rx.clone());
            rt.spawn(move || {
                ready_tx.send(()).unwrap();
                go_rx.recv().is_err()
            })
        })
        .collect();
    for _ in 0..TASKS {
        ready_rx.recv().unwrap();
    }
    let before = compactions();
    let parked = rss_and_pte();
    await_compactions(before, TASKS as u64);
    // The chunks go with their page tables once they stayed compacted for
    // ten times the threshold.
    let start = Instant::now();
    while parked.1 - rss_and_pte().1 < (TASKS * 900) as i64
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let compacted = rss_and_pte();
    let per_task = |a: i64, b: i64| (a - b) / TASKS as i64;
    // Each task had at least a page of stack (4096 B) and its share of its
    // 2 MiB chunk's page table (1024 B at 512 KiB slots); it keeps a buffer
    // of its used stack (a few hundred bytes optimised, more in a debug
    // build) and the allocator's rounding.
    let buffer = growstack::stats().compacted_bytes as i64 / TASKS as i64;
    let rss_freed = per_task(parked.0, compacted.0);
    let pte_freed = per_task(parked.1, compacted.1);
    assert!(
        rss_freed >= 4096 - buffer - 512,
        "RSS freed per task: {rss_freed} B, buffers {buffer} B"
    );
    assert!(
        pte_freed >= 900,
        "page tables freed per task: {pte_freed} B"
    );
    let left = per_task(compacted.0 + compacted.1, base.0 + base.1);
    assert!(left < 4096, "left per task: {left} B");
    drop(go_tx);
    assert!(tasks.into_iter().all(|t| t.join().unwrap()));
}

#[test]
fn a_dump_reads_compacted_tasks_and_leaves_them_compacted() {
    let _serial = serial();
    let rt = compacting(2, AFTER);
    let before = compactions();
    let (tx, rx) = chan::bounded::<u64>(0);
    let ids: Vec<_> = (0..20)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || parked_in_a_named_frame(&rx))
        })
        .collect();
    await_compactions(before, 20);
    let compacted = growstack::stats().compacted_tasks;
    let dump: Vec<_> = growstack::dump()
        .into_iter()
        .filter(|t| t.runtime == rt.id())
        .collect();
    assert_eq!(dump.len(), 20);
    for t in &dump {
        assert!(
            matches!(
                t.state,
                TaskState::Parked {
                    on: ParkedOn::Recv { .. },
                    ..
                }
            ),
            "{:?}",
            t.state
        );
        let bt = t.backtrace.as_ref().expect("a backtrace").to_string();
        assert!(bt.contains("parked_in_a_named_frame"), "{bt}");
    }
    assert_eq!(growstack::stats().compacted_tasks, compacted);
    for i in 0..20 {
        tx.send(i).unwrap();
    }
    let sum: u64 = ids.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, (0..20u64).map(|i| i + 1).sum::<u64>());
}

#[inline(never)]
fn parked_in_a_named_frame(rx: &chan::Receiver<u64>) -> u64 {
    rx.recv().unwrap() + 1
}

#[test]
fn a_compacted_task_that_panics_unwinds_its_restored_frames() {
    let _serial = serial();
    let rt = compacting(1, AFTER);
    let before = compactions();
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = chan::bounded::<u64>(0);
    let task = {
        let drops = Arc::clone(&drops);
        rt.spawn(move || {
            let _a = CountDrop(Arc::clone(&drops));
            let v = nested_guard(&drops, &rx);
            let _b = CountDrop(drops);
            if v == 13 {
                panic!("unlucky {v}");
            }
        })
    };
    await_compactions(before, 1);
    tx.send(13).unwrap();
    let payload = task.join().unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "unlucky 13");
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[inline(never)]
fn nested_guard(drops: &Arc<AtomicUsize>, rx: &chan::Receiver<u64>) -> u64 {
    let _g = CountDrop(Arc::clone(drops));
    rx.recv().unwrap()
}

#[test]
fn compacted_tasks_left_at_runtime_drop_are_cancelled_or_finish() {
    let _serial = serial();
    let rt = compacting(2, AFTER);
    let before = compactions();
    let (tx, rx) = chan::unbounded::<u64>();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || rx.recv().unwrap())
        })
        .collect();
    await_compactions(before, 200);
    // Half are woken (queued, still compacted, maybe run) and the runtime
    // goes at once: the others stay parked for good.
    for i in 0..100 {
        tx.send(i).unwrap();
    }
    drop(rt);
    let (mut done, mut cancelled) = (0, 0);
    for t in tasks {
        match t.join() {
            Ok(v) => {
                assert!(v < 100);
                done += 1;
            }
            Err(_) => cancelled += 1,
        }
    }
    assert_eq!(done + cancelled, 200);
    assert!(cancelled >= 100, "{done} done");
}

#[test]
fn compacted_tasks_woken_in_random_order_all_complete() {
    let _serial = serial();
    many_compacted_tasks_woken_in_random_order(20_000);
}

/// The soak: a million.
#[test]
#[ignore = "soak: a million tasks, several GiB before compaction"]
fn soak_a_million_compacted_tasks_woken_in_random_order() {
    let _serial = serial();
    many_compacted_tasks_woken_in_random_order(1_000_000);
}

fn many_compacted_tasks_woken_in_random_order(n: u64) {
    let rt = compacting(2, AFTER);
    let before = compactions();
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let mut senders = Vec::new();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (tx, rx) = chan::bounded::<u64>(1);
            senders.push(tx);
            let ready_tx = ready_tx.clone();
            rt.spawn(move || {
                let local = [i; 4];
                ready_tx.send(()).unwrap();
                rx.recv().unwrap() + local[3]
            })
        })
        .collect();
    for _ in 0..n {
        ready_rx.recv().unwrap();
    }
    await_compactions(before, n);
    // A random permutation (xorshift), woken in that order.
    let mut order: Vec<usize> = (0..n as usize).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for k in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(k, (x % (k as u64 + 1)) as usize);
    }
    for &k in &order {
        senders[k].send(k as u64).unwrap();
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), 2 * i as u64);
    }
}

#[test]
fn tasks_of_two_workers_interleaving_around_the_threshold_lose_nothing() {
    let _serial = serial();
    let rt = compacting(2, Duration::from_millis(5));
    let lock = Arc::new(growstack::sync::Mutex::new(0u64));
    let (tx, rx) = chan::bounded::<u64>(4);
    const TASKS: u64 = 64;
    const ROUNDS: u64 = 40;
    let producers: Vec<_> = (0..TASKS)
        .map(|t| {
            let (tx, lock) = (tx.clone(), Arc::clone(&lock));
            rt.spawn(move || {
                for r in 0..ROUNDS {
                    // Parked around the threshold: some waits are
                    // compacted, some not.
                    growstack::sleep(Duration::from_millis((t * 7 + r * 3) % 12));
                    *lock.lock().unwrap() += 1;
                    tx.send(t * ROUNDS + r).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || {
                let mut sum = 0;
                while let Ok(v) = rx.recv_timeout(Duration::from_secs(30)) {
                    sum += v;
                    if v % 5 == 0 {
                        growstack::sleep(Duration::from_millis(6));
                    }
                }
                sum
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let sum: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    let n = TASKS * ROUNDS;
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(*lock.lock().unwrap(), n);
}

#[test]
fn a_task_parked_inside_a_foreign_coroutine_is_left_alone() {
    use corosensei::{Coroutine, CoroutineResult};
    let _serial = serial();
    let rt = compacting(1, AFTER);
    let (tx, rx) = chan::bounded::<u64>(0);
    let (parked_tx, parked_rx) = chan::bounded::<()>(0);
    let task = rt.spawn(move || {
        let outer = [3u64; 16];
        // The coroutine's stack holds an address in this task's frame.
        let outer_at = outer.as_ptr() as usize;
        let mut co = Coroutine::new(move |yielder, start: u64| {
            // Parks on the coroutine's stack, not the task's slot.
            parked_tx.send(()).unwrap();
            let v = rx.recv().unwrap();
            let again: u64 = yielder.suspend(v + start);
            // SAFETY: `outer` lives in the task's frame, which outlives the
            // coroutine; the task runs (it resumed us).
            again + unsafe { *(outer_at as *const u64).add(15) }
        });
        let first = match co.resume(10) {
            CoroutineResult::Yield(v) => v,
            CoroutineResult::Return(_) => unreachable!(),
        };
        // Suspended on its own stack, holding `outer`'s address: this task
        // parks in its slot now, and may be compacted.
        let (tx2, rx2) = chan::bounded::<u64>(0);
        let sender = growstack::spawn(move || {
            growstack::sleep(Duration::from_millis(200));
            tx2.send(100).unwrap();
        });
        let more = rx2.recv().unwrap();
        sender.join().unwrap();
        match co.resume(more) {
            CoroutineResult::Return(v) => first + v,
            CoroutineResult::Yield(_) => unreachable!(),
        }
    });
    parked_rx.recv().unwrap();
    let before = compactions();
    std::thread::sleep(10 * AFTER);
    assert_eq!(
        compactions(),
        before,
        "compacted a task parked off its slot"
    );
    tx.send(5).unwrap();
    assert_eq!(task.join().unwrap(), 15 + 103);
}

/// A threshold too long to mean anything (it is taken as a day) used to
/// overflow an `Instant` in the worker's scheduler (found by review).
#[test]
fn a_threshold_of_duration_max_means_never() {
    let _serial = serial();
    let rt = compacting(1, Duration::MAX);
    let before = compactions();
    let (tx, rx) = chan::bounded::<u64>(0);
    let parked = rt.spawn(move || rx.recv().unwrap() + 1);
    // The worker goes idle with a task parked, then works again.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rt.spawn(|| 2).join().unwrap(), 2);
    tx.send(41).unwrap();
    assert_eq!(parked.join().unwrap(), 42);
    assert_eq!(compactions(), before);
}

/// Where the chunk table cannot be reserved (an address-space limit, or
/// strict overcommit), compaction goes on without releasing whole chunks:
/// every sweep used to panic its worker (found by review). In a child
/// process, since the limit is the whole process's.
#[test]
fn without_room_for_the_chunk_table_compaction_goes_on() {
    const CHILD: &str = "GROWSTACK_TEST_NO_CHUNK_TABLE";
    if std::env::var_os(CHILD).is_some() {
        no_chunk_table_child();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_room_for_the_chunk_table_compaction_goes_on",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child: 100 compacted, sum 5050"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn no_chunk_table_child() {
    let rt = compacting(1, AFTER);
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let (tx, rx) = chan::unbounded::<u64>();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (ready_tx, rx) = (ready_tx.clone(), rx.clone());
            rt.spawn(move || {
                ready_tx.send(()).unwrap();
                rx.recv().unwrap()
            })
        })
        .collect();
    for _ in 0..100 {
        ready_rx.recv().unwrap();
    }
    // Room for what is mapped now and 256 MiB: not for the 512 MiB table,
    // which the first compaction reserves.
    let limit = libc::rlimit {
        rlim_cur: common::status_bytes("VmSize") + (256 << 20),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    await_compactions(0, 100);
    let compacted = compactions();
    for i in 1..=100 {
        tx.send(i).unwrap();
    }
    let sum: u64 = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    println!("child: {compacted} compacted, sum {sum}");
}

#[test]
fn a_compacted_socket_read_wakes_on_end_of_stream_and_on_its_timeout() {
    use std::io::Read;
    let _serial = serial();
    let rt = compacting(1, AFTER);
    let before = compactions();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = rt.spawn(move || {
        let mut stream = growstack::net::TcpStream::connect(addr).unwrap();
        let mut buf = [7u8; 4];
        stream.read(&mut buf).unwrap()
    });
    let (peer, _) = listener.accept().unwrap();
    let timed = rt.spawn(move || {
        let mut stream = growstack::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        let mut buf = [0u8; 4];
        stream.read(&mut buf).unwrap_err().kind()
    });
    let (quiet_peer, _) = listener.accept().unwrap();
    await_compactions(before, 2);
    drop(peer);
    assert_eq!(closed.join().unwrap(), 0);
    assert_eq!(timed.join().unwrap(), std::io::ErrorKind::WouldBlock);
    drop(quiet_peer);
}

/// Every kind of wait, compacted, then its runtime dropped: each task is
/// cancelled (its join says so), and nothing of it runs or is freed.
#[test]
fn compacted_waits_of_every_kind_are_cancelled_with_their_runtime() {
    use growstack::task::Cancelled;
    let _serial = serial();
    let rt = compacting(2, AFTER);
    let before = compactions();
    let (_tx, rx) = chan::bounded::<u64>(0);
    let lock = Arc::new(growstack::sync::Mutex::new(0u64));
    let held = lock.lock().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut tasks = vec![
        {
            let rx = rx.clone();
            rt.spawn(move || rx.recv().unwrap())
        },
        {
            let rx = rx.clone();
            rt.spawn(move || {
                let inner = growstack::spawn(move || rx.recv().unwrap());
                inner.join().unwrap()
            })
        },
        {
            let lock = Arc::clone(&lock);
            rt.spawn(move || *lock.lock().unwrap())
        },
        {
            let rx = rx.clone();
            rt.spawn(move || {
                select! {
                    recv(rx) -> m => m.unwrap(),
                    default(Duration::from_secs(60)) => 0,
                }
            })
        },
        rt.spawn(|| {
            growstack::sleep(Duration::from_secs(60));
            0
        }),
        rt.spawn(move || {
            use std::io::Read;
            let mut stream = growstack::net::TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 8];
            stream.read(&mut buf).unwrap() as u64
        }),
    ];
    let (peer, _) = listener.accept().unwrap();
    // The six, and the task the joiner joins.
    await_compactions(before, 7);
    drop(rt);
    for task in tasks.drain(..) {
        let payload = task.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
    }
    drop((held, peer));
}
