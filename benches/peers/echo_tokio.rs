//! The tokio peer of examples/echo_server.rs: a task per connection on a
//! multi-thread runtime, echoing every byte back.
//!
//! ```text
//! cargo run --release --example peer_echo_tokio -- [ADDR] [WORKERS]
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7002".into());
    let workers = args.next().map_or(2, |w| w.parse().expect("WORKERS"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("echo (tokio): listening on {}", listener.local_addr()?);
        loop {
            let (mut stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(err) => {
                    eprintln!("accept: {err}");
                    continue;
                }
            };
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = [0; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}
