//! Preemption (opt-in, `Builder::preempt`): a task that loops through an
//! annotated function does not starve the other tasks of its worker. And
//! without it, a switch the code did not write never happens: a std lock
//! held across annotated calls, or a thread-local initialiser making them,
//! is safe on the default runtime.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use growstack::Runtime;

mod common;

#[growstack::growable]
#[inline(never)]
fn step(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1)
}

/// The tests count preemptions, a process-wide figure: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_busy_task_is_preempted_at_an_annotated_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: no task here initialises a thread-local.
    let rt = unsafe { Runtime::builder().preempt(Duration::from_millis(10)) }
        .workers(1)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let before = growstack::stats().preemptions;
    let spin = {
        let stop = stop.clone();
        rt.spawn(move || {
            let start = Instant::now();
            let mut x = 0;
            // Never blocks, never yields: only preemption lets the other
            // task run on this one worker. Gives up after a minute so that
            // a failure is a failed assertion, not a hung test.
            while !stop.load(Ordering::Relaxed) {
                x = step(x);
                if start.elapsed() > Duration::from_secs(60) {
                    return Err(x);
                }
            }
            Ok(x)
        })
    };
    let stopper = {
        let stop = stop.clone();
        rt.spawn(move || stop.store(true, Ordering::Relaxed))
    };
    stopper.join().unwrap();
    assert!(
        spin.join().unwrap().is_ok(),
        "the spinning task was never preempted"
    );
    assert!(growstack::stats().preemptions > before);
}

#[test]
fn a_due_timer_fires_at_the_next_preemption_of_a_busy_task() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: no task here initialises a thread-local.
    let rt = unsafe { Runtime::builder().preempt(Duration::from_millis(1)) }
        .workers(1)
        .build()
        .unwrap();
    // Both start from the injector, the busy task first. Its first
    // preemption starts the sleeper, which parks on a timer due at once;
    // the second fires the timer (a preempted round looks around at once),
    // queueing the sleeper behind the busy task; the third runs it: 3
    // preemptions, one spare allowed. Looking around only every eighth
    // round measured 15.
    for round in 0..5 {
        let woke = Arc::new(AtomicBool::new(false));
        let busy = {
            let woke = woke.clone();
            rt.spawn(move || {
                let start = Instant::now();
                let before = growstack::stats().preemptions;
                let mut x = 0;
                while !woke.load(Ordering::Relaxed) {
                    x = step(x);
                    if start.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                }
                growstack::stats().preemptions - before
            })
        };
        let sleeper = rt.spawn(move || {
            growstack::sleep(Duration::from_micros(1));
            woke.store(true, Ordering::Relaxed);
        });
        sleeper.join().unwrap();
        let preemptions = busy.join().unwrap();
        assert!(
            preemptions <= 4,
            "round {round}: the sleeper ran after {preemptions} preemptions of the busy task"
        );
    }
}

/// Spins for `d` through annotated calls (where a preemption would land).
fn spin_annotated(d: Duration) -> u64 {
    let start = Instant::now();
    let mut x = 0;
    while start.elapsed() < d {
        x = step(x);
    }
    x
}

/// Two tasks of one worker take a std mutex and compute inside it with
/// annotated calls. Preempted inside the critical section, the holder let
/// the other task block the worker's thread on the lock: both hung for
/// good. The default runtime does not preempt.
#[test]
fn a_std_mutex_held_across_annotated_calls_does_not_deadlock_the_default_runtime() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let total = common::within(Duration::from_secs(60), "std mutex in tasks", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                rt.spawn(move || {
                    let mut g = m.lock().unwrap();
                    // Several 10 ms time slices inside the lock.
                    *g += spin_annotated(Duration::from_millis(50)) % 2 + 1;
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        *m.lock().unwrap()
    });
    assert!((2..=4).contains(&total), "{total}");
}

static INITS: AtomicUsize = AtomicUsize::new(0);
static LIVE_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A value that counts the times it is dropped while still in use.
struct InUse(AtomicBool);

impl Drop for InUse {
    fn drop(&mut self) {
        if self.0.load(Ordering::SeqCst) {
            LIVE_DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

thread_local! {
    // Lazily initialised, by annotated code that runs for several slices.
    static SLOW: InUse = {
        INITS.fetch_add(1, Ordering::SeqCst);
        spin_annotated(Duration::from_millis(40));
        InUse(AtomicBool::new(false))
    };
}

/// Two tasks of one worker use a thread-local whose initialiser runs
/// annotated code for several time slices. Preempted inside it, the first
/// let the second initialise the same key too, and std then dropped the
/// value the second was using (safe code, use after free). The default
/// runtime does not preempt: one initialisation, nothing dropped in use.
#[test]
fn a_thread_local_initialiser_making_annotated_calls_runs_once_per_worker_by_default() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Runtime::builder().workers(1).build().unwrap();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            rt.spawn(|| {
                SLOW.with(|v| {
                    v.0.store(true, Ordering::SeqCst);
                    spin_annotated(Duration::from_millis(40));
                    v.0.store(false, Ordering::SeqCst);
                })
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(INITS.load(Ordering::SeqCst), 1);
    assert_eq!(LIVE_DROPPED.load(Ordering::SeqCst), 0);
}

/// A task that blocks its worker's thread while another task waits for
/// that worker is named on stderr, once; one that blocks with nobody
/// waiting is not.
#[test]
fn a_task_blocking_its_worker_while_others_wait_is_reported_once() {
    let name = "a_task_blocking_its_worker_while_others_wait_is_reported_once";
    let Some(out) = common::child(name, || {
        let rt = Runtime::builder()
            .workers(1)
            .stall_warning(Some(Duration::from_millis(100)))
            .build()
            .unwrap();
        // Alone: blocks 400 ms, nobody waits.
        rt.block_on(|| std::thread::sleep(Duration::from_millis(400)));
        eprintln!("-- alone done");
        // Then with a second task waiting behind it.
        let blocker = rt.spawn(|| std::thread::sleep(Duration::from_millis(400)));
        let waiter = rt.spawn(|| 1);
        blocker.join().unwrap();
        assert_eq!(waiter.join().unwrap(), 1);
        std::process::exit(0);
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (alone, with_waiter) = stderr
        .split_once("-- alone done")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(!alone.contains("has held worker"), "{stderr}");
    assert_eq!(
        with_waiter.matches("has held worker 0").count(),
        1,
        "{stderr}"
    );
    assert!(
        with_waiter.contains("spawned at tests/preempt.rs:"),
        "{stderr}"
    );
    assert!(
        with_waiter.contains("growstack::spawn_blocking"),
        "{stderr}"
    );
}
