//! Preemption: a task that loops through an annotated function does not
//! starve the other tasks of its worker.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use growstack::Runtime;

#[growstack::growable]
#[inline(never)]
fn step(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1)
}

#[test]
fn a_busy_task_is_preempted_at_an_annotated_call() {
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
