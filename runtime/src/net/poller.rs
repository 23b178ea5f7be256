//! The netpoller: one epoll instance per worker, also the thing an idle
//! worker sleeps in.
//!
//! Each worker owns a [`Poller`]: an epoll instance and an eventfd
//! registered in it. An idle worker sleeps in `epoll_wait` (with its next
//! timer as the timeout) instead of on a condition variable; whoever hands
//! it work writes the eventfd ([`Poller::wake`]). A socket is registered,
//! edge-triggered for both directions and once, in the poller of the first
//! worker whose task has to wait for it (`desc`); the worker that polls an
//! event wakes the waiting tasks wherever they are pinned. One epoll per
//! worker rather than one per runtime (Go's) because a worker must be
//! woken on its own: one shared epoll instance cannot wake a chosen one of
//! the threads sleeping in it.
//!
//! Event data is the address of the socket's [`PollDesc`], which is never
//! freed (`desc`), so an event polled just before its socket was closed
//! and its descriptor reused only wakes the new owner spuriously. The
//! eventfd's event has data 0, which no descriptor has.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::desc::PollDesc;

/// The data of the eventfd's event (no descriptor lives at address 0).
const WAKE_TOKEN: u64 = 0;

/// Events taken per `epoll_wait`: a busy server's worker handles at most
/// this many sockets before it looks at its queues again.
const EVENTS_PER_POLL: usize = 256;

pub(crate) struct Poller {
    epoll: OwnedFd,
    wake_fd: OwnedFd,
    /// Sockets registered here now: a worker with none never polls while
    /// it has tasks to run.
    registered: AtomicUsize,
    /// Their records, so that a poller that stops can hand them on
    /// ([`retire`](Self::retire)).
    descs: Mutex<HashSet<usize>>,
    /// The buffer `epoll_wait` fills (only the owning worker polls; the
    /// lock is never contended).
    events: Mutex<Vec<libc::epoll_event>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Arc<Poller>> {
        // SAFETY: plain system calls; each descriptor returned is new and
        // owned by the `OwnedFd` made from it.
        let epoll = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let wake_fd = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        };
        let poller = Poller {
            epoll,
            wake_fd,
            registered: AtomicUsize::new(0),
            descs: Mutex::new(HashSet::new()),
            events: Mutex::new(Vec::with_capacity(EVENTS_PER_POLL)),
        };
        // Level-triggered: the eventfd stays readable until `poll` reads
        // it, so a wake written before the worker sleeps is not lost.
        poller.ctl(
            libc::EPOLL_CTL_ADD,
            poller.wake_fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE_TOKEN,
        )?;
        Ok(Arc::new(poller))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` is a valid epoll_event for the call.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }

    /// Registers `fd` for both directions, edge-triggered; its events go
    /// to `desc`. Readiness at the time of the call is reported too.
    pub(crate) fn register(&self, fd: RawFd, desc: &'static PollDesc) -> io::Result<()> {
        let events =
            libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            fd,
            events as u32,
            core::ptr::from_ref(desc) as u64,
        )?;
        self.registered.fetch_add(1, Ordering::Relaxed);
        lock(&self.descs).insert(core::ptr::from_ref(desc) as usize);
        Ok(())
    }

    /// Removes `fd`, whose record is `desc` (before it is closed: a closed
    /// number may be reused).
    pub(crate) fn deregister(&self, fd: RawFd, desc: &'static PollDesc) {
        if lock(&self.descs).remove(&(core::ptr::from_ref(desc) as usize)) {
            self.registered.fetch_sub(1, Ordering::Relaxed);
            // Fails only if the socket is gone from the epoll already (its
            // descriptor closed behind our back): nothing to undo.
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
        }
    }

    /// Whether any socket is registered here.
    #[inline]
    pub(crate) fn has_sockets(&self) -> bool {
        self.registered.load(Ordering::Relaxed) > 0
    }

    /// The worker left its loop: nothing polls here any more. Tasks of
    /// other runtimes may still wait for sockets registered here (a socket
    /// shared by tasks of two runtimes): each is woken, retries, and when
    /// it waits again registers the socket with its own worker's poller.
    pub(crate) fn retire(&self) {
        let descs = core::mem::take(&mut *lock(&self.descs));
        for desc in descs {
            // SAFETY: the addresses registered here are of records, which
            // are never freed.
            let desc = unsafe { &*(desc as *const PollDesc) };
            desc.notify((libc::EPOLLIN | libc::EPOLLOUT) as u32);
        }
    }

    /// Wakes the worker sleeping in [`poll`](Self::poll) (or makes its
    /// next one return at once).
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from `one` to our eventfd. It can only
        // fail with EAGAIN, when the counter is about to overflow: it is
        // then non-zero, which is all a wake needs.
        unsafe { libc::write(self.wake_fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Waits for events up to `timeout` (`None`: until one comes; zero:
    /// not at all) and handles them: socket events wake the tasks waiting
    /// for them, a wake is consumed. Called by the owning worker only.
    /// Returns whether a socket event came.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> bool {
        let mut events = lock(&self.events);
        events.clear();
        let n = self.wait(&mut events, timeout);
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { events.set_len(n) };
        let mut sockets = false;
        for event in events.iter() {
            let (flags, data) = (event.events, event.u64);
            if data == WAKE_TOKEN {
                let mut count: u64 = 0;
                // SAFETY: reads 8 bytes into `count` from our eventfd,
                // resetting it (EAGAIN if another poll already did).
                unsafe { libc::read(self.wake_fd.as_raw_fd(), (&raw mut count).cast(), 8) };
                continue;
            }
            sockets = true;
            // SAFETY: a non-zero data is the address of a `PollDesc`
            // registered here, and descriptors are never freed.
            let desc = unsafe { &*(data as *const PollDesc) };
            desc.notify(flags);
        }
        sockets
    }

    /// One `epoll_pwait2` (nanosecond timeouts; `epoll_wait`, rounded up
    /// to milliseconds, where that call fails: kernels before 5.11,
    /// seccomp filters that refuse it). Returns the number of events
    /// written; 0 on EINTR.
    fn wait(&self, events: &mut Vec<libc::epoll_event>, timeout: Option<Duration>) -> usize {
        static NO_PWAIT2: AtomicBool = AtomicBool::new(false);
        let epfd = self.epoll.as_raw_fd();
        let buf = events.as_mut_ptr();
        let max = events.capacity().min(i32::MAX as usize) as libc::c_int;
        let ret = if NO_PWAIT2.load(Ordering::Relaxed) {
            -1
        } else {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
            });
            let ts_ptr = ts.as_ref().map_or(core::ptr::null(), core::ptr::from_ref);
            // SAFETY: `buf` has room for `max` events; `ts_ptr` is null or
            // points to a timespec alive during the call; no signal mask.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    buf,
                    max,
                    ts_ptr,
                    core::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            let errno = io::Error::last_os_error().raw_os_error();
            if ret < 0 && errno != Some(libc::EINTR) {
                // ENOSYS before Linux 5.11; EPERM from a seccomp filter
                // that does not know the call. (Our arguments are valid.)
                NO_PWAIT2.store(true, Ordering::Relaxed);
                -1
            } else {
                ret as libc::c_int
            }
        };
        let ret = if NO_PWAIT2.load(Ordering::Relaxed) {
            let ms = timeout.map_or(-1, |t| {
                t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
            });
            // SAFETY: `buf` has room for `max` events.
            unsafe { libc::epoll_wait(epfd, buf, max, ms) }
        } else {
            ret
        };
        // EINTR (a signal) or any other error: no events this time.
        ret.max(0) as usize
    }
}
