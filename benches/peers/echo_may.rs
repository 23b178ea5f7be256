//! The may peer of examples/echo_server.rs: a coroutine per connection,
//! echoing every byte back.
//!
//! ```text
//! cargo run --release --example peer_echo_may -- [ADDR] [WORKERS]
//! ```

use std::io::{Read, Write};

use may::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7003".into());
    let workers = args.next().map_or(2, |w| w.parse().expect("WORKERS"));
    may::config().set_workers(workers);
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echo (may): listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(err) => {
                eprintln!("accept: {err}");
                continue;
            }
        };
        stream.set_nodelay(true)?;
        // may's `go!` spawns unsafely: its coroutines must not use
        // thread-locals or block their thread. This one does neither.
        may::go!(move || {
            let mut buf = [0; 4096];
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
        });
    }
    Ok(())
}
