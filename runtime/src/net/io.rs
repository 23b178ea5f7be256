//! [`Io`]: a std socket and its readiness record, and the loop every
//! blocking operation runs: try the call (non-blocking by its flags,
//! `sys`); on `EAGAIN` wait for readiness (a task parks on the socket's
//! `PollDesc`, a plain thread blocks in `ppoll`) and try again, until it
//! succeeds, fails otherwise, or the socket's timeout for that direction
//! passes.

use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::desc::{Dir, PollDesc};
use crate::task;

/// The options std keeps in the kernel and we keep here: shared by the
/// handles `try_clone` makes, as std's are (they live on the open file).
#[derive(Default)]
pub(crate) struct Opts {
    /// Timeouts in nanoseconds, 0 for none, per `Dir`.
    timeouts: [AtomicU64; 2],
    /// The user asked for non-blocking mode: `EAGAIN` is returned as is.
    nonblocking: AtomicBool,
}

impl Opts {
    fn timeout(&self, dir: Dir) -> Option<Duration> {
        match self.timeouts[dir as usize].load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

pub(crate) struct Io<S: AsRawFd> {
    sock: ManuallyDrop<S>,
    desc: &'static PollDesc,
    opts: Arc<Opts>,
}

impl<S: AsRawFd> Io<S> {
    /// Wraps a socket. `opts`: those of the handle it was cloned from, if
    /// it was.
    pub(crate) fn new(sock: S, opts: Option<Arc<Opts>>) -> Io<S> {
        Io {
            sock: ManuallyDrop::new(sock),
            desc: PollDesc::get(),
            opts: opts.unwrap_or_default(),
        }
    }

    pub(crate) fn get(&self) -> &S {
        &self.sock
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub(crate) fn opts(&self) -> &Arc<Opts> {
        &self.opts
    }

    /// Whether the user set non-blocking mode.
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.opts.nonblocking.load(Ordering::Relaxed)
    }

    /// The std socket back, deregistered.
    pub(crate) fn into_inner(self) -> S {
        let fd = self.fd();
        let mut this = ManuallyDrop::new(self);
        this.desc.release(fd);
        // SAFETY: `this` is never used or dropped again; each field is
        // moved out once.
        let (sock, opts) = unsafe {
            (
                ManuallyDrop::take(&mut this.sock),
                core::ptr::read(&this.opts),
            )
        };
        drop(opts);
        sock
    }

    /// Records a timeout (std's `set_read_timeout` and `set_write_timeout`
    /// semantics; the caller validated it).
    pub(crate) fn set_timeout(&self, dir: Dir, timeout: Option<Duration>) {
        let ns = timeout.map_or(0, |t| t.as_nanos().clamp(1, u64::MAX as u128) as u64);
        self.opts.timeouts[dir as usize].store(ns, Ordering::Relaxed);
    }

    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        self.opts.timeout(dir)
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.opts.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    /// Runs `op` on the descriptor until it does not fail with
    /// `WouldBlock` (or `Interrupted`), waiting for the socket to be ready
    /// for `dir` in between. Past the timeout of `dir`, fails with `EAGAIN`
    /// as std's timed-out calls do.
    pub(crate) fn op<R>(&self, dir: Dir, op: impl FnMut(RawFd) -> io::Result<R>) -> io::Result<R> {
        self.op_until(dir, self.opts.timeout(dir), None, op, || {
            io::Error::from_raw_os_error(libc::EAGAIN)
        })
    }

    /// [`op`](Self::op) with a given timeout and error; with `wait_first`
    /// (a read count, `PollDesc::drained`), waits for an event after that
    /// count before the first try.
    pub(crate) fn op_until<R>(
        &self,
        dir: Dir,
        timeout: Option<Duration>,
        mut wait_first: Option<u64>,
        mut op: impl FnMut(RawFd) -> io::Result<R>,
        timed_out: impl FnOnce() -> io::Error,
    ) -> io::Result<R> {
        let nonblocking = self.is_nonblocking();
        let mut deadline = None;
        loop {
            let tick = match wait_first.take() {
                Some(tick) => tick,
                None => {
                    let tick = self.desc.tick(dir);
                    match op(self.fd()) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && !nonblocking => {}
                        done => return done,
                    }
                    tick
                }
            };
            // Computed at the first wait only: a call that does not block
            // never reads the clock.
            let at = *deadline
                .get_or_insert_with(|| timeout.and_then(|t| Instant::now().checked_add(t)));
            if !self.wait(dir, tick, at)? {
                return Err(timed_out());
            }
        }
    }

    /// [`op`](Self::op) for a stream read of `want` bytes. After a read
    /// that returned fewer, the socket's queue was empty, so the task's
    /// next read waits for an event before it tries, if none came since,
    /// instead of trying and failing with `EAGAIN` first: one system call
    /// less per message for a server answering requests (tokio clears
    /// readiness the same way). See `PollDesc::drained_at`.
    pub(crate) fn read_op(
        &self,
        want: usize,
        mut op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let wait_first = if want > 0 && !self.is_nonblocking() && task::current_poller().is_some() {
            self.desc.drained()
        } else {
            None
        };
        let mut tick = 0;
        let n = self.op_until(
            Dir::Read,
            self.opts.timeout(Dir::Read),
            wait_first,
            |fd| {
                tick = self.desc.tick(Dir::Read);
                op(fd)
            },
            || io::Error::from_raw_os_error(libc::EAGAIN),
        )?;
        if n > 0 && n < want {
            self.desc.note_drained(tick);
        }
        Ok(n)
    }

    /// Waits until the socket may be ready for `dir`, after a try that
    /// began at event count `tick`; false once `deadline` passed.
    fn wait(&self, dir: Dir, tick: u64, deadline: Option<Instant>) -> io::Result<bool> {
        let fd = self.fd();
        match task::current_poller() {
            Some(poller) => self.desc.wait(poller, fd, dir, tick, deadline),
            None => poll_fd(fd, dir, deadline),
        }
    }
}

impl<S: AsRawFd> Drop for Io<S> {
    fn drop(&mut self) {
        // Deregistered before it closes: its number may be reused at once.
        self.desc.release(self.fd());
        // SAFETY: dropped once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.sock) };
    }
}

/// Sets or clears `O_NONBLOCK` (`ioctl(FIONBIO)`, one call, as std does).
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    let mut on = libc::c_int::from(nonblocking);
    // SAFETY: FIONBIO reads one int from `on`.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks the calling thread until `fd` may be ready for `dir`; false once
/// `deadline` passed. Signals do not end the wait.
pub(crate) fn poll_fd(fd: RawFd, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
    let events = match dir {
        Dir::Read => libc::POLLIN,
        Dir::Write => libc::POLLOUT,
    };
    loop {
        let ts = match deadline {
            None => None,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                Some(libc::timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
                })
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ts_ptr = ts.as_ref().map_or(core::ptr::null(), core::ptr::from_ref);
        // SAFETY: one valid pollfd; `ts_ptr` is null or points to a live
        // timespec; no signal mask.
        let ret = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, core::ptr::null()) };
        if ret > 0 {
            return Ok(true);
        }
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        // Timed out (checked at the top, against the clock) or interrupted.
    }
}
