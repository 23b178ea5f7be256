//! The skynet benchmark: a tree of a million tasks with fan-out 10; each
//! leaf sends its number to its parent through a channel, each parent sends
//! the sum of its children up, and the root receives 499999500000.
//!
//! ```text
//! cargo run --release --example skynet [RUNS]
//! ```

use std::time::Instant;

use growstack::chan::{self, Sender};

const LEAVES: u64 = 1_000_000;
const FAN_OUT: u64 = 10;

fn skynet(num: u64, size: u64, out: Sender<u64>) {
    if size == 1 {
        out.send(num).unwrap();
        return;
    }
    let (tx, rx) = chan::bounded(FAN_OUT as usize);
    let sub = size / FAN_OUT;
    for i in 0..FAN_OUT {
        let tx = tx.clone();
        growstack::spawn(move || skynet(num + i * sub, sub, tx));
    }
    drop(tx);
    out.send(rx.iter().sum()).unwrap();
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("RUNS"));
    let rt = growstack::Runtime::new().expect("runtime");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("skynet: {LEAVES} leaves, fan-out {FAN_OUT}, {workers} workers");
    let mut best = f64::INFINITY;
    for run in 1..=runs {
        let start = Instant::now();
        let sum = rt.block_on(|| {
            let (tx, rx) = chan::bounded(1);
            growstack::spawn(move || skynet(0, LEAVES, tx));
            rx.recv().unwrap()
        });
        let ms = start.elapsed().as_secs_f64() * 1e3;
        assert_eq!(sum, LEAVES * (LEAVES - 1) / 2);
        best = best.min(ms);
        println!("run {run}: sum {sum} in {ms:.1} ms");
    }
    let s = growstack::stats();
    println!(
        "best {best:.1} ms ({:.0} ns per task); tasks_live now {}",
        best * 1e6 / 1_111_111.0,
        s.tasks_live
    );
}
