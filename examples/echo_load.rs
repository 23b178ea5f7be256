//! A load generator for echo servers: opens `CONNECTIONS` connections, and
//! on each sends `MESSAGES` messages of `SIZE` bytes one after the other,
//! waiting for each echo before the next. Prints messages per second and
//! the latency percentiles of a round trip.
//!
//! ```text
//! cargo run --release --example echo_load -- ADDR CONNECTIONS MESSAGES SIZE [WORKERS]
//! cargo run --release --example echo_load -- 127.0.0.1:7000 1000 1000 64
//! ```
//!
//! With `MESSAGES` 0 it opens the connections, holds them open until its
//! standard input closes (or a line is read from it), and exits: the idle
//! connections test of `benches/peers/run`.
//!
//! It runs on growstack tasks itself (a task per connection), on `WORKERS`
//! workers (default: the number of cores).

use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

use growstack::net::TcpStream;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i)
        .unwrap_or_else(|| {
            panic!("usage: echo_load ADDR CONNECTIONS MESSAGES SIZE (missing {name})")
        })
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// One connection's run: its round-trip times, in nanoseconds.
fn run(addr: &str, messages: usize, size: usize) -> std::io::Result<Vec<u32>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let msg = vec![7u8; size];
    let mut back = vec![0u8; size];
    let mut times = Vec::with_capacity(messages);
    for _ in 0..messages {
        let sent = Instant::now();
        stream.write_all(&msg)?;
        stream.read_exact(&mut back)?;
        times.push(sent.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    assert_eq!(back, msg, "the server echoed something else");
    Ok(times)
}

fn percentile(sorted: &[u32], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    Duration::from_nanos(sorted[i].into())
}

fn hold(addr: String, connections: usize) -> std::io::Result<()> {
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        open.push(TcpStream::connect(&addr)?);
    }
    println!("holding {connections} connections; close stdin to let go");
    let _ = std::io::stdin().lock().read_line(&mut String::new());
    drop(open);
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: String = arg(&args, 0, "ADDR");
    let connections: usize = arg(&args, 1, "CONNECTIONS");
    let messages: usize = arg(&args, 2, "MESSAGES");
    let size: usize = arg(&args, 3, "SIZE");
    let workers = args.get(4).map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |w| w.parse().expect("WORKERS is a number"),
    );
    let rt = growstack::Builder::new().workers(workers).build()?;
    if messages == 0 {
        return rt.block_on(move || hold(addr, connections));
    }
    let start = Instant::now();
    let results = rt.block_on(move || {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let addr = addr.clone();
                growstack::spawn(move || run(&addr, messages, size))
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed();
    let mut times = Vec::with_capacity(connections * messages);
    let mut failed = 0;
    for r in results {
        match r {
            Ok(t) => times.extend(t),
            Err(err) => {
                failed += 1;
                eprintln!("echo_load: a connection failed: {err}");
            }
        }
    }
    assert!(!times.is_empty(), "every connection failed");
    times.sort_unstable();
    let rate = times.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{} messages of {size} bytes over {} connections in {:.2?}: {:.0} msg/s; \
         latency p50 {:.1?} p99 {:.1?} p99.9 {:.1?}{}",
        times.len(),
        connections,
        elapsed,
        rate,
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        percentile(&times, 99.9),
        if failed > 0 {
            format!("; {failed} connections failed")
        } else {
            String::new()
        },
    );
    Ok(())
}
