//! [`Semaphore`]: counted permits, handed out in arrival order.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::spin::SpinLock;
use crate::task::{ParkedOn, park_releasing};
use crate::wait::{Completion, WaitList, Waiter, Woken};

/// In the state word: waiters are queued (lower bit); the permits are the
/// rest, counted in units of `ONE`.
const QUEUED: usize = 1;
const ONE: usize = 2;

/// The most permits a semaphore holds.
pub const MAX_PERMITS: usize = usize::MAX / ONE;

/// A counting semaphore: [`acquire`](Self::acquire) takes a permit,
/// parking the task (or blocking the thread) until one is free, and the
/// returned [`SemaphorePermit`] gives it back when dropped. Bounds how
/// many tasks do something at once.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use growstack::sync::Semaphore;
///
/// let rt = growstack::Runtime::new()?;
/// let sem = Arc::new(Semaphore::new(3));
/// let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
/// let tasks: Vec<_> = (0..20)
///     .map(|_| {
///         let (sem, now, most) = (Arc::clone(&sem), Arc::clone(&now), Arc::clone(&most));
///         rt.spawn(move || {
///             let _permit = sem.acquire();
///             most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
///             growstack::yield_now();
///             now.fetch_sub(1, Ordering::SeqCst);
///         })
///     })
///     .collect();
/// tasks.into_iter().for_each(|t| t.join().unwrap());
/// assert!(most.load(Ordering::SeqCst) <= 3);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Permits go to waiters in arrival order: while one waits, a new
/// `acquire` waits behind it even if enough permits for the newcomer are
/// free (so a large request is not starved by small ones).
pub struct Semaphore {
    state: AtomicUsize,
    /// Each waiter's message is the number of permits it needs, replaced by
    /// 0 once they are granted.
    waiters: SpinLock<WaitList<usize>>,
}

/// Permits of a [`Semaphore`], given back when dropped.
#[must_use = "the permit is given back at once if unused"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`MAX_PERMITS`].
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= MAX_PERMITS, "growstack: too many permits");
        Semaphore {
            state: AtomicUsize::new(permits * ONE),
            waiters: SpinLock::new(WaitList::new()),
        }
    }

    /// The permits free now.
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Relaxed) / ONE
    }

    /// Takes one permit, waiting for it.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting for them (forever if the
    /// semaphore never holds that many).
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        if !self.try_take(n) {
            self.acquire_slow(n);
        }
        SemaphorePermit { sem: self, n }
    }

    /// Takes one permit if one is free and nobody waits.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody waits.
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        self.try_take(n).then(|| SemaphorePermit { sem: self, n })
    }

    /// Adds `n` permits (gives back ones that were
    /// [`forget`](SemaphorePermit::forget)ten, or raises the count).
    ///
    /// # Panics
    ///
    /// If the count would exceed [`MAX_PERMITS`].
    pub fn add_permits(&self, n: usize) {
        assert!(n <= MAX_PERMITS, "growstack: too many permits");
        let mut s = self.state.load(Ordering::Relaxed);
        while s & QUEUED == 0 {
            assert!(n <= MAX_PERMITS - s / ONE, "growstack: too many permits");
            match self.state.compare_exchange_weak(
                s,
                s + n * ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        self.release_slow(n);
    }

    #[inline]
    fn try_take(&self, n: usize) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & QUEUED == 0 && s / ONE >= n {
            match self.state.compare_exchange_weak(
                s,
                s - n * ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
        false
    }

    #[cold]
    fn acquire_slow(&self, n: usize) {
        let mut waiters = self.waiters.lock();
        // Under the list's lock, `QUEUED` changes only by us; permits may
        // still be added or taken by the fast paths while it is clear. So
        // decide from one load: take the permits, or queue, each by a CAS
        // from the very state that decided it. (Queueing after a separate
        // look for permits lost a wake-up: a permit added in between was
        // left free with this waiter parked.)
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let (next, took) = match s {
                // Queued behind waiters of a stopped runtime alone (dropped
                // by `is_empty`): nobody is in line after all.
                s if s & QUEUED != 0 && waiters.is_empty() => (s & !QUEUED, false),
                s if s & QUEUED != 0 => break,
                s if s / ONE >= n => (s - n * ONE, true),
                s => (s | QUEUED, false),
            };
            match self
                .state
                .compare_exchange(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if took => return,
                Ok(_) if next & QUEUED == 0 => s = next,
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        let waiter = Waiter::new(Some(n));
        // SAFETY: `waiter` is new, and stays where it is (a record held by this
        // frame), touched only through `is_done`, until it is done: these
        // waiters are never unregistered, every one is granted its permits (but
        // those of a stopped runtime, unlinked by the list, whose frames never
        // end).
        unsafe { waiters.register(&waiter) };
        let on = ParkedOn::Lock {
            kind: "Semaphore",
            addr: core::ptr::from_ref(self) as *const () as usize,
        };
        loop {
            // SAFETY: the guard holds the list's lock and gives it up; the
            // semaphore outlives the wait (the caller borrows it). Every
            // wake of a waiter (a grant) takes that lock first.
            unsafe { park_releasing(waiters.hand_over(), None, &on) };
            if waiter.is_done() {
                return;
            }
            waiters = self.waiters.lock();
            if waiter.is_done() {
                return;
            }
        }
    }

    /// Gives back `n` permits while waiters are queued: they go to the
    /// waiters in order, as far as they suffice.
    #[cold]
    fn release_slow(&self, n: usize) {
        let mut later: Vec<Completion> = Vec::new();
        let mut waiters = self.waiters.lock();
        // `QUEUED` is set (it is cleared only under this lock, with the
        // list empty) or was cleared since we looked: then add plainly.
        let s = self.state.load(Ordering::Relaxed);
        if s & QUEUED == 0 {
            drop(waiters);
            return self.add_permits(n);
        }
        // Nobody else changes the state while `QUEUED` is set and we hold
        // the list.
        assert!(n <= MAX_PERMITS - s / ONE, "growstack: too many permits");
        let mut free = s / ONE + n;
        while let Some(&need) = waiters.first_msg() {
            if need > free {
                break;
            }
            free -= need;
            // That very waiter: it is the one whose need was counted.
            if let Woken::Later(completion) = waiters.give_first(0) {
                later.push(completion);
            }
        }
        let queued = if waiters.is_empty() { 0 } else { QUEUED };
        self.state.store((free * ONE) | queued, Ordering::Release);
        drop(waiters);
        later.into_iter().for_each(Completion::finish);
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permits taken for good (add them back with
    /// [`Semaphore::add_permits`]).
    pub fn forget(self) {
        core::mem::forget(self);
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(self.n);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("n", &self.n)
            .finish()
    }
}
