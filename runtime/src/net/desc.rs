//! A socket's readiness record (Go's `pollDesc`): which directions the
//! poller said were ready, and the tasks waiting for each.
//!
//! Protocol, all under the record's spin lock:
//!
//! - An operation first tries its system call. Only on `EAGAIN` does a task
//!   [`wait`](PollDesc::wait): if an event came since the last wait
//!   (`ready`), it clears it and retries at once; otherwise it puts itself
//!   in `waiters` and parks, the lock released once it is parked
//!   (`task::park_releasing`).
//! - An event ([`notify`](PollDesc::notify), from the poller of whichever
//!   worker polled it) sets `ready` and wakes every waiter of that
//!   direction, taking them out of the list. A waiter still in the list is
//!   certainly blocked in `wait`, which is what claiming its waker needs.
//! - A woken waiter relocks, takes itself out if it is still in (a timeout,
//!   or a spurious wake), clears `ready` (its retry comes after every
//!   event so far, so it sees whatever they announced) and retries.
//!
//! Edge-triggered epoll announces each change once; `ready` remembers an
//! announcement that came while nobody waited, so none is lost between a
//! failed call and the wait. Several tasks may wait in one direction (a
//! `&TcpStream` shared by readers, listeners accepting in several tasks):
//! an event wakes them all and they retry.
//!
//! Records are never freed: they go back to a pool when their socket
//! closes. An event polled just before its socket was deregistered may
//! still reach the record after that; if the record has a new socket by
//! then, that socket gets a spurious `ready`, which costs one retry.
//!
//! Plain threads never come here: they block in `ppoll` on the socket
//! (`io`), as a blocking socket would.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
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
    /// Per direction: the last call moved fewer bytes than asked, so the
    /// socket's queue was empty (or full) right after it. The next call
    /// waits for an event first instead of failing with `EAGAIN`: any
    /// bytes (or room) that came since then brought an event, which set
    /// `ready`. A hint, read and written without the lock (tokio clears
    /// readiness the same way).
    drained: [AtomicBool; 2],
    inner: UnsafeCell<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Where the socket is registered, once a task waited for it.
    poller: Option<Arc<Poller>>,
    /// An event came for the direction since the last wait consumed one.
    ready: [bool; 2],
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
                drained: [AtomicBool::new(false), AtomicBool::new(false)],
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
            poller.deregister(fd);
        }
        inner.ready = [false; 2];
        for d in &self.drained {
            d.store(false, Ordering::Relaxed);
        }
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

    /// A stream call in `dir` moved fewer bytes than asked (module docs of
    /// `drained`).
    #[inline]
    pub(crate) fn note_drained(&self, dir: Dir) {
        self.drained[dir as usize].store(true, Ordering::Relaxed);
    }

    /// Whether the next call in `dir` should wait first: the last one
    /// drained the socket. (Should the socket not be registered with a
    /// running poller yet, `wait` registers it, and epoll reports the
    /// readiness a socket has when it is added.)
    #[inline]
    pub(crate) fn should_wait_first(&self, dir: Dir) -> bool {
        self.drained[dir as usize].load(Ordering::Relaxed)
    }

    /// Called by the running task after an operation on `fd` in `dir`
    /// would block: returns when the operation is worth retrying, `false`
    /// once `deadline` passed. Registers the socket with the calling
    /// worker's poller the first time a task waits for it (or when the
    /// poller it was registered with stopped).
    pub(crate) fn wait(
        &'static self,
        poller: &Arc<Poller>,
        fd: RawFd,
        dir: Dir,
        deadline: Option<Instant>,
    ) -> io::Result<bool> {
        let me = task::running_task().expect("a task is waiting");
        let d = dir as usize;
        self.drained[d].store(false, Ordering::Relaxed);
        let mut guard = self.lock();
        let inner = guard.inner();
        if inner.poller.as_ref().is_none_or(|p| !p.is_alive()) {
            if let Some(old) = inner.poller.take() {
                old.deregister(fd);
            }
            poller.register(fd, self)?;
            inner.poller = Some(Arc::clone(poller));
        }
        if core::mem::take(&mut inner.ready[d]) {
            return Ok(true);
        }
        if deadline.is_some_and(|at| at <= Instant::now()) {
            return Ok(false);
        }
        inner.waiters[d].push(me);
        core::mem::forget(guard);
        // SAFETY: we hold `locked` and give it up; the record is never
        // freed. Every wake of ours until we run again takes that lock
        // first (`notify`), or is our timer, on our worker's thread: a
        // blocked task's earlier operations are all complete.
        unsafe { task::park_releasing(&self.locked, deadline) };
        let mut guard = self.lock();
        let inner = guard.inner();
        let list = &mut inner.waiters[d];
        if let Some(i) = list.iter().position(|&t| t == me) {
            // Not woken by an event: a timeout, or a spurious wake.
            list.swap_remove(i);
        }
        inner.ready[d] = false;
        drop(guard);
        Ok(deadline.is_none_or(|at| Instant::now() < at))
    }

    /// The poller reported `events` for this record's socket: marks the
    /// directions ready and wakes their waiters.
    pub(crate) fn notify(&self, events: u32) {
        let mut elsewhere: Vec<Wakeup> = Vec::new();
        let mut guard = self.lock();
        let inner = guard.inner();
        for (dir, mask) in [(Dir::Read, READ_EVENTS), (Dir::Write, WRITE_EVENTS)] {
            if events & mask == 0 {
                continue;
            }
            let d = dir as usize;
            inner.ready[d] = true;
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
