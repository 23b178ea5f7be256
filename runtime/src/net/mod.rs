//! Networking for tasks: [`TcpListener`], [`TcpStream`] and [`UdpSocket`],
//! shaped like `std::net`'s, whose blocking calls park the calling task
//! instead of its worker thread.
//!
//! One task per connection, written as plain blocking code, as in Go:
//!
//! ```no_run
//! # use growstack_runtime as growstack;
//! use std::io::{Read, Write};
//! use growstack::net::TcpListener;
//!
//! let rt = growstack::Runtime::new()?;
//! rt.block_on(|| -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:7000")?;
//!     for stream in listener.incoming() {
//!         let mut stream = stream?;
//!         growstack::spawn(move || {
//!             let mut buf = [0; 4096];
//!             while let Ok(n @ 1..) = stream.read(&mut buf) {
//!                 if stream.write_all(&buf[..n]).is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! How it works (Go's netpoller): every call is made non-blocking by its
//! flags (`MSG_DONTWAIT`). When it would block, a task parks on the
//! socket's readiness and retries once woken. Each worker has an epoll
//! instance, in which an idle worker also sleeps (with its next timer as
//! the timeout); a socket is registered, edge-triggered, with the epoll of
//! a worker whose task waits for it (it moves to the waiting task's worker
//! when no other task waits), so that events reach a worker that polls
//! while its waiters wait. A busy worker polls its epoll between
//! tasks now and then, so tasks that keep it busy do not starve sockets.
//! An event wakes the waiting tasks on the workers they are pinned to.
//!
//! Called from a plain thread (not a task), the same calls block the
//! thread, as std's do, so the same code works in both places.
//!
//! Differences from std:
//!
//! - Timeouts (`set_read_timeout`, `set_write_timeout`) are kept by
//!   growstack, not the kernel: a timed-out call fails with `WouldBlock`
//!   (`EAGAIN`) as std's, after the runtime's timer fires. `try_clone`d
//!   handles share them, as std's do.
//! - `TcpListener::accept` out of descriptors (`EMFILE` and kin) returns
//!   its error only after a delay (1 ms, doubling to 100 ms), so that an
//!   accept loop that retries does not spin.
//! - A listener's open file is made non-blocking (`accept` has no flag for
//!   it), which std handles duplicated from it share. Streams and UDP
//!   sockets are left in std's mode.
//! - Host names are resolved by the system's blocking resolver, on the
//!   calling thread: in a task, that blocks its worker for the lookup.
//!   Pass a `SocketAddr`, or resolve in [`spawn_blocking`](crate::spawn_blocking).
//! - Dropping a handle made by `try_clone` does not wake a task parked on
//!   another handle of the same socket (the connection stays open, as with
//!   std); `shutdown` does.

mod desc;
mod io;
pub(crate) mod poller;
mod sys;
mod tcp;
mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
