//! A million tasks parked at once: what each costs in memory, with and
//! without stack compaction, and how many memory mappings the process needs
//! for their guarded stacks.
//!
//! ```text
//! cargo run --release --example million_idle [TASKS] [--compact [MS]]
//! ```
//!
//! Each task waits on a channel. RSS per task is (RSS with the tasks parked
//! minus RSS before) / tasks, read from /proc/self/status, and so is the
//! page-table growth (VmPTE); they include the task's stack pages, its heap
//! cell, its waiter and its JoinHandle. With `--compact` the runtime
//! compacts parked stacks (`Builder::compact_after`, 100 ms or MS), and
//! the figures are read again once every task is compacted, with the CPU
//! time the compaction took and what the idle process uses then. Then the tasks are
//! released and joined, and `growstack::shrink_now()` gives their stacks
//! back. The line starting `parked` has the format of the peers'
//! (`benches/peers/go/parked`, `peer_parked_tokio`).

use std::time::{Duration, Instant};

use growstack::chan;

/// VmRSS and VmPTE of this process, in bytes.
fn status() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |name: &str| -> i64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<i64>()
            .unwrap()
            * 1024
    };
    (kib("VmRSS:"), kib("VmPTE:"))
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

/// CPU time this process used so far (user + system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Prints the figures per task, in the peers' format.
fn report(what: &str, n: usize, base: (i64, i64)) {
    let (rss, pte) = status();
    let per = |bytes: i64| bytes / n as i64;
    println!(
        "{what} N={n} rss_per_task={} pte_per_task={} total_per_task={}",
        per(rss - base.0),
        per(pte - base.1),
        per(rss - base.0 + pte - base.1)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|a| a == "--compact");
    let compact = at.is_some();
    let after = at
        .and_then(|i| args.get(i + 1))
        .map_or(Duration::from_millis(100), |ms| {
            Duration::from_millis(ms.parse().expect("MS"))
        });
    let n: usize = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map_or(1_000_000, |a| a.parse().expect("TASKS"));
    let mut builder = growstack::Runtime::builder();
    if compact {
        // SAFETY: the tasks lend nothing on their stacks to anyone.
        builder = unsafe { builder.compact_after(after) };
    }
    let rt = builder.build().expect("runtime");
    // Warm the runtime up so that its own memory is in the baseline.
    rt.block_on(|| ());
    let base = status();
    let base_maps = mappings();

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
    let s = growstack::stats();
    println!(
        "{n} tasks parked ({} live) after {spawned:.2?}; stacks resident (estimate) {} MiB",
        s.tasks_live,
        s.stack_resident_bytes >> 20
    );
    report(if compact { "spawned" } else { "parked" }, n, base);
    println!(
        "memory mappings: {} (before: {base_maps}; vm.max_map_count = {})",
        mappings(),
        max_map_count()
    );

    if compact {
        let start = Instant::now();
        let cpu = cpu_time();
        while growstack::stats().compacted_tasks < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not all compacted: {:?}",
                growstack::stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let s = growstack::stats();
        println!(
            "all compacted {:.2?} after the last one parked ({after:?} threshold), \
             {:.2?} of CPU since; {} B of stack per task in buffers; stacks resident \
             (estimate) {} MiB",
            start.elapsed(),
            cpu_time() - cpu,
            s.compacted_bytes / n,
            s.stack_resident_bytes >> 20
        );
        report("compacted", n, base);
        // Whole 2 MiB chunks of compacted slots go with their page tables
        // once they stayed so for ten times the threshold.
        std::thread::sleep(after * 12);
        report("parked", n, base);
        let (cpu, start) = (cpu_time(), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        println!(
            "idle with all compacted: {:.2?} of CPU in {:.2?}",
            cpu_time() - cpu,
            start.elapsed()
        );
    }

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
        (status().0 - base.0).max(0) >> 20
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
        (status().0 - base.0).max(0) >> 20,
        s.stack_resident_bytes >> 20
    );
}
