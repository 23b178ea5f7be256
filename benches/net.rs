//! Sockets side by side with peers, in one run, over loopback:
//!
//! - `tcp_ping_pong`: a client and an echo server on one connection, 64
//!   bytes each way per round trip: growstack tasks on one worker vs tokio
//!   tasks on a current-thread runtime vs may coroutines on one worker vs
//!   two OS threads with std's blocking sockets;
//! - `udp_ping_pong`: the same with datagrams, growstack vs std threads.
//!
//! One worker each, so that every figure is the cost of the socket path
//! (two system calls per side, a park and a wake), not of cross-core
//! wake-ups. The many-connection comparisons (against Go too) are in
//! `benches/peers/run`.

use std::io::{Read, Write};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};

const MSG: usize = 64;

fn echo_std(mut s: std::net::TcpStream) {
    let mut buf = [0; MSG];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            return;
        }
    }
}

fn tcp_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_ping_pong");
    let rt = growstack::Builder::new().workers(1).build().unwrap();
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                use growstack::net::{TcpListener, TcpStream};
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let server = growstack::spawn(move || {
                    let (mut s, _) = l.accept().unwrap();
                    s.set_nodelay(true).unwrap();
                    let mut buf = [0; MSG];
                    while s.read_exact(&mut buf).is_ok() {
                        if s.write_all(&buf).is_err() {
                            return;
                        }
                    }
                });
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_nodelay(true).unwrap();
                let mut buf = [7; MSG];
                let start = Instant::now();
                for _ in 0..iters {
                    c.write_all(&buf).unwrap();
                    c.read_exact(&mut buf).unwrap();
                }
                let elapsed = start.elapsed();
                drop(c);
                server.join().unwrap();
                elapsed
            })
        })
    });
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    let (mut s, _) = l.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    let mut buf = [0; MSG];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&buf).await.is_err() {
                            return;
                        }
                    }
                });
                let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                let mut buf = [7; MSG];
                let start = Instant::now();
                for _ in 0..iters {
                    c.write_all(&buf).await.unwrap();
                    c.read_exact(&mut buf).await.unwrap();
                }
                let elapsed = start.elapsed();
                drop(c);
                server.await.unwrap();
                elapsed
            })
        })
    });
    may::config().set_workers(1);
    g.bench_function("may", |b| {
        b.iter_custom(|iters| {
            // SAFETY: may's contract for spawn: these coroutines use no
            // thread-locals and never block their OS thread.
            unsafe {
                may::coroutine::spawn(move || {
                    let l = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let addr = l.local_addr().unwrap();
                    let server = may::coroutine::spawn(move || {
                        let (mut s, _) = l.accept().unwrap();
                        s.set_nodelay(true).unwrap();
                        let mut buf = [0; MSG];
                        while s.read_exact(&mut buf).is_ok() {
                            if s.write_all(&buf).is_err() {
                                return;
                            }
                        }
                    });
                    let mut c = may::net::TcpStream::connect(addr).unwrap();
                    c.set_nodelay(true).unwrap();
                    let mut buf = [7; MSG];
                    let start = Instant::now();
                    for _ in 0..iters {
                        c.write_all(&buf).unwrap();
                        c.read_exact(&mut buf).unwrap();
                    }
                    let elapsed = start.elapsed();
                    drop(c);
                    server.join().unwrap();
                    elapsed
                })
            }
            .join()
            .unwrap()
        })
    });
    g.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (s, _) = l.accept().unwrap();
                s.set_nodelay(true).unwrap();
                echo_std(s);
            });
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            let mut buf = [7; MSG];
            let start = Instant::now();
            for _ in 0..iters {
                c.write_all(&buf).unwrap();
                c.read_exact(&mut buf).unwrap();
            }
            let elapsed = start.elapsed();
            drop(c);
            server.join().unwrap();
            elapsed
        })
    });
    g.finish();
}

fn udp_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("udp_ping_pong");
    let rt = growstack::Builder::new().workers(1).build().unwrap();
    g.bench_function("growstack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                use growstack::net::UdpSocket;
                let a = UdpSocket::bind("127.0.0.1:0").unwrap();
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                a.connect(s.local_addr().unwrap()).unwrap();
                let server = growstack::spawn(move || {
                    let mut buf = [0; MSG];
                    for _ in 0..iters {
                        let (n, from) = s.recv_from(&mut buf).unwrap();
                        s.send_to(&buf[..n], from).unwrap();
                    }
                });
                let mut buf = [7; MSG];
                let start = Instant::now();
                for _ in 0..iters {
                    a.send(&buf).unwrap();
                    a.recv(&mut buf).unwrap();
                }
                let elapsed = start.elapsed();
                server.join().unwrap();
                elapsed
            })
        })
    });
    g.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            a.connect(s.local_addr().unwrap()).unwrap();
            let server = std::thread::spawn(move || {
                let mut buf = [0; MSG];
                for _ in 0..iters {
                    let (n, from) = s.recv_from(&mut buf).unwrap();
                    s.send_to(&buf[..n], from).unwrap();
                }
            });
            let mut buf = [7; MSG];
            let start = Instant::now();
            for _ in 0..iters {
                a.send(&buf).unwrap();
                a.recv(&mut buf).unwrap();
            }
            let elapsed = start.elapsed();
            server.join().unwrap();
            elapsed
        })
    });
    g.finish();
}

criterion_group!(benches, tcp_ping_pong, udp_ping_pong);
criterion_main!(benches);
