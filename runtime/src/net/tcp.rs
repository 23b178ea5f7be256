//! TCP: [`TcpListener`] and [`TcpStream`], shaped like std's.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::desc::Dir;
use super::io::{self as nio, Io};
use super::sys;

/// A TCP socket server, listening for connections; [`std::net::TcpListener`]
/// for tasks.
///
/// [`accept`](Self::accept) parks the calling task until a connection
/// comes, letting its worker run other tasks; on a plain thread it blocks
/// the thread, as std's does.
///
/// ```no_run
/// # use growstack_runtime as growstack;
/// use std::io::{Read, Write};
/// use growstack::net::TcpListener;
///
/// # fn main() -> std::io::Result<()> {
/// let rt = growstack::Runtime::new()?;
/// rt.block_on(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:7000")?;
///     loop {
///         let (mut stream, _) = listener.accept()?;
///         // A task per connection, written as plain blocking code.
///         growstack::spawn(move || {
///             let mut buf = [0; 4096];
///             while let Ok(n @ 1..) = stream.read(&mut buf) {
///                 if stream.write_all(&buf[..n]).is_err() {
///                     break;
///                 }
///             }
///         });
///     }
/// })
/// # }
/// ```
pub struct TcpListener {
    io: Io<net::TcpListener>,
    /// The delay before the next `accept` that finds the process out of
    /// descriptors returns its error, in milliseconds (`accept`).
    backoff_ms: AtomicU32,
}

/// The first and the longest delay `accept` takes before it returns a
/// "too many open files" error (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`):
/// the pending connection stays queued and the socket stays readable, so
/// an accept loop that ignores errors would otherwise spin at 100% CPU
/// while the connections it serves starve. Go's `net/http` server sleeps
/// 5 ms, doubling to 1 s; a second is long for a server whose connections
/// close quickly, so we stop at 100 ms.
const ACCEPT_BACKOFF_MS: (u32, u32) = (1, 100);

impl TcpListener {
    /// Creates a listener bound to `addr` (as [`std::net::TcpListener::bind`]).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::from_std(net::TcpListener::bind(addr)?)
    }

    /// Takes over a std listener, making its open file non-blocking: a
    /// listener's `accept` has no flag for that (the one option that
    /// reaches std handles duplicated from it).
    fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        nio::set_nonblocking(listener.as_raw_fd(), true)?;
        Ok(TcpListener {
            io: Io::new(listener, None),
            backoff_ms: AtomicU32::new(0),
        })
    }

    /// Accepts a new connection: parks the calling task (blocks a plain
    /// thread) until one comes.
    ///
    /// # Errors
    ///
    /// As std's. When the process or the system is out of descriptors or
    /// memory, the error comes after a delay that doubles from 1 ms to
    /// 100 ms while it lasts, so that a loop that retries does not spin
    /// (not in non-blocking mode).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match self.io.op(Dir::Read, |_| self.io.get().accept()) {
            Ok((stream, addr)) => {
                self.backoff_ms.store(0, Ordering::Relaxed);
                Ok((TcpStream::from_std_fresh(stream), addr))
            }
            Err(err) if is_out_of_resources(&err) && !self.io.is_nonblocking() => {
                let ms = self.backoff_ms.load(Ordering::Relaxed);
                let ms = (ms * 2).clamp(ACCEPT_BACKOFF_MS.0, ACCEPT_BACKOFF_MS.1);
                self.backoff_ms.store(ms, Ordering::Relaxed);
                crate::task::sleep(Duration::from_millis(ms.into()));
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    /// An iterator over incoming connections: [`accept`](Self::accept) in
    /// a loop. It never returns `None`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// A new handle to the same socket. The handles share the
    /// non-blocking mode.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Io::new(self.io.get().try_clone()?, Some(self.io.opts().clone())),
            backoff_ms: AtomicU32::new(0),
        })
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Gets and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of
    /// waiting, as std's does.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// The std listener, in blocking mode unless non-blocking mode was set
    /// or another growstack handle of it (`try_clone`) remains: the mode
    /// is shared by every handle of the socket, and those must not block.
    pub fn into_std(self) -> io::Result<net::TcpListener> {
        let keep = self.io.is_nonblocking() || std::sync::Arc::strong_count(self.io.opts()) > 1;
        let listener = self.io.into_inner();
        if !keep {
            nio::set_nonblocking(listener.as_raw_fd(), false)?;
        }
        Ok(listener)
    }
}

/// Whether an accept failed for want of descriptors or memory.
fn is_out_of_resources(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Accepts connections forever: [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

impl From<net::TcpListener> for TcpListener {
    /// Takes over a std listener (its open file is made non-blocking, which
    /// std handles duplicated from it share; its non-blocking mode is not
    /// carried over: the new listener waits).
    fn from(listener: net::TcpListener) -> TcpListener {
        TcpListener::from_std(listener).expect("FIONBIO cannot fail on an open socket")
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

/// A TCP connection; [`std::net::TcpStream`] for tasks.
///
/// Reads, writes and `connect` park the calling task until the socket is
/// ready, letting its worker run other tasks; on a plain thread they block
/// the thread, as std's do. `Read` and `Write` are implemented for
/// `&TcpStream` too, so a reader task and a writer task can share one
/// connection (through an `Arc`, or a scope).
///
/// ```no_run
/// # use growstack_runtime as growstack;
/// use std::io::{Read, Write};
/// use growstack::net::TcpStream;
///
/// # fn main() -> std::io::Result<()> {
/// let rt = growstack::Runtime::new()?;
/// let reply = rt.block_on(|| -> std::io::Result<Vec<u8>> {
///     let mut stream = TcpStream::connect("127.0.0.1:7000")?;
///     stream.write_all(b"hello")?;
///     let mut buf = vec![0; 5];
///     stream.read_exact(&mut buf)?;
///     Ok(buf)
/// })?;
/// assert_eq!(reply, b"hello");
/// # Ok(())
/// # }
/// ```
pub struct TcpStream {
    io: Io<net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each address it resolves to
    /// in turn (as [`std::net::TcpStream::connect`]).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_one(&addr, None) {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any addresses",
            )
        }))
    }

    /// Opens a connection to `addr`, failing with `TimedOut` after
    /// `timeout` (as [`std::net::TcpStream::connect_timeout`]; a zero
    /// timeout is an error).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_one(addr, Some(timeout))
    }

    /// A non-blocking `connect`, then a wait for the socket to be
    /// writable and a look at `SO_ERROR`.
    fn connect_one(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let family = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: a plain system call; the descriptor is new and owned by
        // the `OwnedFd` made from it.
        let fd = unsafe { libc::socket(family, ty, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor, ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let stream = TcpStream::from_std_fresh(net::TcpStream::from(fd));
        let (raw, len) = sys::to_raw(addr);
        // SAFETY: `raw` holds a valid address of `len` bytes.
        let ret = unsafe { libc::connect(stream.as_raw_fd(), (&raw const raw).cast(), len) };
        if ret != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
            stream.wait_connected(timeout)?;
        }
        // Made non-blocking for `connect` only: std's streams, and the
        // ones `into_std` gives back, block.
        nio::set_nonblocking(stream.as_raw_fd(), false)?;
        Ok(stream)
    }

    /// Waits for a non-blocking `connect` to finish.
    fn wait_connected(&self, timeout: Option<Duration>) -> io::Result<()> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
        // Writable once connected or failed; `SO_ERROR` tells which.
        let s = self.io.get();
        self.io.op_until(
            Dir::Write,
            timeout,
            None,
            |_| match s.take_error()? {
                Some(err) => Err(err),
                // Still connecting (a spurious wake): `peer_addr` fails
                // with ENOTCONN until it is done.
                None => match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                },
            },
            timed_out,
        )
    }

    /// A new stream, with options of its own.
    fn from_std_fresh(stream: net::TcpStream) -> TcpStream {
        TcpStream {
            io: Io::new(stream, None),
        }
    }

    /// The remote address of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// Shuts down the read half, the write half or both (as std's). A task
    /// parked in a read of this connection then sees the end of the stream.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }

    /// A new handle to the same connection (a duplicated descriptor). The
    /// handles share their timeouts and non-blocking mode, as std's do.
    /// Dropping one does not close the connection: the others go on.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Io::new(self.io.get().try_clone()?, Some(self.io.opts().clone())),
        })
    }

    /// A read that waits longer than `timeout` fails with `WouldBlock`
    /// (`EAGAIN`), as std's does; `None` waits forever.
    ///
    /// # Errors
    ///
    /// A zero duration, as std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.io.set_timeout(Dir::Read, timeout);
        Ok(())
    }

    /// A write that waits longer than `timeout` fails with `WouldBlock`
    /// (`EAGAIN`), as std's does; `None` waits forever.
    ///
    /// # Errors
    ///
    /// A zero duration, as std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.io.set_timeout(Dir::Write, timeout);
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.timeout(Dir::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.timeout(Dir::Write))
    }

    /// Reads without taking the data out of the socket's queue, waiting
    /// for some as `read` does.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .op(Dir::Read, |fd| sys::recv(fd, buf, libc::MSG_PEEK))
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get().set_nodelay(nodelay)
    }

    /// Gets `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Gets and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// In non-blocking mode reads and writes return `WouldBlock` instead
    /// of waiting, as std's do.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// The std stream, with this stream's timeouts and non-blocking mode.
    pub fn into_std(self) -> io::Result<net::TcpStream> {
        let (read, write) = (self.io.timeout(Dir::Read), self.io.timeout(Dir::Write));
        let nonblocking = self.io.is_nonblocking();
        let stream = self.io.into_inner();
        stream.set_read_timeout(read)?;
        stream.set_write_timeout(write)?;
        if nonblocking {
            stream.set_nonblocking(true)?;
        }
        Ok(stream)
    }
}

pub(super) fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

impl From<net::TcpStream> for TcpStream {
    /// Takes over a std stream, with its timeouts (its non-blocking mode is
    /// not carried over, and its open file is left as it is).
    fn from(stream: net::TcpStream) -> TcpStream {
        // Neither call can fail on an open socket.
        let read = stream.read_timeout().unwrap_or(None);
        let write = stream.write_timeout().unwrap_or(None);
        let stream = TcpStream::from_std_fresh(stream);
        stream.io.set_timeout(Dir::Read, read);
        stream.io.set_timeout(Dir::Write, write);
        stream
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_op(buf.len(), |fd| sys::recv(fd, buf, 0))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let want = sys::vectored_len(bufs.iter().map(|b| b.len()));
        self.io.read_op(want, |fd| sys::recv_vectored(fd, bufs))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.io.op(Dir::Write, |fd| sys::send(fd, buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io.op(Dir::Write, |fd| sys::send_vectored(fd, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

macro_rules! fd_traits {
    ($($ty:ty),*) => {$(
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.io.get().as_raw_fd()
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.get().as_fd()
            }
        }

        impl IntoRawFd for $ty {
            /// The descriptor, deregistered from growstack's poller (as
            /// `into_std` leaves it).
            fn into_raw_fd(self) -> RawFd {
                match self.into_std() {
                    Ok(sock) => sock.into_raw_fd(),
                    // Only setting an option on an open socket failed.
                    Err(err) => unreachable!("into_std: {err}"),
                }
            }
        }
    )*};
}
pub(super) use fd_traits;

fd_traits!(TcpListener, TcpStream);
