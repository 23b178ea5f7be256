//! Stack compaction (`Builder::compact_after`), side by side in one run:
//!
//! - `wake`: a task parked on a channel is woken by a task of its worker
//!   and answers it (per round trip): not compacted; compacted (its stack
//!   bytes in a buffer, its pages released: the wake faults a page in and
//!   copies them back); and compacted for long enough that its 2 MiB chunk
//!   was released whole with its page table (the wake also reinstalls its
//!   guard, which takes a new page-table page);
//! - `ping_pong`: two tasks bouncing a message over two channels (per round
//!   trip), in a runtime that compacts (they never stay parked long enough
//!   to be) vs one that does not: what compaction costs the tasks it
//!   leaves alone.
//!
//! Every runtime gets one worker thread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use growstack::{Runtime, chan};

const AFTER: Duration = Duration::from_millis(20);
/// Parked tasks woken per batch: enough that the first wakes after the
/// batch's waits (cold caches) do not dominate.
const BATCH: u64 = 4_000;

fn runtime(compact: bool) -> Runtime {
    let mut builder = Runtime::builder().workers(1);
    if compact {
        // SAFETY: the tasks of this bench lend nothing on their stacks.
        builder = unsafe { builder.compact_after(AFTER) };
    }
    builder.build().unwrap()
}

/// Parks `n` tasks, lets them be compacted (if `rt` compacts), then times
/// waking each from a task and waiting for its answer.
/// How long a task waits, parked, before it is woken.
#[derive(Clone, Copy, PartialEq)]
enum Parked {
    /// Until it is compacted (if the runtime compacts).
    Compacted,
    /// Until its chunk went with its page table too (10 times `AFTER`).
    ChunkReleased,
}

fn wake_batch(rt: &Runtime, n: u64, compact: bool, parked: Parked) -> Duration {
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let (done_tx, done_rx) = chan::bounded::<u64>(0);
    let before = growstack::stats().compacted_tasks as u64;
    let wakers: Vec<_> = (0..n)
        .map(|i| {
            let (tx, rx) = chan::bounded::<u64>(0);
            let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
            let task = rt.spawn(move || {
                ready_tx.send(()).unwrap();
                let v = rx.recv().unwrap();
                done_tx.send(v + i).unwrap();
            });
            (tx, task)
        })
        .collect();
    for _ in 0..n {
        ready_rx.recv().unwrap();
    }
    // Parked for longer than AFTER either way; compacted, if it compacts.
    let start = Instant::now();
    std::thread::sleep(2 * AFTER);
    while compact && (growstack::stats().compacted_tasks as u64) < before + n {
        assert!(start.elapsed() < Duration::from_secs(30), "not compacted");
        std::thread::sleep(AFTER);
    }
    if parked == Parked::ChunkReleased {
        std::thread::sleep(12 * AFTER);
    }
    rt.block_on(move || {
        let start = Instant::now();
        for (tx, task) in wakers {
            tx.send(1).unwrap();
            black_box(done_rx.recv().unwrap());
            drop(task);
        }
        start.elapsed()
    })
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    for (name, compact, parked) in [
        ("not_compacted", false, Parked::Compacted),
        ("compacted", true, Parked::Compacted),
        ("compacted_chunk_released", true, Parked::ChunkReleased),
    ] {
        let rt = runtime(compact);
        g.bench_function(name, |b| {
            // Each sample wakes whole batches, and counts the time per wake
            // times the iterations asked for.
            b.iter_custom(|iters| {
                let batches = iters.div_ceil(BATCH).min(4);
                let mut total = Duration::ZERO;
                for _ in 0..batches {
                    total += wake_batch(&rt, BATCH, compact, parked);
                }
                total / (batches * BATCH) as u32 * iters as u32
            })
        });
    }
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    for (name, compact) in [("compacting", true), ("not_compacting", false)] {
        let rt = runtime(compact);
        g.bench_function(name, |b| {
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
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = compact;
    config = config();
    targets = wake, ping_pong
}
criterion_main!(compact);
