//! A socket's readiness record (Go's `pollDesc`): how many events the
//! poller reported per direction, and the tasks waiting for the next one.
//!
//! Protocol:
//!
//! - Before each try of its system call, an operation reads the
//!   direction's event count ([`tick`](PollDesc::tick)). Only on `EAGAIN`
//!   does a task [`wait`](PollDesc::wait), with that count: under the
//!   record's spin lock, if the count moved, an event came after the try
//!   began, and it retries at once; otherwise it puts itself in `waiters`
//!   and parks, the lock released once it is parked
//!   (`task::park_releasing`).
//! - An event ([`notify`](PollDesc::notify), from the poller of whichever
//!   worker polled it) bumps the count and wakes every waiter of that
//!   direction under the lock, taking them out of the list. A waiter still
//!   in the list is certainly blocked in `wait`, which is what claiming its
//!   waker needs.
//! - A woken waiter relocks, takes itself out if it is still in (a
//!   timeout, or a spurious wake) and retries.
//!
//! Edge-triggered epoll announces each arrival once. The count makes an
//! announcement that came between a failed try and the wait visible to
//! that waiter, and to every other: each compares the count with the one
//! it read itself, so no waiter consumes another's event (several tasks may
//! wait in one direction: readers sharing a `&TcpStream`, tasks accepting
//! on one listener).
//!
//! Records are never freed: they go back to a pool when their socket
//! closes. An event polled just before its socket was deregistered may
//! still reach the record after that; if the record has a new socket by
//! then, that socket's waiters wake spuriously and retry.
//!
//! Plain threads never come here: they block in `ppoll` on the socket
//! (`io`), as a blocking socket would.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::poller::Poller;
use crate::task::{self, Header, Waker, Wakeup};

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// The epoll events that make each direction ready (an error or a hang-up
/// makes both: the retried call then reports it).
const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

pub(crate) struct PollDesc {
    locked: AtomicBool,
    /// Events so far, per direction (bumped under the lock, read without).
    ticks: [AtomicU64; 2],
    /// The read count before a read that returned fewer bytes than asked,
    /// `NOT_DRAINED` if none did since the socket came. Such a read left
    /// the socket's queue empty, so while the count has not moved no byte
    /// came since, and the next read of a task waits before it tries
    /// (`Io::read_op`), whichever task made the short read. A short read
    /// leaves something to read when it stops at TCP urgent data, or
    /// before the end of the stream (a read that returns 0, announced by
    /// the same event as the last bytes): a socket whose events ever said
    /// either (`EPOLLPRI`, `EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`) takes no
    /// more hints (`no_hints`).
    drained_at: AtomicU64,
    /// Short reads say nothing any more (`drained_at`).
    no_hints: AtomicBool,
    inner: UnsafeCell<Inner>,
}

/// The events after which short reads say nothing (`drained_at`).
const NO_HINTS_EVENTS: u32 =
    (libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// `drained_at` when no hint is recorded.
const NOT_DRAINED: u64 = u64::MAX;

#[derive(Default)]
struct Inner {
    /// Where the socket is registered, once a task waited for it.
    poller: Option<Arc<Poller>>,
    /// Tasks parked in `wait`, per direction (not counted references:
    /// `task::Waker`).
    waiters: [Vec<NonNull<Header>>; 2],
}

// SAFETY: `inner` is touched only under `locked` (acquire on lock, release
// on unlock). The waiter pointers are addresses of tasks blocked in
// `wait`, used only to claim them under the lock (module docs).
unsafe impl Sync for PollDesc {}
// SAFETY: as above.
unsafe impl Send for PollDesc {}

/// Records whose sockets closed, for the next sockets.
static POOL: Mutex<Vec<&'static PollDesc>> = Mutex::new(Vec::new());

struct Guard<'a>(&'a PollDesc);

impl Guard<'_> {
    fn inner(&mut self) -> &mut Inner {
        // SAFETY: we hold the lock.
        unsafe { &mut *self.0.inner.get() }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

impl PollDesc {
    /// A record for a new socket: from the pool, or new (and leaked).
    pub(crate) fn get() -> &'static PollDesc {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.unwrap_or_else(|| {
            Box::leak(Box::new(PollDesc {
                locked: AtomicBool::new(false),
                ticks: [AtomicU64::new(0), AtomicU64::new(0)],
                drained_at: AtomicU64::new(NOT_DRAINED),
                no_hints: AtomicBool::new(false),
                inner: UnsafeCell::new(Inner::default()),
            }))
        })
    }

    /// The socket `fd` is about to close: deregisters it and pools the
    /// record.
    pub(crate) fn release(&'static self, fd: RawFd) {
        let mut guard = self.lock();
        let inner = guard.inner();
        if let Some(poller) = inner.poller.take() {
            poller.deregister(fd, self);
        }
        self.drained_at.store(NOT_DRAINED, Ordering::Relaxed);
        self.no_hints.store(false, Ordering::Relaxed);
        // A waiter borrows the socket, so none can be left when it closes;
        // should one be (a bug), the record is leaked rather than reused.
        let idle = inner.waiters.iter().all(Vec::is_empty);
        drop(guard);
        if idle {
            POOL.lock().unwrap_or_else(|e| e.into_inner()).push(self);
        }
    }

    fn lock(&self) -> Guard<'_> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Held for a few instructions by a thread that may have been
            // descheduled: spin a little, then let it run.
            if spins < 64 {
                core::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        Guard(self)
    }

    /// The events of `dir` so far, read before each try of a call.
    #[inline]
    pub(crate) fn tick(&self, dir: Dir) -> u64 {
        self.ticks[dir as usize].load(Ordering::Acquire)
    }

    /// A stream read that started at read count `tick` returned fewer
    /// bytes than asked (see `drained_at`).
    #[inline]
    pub(crate) fn note_drained(&self, tick: u64) {
        if !self.no_hints.load(Ordering::Relaxed) {
            self.drained_at.store(tick, Ordering::Relaxed);
        }
    }

    /// If no read event came since a read emptied the queue, the count it
    /// started at: the next read may wait, with that count, before it
    /// tries. (Should the socket not be registered with the waiter's
    /// poller, `wait` registers it, and epoll reports the readiness a
    /// socket has when it is added.)
    #[inline]
    pub(crate) fn drained(&self) -> Option<u64> {
        let at = self.drained_at.load(Ordering::Relaxed);
        (at == self.tick(Dir::Read)).then_some(at)
    }

    /// Called by the running task after a try in `dir` that began at count
    /// `tick` would block: returns when the call is worth retrying, `false`
    /// once `deadline` passed. Registers the socket with the calling
    /// worker's poller, moving it there from another's unless other tasks
    /// wait on it: the events of a socket go to a worker that polls while
    /// its waiters wait. (A poller that stops hands its sockets on:
    /// `Poller::retire`.)
    pub(crate) fn wait(
        &'static self,
        poller: &Arc<Poller>,
        fd: RawFd,
        dir: Dir,
        tick: u64,
        deadline: Option<Instant>,
    ) -> io::Result<bool> {
        let me = task::running_task().expect("a task is waiting");
        let d = dir as usize;
        let mut guard = self.lock();
        let inner = guard.inner();
        // Moved only while no other task waits: a waiter parked on another
        // worker relies on that worker's poller, which polls while it is
        // idle; our wakes come from it as well as from ours.
        let others_wait = inner.waiters.iter().any(|w| !w.is_empty());
        let here = inner
            .poller
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, poller));
        if inner.poller.is_none() || (!here && !others_wait) {
            if let Some(old) = inner.poller.take() {
                old.deregister(fd, self);
            }
            poller.register(fd, self)?;
            inner.poller = Some(Arc::clone(poller));
        }
        if self.ticks[d].load(Ordering::Relaxed) != tick {
            // An event came since the try began.
            return Ok(true);
        }
        if deadline.is_some_and(|at| at <= Instant::now()) {
            return Ok(false);
        }
        inner.waiters[d].push(me);
        core::mem::forget(guard);
        let on = task::ParkedOn::Io {
            fd,
            write: d == Dir::Write as usize,
        };
        // SAFETY: we hold `locked` and give it up; the record is never
        // freed. Every wake of ours until we run again takes that lock
        // first (`notify`), or is our timer, on our worker's thread: a
        // blocked task's earlier operations are all complete.
        unsafe { task::park_releasing(&self.locked, deadline, &on) };
        let mut guard = self.lock();
        let list = &mut guard.inner().waiters[d];
        if let Some(i) = list.iter().position(|&t| t == me) {
            // Not woken by an event: a timeout, or a spurious wake.
            list.swap_remove(i);
        }
        drop(guard);
        Ok(deadline.is_none_or(|at| Instant::now() < at))
    }

    /// The poller reported `events` for this record's socket (or stopped
    /// polling it: `EPOLLIN | EPOLLOUT`): counts them and wakes the
    /// directions' waiters.
    pub(crate) fn notify(&self, events: u32) {
        let mut elsewhere: Vec<Wakeup> = Vec::new();
        let mut guard = self.lock();
        let inner = guard.inner();
        for (dir, mask) in [(Dir::Read, READ_EVENTS), (Dir::Write, WRITE_EVENTS)] {
            if events & mask == 0 {
                continue;
            }
            let d = dir as usize;
            if dir == Dir::Read && events & NO_HINTS_EVENTS != 0 {
                self.no_hints.store(true, Ordering::Relaxed);
            }
            self.ticks[d].fetch_add(1, Ordering::Release);
            for task in inner.waiters[d].drain(..) {
                let waker = Waker::Task(task);
                // SAFETY: a task in the list is blocked in `wait`, and
                // cannot see itself taken out before we unlock (module
                // docs); we are the one party that takes it out.
                if let Err(waker) = unsafe { waker.wake_here() } {
                    // SAFETY: as above.
                    elsewhere.push(unsafe { waker.claim() });
                }
            }
        }
        drop(guard);
        elsewhere.into_iter().for_each(Wakeup::wake);
    }
}
