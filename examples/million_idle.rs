//! A million tasks parked at once: what each costs in memory, and how many
//! memory mappings the process needs for their guarded stacks.
//!
//! ```text
//! cargo run --release --example million_idle [TASKS]
//! ```
//!
//! Each task waits on a channel. RSS per task is (RSS with the tasks parked
//! minus RSS before) / tasks, read from /proc/self/status; it includes the
//! task's stack page, its share of page tables, its heap cell and its
//! JoinHandle. Then the tasks are released and joined, and
//! `growstack::shrink_now()` gives their stacks back.

use std::time::Instant;

use growstack::chan;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").map_or("?".into(), |s| s.trim().into())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("TASKS"));
    let rt = growstack::Runtime::new().expect("runtime");
    // Warm the runtime up so that its own memory is in the baseline.
    rt.block_on(|| ());
    let (base_rss, base_maps) = (rss_kib(), mappings());

    let start = Instant::now();
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let (go_tx, go_rx) = chan::unbounded::<()>();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (ready_tx, go_rx) = (ready_tx.clone(), go_rx.clone());
            rt.spawn(move || {
                ready_tx.send(()).unwrap();
                // Parks until the sender is dropped.
                go_rx.recv().is_err()
            })
        })
        .collect();
    drop((ready_tx, go_rx));
    for _ in 0..n {
        ready_rx.recv().unwrap();
    }
    let spawned = start.elapsed();
    let (rss, maps) = (rss_kib(), mappings());
    let s = growstack::stats();
    println!(
        "{n} tasks parked ({} live) after {spawned:.2?}; stacks resident (estimate) {} MiB",
        s.tasks_live,
        s.stack_resident_bytes >> 20
    );
    println!(
        "RSS: {} MiB more than before = {:.2} KiB per task",
        (rss - base_rss) / 1024,
        (rss - base_rss) as f64 / n as f64
    );
    println!(
        "memory mappings: {maps} (before: {base_maps}; vm.max_map_count = {})",
        max_map_count()
    );

    let start = Instant::now();
    drop(go_tx);
    let released = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&e| e)
        .count();
    assert_eq!(released, n);
    println!(
        "released and joined in {:.2?}; RSS now {} MiB above the baseline",
        start.elapsed(),
        rss_kib().saturating_sub(base_rss) / 1024
    );
    // The workers keep freed stacks (256 each by default) and release the
    // rest in their maintenance passes; shrink_now runs one everywhere.
    let start = Instant::now();
    growstack::shrink_now();
    let s = growstack::stats();
    println!(
        "shrink_now in {:.2?}; RSS now {} MiB above the baseline, of which stacks \
         (growstack's estimate) {} MiB; the rest is heap the allocator keeps",
        start.elapsed(),
        rss_kib().saturating_sub(base_rss) / 1024,
        s.stack_resident_bytes >> 20
    );
}
