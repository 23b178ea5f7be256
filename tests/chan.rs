//! Channels between tasks and threads: delivery, blocking, disconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::CountDrop;
use growstack::Runtime;

mod common;
use growstack::chan::{self, RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

#[test]
fn tasks_and_threads_talk_both_ways() {
    let rt = runtime();
    let (to_task, task_rx) = chan::bounded::<u64>(2);
    let (to_thread, thread_rx) = chan::bounded::<u64>(2);
    // A task echoes doubled values back to this thread.
    let echo = rt.spawn(move || {
        for v in task_rx {
            to_thread.send(v * 2).unwrap();
        }
        "echo done"
    });
    for i in 0..1000 {
        to_task.send(i).unwrap();
        assert_eq!(thread_rx.recv(), Ok(i * 2));
    }
    drop(to_task);
    assert_eq!(echo.join().unwrap(), "echo done");
    assert_eq!(thread_rx.recv(), Err(RecvError));
}

#[test]
fn many_producers_many_consumers_each_message_once() {
    let rt = runtime();
    let (tx, rx) = chan::bounded::<u64>(8);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn(move || {
                for i in 0..2500 {
                    tx.send(p * 2500 + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || rx.iter().collect::<Vec<u64>>())
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|h| h.join().unwrap());
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
}

/// Two tasks of one worker use a channel alone (its lock gets biased to
/// the worker's thread), then a plain thread sends into it while they go
/// on, with a receiver parked: every message arrives once.
#[test]
fn a_channel_used_by_one_worker_alone_keeps_every_message_once_a_thread_joins_in() {
    const EACH: u64 = 10_000;
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = chan::bounded::<u64>(4);
    let got = rt.block_on(move || {
        let echo_rx = rx.clone();
        let (back_tx, back_rx) = chan::bounded::<u64>(1);
        let echo = growstack::spawn(move || {
            for v in echo_rx.iter().take(1000) {
                back_tx.send(v).unwrap();
            }
        });
        for i in 0..1000 {
            tx.send(i).unwrap();
            assert_eq!(back_rx.recv(), Ok(i));
        }
        echo.join().unwrap();
        let thread_tx = tx.clone();
        let thread = std::thread::spawn(move || {
            (0..EACH).for_each(|i| thread_tx.send(EACH + i).unwrap());
        });
        let receiver = growstack::spawn(move || rx.iter().collect::<Vec<u64>>());
        (0..EACH).for_each(|i| tx.send(i).unwrap());
        drop(tx);
        let got = receiver.join().unwrap();
        thread.join().unwrap();
        got
    });
    let mut got = got;
    got.sort_unstable();
    assert_eq!(got, (0..2 * EACH).collect::<Vec<_>>());
}

#[test]
fn a_task_blocked_on_recv_sees_the_last_sender_go() {
    let rt = runtime();
    let (tx, rx) = chan::unbounded::<u8>();
    let (parked_tx, parked_rx) = chan::bounded(1);
    let waiter = rt.spawn(move || {
        parked_tx.send(()).unwrap();
        rx.recv()
    });
    parked_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // let it park (either way is correct)
    let clone = tx.clone();
    drop(tx);
    drop(clone);
    assert_eq!(waiter.join().unwrap(), Err(RecvError));
}

#[test]
fn a_task_blocked_on_a_full_channel_gets_its_message_back_when_receivers_go() {
    let rt = runtime();
    let (tx, rx) = chan::bounded::<String>(1);
    tx.send("fills the channel".into()).unwrap();
    let (started_tx, started_rx) = chan::bounded(1);
    let sender = rt.spawn(move || {
        started_tx.send(()).unwrap();
        tx.send("blocked".into())
    });
    started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(rx);
    assert_eq!(
        sender.join().unwrap(),
        Err(SendError("blocked".to_string()))
    );
}

#[test]
fn a_blocked_sender_resumes_when_a_receiver_makes_room() {
    let rt = runtime();
    let (tx, rx) = chan::bounded::<u32>(1);
    let sender = rt.spawn(move || {
        for i in 0..100 {
            tx.send(i).unwrap();
        }
    });
    let got: Vec<u32> = rt.block_on(move || rx.iter().collect());
    sender.join().unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn recv_timeout_times_out_in_tasks_and_threads_and_delivers_otherwise() {
    let (tx, rx) = chan::unbounded::<u8>();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(10)),
        Err(RecvTimeoutError::Timeout)
    );
    let rt = runtime();
    let rx2 = rx.clone();
    let in_task = rt.spawn(move || rx2.recv_timeout(Duration::from_millis(10)));
    assert_eq!(in_task.join().unwrap(), Err(RecvTimeoutError::Timeout));

    let rx3 = rx.clone();
    let waiting = rt.spawn(move || rx3.recv_timeout(Duration::from_secs(60)));
    tx.send(7).unwrap();
    assert_eq!(waiting.join().unwrap(), Ok(7));
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn each_producers_messages_arrive_in_order_through_blocked_senders_and_receivers() {
    // A one-slot channel between 6 producers and 4 consumers (tasks and
    // threads) keeps both sides blocking: messages are handed to waiting
    // receivers and taken from waiting senders. Per producer, order holds.
    let rt = runtime();
    let (tx, rx) = chan::bounded::<(u64, u64)>(1);
    let producers: Vec<_> = (0..6u64)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn(move || {
                for i in 0..2000 {
                    tx.send((p, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let in_tasks: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || rx.iter().collect::<Vec<_>>())
        })
        .collect();
    let in_threads: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().collect::<Vec<_>>())
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|h| h.join().unwrap());
    let mut seen = 0;
    let got = in_tasks
        .into_iter()
        .map(|h| h.join().unwrap())
        .chain(in_threads.into_iter().map(|h| h.join().unwrap()));
    let mut all = Vec::new();
    for got in got {
        for p in 0..6 {
            let mine: Vec<u64> = got.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order"
            );
        }
        seen += got.len();
        all.extend(got);
    }
    assert_eq!(seen, 12_000);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 12_000);
}

#[test]
fn a_receiver_that_timed_out_gets_no_later_message() {
    let rt = runtime();
    let (tx, rx) = chan::unbounded::<u32>();
    let rx2 = rx.clone();
    let timed_out = rt.spawn(move || {
        let r = rx2.recv_timeout(Duration::from_millis(5));
        (r, rx2)
    });
    let (r, _rx2) = timed_out.join().unwrap();
    assert_eq!(r, Err(RecvTimeoutError::Timeout));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)),
        Err(RecvTimeoutError::Timeout)
    );
    // Had either stayed registered, the message would go to it.
    tx.send(9).unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx.try_recv(), Ok(9));
}

#[test]
fn timeouts_racing_deliveries_lose_and_duplicate_no_message() {
    // A receiver's timer and a sender may wake it at the same moment; each
    // message must still reach exactly one receiver, and be dropped once.
    const PER_PRODUCER: u32 = 5_000;
    let rt = runtime();
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = chan::bounded::<(u32, CountDrop)>(2);
    let consumers: Vec<_> = (0..8)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || {
                let (mut got, mut timeouts) = (Vec::new(), 0u32);
                loop {
                    match rx.recv_timeout(Duration::from_micros(20)) {
                        Ok((v, _drop)) => got.push(v),
                        Err(RecvTimeoutError::Timeout) => timeouts += 1,
                        Err(RecvTimeoutError::Disconnected) => return (got, timeouts),
                    }
                }
            })
        })
        .collect();
    drop(rx);
    let send_range = |tx: chan::Sender<(u32, CountDrop)>, drops: Arc<AtomicUsize>, k: u32| {
        move || {
            for v in k * PER_PRODUCER..(k + 1) * PER_PRODUCER {
                tx.send((v, CountDrop(drops.clone()))).unwrap();
                if v % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(30));
                }
            }
        }
    };
    let threads: Vec<_> = (0..2)
        .map(|k| std::thread::spawn(send_range(tx.clone(), drops.clone(), k)))
        .collect();
    let tasks: Vec<_> = (2..4)
        .map(|k| rt.spawn(send_range(tx.clone(), drops.clone(), k)))
        .collect();
    drop(tx);
    threads.into_iter().for_each(|t| t.join().unwrap());
    tasks.into_iter().for_each(|t| t.join().unwrap());
    let mut all = Vec::new();
    let mut timeouts = 0;
    for c in consumers {
        let (got, t) = c.join().unwrap();
        all.extend(got);
        timeouts += t;
    }
    all.sort_unstable();
    assert_eq!(all, (0..4 * PER_PRODUCER).collect::<Vec<_>>());
    assert_eq!(drops.load(Ordering::SeqCst), 4 * PER_PRODUCER as usize);
    assert!(timeouts > 0, "the producers pause: receivers time out");
}

/// Channels without a runtime: plain threads only, no assembly, so that
/// Miri can run these and check the waiter protocol for data races and
/// aliasing: `cargo +nightly miri test --test chan -- without_runtime`.
#[test]
fn a_rendezvous_channel_passes_each_message_from_hand_to_hand() {
    // bounded(0) panicked before: Go's default `make(chan T)`.
    let rt = runtime();
    let (tx, rx) = chan::bounded::<u64>(0);
    assert_eq!(
        tx.try_send(7),
        Err(TrySendError::Full(7)),
        "nobody receives yet"
    );
    assert_eq!(tx.len(), 0);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn(move || {
                for i in 0..1000 {
                    tx.send(p * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = rt.spawn(move || {
        let mut seen = vec![0u64; 4];
        let mut sum = 0;
        for m in rx.iter() {
            // Each producer's messages arrive in its order.
            assert_eq!(m % 1000, seen[(m / 1000) as usize]);
            seen[(m / 1000) as usize] += 1;
            sum += m;
        }
        (seen, sum)
    });
    for p in producers {
        p.join().unwrap();
    }
    let (seen, sum) = consumer.join().unwrap();
    assert_eq!(seen, vec![1000; 4]);
    assert_eq!(sum, (0..4000u64).sum::<u64>());
}

#[test]
fn a_rendezvous_sender_gets_its_message_back_when_receivers_go() {
    let rt = runtime();
    let (tx, rx) = chan::bounded::<String>(0);
    let (started_tx, started_rx) = chan::bounded(1);
    let sender = rt.spawn(move || {
        started_tx.send(()).unwrap();
        tx.send("never taken".into())
    });
    started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(rx);
    assert_eq!(
        sender.join().unwrap(),
        Err(SendError("never taken".to_string()))
    );
}

#[test]
fn a_rendezvous_try_send_succeeds_only_with_a_receiver_waiting() {
    let rt = runtime();
    let (tx, rx) = chan::bounded::<u32>(0);
    let receiver = rt.spawn(move || rx.recv());
    // Fails until the receiver waits, then hands the message over.
    while tx.try_send(5).is_err() {
        std::thread::yield_now();
    }
    assert_eq!(receiver.join().unwrap(), Ok(5));
}

mod without_runtime {
    use super::*;

    #[test]
    fn receivers_that_time_out_leave_the_others_waiting() {
        let (tx, rx) = chan::unbounded::<u32>();
        // Started 5 ms apart, so they most likely wait in this order and the
        // short ones leave from the middle of the wait list, and its end.
        let spawn = |ms: u64| {
            let rx = rx.clone();
            let h = std::thread::spawn(move || rx.recv_timeout(Duration::from_millis(ms)));
            std::thread::sleep(Duration::from_millis(5));
            h
        };
        let (long0, short1, short2, long3, short4) = (
            spawn(10_000),
            spawn(20),
            spawn(20),
            spawn(10_000),
            spawn(20),
        );
        for short in [short1, short2, short4] {
            assert_eq!(short.join().unwrap(), Err(RecvTimeoutError::Timeout));
        }
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let mut got = [long0.join().unwrap(), long3.join().unwrap()].map(Result::unwrap);
        got.sort();
        assert_eq!(got, [1, 2]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn threads_to_threads_in_order() {
        let n: u32 = if cfg!(miri) { 200 } else { 10_000 };
        let (tx, rx) = chan::bounded(3);
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<u32> = rx.iter().collect();
        producer.join().unwrap();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn try_operations_report_full_empty_and_disconnected() {
        let (tx, rx) = chan::bounded(1);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.try_send(1).unwrap();
        assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.try_recv(), Ok(1));
        drop(rx);
        assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
        assert_eq!(tx.send(4), Err(SendError(4)));

        let (tx, rx) = chan::unbounded();
        tx.send(5).unwrap();
        drop(tx);
        // Messages sent before the disconnect are still delivered.
        assert_eq!(rx.try_recv(), Ok(5));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(), Err(RecvError));
    }

    #[test]
    fn messages_left_in_a_dropped_channel_are_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = chan::unbounded();
        for _ in 0..5 {
            tx.send(CountDrop(drops.clone())).unwrap();
        }
        drop(rx.try_recv().unwrap());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop((tx, rx));
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn iterators_stop_where_they_should() {
        let (tx, rx) = chan::unbounded();
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
        tx.send(3).unwrap();
        drop(tx);
        assert_eq!(rx.into_iter().collect::<Vec<_>>(), [3]);
    }

    /// Plain threads only, so Miri can run it
    /// (`cargo +nightly miri test --test chan -- threads_rendezvous`).
    #[test]
    fn threads_rendezvous_hand_to_hand() {
        let (tx, rx) = chan::bounded::<u32>(0);
        let senders: Vec<_> = (0..2u32)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        tx.send(s * 100 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut got: Vec<u32> = rx.iter().collect();
        for s in senders {
            s.join().unwrap();
        }
        got.sort_unstable();
        let want: Vec<u32> = (0..50).chain(100..150).collect();
        assert_eq!(got, want);
    }

    /// Plain threads only: no runtime and no assembly, so Miri can run it and
    /// check the waiter protocol for data races and aliasing
    /// (`cargo +nightly miri test --test chan -- threads_`). Senders and
    /// receivers block on a one-slot channel, receivers time out meanwhile,
    /// and the channel disconnects under them.
    #[test]
    fn threads_block_time_out_and_disconnect_without_losing_a_message() {
        let per_producer: u32 = if cfg!(miri) { 30 } else { 3000 };
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = chan::bounded(1);
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let tx = tx.clone();
                let drops = drops.clone();
                std::thread::spawn(move || {
                    for i in 0..per_producer {
                        tx.send((p, i, CountDrop(drops.clone()))).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv_timeout(Duration::from_micros(20)) {
                            Ok((p, i, _drop)) => got.push((p, i)),
                            Err(RecvTimeoutError::Timeout) => continue,
                            Err(RecvTimeoutError::Disconnected) => return got,
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        for p in producers {
            p.join().unwrap();
        }
        let mut all = Vec::new();
        for c in consumers {
            let got = c.join().unwrap();
            // One consumer sees each producer's messages in the order sent.
            for p in 0..2 {
                let mine: Vec<u32> = got.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                assert!(mine.is_sorted(), "producer {p} out of order: {mine:?}");
            }
            all.extend(got);
        }
        all.sort_unstable();
        let expected: Vec<(u32, u32)> = (0..2)
            .flat_map(|p| (0..per_producer).map(move |i| (p, i)))
            .collect();
        assert_eq!(all, expected);
        assert_eq!(drops.load(Ordering::SeqCst), 2 * per_producer as usize);
    }
}

#[test]
fn a_timeout_past_any_instant_is_no_timeout() {
    // `Instant::now() + Duration::MAX` panicked.
    let (tx, rx) = chan::unbounded::<u8>();
    tx.send(1).unwrap();
    assert_eq!(rx.recv_timeout(Duration::MAX), Ok(1));
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::MAX),
        Err(RecvTimeoutError::Disconnected)
    );
}
