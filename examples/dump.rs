//! A dump of many parked tasks: how long `growstack::dump()` takes, what it
//! costs in memory, and that the tasks go on undisturbed afterwards.
//!
//! ```text
//! cargo run --release --example dump [TASKS]
//! ```
//!
//! Spawns TASKS (default 100,000) tasks that each park on a channel of its
//! own, takes a dump (every task's state and a backtrace captured on its
//! stack), checks that it names every task as parked on its receive, then
//! sends each task a value and checks what every task returns. Prints the
//! dump's time and the RSS it added, and the start of `dump_report()` for
//! ten of them.

use std::time::Instant;

use growstack::chan;
use growstack::task::{ParkedOn, TaskState};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The function every task is parked in, to find in the backtraces.
#[inline(never)]
fn wait_for_value(rx: chan::Receiver<u64>) -> u64 {
    rx.recv().unwrap() * 2
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("TASKS"));
    let rt = growstack::Runtime::builder()
        .workers(2)
        .build()
        .expect("runtime");
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let mut senders = Vec::with_capacity(n);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = chan::bounded::<u64>(0);
            senders.push(tx);
            let ready_tx = ready_tx.clone();
            rt.spawn(move || {
                ready_tx.send(()).unwrap();
                wait_for_value(rx)
            })
        })
        .collect();
    drop(ready_tx);
    for _ in 0..n {
        ready_rx.recv().unwrap();
    }
    // Every task has sent; give the last ones time to park.
    std::thread::sleep(std::time::Duration::from_millis(100));

    let before = rss_kib();
    let start = Instant::now();
    let dump = growstack::dump();
    let took = start.elapsed();
    let after = rss_kib();
    let parked = dump
        .iter()
        .filter(|t| {
            matches!(
                t.state,
                TaskState::Parked {
                    on: ParkedOn::Recv { elem: "u64", .. },
                    ..
                }
            )
        })
        .count();
    println!(
        "dump of {} tasks ({parked} parked on a receive) in {took:.2?}; RSS +{} KiB ({:.0} B per task)",
        dump.len(),
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / n as f64,
    );
    assert_eq!(parked, n, "every task is parked on its receive");
    let sample: Vec<_> = dump.iter().take(10).collect();
    let in_wait = sample
        .iter()
        .filter(|t| {
            t.backtrace
                .as_ref()
                .is_some_and(|b| b.to_string().contains("wait_for_value"))
        })
        .count();
    assert_eq!(
        in_wait,
        sample.len(),
        "backtraces show where the tasks wait"
    );
    drop(dump);
    let kept = rss_kib().saturating_sub(before);
    println!(
        "after dropping the dump: RSS +{kept} KiB ({:.0} B per task: stack pages the captures touched)",
        kept as f64 * 1024.0 / n as f64
    );

    let start = Instant::now();
    for (i, tx) in senders.iter().enumerate() {
        tx.send(i as u64).unwrap();
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), 2 * i as u64);
    }
    println!(
        "all {n} tasks then completed correctly in {:.2?}",
        start.elapsed()
    );
}
