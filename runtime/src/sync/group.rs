//! [`Barrier`] and [`WaitGroup`]: waiting for a count of others.

use core::fmt;

use crate::spin::{SpinGuard, SpinLock};
use crate::task::{ParkedOn, park_releasing};
use crate::wait::{Completion, WaitList, Waiter, Woken};

/// A count and the waiters for it, under one spin lock.
struct Counted {
    count: usize,
    waiters: WaitList<()>,
}

/// Parks on `state` until woken by `release_all`.
fn wait_released<'a>(
    lock: &'a SpinLock<Counted>,
    mut state: SpinGuard<'a, Counted>,
    kind: &'static str,
) {
    let on = ParkedOn::Lock {
        kind,
        addr: core::ptr::from_ref(lock) as *const () as usize,
    };
    let waiter = Waiter::new(None);
    // SAFETY: `waiter` is new, and stays where it is (a record held by this
    // frame), touched only through `is_done`, until it is done: these waiters
    // are never unregistered, every one is released.
    unsafe { state.waiters.register(&waiter) };
    loop {
        // SAFETY: the guard holds the lock and gives it up; the lock
        // outlives the wait (the caller borrows it). Every wake of a waiter
        // (`release_all`) takes that lock first.
        unsafe { park_releasing(state.hand_over(), None, &on) };
        if waiter.is_done() {
            return;
        }
        state = lock.lock();
        if waiter.is_done() {
            return;
        }
    }
}

/// Completes every waiter; the returned completions are finished once
/// the lock is released.
fn release_all(state: &mut Counted) -> Vec<Completion> {
    let mut later = Vec::new();
    while let Ok(woken) = state.waiters.give(()) {
        if let Woken::Later(completion) = woken {
            later.push(completion);
        }
    }
    later
}

/// A barrier: `n` tasks or threads each call [`wait`](Barrier::wait), and
/// all of them go on once the last one has. Shaped like
/// [`std::sync::Barrier`]; a waiting task parks.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::Arc;
/// use growstack::sync::Barrier;
///
/// let rt = growstack::Runtime::new()?;
/// let barrier = Arc::new(Barrier::new(10));
/// let tasks: Vec<_> = (0..10)
///     .map(|_| {
///         let barrier = Arc::clone(&barrier);
///         rt.spawn(move || barrier.wait().is_leader())
///     })
///     .collect();
/// let leaders = tasks.into_iter().map(|t| t.join().unwrap()).filter(|&l| l).count();
/// assert_eq!(leaders, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Barrier {
    n: usize,
    state: SpinLock<Counted>,
}

/// What [`Barrier::wait`] returns: whether this caller was the leader (one
/// per round: the last to arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for one caller of each round.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` callers of [`wait`](Self::wait) per round (0 and
    /// 1 never wait).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: SpinLock::new(Counted {
                count: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Waits until `n` callers are waiting, then lets them all go; the
    /// barrier is then ready for the next round.
    pub fn wait(&self) -> BarrierWaitResult {
        let mut state = self.state.lock();
        state.count += 1;
        if state.count < self.n {
            wait_released(&self.state, state, "Barrier");
            return BarrierWaitResult(false);
        }
        state.count = 0;
        let later = release_all(&mut state);
        drop(state);
        later.into_iter().for_each(Completion::finish);
        BarrierWaitResult(true)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// Go's `sync.WaitGroup`: a count of pending work, and waiters for it to
/// reach zero. [`add`](Self::add) before starting work, [`done`](Self::done)
/// when a piece finishes, [`wait`](Self::wait) until all have.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use growstack::sync::WaitGroup;
///
/// let rt = growstack::Runtime::new()?;
/// let wg = Arc::new(WaitGroup::new());
/// let sum = Arc::new(AtomicUsize::new(0));
/// for i in 1..=10 {
///     wg.add(1);
///     let (wg, sum) = (Arc::clone(&wg), Arc::clone(&sum));
///     rt.spawn(move || {
///         sum.fetch_add(i, Ordering::Relaxed);
///         wg.done();
///     });
/// }
/// wg.wait();
/// assert_eq!(sum.load(Ordering::Relaxed), 55);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct WaitGroup {
    state: SpinLock<Counted>,
}

impl WaitGroup {
    /// A wait group with nothing pending.
    pub const fn new() -> WaitGroup {
        WaitGroup {
            state: SpinLock::new(Counted {
                count: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Adds `n` pieces of pending work.
    ///
    /// # Panics
    ///
    /// If the count would overflow.
    pub fn add(&self, n: usize) {
        let mut state = self.state.lock();
        state.count = state
            .count
            .checked_add(n)
            .expect("growstack: WaitGroup count overflow");
    }

    /// One piece of work is finished; the waiters go on when none is left.
    ///
    /// # Panics
    ///
    /// If nothing is pending (Go's "negative WaitGroup counter").
    pub fn done(&self) {
        let mut state = self.state.lock();
        if state.count == 0 {
            drop(state);
            panic!("growstack: WaitGroup::done called more times than add");
        }
        state.count -= 1;
        if state.count > 0 {
            return;
        }
        let later = release_all(&mut state);
        drop(state);
        later.into_iter().for_each(Completion::finish);
    }

    /// Waits until no work is pending (returns at once if none is).
    pub fn wait(&self) {
        let state = self.state.lock();
        if state.count == 0 {
            return;
        }
        wait_released(&self.state, state, "WaitGroup");
    }

    /// The pending count now.
    pub fn count(&self) -> usize {
        self.state.lock().count
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}
