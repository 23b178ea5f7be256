//! A TCP echo server: a task per connection, echoing every byte back.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [WORKERS]
//! ```
//!
//! `ADDR` defaults to 127.0.0.1:7000, `WORKERS` to the number of cores. It
//! runs until killed. `examples/echo_load.rs` is a load generator for it;
//! `benches/peers/run` compares it with Go, tokio and may servers.

use std::io::{Read, Write};

use growstack::net::{TcpListener, TcpStream};

fn serve(mut stream: TcpStream) {
    // 1 KiB on the task's stack: with the frames down to a parked read it
    // fits in the one page of stack an idle connection touches. (A 4 KiB
    // buffer, on the stack or from malloc, which zeroes it, touches a
    // second page: 8.7 KB per idle connection instead of 4.5 KB. Go's
    // `make([]byte, 4096)` comes from fresh zeroed pages it never touches
    // until data comes.)
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let workers = args.next().map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |w| w.parse().expect("WORKERS is a number"),
    );
    // Tasks start on 64 KiB of address space, of which an idle connection
    // touches one page; smaller slots than the default 256 KiB also need
    // fewer page tables (258 bytes per task instead of 512).
    let rt = growstack::Builder::new()
        .workers(workers)
        .stack_size(64 << 10)
        .build()?;
    rt.block_on(move || {
        let listener = TcpListener::bind(&addr)?;
        eprintln!("echo_server: listening on {}", listener.local_addr()?);
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    growstack::spawn(move || serve(stream));
                }
                // Out of descriptors, say: `accept` already waited a
                // little; keep serving.
                Err(err) => eprintln!("echo_server: accept: {err}"),
            }
        }
        Ok(())
    })
}
