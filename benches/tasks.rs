//! Tasks side by side with peers, in one run:
//!
//! - `spawn_join`: spawn 1000 tasks, then join them all (per task), vs
//!   `may` coroutines and `std::thread`;
//! - `yield`: one `yield_now` of a task alone on its worker, vs `may`;
//! - `yield_pair`: two tasks yielding to each other (per round trip: each
//!   yields once), vs `may`;
//! - `ping_pong`: two tasks bouncing a message over two channels (per round
//!   trip), vs `may`;
//! - `switch`: the bare context switch, one round trip (two switches), vs
//!   corosensei's `resume` + `suspend`;
//! - `stream_threads`: one plain thread streaming messages to another over
//!   an unbounded channel (per message, both cores busy with the lock), vs
//!   `std::sync::mpsc`.
//!
//! Both runtimes get one worker thread, so that every figure is the cost of
//! the mechanism, not of cross-core wake-ups (`may` is configured once for
//! the whole process).

use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::Coroutine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use growstack::{Runtime, chan};

const SPAWNS: u64 = 1000;

fn one_worker() -> Runtime {
    Runtime::builder().workers(1).build().unwrap()
}

fn setup_may() {
    may::config().set_workers(1);
}

/// Runs `f` in a may coroutine and waits for it.
fn may_block_on<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: may's contract for spawn: the closures given to it in this
    // file use no thread-locals and never block their OS thread.
    unsafe { may::coroutine::spawn(f) }.join().unwrap()
}

fn spawn_join(c: &mut Criterion) {
    let rt = one_worker();
    let mut g = c.benchmark_group("spawn_join");
    g.throughput(Throughput::Elements(SPAWNS));
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    let hs: Vec<_> = (0..SPAWNS)
                        .map(|i| growstack::spawn(move || black_box(i)))
                        .collect();
                    for h in hs {
                        black_box(h.join().unwrap());
                    }
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("may", |b| {
        b.iter_custom(|iters| {
            may_block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    // SAFETY: as in may_block_on.
                    let hs: Vec<_> = (0..SPAWNS)
                        .map(|i| unsafe { may::coroutine::spawn(move || black_box(i)) })
                        .collect();
                    for h in hs {
                        black_box(h.join().unwrap());
                    }
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("std_thread", |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..SPAWNS)
                .map(|i| std::thread::spawn(move || black_box(i)))
                .collect();
            for h in hs {
                black_box(h.join().unwrap());
            }
        })
    });
    g.finish();
}

fn yield_round_trip(c: &mut Criterion) {
    let rt = one_worker();
    let mut g = c.benchmark_group("yield");
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    growstack::yield_now();
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("may", |b| {
        b.iter_custom(|iters| {
            may_block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    may::coroutine::yield_now();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn yield_pair(c: &mut Criterion) {
    let rt = one_worker();
    let mut g = c.benchmark_group("yield_pair");
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let other =
                    growstack::spawn(move || (0..iters).for_each(|_| growstack::yield_now()));
                let start = Instant::now();
                for _ in 0..iters {
                    growstack::yield_now();
                }
                let elapsed = start.elapsed();
                other.join().unwrap();
                elapsed
            })
        })
    });
    g.bench_function("may", |b| {
        b.iter_custom(|iters| {
            may_block_on(move || {
                // SAFETY: as in may_block_on.
                let other = unsafe {
                    may::coroutine::spawn(move || {
                        (0..iters).for_each(|_| may::coroutine::yield_now())
                    })
                };
                let start = Instant::now();
                for _ in 0..iters {
                    may::coroutine::yield_now();
                }
                let elapsed = start.elapsed();
                other.join().unwrap();
                elapsed
            })
        })
    });
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    let rt = one_worker();
    let mut g = c.benchmark_group("ping_pong");
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let (ping_tx, ping_rx) = chan::unbounded::<u64>();
                let (pong_tx, pong_rx) = chan::unbounded::<u64>();
                let echo = growstack::spawn(move || {
                    for v in ping_rx {
                        pong_tx.send(v).unwrap();
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    ping_tx.send(i).unwrap();
                    black_box(pong_rx.recv().unwrap());
                }
                let elapsed = start.elapsed();
                drop(ping_tx);
                echo.join().unwrap();
                elapsed
            })
        })
    });
    g.bench_function("may", |b| {
        b.iter_custom(|iters| {
            may_block_on(move || {
                let (ping_tx, ping_rx) = may::sync::mpsc::channel::<u64>();
                let (pong_tx, pong_rx) = may::sync::mpsc::channel::<u64>();
                // SAFETY: as in may_block_on.
                let echo = unsafe {
                    may::coroutine::spawn(move || {
                        while let Ok(v) = ping_rx.recv() {
                            pong_tx.send(v).unwrap();
                        }
                    })
                };
                let start = Instant::now();
                for i in 0..iters {
                    ping_tx.send(i).unwrap();
                    black_box(pong_rx.recv().unwrap());
                }
                let elapsed = start.elapsed();
                drop(ping_tx);
                echo.join().unwrap();
                elapsed
            })
        })
    });
    g.finish();
}

fn switch(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch");
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            growstack::__private::switch_round_trips(iters);
            start.elapsed()
        })
    });
    g.bench_function("corosensei", |b| {
        let mut co = Coroutine::new(|yielder, ()| {
            loop {
                yielder.suspend(());
            }
        });
        b.iter(|| co.resume(()))
    });
    g.finish();
}

const STREAM: u64 = 10_000;

fn stream_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_threads");
    g.throughput(Throughput::Elements(STREAM));
    g.bench_function("growstack", |b| {
        b.iter(|| {
            let (tx, rx) = chan::unbounded::<u64>();
            let producer =
                std::thread::spawn(move || (0..STREAM).for_each(|i| tx.send(i).unwrap()));
            black_box(rx.iter().sum::<u64>());
            producer.join().unwrap();
        })
    });
    g.bench_function("std_mpsc", |b| {
        b.iter(|| {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let producer =
                std::thread::spawn(move || (0..STREAM).for_each(|i| tx.send(i).unwrap()));
            black_box(rx.iter().sum::<u64>());
            producer.join().unwrap();
        })
    });
    g.finish();
}

fn config() -> Criterion {
    setup_may();
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = tasks;
    config = config();
    targets = spawn_join, yield_round_trip, yield_pair, ping_pong, switch, stream_threads
}
criterion_main!(tasks);
