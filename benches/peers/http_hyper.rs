//! The tokio + hyper peer of examples/http_hello.rs: hyper's HTTP/1.1
//! server (keep-alive) answering "Hello, World!" on a multi-thread tokio
//! runtime.
//!
//! ```text
//! cargo run --release --example peer_http_hyper -- [ADDR] [WORKERS]
//! ```

use std::convert::Infallible;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};

async fn hello(_: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::builder()
        .header("Content-Type", "text/plain")
        .body(Body::from("Hello, World!"))
        .expect("a valid response"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:8082").parse()?;
    let workers = args.next().map_or(2, |w| w.parse().expect("WORKERS"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let make = make_service_fn(|_| async { Ok::<_, Infallible>(service_fn(hello)) });
        eprintln!("http (hyper): listening on {addr}");
        Server::bind(&addr).serve(make).await
    })?;
    Ok(())
}
