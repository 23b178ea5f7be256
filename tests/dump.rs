//! `growstack::dump`: every parked task named with what it waits for and a
//! backtrace from its own stack, and the tasks undisturbed afterwards.

use std::sync::Arc;
use std::time::Duration;

use growstack::task::{ParkedOn, TaskDump, TaskState};
use growstack::{Runtime, chan, task};

/// Dumps until `pred` holds for the task `id` (it may still be on its way
/// to park), and returns its entry.
fn dumped(rt: &Runtime, id: u64, pred: impl Fn(&TaskDump) -> bool) -> TaskDump {
    for _ in 0..500 {
        if let Some(t) = growstack::dump()
            .into_iter()
            .find(|t| (t.runtime, t.id) == (rt.id(), id))
            && pred(&t)
        {
            return t;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("task #{id} never reached the expected state");
}

fn parked_on(t: &TaskDump) -> Option<ParkedOn> {
    match t.state {
        TaskState::Parked { on, .. } => Some(on),
        _ => None,
    }
}

fn backtrace(t: &TaskDump) -> String {
    t.backtrace
        .as_ref()
        .expect("a started task has a backtrace")
        .to_string()
}

#[inline(never)]
fn parked_in_recv(rx: chan::Receiver<u32>) -> u32 {
    rx.recv().unwrap()
}

#[inline(never)]
fn parked_in_send(tx: chan::Sender<String>) {
    tx.send("hello".into()).unwrap();
}

#[inline(never)]
fn parked_in_lock(m: Arc<growstack::sync::Mutex<u8>>) -> u8 {
    *m.lock().unwrap()
}

#[inline(never)]
fn parked_in_sleep() {
    growstack::sleep(Duration::from_secs(30));
    // Not a tail call: this frame stays on the stack under the sleep.
    std::hint::black_box(());
}

#[inline(never)]
fn parked_in_select(a: chan::Receiver<u8>, b: chan::Receiver<u8>) -> u8 {
    chan::select! {
        recv(a) -> m => m.unwrap(),
        recv(b) -> m => m.unwrap(),
    }
}

#[test]
fn every_parked_task_is_named_with_its_wait_and_backtrace() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (to_recv, rx) = chan::bounded::<u32>(0);
    let receiver = task::Builder::new()
        .name("receiver")
        .spawn_on(&rt, move || parked_in_recv(rx));
    let (tx, from_send) = chan::bounded::<String>(0);
    let sender = rt.spawn(move || parked_in_send(tx));
    let m = Arc::new(growstack::sync::Mutex::new(3));
    let guard = m.lock().unwrap();
    let locker = rt.spawn({
        let m = Arc::clone(&m);
        move || parked_in_lock(m)
    });
    let sleeper = rt.spawn(parked_in_sleep);
    let (a_tx, a) = chan::bounded::<u8>(0);
    let (_b_tx, b) = chan::bounded::<u8>(0);
    let selector = rt.spawn(move || parked_in_select(a, b));
    let joined_id = receiver.id();
    let (joiner_tx, joiner_rx) = chan::bounded(1);
    let joiner = rt.spawn(move || {
        let receiver: growstack::JoinHandle<u32> = joiner_rx.recv().unwrap();
        receiver.join().unwrap()
    });
    joiner_tx.send(receiver).unwrap();

    let t = dumped(&rt, joined_id, |t| parked_on(t).is_some());
    assert!(
        matches!(parked_on(&t), Some(ParkedOn::Recv { elem: "u32", .. })),
        "{:?}",
        t.state
    );
    assert_eq!(t.name.as_deref(), Some("receiver"));
    assert!(t.spawned_at.file().ends_with("dump.rs"));
    assert!(
        backtrace(&t).contains("parked_in_recv"),
        "{}",
        backtrace(&t)
    );

    let t = dumped(&rt, sender.id(), |t| parked_on(t).is_some());
    assert!(matches!(
        parked_on(&t),
        Some(ParkedOn::Send {
            elem: "alloc::string::String",
            ..
        })
    ));
    assert!(backtrace(&t).contains("parked_in_send"));

    let t = dumped(&rt, locker.id(), |t| parked_on(t).is_some());
    let addr = Arc::as_ptr(&m) as usize;
    assert!(
        matches!(parked_on(&t), Some(ParkedOn::Lock { kind: "Mutex", addr: a }) if a >= addr && a < addr + 64),
        "{:?}",
        t.state
    );
    assert!(backtrace(&t).contains("parked_in_lock"));

    let t = dumped(&rt, sleeper.id(), |t| parked_on(t).is_some());
    let TaskState::Parked {
        on: ParkedOn::Sleep,
        until: Some(until),
    } = t.state
    else {
        panic!("{:?}", t.state)
    };
    assert!(until > std::time::Instant::now() + Duration::from_secs(20));
    assert!(
        backtrace(&t).contains("parked_in_sleep"),
        "{}",
        backtrace(&t)
    );

    let t = dumped(&rt, selector.id(), |t| parked_on(t).is_some());
    assert_eq!(parked_on(&t), Some(ParkedOn::Select { arms: 2 }));
    assert!(backtrace(&t).contains("parked_in_select"));

    let t = dumped(&rt, joiner.id(), |t| {
        matches!(parked_on(t), Some(ParkedOn::Join { .. }))
    });
    assert_eq!(parked_on(&t), Some(ParkedOn::Join { task: joined_id }));

    let report = growstack::dump_report();
    assert!(report.contains("chan receive (u32"), "{report}");
    assert!(report.contains("join of task #"), "{report}");
    assert!(report.contains("'receiver'"), "{report}");

    // Nobody noticed: each completes with the right value.
    to_recv.send(41).unwrap();
    assert_eq!(joiner.join().unwrap(), 41);
    assert_eq!(from_send.recv().unwrap(), "hello");
    sender.join().unwrap();
    drop(guard);
    assert_eq!(locker.join().unwrap(), 3);
    a_tx.send(9).unwrap();
    assert_eq!(selector.join().unwrap(), 9);
    drop(sleeper); // detached: still asleep
}

#[test]
fn dumping_from_a_task_reports_it_running_and_its_neighbours() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = chan::bounded::<()>(0);
    let neighbour = rt.spawn(move || rx.recv().unwrap());
    let (id, rt_id) = (neighbour.id(), rt.id());
    let (me, seen) = rt.block_on(move || {
        growstack::yield_now();
        let dump = growstack::dump();
        let mine = |t: &&TaskDump| t.runtime == rt_id;
        let me = dump
            .iter()
            .filter(mine)
            .find(|t| Some(t.id) == task::current_id())
            .map(|t| t.state);
        let seen = dump.iter().filter(mine).find(|t| t.id == id).map(parked_on);
        (me, seen)
    });
    assert_eq!(me, Some(TaskState::Running));
    assert!(
        matches!(seen, Some(Some(ParkedOn::Recv { .. }))),
        "{seen:?}"
    );
    tx.send(()).unwrap();
    neighbour.join().unwrap();
}

#[test]
fn a_worker_held_by_one_task_is_reported_with_that_task_running() {
    let rt = Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hog = rt.spawn({
        let stop = Arc::clone(&stop);
        move || {
            started_tx.send(()).unwrap();
            // Never switches out until told.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    });
    started_rx.recv().unwrap();
    let later = rt.spawn(|| 5);
    let dump = growstack::dump();
    let find = |id| {
        dump.iter()
            .find(|t| (t.runtime, t.id) == (rt.id(), id))
            .map(|t| t.state)
    };
    let (hog_state, later_state) = (find(hog.id()), find(later.id()));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(hog_state, Some(TaskState::Running));
    assert_eq!(later_state, Some(TaskState::NotStarted));
    hog.join().unwrap();
    assert_eq!(later.join().unwrap(), 5);
}

mod common;

#[test]
fn sigquit_prints_the_dump_and_the_process_goes_on() {
    let name = "sigquit_prints_the_dump_and_the_process_goes_on";
    let Some(out) = common::child(name, || {
        let rt = Runtime::builder()
            .workers(1)
            .dump_on_sigquit(true)
            .build()
            .unwrap();
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = rt.spawn(move || parked_in_recv(rx));
        dumped(&rt, h.id(), |t| parked_on(t).is_some());
        // SAFETY: raising a signal we handle.
        unsafe { libc::raise(libc::SIGQUIT) };
        // The dump is printed by a thread of the runtime's; give it time.
        std::thread::sleep(Duration::from_secs(2));
        tx.send(3).unwrap();
        assert_eq!(h.join().unwrap(), 3);
        std::process::exit(0);
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("growstack: SIGQUIT"), "{err}");
    assert!(err.contains("chan receive (u32"), "{err}");
    assert!(err.contains("parked_in_recv"), "{err}");
}

#[inline(never)]
fn lock_both(
    first: &growstack::sync::Mutex<()>,
    second: &growstack::sync::Mutex<()>,
    go: &growstack::sync::Barrier,
) {
    let _a = first.lock().unwrap();
    go.wait();
    let _b = second.lock().unwrap();
}

#[test]
fn a_deadlock_is_reported_once_and_a_sleep_is_not() {
    let name = "a_deadlock_is_reported_once_and_a_sleep_is_not";
    let Some(out) = common::child(name, || {
        let every = Duration::from_millis(100);
        let stuck = Runtime::builder()
            .workers(2)
            .stall_report(every)
            .build()
            .unwrap();
        let sleepy = Runtime::builder()
            .workers(1)
            .stall_report(every)
            .build()
            .unwrap();
        let m = Arc::new((
            growstack::sync::Mutex::new(()),
            growstack::sync::Mutex::new(()),
            growstack::sync::Barrier::new(2),
        ));
        let m2 = Arc::clone(&m);
        stuck.spawn(move || lock_both(&m.0, &m.1, &m.2));
        stuck.spawn(move || lock_both(&m2.1, &m2.0, &m2.2));
        sleepy.spawn(|| growstack::sleep(Duration::from_secs(60)));
        // A task joining a blocking job waits on a thread: no stall.
        let joining = Runtime::builder()
            .workers(1)
            .stall_report(every)
            .build()
            .unwrap();
        joining.spawn(|| {
            growstack::spawn_blocking(|| std::thread::sleep(Duration::from_secs(60)))
                .join()
                .unwrap()
        });
        std::thread::sleep(Duration::from_secs(2));
        std::process::exit(0);
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("growstack: runtime 1 has resumed no task")
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("growstack: runtime 2 has resumed"), "{err}");
    assert!(!err.contains("growstack: runtime 3 has resumed"), "{err}");
    assert!(err.contains("[Mutex (0x"), "{err}");
    assert!(err.contains("lock_both"), "{err}");
}

/// Recurses without a check (so into the red zone below the stack's
/// limit) until `margin` bytes are left above the stack's real end, and
/// parks there.
#[inline(never)]
fn park_in_the_red_zone(end: usize, margin: usize, rx: &chan::Receiver<u32>) -> u32 {
    let pad = std::hint::black_box([0u8; 512]);
    let here = &raw const pad as usize;
    let got = if here - end < margin {
        rx.recv().unwrap()
    } else {
        park_in_the_red_zone(end, margin, rx)
    };
    std::hint::black_box(&pad);
    got
}

/// A task of `rt` that parks `margin` bytes above the real end of its
/// stack (the red zone below its limit is 64 KiB), until it is sent a
/// number, which it returns.
fn spawn_parked_in_the_red_zone(
    rt: &Runtime,
    margin: usize,
) -> (chan::Sender<u32>, growstack::JoinHandle<u32>) {
    let (tx, rx) = chan::bounded::<u32>(0);
    let h = rt.spawn(move || {
        let here = 0u8;
        let sp = std::hint::black_box(&here) as *const u8 as usize;
        let limit = sp - growstack::remaining_stack();
        park_in_the_red_zone(limit - (64 << 10), margin, &rx)
    });
    (tx, h)
}

#[test]
fn a_task_parked_deep_in_its_red_zone_is_dumped_with_its_backtrace() {
    // The capture needs more stack than is left there: it runs on a
    // segment (in place it overflowed the stack and aborted).
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, h) = spawn_parked_in_the_red_zone(&rt, 4 << 10);
    let t = dumped(&rt, h.id(), |t| parked_on(t).is_some());
    assert!(
        backtrace(&t).contains("park_in_the_red_zone"),
        "{}",
        backtrace(&t)
    );
    tx.send(5).unwrap();
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn the_caller_is_told_apart_from_a_task_of_another_runtime_with_its_id() {
    let first = Runtime::new().unwrap();
    let second = Runtime::new().unwrap();
    let (tx, rx) = chan::bounded::<u32>(0);
    let parked = second.spawn(move || rx.recv().unwrap());
    let target = parked.id();
    dumped(&second, target, |t| parked_on(t).is_some());
    // Task ids count per runtime: dump from the task of `first` that has
    // the parked task's id.
    let tasks = loop {
        let h = first.spawn(move || (task::current_id() == Some(target)).then(growstack::dump));
        assert!(h.id() <= target, "ids of `first` passed {target}");
        if let Some(tasks) = h.join().unwrap() {
            break tasks;
        }
    };
    let state = |rt: &Runtime| {
        tasks
            .iter()
            .find(|t| (t.runtime, t.id) == (rt.id(), target))
            .map(|t| t.state)
    };
    assert_eq!(state(&first), Some(TaskState::Running));
    assert!(
        matches!(
            state(&second),
            Some(TaskState::Parked {
                on: ParkedOn::Recv { .. },
                ..
            })
        ),
        "{:?}",
        state(&second)
    );
    tx.send(1).unwrap();
    assert_eq!(parked.join().unwrap(), 1);
}

#[test]
fn tasks_moving_between_workers_during_a_dump_are_each_listed_once() {
    // A task spawns children, which its worker shares and the other
    // worker steals, while dumps are taken: every child spawned before a
    // dump must be in it, once.
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (tx, rx) = chan::unbounded::<()>();
    let spawned = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ids = Arc::clone(&spawned);
    let spawner = rt.spawn(move || {
        for i in 0..20_000u32 {
            let rx = rx.clone();
            let child = growstack::spawn(move || {
                let _ = rx.recv();
            });
            ids.lock().unwrap().push(child.id());
            if i % 64 == 0 {
                growstack::sleep(Duration::from_micros(50));
            }
        }
    });
    for _ in 0..30 {
        let before: Vec<u64> = spawned.lock().unwrap().clone();
        let mut seen = std::collections::HashMap::new();
        for t in growstack::dump().iter().filter(|t| t.runtime == rt.id()) {
            *seen.entry(t.id).or_insert(0) += 1;
        }
        assert!(seen.values().all(|&n| n == 1), "a task listed twice");
        let missing = before.iter().filter(|id| !seen.contains_key(id)).count();
        assert_eq!(missing, 0, "children spawned before the dump left out");
    }
    spawner.join().unwrap();
    drop(tx);
}

#[test]
fn a_stall_report_is_printed_while_a_stuck_task_holds_the_stderr_lock() {
    let name = "a_stall_report_is_printed_while_a_stuck_task_holds_the_stderr_lock";
    let Some(out) = common::child(name, || {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(30));
            std::process::exit(3); // the report or the drop hung
        });
        let rt = Runtime::builder()
            .workers(1)
            .stall_report(Duration::from_millis(100))
            .build()
            .unwrap();
        let (_tx, rx) = chan::bounded::<u32>(0);
        rt.spawn(move || {
            let _held = std::io::stderr().lock();
            rx.recv().unwrap() // never sent: a deadlock
        });
        std::thread::sleep(Duration::from_millis(600));
        drop(rt);
        std::process::exit(0);
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has resumed no task"), "{err}");
    assert!(err.contains("[chan receive (u32, 0x"), "{err}");
}

#[test]
fn a_capture_refused_by_max_stack_is_no_backtrace_and_no_panic() {
    // Parked in its red zone with no room left under `max_stack` for the
    // capture's segment: the dump says so with `None`, and nothing
    // panics (a hook that aborts on any panic would have killed the
    // process).
    let name = "a_capture_refused_by_max_stack_is_no_backtrace_and_no_panic";
    let Some(out) = common::child(name, || {
        std::panic::set_hook(Box::new(|_| std::process::abort()));
        let rt = Runtime::builder()
            .workers(1)
            .max_stack(256 << 10)
            .build()
            .unwrap();
        let (tx, h) = spawn_parked_in_the_red_zone(&rt, 32 << 10);
        let t = dumped(&rt, h.id(), |t| parked_on(t).is_some());
        assert!(t.backtrace.is_none());
        tx.send(5).unwrap();
        assert_eq!(h.join().unwrap(), 5);
        std::process::exit(0);
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
}
