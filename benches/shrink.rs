//! The cost of a maintenance pass (`growstack::shrink_now`) with 100k
//! parked tasks, of which 1% grew onto segments since the previous pass
//! (`grew_1pc`), and of which none grew (`grew_none`): the pass visits only
//! tasks that grew, so the second is the fixed cost of asking the workers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use growstack::{Runtime, chan};

const TASKS: usize = 100_000;
const GROWERS: usize = TASKS / 100;

/// About 1 MiB of stack: the task's slot, then a segment.
#[growstack::growable]
fn deep(levels: u32) -> u32 {
    let pad = [levels as u8; 1024];
    black_box(&pad);
    if levels == 0 { 0 } else { deep(levels - 1) + 1 }
}

fn shrink_pass(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (park_tx, park_rx) = chan::unbounded::<()>();
    let (done_tx, done_rx) = chan::unbounded::<()>();
    let mut grow_txs = Vec::with_capacity(GROWERS);
    let mut handles = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        if i % 100 == 0 {
            let (tx, rx) = chan::unbounded::<()>();
            let done_tx = done_tx.clone();
            grow_txs.push(tx);
            handles.push(rt.spawn(move || {
                for () in rx {
                    black_box(deep(1000));
                    done_tx.send(()).unwrap();
                }
            }));
        } else {
            let park_rx = park_rx.clone();
            handles.push(rt.spawn(move || {
                let _ = park_rx.recv();
            }));
        }
    }
    let grow_all = || {
        for tx in &grow_txs {
            tx.send(()).unwrap();
        }
        for _ in 0..GROWERS {
            done_rx.recv().unwrap();
        }
    };
    grow_all();
    growstack::shrink_now();

    let mut g = c.benchmark_group("shrink_pass_100k_parked");
    g.bench_function("grew_1pc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                grow_all();
                let start = Instant::now();
                growstack::shrink_now();
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("grew_none", |b| b.iter(growstack::shrink_now));
    g.finish();

    drop((park_tx, grow_txs));
    for h in handles {
        h.join().unwrap();
    }
}

criterion_group! {
    name = shrink;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = shrink_pass
}
criterion_main!(shrink);
