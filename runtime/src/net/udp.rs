//! UDP: [`UdpSocket`], shaped like std's.

use core::fmt;
use std::io;
use std::net::{self, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::time::Duration;

use super::desc::Dir;
use super::io::Io;
use super::sys;
use super::tcp::{check_timeout, fd_traits};

/// A UDP socket; [`std::net::UdpSocket`] for tasks.
///
/// Receives (and sends, when the socket's buffer is full) park the calling
/// task until the socket is ready; on a plain thread they block the thread,
/// as std's do.
///
/// ```
/// # use growstack_runtime as growstack;
/// use growstack::net::UdpSocket;
///
/// # fn main() -> std::io::Result<()> {
/// let rt = growstack::Runtime::new()?;
/// let got = rt.block_on(|| -> std::io::Result<(usize, [u8; 4])> {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     let to = b.local_addr()?;
///     let reader = growstack::spawn(move || {
///         let mut buf = [0; 4];
///         b.recv_from(&mut buf).map(|(n, _)| (n, buf))
///     });
///     a.send_to(b"ping", to)?;
///     reader.join().unwrap()
/// })?;
/// assert_eq!(got, (4, *b"ping"));
/// # Ok(())
/// # }
/// ```
pub struct UdpSocket {
    io: Io<net::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (as [`std::net::UdpSocket::bind`]).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Io::new(net::UdpSocket::bind(addr)?, None),
        })
    }

    /// Receives one datagram and the address it came from.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.op(Dir::Read, |fd| sys::recv_from(fd, buf, 0))
    }

    /// Like `recv_from`, leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .op(Dir::Read, |fd| sys::recv_from(fd, buf, libc::MSG_PEEK))
    }

    /// Sends a datagram to `addr` (resolved once, as std does).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.io.op(Dir::Write, |fd| sys::send_to(fd, buf, &addr))
    }

    /// Sets the default peer: `send` and `recv` then talk to it only.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.io.get().connect(addr)
    }

    /// Sends a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.op(Dir::Write, |fd| sys::send(fd, buf))
    }

    /// Receives a datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.op(Dir::Read, |fd| sys::recv(fd, buf, 0))
    }

    /// Like `recv`, leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .op(Dir::Read, |fd| sys::recv(fd, buf, libc::MSG_PEEK))
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// A new handle to the same socket; the handles share their timeouts
    /// and non-blocking mode.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Io::new(self.io.get().try_clone()?, Some(self.io.opts().clone())),
        })
    }

    /// A receive that waits longer than `timeout` fails with `WouldBlock`,
    /// as std's does. A zero duration is an error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.io.set_timeout(Dir::Read, timeout);
        Ok(())
    }

    /// A send that waits longer than `timeout` fails with `WouldBlock`, as
    /// std's does. A zero duration is an error.
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

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get().set_broadcast(on)
    }

    /// Gets `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get().broadcast()
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

    /// In non-blocking mode sends and receives return `WouldBlock` instead
    /// of waiting, as std's do.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// The std socket, with this socket's timeouts and non-blocking mode.
    pub fn into_std(self) -> io::Result<net::UdpSocket> {
        let (read, write) = (self.io.timeout(Dir::Read), self.io.timeout(Dir::Write));
        let nonblocking = self.io.is_nonblocking();
        let sock = self.io.into_inner();
        sock.set_read_timeout(read)?;
        sock.set_write_timeout(write)?;
        if nonblocking {
            sock.set_nonblocking(true)?;
        }
        Ok(sock)
    }
}

impl From<net::UdpSocket> for UdpSocket {
    /// Takes over a std socket, with its timeouts (its non-blocking mode is
    /// not carried over, and its open file is left as it is).
    fn from(sock: net::UdpSocket) -> UdpSocket {
        // Neither call can fail on an open socket.
        let read = sock.read_timeout().unwrap_or(None);
        let write = sock.write_timeout().unwrap_or(None);
        let io = Io::new(sock, None);
        io.set_timeout(Dir::Read, read);
        io.set_timeout(Dir::Write, write);
        UdpSocket { io }
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

fd_traits!(UdpSocket);
