//! Synchronisation side by side with peers, in one run:
//!
//! - `mutex_uncontended`: one lock + unlock of a `Mutex<u64>` (incrementing
//!   it), from a task alone on a one-worker runtime (per pair), for
//!   `growstack::sync::Mutex`, `std::sync::Mutex` and `parking_lot::Mutex`,
//!   all three in the same task;
//! - `mutex_contended`: 8 tasks on 2 workers incrementing one counter under
//!   the lock, 1,000,000 increments in all (per whole run, spawns and joins
//!   included), vs `tokio::sync::Mutex` with 8 tokio tasks on 2 workers;
//! - `select`: `chan::select!` over two channels, one of which has a
//!   message ready (per select: a send into it, then the select), in a task
//!   and on a plain thread, vs `crossbeam_channel::select!` on a plain
//!   thread.
//!
//! The Go peers of the last two are in benches/peers/go/{mutex,select}, run
//! with benches/peers/sync_run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use growstack::{Runtime, chan};

fn one_worker() -> Runtime {
    Runtime::builder().workers(1).build().unwrap()
}

/// Times `iters` increments of a `growstack::sync::Mutex<u64>`.
fn growstack_mutex(iters: u64) -> Duration {
    let m = growstack::sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..iters {
        *black_box(&m).lock().unwrap() += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(m.into_inner().unwrap(), iters);
    elapsed
}

/// Times `iters` increments of a `std::sync::Mutex<u64>`.
fn std_mutex(iters: u64) -> Duration {
    let m = std::sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..iters {
        *black_box(&m).lock().unwrap() += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(m.into_inner().unwrap(), iters);
    elapsed
}

/// Times `iters` increments of a `parking_lot::Mutex<u64>`.
fn parking_lot_mutex(iters: u64) -> Duration {
    let m = parking_lot::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..iters {
        *black_box(&m).lock() += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(m.into_inner(), iters);
    elapsed
}

/// A timed loop of `iters` increments.
type Run = fn(u64) -> Duration;

fn mutex_uncontended(c: &mut Criterion) {
    let rt = one_worker();
    let mut g = c.benchmark_group("mutex_uncontended");
    let runs: [(&str, Run); 3] = [
        ("growstack", growstack_mutex),
        ("std", std_mutex),
        ("parking_lot", parking_lot_mutex),
    ];
    for (name, run) in runs {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(move || run(iters)))
        });
    }
    g.finish();
}

const TASKS: u64 = 8;
const INCREMENTS: u64 = 1_000_000;

fn mutex_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_contended");
    g.throughput(Throughput::Elements(INCREMENTS))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);

    // One runtime at a time, so that the idle one takes no core.
    let rt = Runtime::builder().workers(2).build().unwrap();
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    let counter = Arc::new(growstack::sync::Mutex::new(0u64));
                    let hs: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let counter = Arc::clone(&counter);
                            growstack::spawn(move || {
                                for _ in 0..INCREMENTS / TASKS {
                                    *counter.lock().unwrap() += 1;
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                    assert_eq!(*counter.lock().unwrap(), INCREMENTS);
                }
                start.elapsed()
            })
        })
    });
    drop(rt);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let counter = Arc::new(tokio::sync::Mutex::new(0u64));
                    let hs: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let counter = Arc::clone(&counter);
                            tokio::spawn(async move {
                                for _ in 0..INCREMENTS / TASKS {
                                    *counter.lock().await += 1;
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                    assert_eq!(*counter.lock().await, INCREMENTS);
                }
                start.elapsed()
            })
        })
    });
    drop(rt);
    g.finish();
}

/// Times `iters` sends into channel A, each followed by a `chan::select!`
/// over A and B (B stays empty, and connected).
fn growstack_select(iters: u64) -> Duration {
    let (tx_a, rx_a) = chan::unbounded::<u64>();
    let (tx_b, rx_b) = chan::unbounded::<u64>();
    let start = Instant::now();
    for i in 0..iters {
        tx_a.send(i).unwrap();
        let m = growstack::chan::select! {
            recv(rx_a) -> m => black_box(m),
            recv(rx_b) -> m => black_box(m),
        };
        m.unwrap();
    }
    let elapsed = start.elapsed();
    drop(tx_b);
    elapsed
}

/// [`growstack_select`] with crossbeam-channel's channels and `select!`.
fn crossbeam_select(iters: u64) -> Duration {
    let (tx_a, rx_a) = crossbeam_channel::unbounded::<u64>();
    let (tx_b, rx_b) = crossbeam_channel::unbounded::<u64>();
    let start = Instant::now();
    for i in 0..iters {
        tx_a.send(i).unwrap();
        let m = crossbeam_channel::select! {
            recv(rx_a) -> m => black_box(m),
            recv(rx_b) -> m => black_box(m),
        };
        m.unwrap();
    }
    let elapsed = start.elapsed();
    drop(tx_b);
    elapsed
}

fn select(c: &mut Criterion) {
    let rt = one_worker();
    let mut g = c.benchmark_group("select");
    g.bench_function("growstack_task", |b| {
        b.iter_custom(|iters| rt.block_on(move || growstack_select(iters)))
    });
    g.bench_function("growstack_thread", |b| b.iter_custom(growstack_select));
    g.bench_function("crossbeam_thread", |b| b.iter_custom(crossbeam_select));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = sync;
    config = config();
    targets = mutex_uncontended, mutex_contended, select
}
criterion_main!(sync);
