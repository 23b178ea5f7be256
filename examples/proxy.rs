//! A TCP proxy: every connection to `LISTEN` is forwarded to `UPSTREAM`,
//! with two tasks per connection, one copying each way. Both share the two
//! streams through `&TcpStream` (in an `Arc`), as threads share std's.
//!
//! ```text
//! cargo run --release --example proxy -- [LISTEN] [UPSTREAM]
//! ```
//!
//! `LISTEN` defaults to 127.0.0.1:7100, `UPSTREAM` to 127.0.0.1:7000 (where
//! `examples/echo_server.rs` listens), so with the echo server running,
//! `cargo run --release --example echo_load -- 127.0.0.1:7100 100 1000 64`
//! measures the echo through the proxy. It runs until killed.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use growstack::net::{TcpListener, TcpStream};

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing side
/// (its reader sees the end, as it would without the proxy).
fn pipe(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let mut buf = [0; 2048];
    let mut total = 0;
    let copied = loop {
        match (&*from).read(&mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => {
                if let Err(err) = (&*to).write_all(&buf[..n]) {
                    break Err(err);
                }
                total += n as u64;
            }
            Err(err) => break Err(err),
        }
    };
    let _ = to.shutdown(Shutdown::Write);
    copied
}

fn forward(client: TcpStream, upstream: &str) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client, server) = (Arc::new(client), Arc::new(server));
    let back = {
        let (client, server) = (Arc::clone(&client), Arc::clone(&server));
        growstack::spawn(move || pipe(&server, &client))
    };
    let sent = pipe(&client, &server);
    let received = back
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("panicked")));
    sent.and(received).map(drop)
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:7100".into());
    let upstream: Arc<str> = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .into();
    let rt = growstack::Builder::new().stack_size(64 << 10).build()?;
    rt.block_on(move || {
        let listener = TcpListener::bind(&listen)?;
        eprintln!("proxy: {} -> {upstream}", listener.local_addr()?);
        for client in listener.incoming() {
            match client {
                Ok(client) => {
                    let upstream = Arc::clone(&upstream);
                    growstack::spawn(move || {
                        if let Err(err) = forward(client, &upstream) {
                            eprintln!("proxy: {err}");
                        }
                    });
                }
                Err(err) => eprintln!("proxy: accept: {err}"),
            }
        }
        Ok(())
    })
}
