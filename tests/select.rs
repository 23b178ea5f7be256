//! `chan::select!`: readiness, fairness, blocking across tasks and threads,
//! timeouts and defaults, and no lost or duplicated message under races.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::CountDrop;
use growstack::Runtime;
use growstack::chan::{self, RecvError, SendError, select};

mod common;

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

#[test]
fn ready_arms_defaults_and_disconnects() {
    let (tx1, rx1) = chan::unbounded::<u32>();
    let (tx2, rx2) = chan::bounded::<u32>(1);
    tx1.send(1).unwrap();
    let got = select! {
        recv(rx1) -> m => m,
        recv(rx2) -> m => m.map(|v| v + 100),
    };
    assert_eq!(got, Ok(1));

    // Nothing ready: default runs.
    let got = select! {
        recv(rx1) -> _ => "recv",
        default => "default",
    };
    assert_eq!(got, "default");

    // A send arm with room is ready; its value reaches the channel.
    let sent = select! {
        send(tx2, 5) -> res => res,
        default => panic!("room in the channel"),
    };
    assert_eq!(sent, Ok(()));
    assert_eq!(rx2.try_recv(), Ok(5));

    // A recv on a channel whose senders are gone is ready, with Err.
    drop(tx1);
    let got = select! {
        recv(rx1) -> m => m,
        default(Duration::from_secs(60)) => panic!("the disconnect is ready"),
    };
    assert_eq!(got, Err(RecvError));

    // A send on a channel whose receivers are gone gives the message back.
    drop(rx2);
    let got = select! {
        send(tx2, 9) -> res => res,
    };
    assert_eq!(got, Err(SendError(9)));
}

#[test]
fn timeout_arm_fires_when_nothing_comes() {
    let rt = runtime();
    let (_tx, rx) = chan::unbounded::<u32>();
    let timed_out = rt.block_on(move || {
        select! {
            recv(rx) -> _ => false,
            default(Duration::from_millis(20)) => true,
        }
    });
    assert!(timed_out);
}

#[test]
fn each_of_two_ready_arms_is_chosen_fairly() {
    let (tx1, rx1) = chan::unbounded::<()>();
    let (tx2, rx2) = chan::unbounded::<()>();
    let mut first = 0;
    for _ in 0..10_000 {
        tx1.send(()).unwrap();
        tx2.send(()).unwrap();
        select! {
            recv(rx1) -> _ => first += 1,
            recv(rx2) -> _ => {},
        }
        // Drain the other so both are ready again next time.
        let _ = rx1.try_recv();
        let _ = rx2.try_recv();
    }
    assert!(
        (4000..=6000).contains(&first),
        "arm 1 chosen {first} times of 10000"
    );
}

#[test]
fn ready_arms_are_chosen_fairly_whatever_their_place_among_others() {
    // Arms 0 and 2 ready, 1 never: each ready one must win about half.
    let (tx0, rx0) = chan::unbounded::<()>();
    let (_tx1, rx1) = chan::unbounded::<()>();
    let (tx2, rx2) = chan::unbounded::<()>();
    let mut wins = [0u32; 3];
    for _ in 0..10_000 {
        tx0.send(()).unwrap();
        tx2.send(()).unwrap();
        let i = select! {
            recv(rx0) -> _ => 0,
            recv(rx1) -> _ => 1,
            recv(rx2) -> _ => 2,
        };
        wins[i] += 1;
        let _ = rx0.try_recv();
        let _ = rx2.try_recv();
    }
    assert_eq!(wins[1], 0);
    assert!(
        (4000..=6000).contains(&wins[0]),
        "wins per arm of 10000: {wins:?}"
    );
}

#[test]
fn an_arm_registered_twice_is_refused() {
    use growstack::chan::{Mode, RecvArm};
    let refused = |f: &dyn Fn() -> Option<usize>| {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err("a reused arm must be refused");
        let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(message.contains("used twice"), "{message}");
    };
    let (tx, rx) = chan::unbounded::<u8>();
    let soon = || Mode::timeout(Duration::from_millis(1));
    // Registered by a select that timed out, then given to another.
    let arm = RecvArm::new(&rx);
    assert_eq!(chan::select(&[&arm], soon()), None);
    refused(&|| chan::select(&[&arm], soon()));
    // Twice in one list: refused before anything is registered.
    let fresh = RecvArm::new(&rx);
    refused(&|| chan::select(&[&fresh, &fresh], soon()));
    // The channel works on, with nothing of those selects left in it.
    tx.send(2).unwrap();
    assert_eq!(rx.recv(), Ok(2));
    let (tx2, rx2) = chan::bounded::<u8>(0);
    let t = std::thread::spawn(move || tx2.send(3));
    assert_eq!(rx2.recv(), Ok(3));
    t.join().unwrap().unwrap();
}

#[test]
fn a_parked_select_is_woken_by_any_of_its_channels() {
    let rt = runtime();
    for which in 0..3 {
        let (tx1, rx1) = chan::bounded::<u32>(0);
        let (tx2, rx2) = chan::bounded::<u32>(4);
        let (tx3, rx3) = chan::bounded::<u32>(0);
        let selecting = rt.spawn(move || {
            select! {
                recv(rx1) -> m => (1, m.unwrap()),
                recv(rx2) -> m => (2, m.unwrap()),
                send(tx3, 30) -> r => { r.unwrap(); (3, 30) },
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        let want = match which {
            0 => {
                tx1.send(10).unwrap();
                (1, 10)
            }
            1 => {
                tx2.send(20).unwrap();
                (2, 20)
            }
            _ => {
                assert_eq!(rx3.recv(), Ok(30));
                (3, 30)
            }
        };
        assert_eq!(selecting.join().unwrap(), want);
        // The other arms were unregistered: nothing waits on them.
        assert!(
            tx1.try_send(1).is_err(),
            "a rendezvous send found a receiver"
        );
        assert!(
            rx3.try_recv().is_err(),
            "a rendezvous receive found a sender"
        );
    }
}

#[test]
fn two_selects_meet_on_a_rendezvous_channel() {
    let rt = runtime();
    for _ in 0..200 {
        let (tx, rx) = chan::bounded::<u32>(0);
        let (_keep, never) = chan::bounded::<u32>(0);
        let never2 = never.clone();
        let sender = rt.spawn(move || {
            select! {
                send(tx, 7) -> r => r.is_ok(),
                recv(never) -> _ => false,
            }
        });
        let receiver = rt.spawn(move || {
            select! {
                recv(rx) -> m => m.unwrap(),
                recv(never2) -> _ => 0,
            }
        });
        assert!(sender.join().unwrap());
        assert_eq!(receiver.join().unwrap(), 7);
    }
}

#[test]
fn unsent_messages_of_send_arms_are_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx1, rx1) = chan::bounded::<CountDrop>(0);
    let (tx2, _rx2) = chan::bounded::<CountDrop>(0);
    let (tx3, rx3) = chan::unbounded::<()>();
    tx3.send(()).unwrap();
    select! {
        send(tx1, CountDrop(drops.clone())) -> _ => panic!("nobody receives"),
        send(tx2, CountDrop(drops.clone())) -> _ => panic!("nobody receives"),
        recv(rx3) -> _ => {},
    }
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(rx1);
    // A parked send arm's message, after a timeout.
    let timed_out = select! {
        send(tx2, CountDrop(drops.clone())) -> _ => false,
        default(Duration::from_millis(5)) => true,
    };
    assert!(timed_out);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

/// Producers and consumers on two workers and two threads, all through
/// selects with timeouts, over a rendezvous and a bounded channel: every
/// message that a send reports sent is received exactly once, and no
/// other.
#[test]
fn no_message_is_lost_or_duplicated_when_selects_race_with_timeouts() {
    let rounds = if std::env::var_os("GROWSTACK_STRESS").is_some() {
        2000
    } else {
        5000
    };
    race_selects(rounds);
}

/// The race above, 300 times over (about a minute): run by hand.
#[test]
#[ignore]
fn soak_selects_racing_with_timeouts() {
    for _ in 0..300 {
        race_selects(5000);
    }
}

fn race_selects(rounds: u32) {
    let rt = runtime();
    let (a_tx, a_rx) = chan::bounded::<u32>(0);
    let (b_tx, b_rx) = chan::bounded::<u32>(2);
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let timeouts = Arc::new(AtomicUsize::new(0));
    let producer = |id: u32| {
        let (a_tx, b_tx, sent) = (a_tx.clone(), b_tx.clone(), Arc::clone(&sent));
        let timeouts = Arc::clone(&timeouts);
        move || {
            let mut mine = Vec::new();
            for i in 0..rounds {
                let v = id * 1_000_000 + i;
                let ok = select! {
                    send(a_tx, v) -> r => r.is_ok(),
                    send(b_tx, v) -> r => r.is_ok(),
                    default(Duration::from_micros(u64::from(i % 20))) => false,
                };
                if ok {
                    mine.push(v);
                } else {
                    timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
            sent.lock().unwrap().extend(mine);
        }
    };
    let consumer = || {
        let (a_rx, b_rx, received) = (a_rx.clone(), b_rx.clone(), Arc::clone(&received));
        let timeouts = Arc::clone(&timeouts);
        move || {
            let mut mine = Vec::new();
            for k in 0u64.. {
                let got = select! {
                    recv(a_rx) -> m => m.ok(),
                    recv(b_rx) -> m => m.ok(),
                    default(Duration::from_micros(k % 10)) => Some(u32::MAX),
                };
                match got {
                    Some(u32::MAX) => {
                        timeouts.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(v) => mine.push(v),
                    None => break,
                }
            }
            received.lock().unwrap().extend(mine);
        }
    };
    let p1 = rt.spawn(producer(1));
    let p2 = rt.spawn(producer(2));
    let p3 = std::thread::spawn(producer(3));
    let c1 = rt.spawn(consumer());
    let c2 = rt.spawn(consumer());
    let c3 = std::thread::spawn(consumer());
    drop((a_tx, b_tx, a_rx, b_rx));
    p1.join().unwrap();
    p2.join().unwrap();
    p3.join().unwrap();
    c1.join().unwrap();
    c2.join().unwrap();
    c3.join().unwrap();
    let sent = sent.lock().unwrap();
    let received = received.lock().unwrap();
    let unique: HashSet<u32> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "a message was received twice");
    let sent: HashSet<u32> = sent.iter().copied().collect();
    assert_eq!(sent, unique, "sent and received differ");
    // Both outcomes happened many times: the races were run.
    let timeouts = timeouts.load(Ordering::Relaxed);
    assert!(
        sent.len() > 100 && timeouts > 100,
        "{} sent, {timeouts} timeouts",
        sent.len()
    );
}

#[test]
fn select_with_no_default_waits_and_deadline_methods() {
    let rt = runtime();
    let (tx, rx) = chan::bounded::<u32>(1);
    tx.send(1).unwrap();
    let t = tx.clone();
    let blocked = rt.spawn(move || t.send_timeout(2, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(blocked.join().unwrap(), Ok(()));
    assert_eq!(
        tx.send_deadline(3, std::time::Instant::now() + Duration::from_millis(5)),
        Err(chan::SendTimeoutError::Timeout(3))
    );
    assert_eq!(rx.recv_deadline(std::time::Instant::now()), Ok(2));
    assert_eq!(
        rx.recv_deadline(std::time::Instant::now() + Duration::from_millis(5)),
        Err(chan::RecvTimeoutError::Timeout)
    );
}

/// A select whose arm body suspends a foreign coroutine leaves its arms
/// alive in the coroutine's frame; another task of the worker resumes it
/// after the first task is gone and drops them there. The arms' waiter
/// records were kept in the first task's block, and dropping them wrote
/// into that task's freed cell (found by review); a select now drops its
/// waiters before it returns.
#[test]
fn arms_dropped_by_another_task_after_theirs_is_gone_write_nowhere() {
    use corosensei::{Coroutine, CoroutineResult};
    use std::cell::RefCell;
    thread_local! {
        static CO: RefCell<Option<Coroutine<(), (), ()>>> = const { RefCell::new(None) };
    }
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = chan::unbounded::<u8>();
    let (dtx, drx) = chan::bounded::<String>(0);
    let first = rt.spawn(move || {
        let mut co = Coroutine::new(move |yielder, ()| {
            select! {
                recv(rx) -> _ => {},
                send(dtx, "unsent".to_string()) -> _ => {},
                default(Duration::from_millis(1)) => yielder.suspend(()),
            }
        });
        assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
        CO.with(|c| *c.borrow_mut() = Some(co));
    });
    while !first.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The last reference: the first task's cell is freed here.
    first.join().unwrap();
    // Memory of the sizes a freed cell comes back as, zeroed by hand
    // (`vec![0; n]` would ask for fresh zeroed memory, not reuse the cell).
    let buffers: Vec<Vec<u8>> = (64..=1024)
        .step_by(64)
        .flat_map(|size| {
            (0..4).map(move |_| {
                let mut b = vec![1u8; size];
                b.fill(0);
                b
            })
        })
        .collect();
    rt.spawn(|| {
        let mut co = CO.with(|c| c.borrow_mut().take()).unwrap();
        assert!(matches!(co.resume(()), CoroutineResult::Return(())));
    })
    .join()
    .unwrap();
    for b in &buffers {
        assert!(
            b.iter().all(|&byte| byte == 0),
            "freed memory of {} bytes was written",
            b.len()
        );
    }
    // The send arm's unsent message went with the arm, not to the channel.
    assert!(drx.try_recv().is_err());
    drop(tx);
}
