//! Preemption: a task that loops through an annotated function does not
//! starve the other tasks of its worker.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use growstack::Runtime;

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
    let rt = Runtime::builder().workers(1).build().unwrap();
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
    let rt = Runtime::builder()
        .workers(1)
        .time_slice(Duration::from_millis(1))
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
