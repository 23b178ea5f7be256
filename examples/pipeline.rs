//! A producer task and a consumer task passing a million numbers through a
//! bounded channel, on one worker and on two, next to two OS threads doing
//! the same through `std::sync::mpsc::sync_channel`.
//!
//! ```text
//! cargo run --release --example pipeline [MESSAGES]
//! ```
//!
//! On two workers the consumer often drains the channel and waits while
//! the producer refills it, so the workers keep running out of work: this
//! is what a worker's short poll before it sleeps is for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use growstack::{Runtime, chan};

/// Runs a producer and a consumer task on `rt` and returns the time per
/// message. With `apart`, both first wait for each other while holding
/// their workers, so on a two-worker runtime they run on different ones.
fn tasks(rt: &Runtime, cap: usize, n: u64, apart: bool) -> Duration {
    let (tx, rx) = chan::bounded::<u64>(cap);
    let started = Arc::new(AtomicUsize::new(0));
    let meet = move |started: &AtomicUsize| {
        if apart {
            started.fetch_add(1, Ordering::SeqCst);
            while started.load(Ordering::SeqCst) < 2 {
                std::hint::spin_loop();
            }
        }
    };
    let start = Instant::now();
    let s = started.clone();
    let producer = rt.spawn(move || {
        meet(&s);
        (0..n).for_each(|i| tx.send(i).unwrap());
        std::thread::current().id()
    });
    let consumer = rt.spawn(move || {
        meet(&started);
        (rx.iter().sum::<u64>(), std::thread::current().id())
    });
    let p = producer.join().unwrap();
    let (sum, c) = consumer.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(apart, p != c, "the tasks ran where they were meant to");
    elapsed / n as u32
}

/// The same with two OS threads.
fn threads(cap: usize, n: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(cap);
    let start = Instant::now();
    let producer = std::thread::spawn(move || (0..n).for_each(|i| tx.send(i).unwrap()));
    let sum: u64 = rx.iter().sum();
    producer.join().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed() / n as u32
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("MESSAGES"));
    let one = Runtime::builder().workers(1).build().expect("runtime");
    let two = Runtime::builder().workers(2).build().expect("runtime");
    println!("{n} messages, time per message:");
    for cap in [1, 64] {
        println!(
            "bounded({cap:>2}): tasks on one worker {:>7.1?}, on two workers {:>7.1?}; \
             OS threads (std sync_channel) {:>7.1?}",
            tasks(&one, cap, n, false),
            tasks(&two, cap, n, true),
            threads(cap, n),
        );
    }
}
