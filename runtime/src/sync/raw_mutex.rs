//! The lock under [`Mutex`](super::Mutex): one byte of state, a fast path
//! of one compare-exchange to lock and one to unlock, and a wait list for
//! the rest, with Go's two modes.
//!
//! In *normal* mode an unlock with waiters wakes the oldest to try again;
//! it competes with lockers that arrive meanwhile (which win most of the
//! time: they are running), and if it loses it waits again, first in line.
//! That keeps the lock busy: handing it to a parked waiter would leave it
//! idle until that waiter's worker runs it. A waiter that wakes, loses and
//! has waited longer than [`STARVING_AFTER`] switches the lock to
//! *starvation* mode: from then on an unlock hands the lock straight to the
//! oldest waiter (it stays locked, so nobody can barge in), until the queue
//! empties or a waiter gets the lock after a wait shorter than that.
//!
//! State bits: `LOCKED`, `PARKED` (the wait list is not empty: an unlock
//! must look at it) and `STARVING`. `PARKED` and `STARVING` change only
//! under the wait list's lock; `STARVING` is set only while the lock is
//! held, and handed over with it, so it implies `LOCKED`. Waiters park
//! holding the wait list's lock, released once they are parked
//! (`park_releasing`): every wake of a waiter takes that lock first.

use core::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::spin::SpinLock;
use crate::task::{ParkedOn, park_releasing};
use crate::wait::{WaitList, Waiter, Woken};

const LOCKED: u8 = 1;
const PARKED: u8 = 2;
const STARVING: u8 = 4;

/// How long a waiter waits before the lock is handed to it (Go's
/// `starvationThresholdNs`).
pub(super) const STARVING_AFTER: Duration = Duration::from_millis(1);

/// How many times a locker looks again, with growing pauses, before it
/// parks, while nobody is parked yet. A few hundred nanoseconds in all:
/// a holder on another core is usually done by then, and a holder on the
/// locker's own worker cannot run until the locker parks.
const SPINS: u32 = 6;

/// What a waiter is handed when it is woken.
pub(super) enum Ticket {
    /// Not woken yet.
    Waiting,
    /// Woken to try again (normal mode).
    Retry,
    /// The lock is yours (starvation mode).
    Handoff,
}

pub(super) struct RawMutex {
    state: AtomicU8,
    waiters: SpinLock<WaitList<Ticket>>,
}

impl RawMutex {
    pub(super) const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU8::new(0),
            waiters: SpinLock::new(WaitList::new()),
        }
    }

    #[inline]
    pub(super) fn lock(&self) {
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[inline]
    pub(super) fn try_lock(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & LOCKED == 0
            && self
                .state
                .compare_exchange(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// # Safety
    ///
    /// The caller holds the lock (taken by `lock` or `try_lock`, or handed
    /// over with a guard).
    #[inline]
    pub(super) unsafe fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0;
        // Set when the caller first parks; a waiter woken to try again keeps
        // it, and its place at the head of the line.
        let mut since: Option<Instant> = None;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            if s & PARKED == 0 && since.is_none() && spins < SPINS {
                spins += 1;
                for _ in 0..1 << spins {
                    core::hint::spin_loop();
                }
                continue;
            }
            let mut waiters = self.waiters.lock();
            let s = self.state.load(Ordering::Relaxed);
            if s & LOCKED == 0 {
                continue;
            }
            let starving = since.is_some_and(|t| t.elapsed() >= STARVING_AFTER);
            let want = s | PARKED | if starving { STARVING } else { 0 };
            if want != s
                && self
                    .state
                    .compare_exchange(s, want, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let first = since.is_some();
            let start = *since.get_or_insert_with(Instant::now);
            let mut waiter = Waiter::new(Some(Ticket::Waiting));
            // SAFETY: `waiter` is new, and stays where it is (a record held by
            // this frame), touched only through `is_done`, until it is done: a
            // mutex waiter is never unregistered, every one is woken by an
            // unlock.
            unsafe {
                if first {
                    waiters.register_first(&waiter);
                } else {
                    waiters.register(&waiter);
                }
            }
            let on = ParkedOn::Lock {
                kind: "Mutex",
                addr: core::ptr::from_ref(self) as *const () as usize,
            };
            loop {
                // SAFETY: the guard holds the wait list's lock and gives it
                // up; the mutex outlives the wait (the caller borrows it).
                // Every wake of a waiter (an unlock) takes that lock first.
                unsafe { park_releasing(waiters.hand_over(), None, &on) };
                if waiter.is_done() {
                    break;
                }
                waiters = self.waiters.lock();
                if waiter.is_done() {
                    break;
                }
                // Woken for no reason of ours: still registered.
            }
            match waiter.take_msg() {
                Some(Ticket::Handoff) => {
                    // The lock is ours. A short wait means the line moves:
                    // back to normal mode (Go's rule).
                    if start.elapsed() < STARVING_AFTER {
                        self.state.fetch_and(!STARVING, Ordering::Relaxed);
                    }
                    return;
                }
                _ => spins = 0,
            }
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut waiters = self.waiters.lock();
        // We hold the lock and its wait list: nobody else changes the state
        // now (lockers compare-exchange only an unlocked state, parkers and
        // the starving bit need the list).
        let s = self.state.load(Ordering::Relaxed);
        let handoff = s & STARVING != 0;
        let ticket = if handoff {
            Ticket::Handoff
        } else {
            Ticket::Retry
        };
        let woken = waiters.give(ticket).ok();
        let next = match (woken.is_some(), waiters.is_empty(), handoff) {
            // Nobody to wake: the waiters left were tasks of a stopped
            // runtime (`WaitList::is_empty` dropped them).
            (false, ..) | (true, true, false) => 0,
            (true, true, true) => LOCKED,
            (true, false, true) => LOCKED | PARKED | STARVING,
            (true, false, false) => PARKED,
        };
        self.state.store(next, Ordering::Release);
        let later = match woken {
            Some(Woken::Later(completion)) => Some(completion),
            _ => None,
        };
        drop(waiters);
        if let Some(completion) = later {
            completion.finish();
        }
    }
}
