//! The tokio peer of examples/million_idle.rs: N tasks (default 1,000,000)
//! on a multi-thread runtime with 2 workers, each sends on a ready channel
//! and then parks. Once all are parked, prints RSS and page-table (VmRSS,
//! VmPTE from /proc/self/status) growth per task, JoinHandles included;
//! then releases the tasks and times their release and join.
//!
//! ```text
//! cargo run --release --example peer_parked_tokio -- [TASKS]
//! ```

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

/// VmRSS and VmPTE of this process, in bytes.
fn status() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name| -> i64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<i64>()
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmPTE:"))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("TASKS"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    // Warm the runtime up so that its own memory is in the baseline.
    rt.block_on(async {});
    let (base_rss, base_pte) = status();

    // tokio's mpsc has a single consumer, so the shared "go" channel is a
    // watch: every task awaits `changed()` on its own clone of one
    // receiver, which fails (releasing it) once the sender is dropped.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let (go_tx, go_rx) = watch::channel(());
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (ready_tx, mut go_rx) = (ready_tx.clone(), go_rx.clone());
            rt.spawn(async move {
                ready_tx.send(()).unwrap();
                go_rx.changed().await.is_err()
            })
        })
        .collect();
    drop((ready_tx, go_rx));
    rt.block_on(async {
        for _ in 0..n {
            ready_rx.recv().await.unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let (rss, pte) = status();
    let (rss_per, pte_per) = ((rss - base_rss) / n as i64, (pte - base_pte) / n as i64);
    println!(
        "parked N={n} rss_per_task={rss_per} pte_per_task={pte_per} total_per_task={}",
        rss_per + pte_per
    );

    let start = Instant::now();
    drop(go_tx);
    let released = rt.block_on(async {
        let mut released = 0;
        for h in handles {
            released += h.await.unwrap() as usize;
        }
        released
    });
    assert_eq!(released, n);
    println!("released in {:.2?}", start.elapsed());
}
