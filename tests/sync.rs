//! `growstack::sync` from tasks on both workers and plain threads together:
//! exclusion, wake-ups, poisoning, fairness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use growstack::sync::{Barrier, Condvar, Mutex, OnceLock, RwLock, Semaphore, WaitGroup};
use growstack::{Runtime, chan};

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// Runs `f(i)` in `tasks` tasks of `rt` and `threads` plain threads, and
/// waits for all of them.
fn everywhere(
    rt: &Runtime,
    tasks: usize,
    threads: usize,
    f: impl Fn(usize) + Send + Sync + 'static,
) {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let f = Arc::clone(&f);
            rt.spawn(move || f(i))
        })
        .collect();
    let threads: Vec<_> = (0..threads)
        .map(|i| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || f(tasks + i))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_task_parked_holding_the_lock_does_not_deadlock_its_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let shared = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = chan::bounded::<u32>(0);
    let (locked_tx, locked_rx) = chan::bounded::<()>(1);
    let holder = {
        let shared = Arc::clone(&shared);
        rt.spawn(move || {
            let mut v = shared.lock().unwrap();
            locked_tx.send(()).unwrap();
            // Parks holding the lock, until the thread sends.
            v.push(rx.recv().unwrap());
        })
    };
    locked_rx.recv().unwrap();
    let other = {
        let shared = Arc::clone(&shared);
        rt.spawn(move || {
            // The holder is parked on this same worker: a std Mutex here
            // would block the worker, and the holder would never run.
            shared.lock().unwrap().push(2);
        })
    };
    // Give the other task time to park on the lock before the holder goes on.
    std::thread::sleep(Duration::from_millis(20));
    tx.send(1).unwrap();
    holder.join().unwrap();
    other.join().unwrap();
    assert_eq!(*shared.lock().unwrap(), [1, 2]);
}

#[test]
fn mutex_excludes_tasks_and_threads() {
    let rt = runtime();
    let m = Arc::new(Mutex::new((0u64, 0u64)));
    let m2 = Arc::clone(&m);
    everywhere(&rt, 8, 2, move |_| {
        for i in 0..5000 {
            let mut g = m2.lock().unwrap();
            g.0 += 1;
            if i % 64 == 0 {
                growstack::yield_now(); // switch while holding it
            }
            g.1 += 1;
            assert_eq!(g.0, g.1);
        }
    });
    assert_eq!(*m.lock().unwrap(), (50_000, 50_000));
}

#[test]
fn try_lock_and_poisoning() {
    let rt = runtime();
    let m = Arc::new(Mutex::new(5));
    let g = m.lock().unwrap();
    assert!(matches!(
        m.try_lock(),
        Err(std::sync::TryLockError::WouldBlock)
    ));
    drop(g);
    let m2 = Arc::clone(&m);
    let err = rt
        .spawn(move || {
            let mut g = m2.lock().unwrap();
            *g = 6;
            panic!("while locked");
        })
        .join()
        .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"while locked"));
    assert!(m.is_poisoned());
    let g = m.lock().unwrap_err().into_inner();
    assert_eq!(*g, 6);
    drop(g);
    assert!(matches!(
        m.try_lock(),
        Err(std::sync::TryLockError::Poisoned(_))
    ));
    m.clear_poison();
    assert_eq!(*m.lock().unwrap(), 6);
    let m = Arc::try_unwrap(m).unwrap();
    assert_eq!(m.into_inner().unwrap(), 6);

    let rw = Arc::new(RwLock::new(1));
    let rw2 = Arc::clone(&rw);
    rt.spawn(move || {
        let _r = rw2.read().unwrap();
        panic!("reading");
    })
    .join()
    .unwrap_err();
    assert!(!rw.is_poisoned(), "a read guard does not poison, as in std");
    let rw2 = Arc::clone(&rw);
    rt.spawn(move || {
        let _w = rw2.write().unwrap();
        panic!("writing");
    })
    .join()
    .unwrap_err();
    assert!(rw.read().is_err());
    assert!(rw.write().is_err());
}

#[test]
fn a_waiter_starved_for_a_millisecond_gets_the_lock_handed_to_it() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let m = Arc::new(Mutex::new(()));
    let waiting = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicBool::new(false));
    let (m2, waiting2, got2) = (Arc::clone(&m), Arc::clone(&waiting), Arc::clone(&got));
    // A thread holds the lock 200 µs at a time and relocks at once: a
    // woken waiter nearly always finds it locked again.
    let hog = std::thread::spawn(move || {
        let mut rounds_while_waiting = 0u64;
        while !got2.load(Ordering::SeqCst) && rounds_while_waiting < 5000 {
            let _g = m2.lock().unwrap();
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_micros(200) {}
            if waiting2.load(Ordering::SeqCst) {
                rounds_while_waiting += 1;
            }
        }
        rounds_while_waiting
    });
    std::thread::sleep(Duration::from_millis(2));
    let (m3, waiting3, got3) = (Arc::clone(&m), Arc::clone(&waiting), Arc::clone(&got));
    rt.spawn(move || {
        waiting3.store(true, Ordering::SeqCst);
        let _g = m3.lock().unwrap();
        got3.store(true, Ordering::SeqCst);
    })
    .join()
    .unwrap();
    let rounds = hog.join().unwrap();
    // After a millisecond (5 rounds) of waiting, the next lost race makes
    // the lock starving, and the next unlock hands it over. Without that,
    // the task wins a round only if it runs in the hog's microsecond gap.
    assert!(rounds <= 100, "the task waited {rounds} rounds of the hog");
}

#[test]
fn rwlock_readers_share_and_writers_exclude() {
    let rt = runtime();
    let lock = Arc::new(RwLock::new((0u64, 0u64)));
    let readers_in = Arc::new(AtomicUsize::new(0));
    let most_readers = Arc::new(AtomicUsize::new(0));
    let (l, r, most) = (
        Arc::clone(&lock),
        Arc::clone(&readers_in),
        Arc::clone(&most_readers),
    );
    everywhere(&rt, 8, 2, move |i| {
        for k in 0..2000 {
            if (i + k) % 4 == 0 {
                let mut w = l.write().unwrap();
                w.0 += 1;
                if k % 32 == 0 {
                    growstack::yield_now();
                }
                w.1 += 1;
            } else {
                let g = l.read().unwrap();
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                if k % 16 == 0 {
                    growstack::yield_now();
                }
                assert_eq!(g.0, g.1);
                r.fetch_sub(1, Ordering::SeqCst);
            }
        }
    });
    let g = lock.read().unwrap();
    assert_eq!(g.0, g.1);
    assert_eq!(g.0, 10 * 2000 / 4);
    assert!(
        most_readers.load(Ordering::SeqCst) >= 2,
        "readers never overlapped"
    );
    assert!(lock.try_write().is_err());
    drop(g);
    assert!(lock.try_write().is_ok());
}

#[test]
fn condvar_hands_work_between_tasks_and_threads() {
    let rt = runtime();
    let state = Arc::new((Mutex::new((Vec::<u64>::new(), false)), Condvar::new()));
    let consumed = Arc::new(Mutex::new(Vec::new()));
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let (state, consumed) = (Arc::clone(&state), Arc::clone(&consumed));
            rt.spawn(move || {
                loop {
                    let (lock, cv) = &*state;
                    let mut g = cv
                        .wait_while(lock.lock().unwrap(), |(q, done)| q.is_empty() && !*done)
                        .unwrap();
                    match g.0.pop() {
                        Some(v) => {
                            drop(g);
                            consumed.lock().unwrap().push(v);
                        }
                        None => return,
                    }
                }
            })
        })
        .collect();
    let producer = {
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            for v in 0..10_000 {
                let (lock, cv) = &*state;
                lock.lock().unwrap().0.push(v);
                cv.notify_one();
            }
        })
    };
    producer.join().unwrap();
    {
        let (lock, cv) = &*state;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
    }
    for c in consumers {
        c.join().unwrap();
    }
    let mut got = consumed.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn condvar_wait_timeout_times_out_with_the_lock_back() {
    let rt = runtime();
    let pair = Arc::new((Mutex::new(7), Condvar::new()));
    let p = Arc::clone(&pair);
    let (value, timed_out) = rt.block_on(move || {
        let (m, cv) = &*p;
        let (g, res) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(10))
            .unwrap();
        (*g, res.timed_out())
    });
    assert_eq!((value, timed_out), (7, true));
    assert!(pair.0.try_lock().is_ok(), "the guard was dropped");
    let (m, cv) = &*pair;
    let (g, res) = cv
        .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(10), |v| *v == 7)
        .unwrap();
    assert!(res.timed_out());
    assert_eq!(*g, 7);
}

#[test]
fn barrier_lets_everyone_go_together_each_round() {
    let rt = runtime();
    let n = 10;
    let barrier = Arc::new(Barrier::new(n));
    let arrived = Arc::new(AtomicUsize::new(0));
    let leaders = Arc::new(AtomicUsize::new(0));
    let (b, a, l) = (
        Arc::clone(&barrier),
        Arc::clone(&arrived),
        Arc::clone(&leaders),
    );
    everywhere(&rt, 8, 2, move |_| {
        for round in 0..50 {
            a.fetch_add(1, Ordering::SeqCst);
            if b.wait().is_leader() {
                l.fetch_add(1, Ordering::SeqCst);
            }
            // Nobody passes before all of this round arrived.
            assert!(a.load(Ordering::SeqCst) >= (round + 1) * n);
        }
    });
    assert_eq!(leaders.load(Ordering::SeqCst), 50);
}

#[test]
fn semaphore_bounds_concurrency_and_serves_in_order() {
    let rt = runtime();
    let sem = Arc::new(Semaphore::new(3));
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (s, n, m) = (Arc::clone(&sem), Arc::clone(&now), Arc::clone(&most));
    everywhere(&rt, 16, 2, move |_| {
        for _ in 0..200 {
            let _p = s.acquire();
            m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            growstack::yield_now();
            n.fetch_sub(1, Ordering::SeqCst);
        }
    });
    assert!(most.load(Ordering::SeqCst) <= 3);
    assert!(most.load(Ordering::SeqCst) >= 2, "permits never overlapped");
    assert_eq!(sem.available_permits(), 3);

    // A large request is not starved by small ones that come after it.
    let one = sem.acquire_many(2);
    let big = {
        let s = Arc::clone(&sem);
        rt.spawn(move || s.acquire_many(3).num_permits())
    };
    while sem.try_acquire().is_some() {
        std::thread::sleep(Duration::from_millis(1)); // until the big one queued
    }
    drop(one);
    assert_eq!(big.join().unwrap(), 3);
    assert_eq!(sem.available_permits(), 3);
    let p = sem.acquire();
    p.forget();
    assert_eq!(sem.available_permits(), 2);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 3);
}

/// Runs `f` on a thread and fails the test if it has not returned after
/// `secs` seconds (a liveness bound, far above its usual run time).
fn finishes(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    if finished.recv_timeout(Duration::from_secs(secs)).is_err() {
        panic!("{what}: still blocked after {secs} s");
    }
    t.join().unwrap();
}

#[test]
fn a_permit_added_while_an_acquirer_queues_is_never_lost() {
    // The adder gives permit i only once the acquirer is on acquisition
    // i, so it often lands while the acquirer is between its failed try
    // and its queueing: the acquirer must see it, not wait for the next.
    const ROUNDS: usize = 100_000;
    let rt = Runtime::builder().workers(1).build().unwrap();
    let sem = Arc::new(Semaphore::new(0));
    let on = Arc::new(AtomicUsize::new(0));
    let (s, o) = (Arc::clone(&sem), Arc::clone(&on));
    let acquirer = rt.spawn(move || {
        for i in 1..=ROUNDS {
            o.store(i, Ordering::SeqCst);
            s.acquire().forget();
        }
    });
    let (s, o) = (Arc::clone(&sem), Arc::clone(&on));
    finishes(60, "an acquirer with its permit free", move || {
        for i in 1..=ROUNDS {
            while o.load(Ordering::SeqCst) < i {
                std::hint::spin_loop();
            }
            s.add_permits(1);
        }
        acquirer.join().unwrap();
    });
    assert_eq!(sem.available_permits(), 0);
}

/// Spawns `f` on a new one-worker runtime, waits until the task is
/// parked on what `parked_on` accepts, and drops the runtime: the task
/// never runs again.
fn leave_parked(
    f: impl FnOnce() + Send + 'static,
    parked_on: impl Fn(&growstack::task::ParkedOn) -> bool,
) {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let h = rt.spawn(f);
    while !growstack::dump()
        .iter()
        .any(|t| matches!(&t.state, growstack::task::TaskState::Parked { on, .. } if parked_on(on)))
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(rt);
    assert!(h.join().unwrap_err().is::<growstack::task::Cancelled>());
}

#[test]
fn locks_and_channels_hand_nothing_to_tasks_of_a_dropped_runtime() {
    use growstack::task::ParkedOn;
    let lock = |on: &ParkedOn| matches!(on, ParkedOn::Lock { .. });

    // Each lock is held here while a task queues for it, then the task's
    // runtime goes, then the lock is let go: later callers must get it.
    let mutex = Arc::new(Mutex::new(0));
    let held = mutex.lock().unwrap();
    let m = Arc::clone(&mutex);
    leave_parked(move || *m.lock().unwrap() += 1, lock);
    drop(held);
    finishes(30, "Mutex::lock", move || *mutex.lock().unwrap() += 1);

    let rwlock = Arc::new(RwLock::new(0));
    let held = rwlock.read().unwrap();
    let l = Arc::clone(&rwlock);
    leave_parked(move || *l.write().unwrap() += 1, lock);
    drop(held);
    finishes(30, "RwLock::write", move || *rwlock.write().unwrap() += 1);

    let sem = Arc::new(Semaphore::new(1));
    let held = sem.acquire();
    let s = Arc::clone(&sem);
    leave_parked(move || drop(s.acquire()), lock);
    drop(held);
    assert_eq!(sem.available_permits(), 1);

    // A message sent while the only waiting receiver is such a task stays
    // in the channel for the receivers left.
    let (tx, rx) = chan::unbounded::<u32>();
    let parked_rx = rx.clone();
    leave_parked(
        move || {
            let _ = parked_rx.recv();
        },
        |on| matches!(on, ParkedOn::Recv { .. }),
    );
    tx.send(7).unwrap();
    assert_eq!(rx.try_recv(), Ok(7));
}

#[test]
fn a_writer_queueing_behind_tasks_of_a_dropped_runtime_is_alone_in_the_lock() {
    // Tasks of a runtime that is then dropped wait to write behind our
    // read lock. A thread asks to write as we let go: while its
    // `write()` drops the dead waiters, our unlock's handover is on its
    // way; the thread must end up holding the lock alone (it used to
    // clear the queue bit and take the lock, and the handover then wrote
    // over it: a second writer got in).
    let mut seed = 0x9e37_79b9u64;
    for _ in 0..10 {
        let lock = Arc::new(RwLock::new(0u64));
        let read = lock.read().unwrap();
        let rt = Runtime::builder().workers(1).build().unwrap();
        let queued = Arc::new(AtomicUsize::new(0));
        for _ in 0..2000 {
            let (l, q) = (Arc::clone(&lock), Arc::clone(&queued));
            drop(rt.spawn(move || {
                q.fetch_add(1, Ordering::SeqCst);
                let _w = l.write();
            }));
        }
        while queued.load(Ordering::SeqCst) < 2000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20)); // the last one parks
        drop(rt);
        let go = Arc::new(std::sync::Barrier::new(2));
        let (got, release) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let writer = {
            let (l, go, got, release) = (
                Arc::clone(&lock),
                Arc::clone(&go),
                Arc::clone(&got),
                Arc::clone(&release),
            );
            std::thread::spawn(move || {
                go.wait();
                let mut w = l.write().unwrap();
                *w += 1;
                got.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            })
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 400);
        go.wait();
        let start = std::time::Instant::now();
        while start.elapsed() < delay {
            std::hint::spin_loop();
        }
        drop(read);
        while !got.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        assert!(lock.try_write().is_err(), "a second writer got in");
        assert!(
            lock.try_read().is_err(),
            "a reader got in beside the writer"
        );
        release.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 1);
    }
}

#[test]
fn wait_group_waits_for_every_piece() {
    let rt = runtime();
    let wg = Arc::new(WaitGroup::new());
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        wg.add(1);
        let (wg, done) = (Arc::clone(&wg), Arc::clone(&done));
        rt.spawn(move || {
            growstack::sleep(Duration::from_millis(1));
            done.fetch_add(1, Ordering::SeqCst);
            wg.done();
        });
    }
    // Waiters in tasks and on this thread.
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (wg, done) = (Arc::clone(&wg), Arc::clone(&done));
            rt.spawn(move || {
                wg.wait();
                done.load(Ordering::SeqCst)
            })
        })
        .collect();
    wg.wait();
    assert_eq!(done.load(Ordering::SeqCst), 100);
    for w in waiters {
        assert_eq!(w.join().unwrap(), 100);
    }
    assert_eq!(wg.count(), 0);
    let err = std::panic::catch_unwind(|| wg.done()).unwrap_err();
    assert!(
        err.downcast_ref::<&str>()
            .unwrap()
            .contains("more times than add")
    );
}

#[test]
fn once_lock_runs_one_initialiser_and_others_park() {
    let rt = runtime();
    let cell = Arc::new(OnceLock::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (c, r) = (Arc::clone(&cell), Arc::clone(&runs));
    everywhere(&rt, 16, 2, move |_| {
        let v = c.get_or_init(|| {
            r.fetch_add(1, Ordering::SeqCst);
            growstack::sleep(Duration::from_millis(10));
            42u64
        });
        assert_eq!(*v, 42);
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cell.get(), Some(&42));
    assert_eq!(cell.set(1), Err(1));
}

#[test]
fn once_lock_initialiser_panic_lets_another_run() {
    let rt = runtime();
    let cell = Arc::new(OnceLock::new());
    let c = Arc::clone(&cell);
    let err = rt
        .spawn(move || {
            c.get_or_init(|| -> String {
                growstack::sleep(Duration::from_millis(10));
                panic!("init failed")
            });
        })
        .join()
        .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"init failed"));
    assert_eq!(cell.get(), None);
    let c = Arc::clone(&cell);
    assert_eq!(
        rt.block_on(move || c.get_or_init(|| "second".to_string()).clone()),
        "second"
    );
    let cell = Arc::try_unwrap(cell).unwrap();
    assert_eq!(cell.into_inner().as_deref(), Some("second"));
}
