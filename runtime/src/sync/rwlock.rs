//! [`RwLock`]: std's reader-writer lock, on a state word and a wait list
//! that hands the lock over in arrival order.
//!
//! State: `WRITER` (a writer holds it), `QUEUED` (the wait list is not
//! empty), and the readers holding it, in units of `READER`. The fast
//! paths (a compare-exchange each way) work only while nobody is queued;
//! once someone is, lockers queue behind them (so a stream of readers
//! cannot starve a writer) and the last holder to leave hands the lock to
//! the head of the line: a writer, or every reader before the next
//! writer. `QUEUED` changes only under the wait list's lock.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};

use super::poison;
use crate::spin::SpinLock;
use crate::task::{ParkedOn, park_releasing};
use crate::wait::{Completion, WaitList, Waiter, Woken};

const WRITER: usize = 1;
const QUEUED: usize = 2;
const READER: usize = 4;

/// What a waiter wants, until it is granted (`Granted`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
    Granted,
}

/// A reader-writer lock whose waits park the calling task (or block the
/// calling thread). Shaped like [`std::sync::RwLock`], with its
/// poisoning: a write guard dropped by a panic poisons the lock.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::Arc;
/// use growstack::sync::RwLock;
///
/// let rt = growstack::Runtime::new()?;
/// let config = Arc::new(RwLock::new(String::from("v1")));
/// let reader = {
///     let config = Arc::clone(&config);
///     rt.spawn(move || config.read().unwrap().len())
/// };
/// config.write().unwrap().push_str(".1");
/// assert!([2, 4].contains(&reader.join().unwrap()));
/// assert_eq!(*config.read().unwrap(), "v1.1");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// It is fair: once a caller waits, later ones wait behind it, readers
/// too, and the lock passes to waiters in arrival order (consecutive
/// readers together). A reader that locks again while a writer waits
/// therefore deadlocks, as with std's on most platforms.
pub struct RwLock<T: ?Sized> {
    state: AtomicUsize,
    waiters: SpinLock<WaitList<Want>>,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: as std's RwLock: it hands out `&mut T` to one writer or `&T` to
// readers, with acquire/release on the state (and the wait list's lock
// for handovers).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above; readers share `&T` across threads, hence `T: Sync`.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to a [`RwLock`]'s value, until dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

/// Exclusive access to a [`RwLock`]'s value, until dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    poison: poison::Guard,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: shared guards give `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            waiters: SpinLock::new(WaitList::new()),
            poison: poison::Flag::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The value, taking the lock apart; `Err` holding it if poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        poison::result(self.data.into_inner(), poisoned)
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds the lock or anyone
    /// waits for it.
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        if !self.try_read_fast() {
            self.wait_for(Want::Read);
        }
        poison::result(self.read_guard(), self.poison.get())
    }

    /// Locks for writing, waiting while anyone holds the lock or waits.
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        if !self.try_write_fast() {
            self.wait_for(Want::Write);
        }
        self.write_guard()
    }

    /// Locks for reading if that needs no waiting.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        if !self.try_read_fast() {
            return Err(TryLockError::WouldBlock);
        }
        poison::result(self.read_guard(), self.poison.get()).map_err(TryLockError::Poisoned)
    }

    /// Locks for writing if that needs no waiting.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if !self.try_write_fast() {
            return Err(TryLockError::WouldBlock);
        }
        self.write_guard().map_err(TryLockError::Poisoned)
    }

    /// Whether a writer panicked holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Forgets that a writer panicked.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The value, through `&mut` (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.get();
        poison::result(self.data.get_mut(), poisoned)
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    fn write_guard(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let (poison, poisoned) = self.poison.guard();
        let guard = RwLockWriteGuard {
            lock: self,
            poison,
            _not_send: PhantomData,
        };
        poison::result(guard, poisoned)
    }

    #[inline]
    fn try_read_fast(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & (WRITER | QUEUED) == 0 {
            let Some(next) = s.checked_add(READER) else {
                panic!("growstack: too many readers of an RwLock");
            };
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
        false
    }

    #[inline]
    fn try_write_fast(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Waits in line until the lock is handed over for `want`.
    #[cold]
    fn wait_for(&self, want: Want) {
        let mut waiters = self.waiters.lock();
        // Decide from one load, and act by a CAS from the state that
        // decided: take the lock if it is free for `want`, else queue
        // (`QUEUED` changes only under the list's lock, which we hold).
        // Queueing after a separate failed try parked a reader behind
        // readers alone, where nothing would hand it the lock until they
        // all left.
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & QUEUED != 0 {
                // `QUEUED` with no holder: the last holder's `hand_over` is
                // on its way (waiting for the list's lock we hold), and will
                // set the state; queue for it. Otherwise, if only waiters of
                // a stopped runtime were queued (dropped by `is_empty`),
                // nobody is in line after all: clear the bit and look again
                // (a holder that leaves meanwhile finds it clear, or, if it
                // saw it set, hands over to us once we queue).
                if s == QUEUED || !waiters.is_empty() {
                    break;
                }
                match self.state.compare_exchange(
                    s,
                    s & !QUEUED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => s &= !QUEUED,
                    Err(actual) => s = actual,
                }
                continue;
            }
            let free = match want {
                Want::Read => s & WRITER == 0,
                _ => s == 0,
            };
            let (next, ordering) = match (free, want) {
                (true, Want::Read) => match s.checked_add(READER) {
                    Some(next) => (next, Ordering::Acquire),
                    None => panic!("growstack: too many readers of an RwLock"),
                },
                (true, _) => (WRITER, Ordering::Acquire),
                (false, _) => (s | QUEUED, Ordering::Relaxed),
            };
            match self
                .state
                .compare_exchange(s, next, ordering, Ordering::Relaxed)
            {
                Ok(_) if free => return,
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        let waiter = Waiter::new(Some(want));
        // SAFETY: `waiter` is new, and stays where it is (a record held by this
        // frame), touched only through `is_done`, until it is done: every
        // waiter is granted the lock in turn, none is unregistered (but those
        // of a stopped runtime, unlinked by the list, whose frames never end).
        unsafe { waiters.register(&waiter) };
        let on = ParkedOn::Lock {
            kind: "RwLock",
            addr: core::ptr::from_ref(self) as *const () as usize,
        };
        loop {
            // SAFETY: the guard holds the list's lock and gives it up; the
            // RwLock outlives the wait (the caller borrows it). Every wake
            // of a waiter (a handover) takes that lock first.
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

    /// The last holder left (the state is `QUEUED` alone, or `WRITER |
    /// QUEUED` for a writer): hands the lock to the head of the line.
    #[cold]
    fn hand_over(&self) {
        let mut later: Vec<Completion> = Vec::new();
        let mut waiters = self.waiters.lock();
        // Nobody else changes the state now: fast paths fail while
        // `QUEUED` is set, and it changes only under the list we hold.
        let mut next = 0;
        match waiters.first_msg() {
            // `give_first`: the very waiter whose want decided the grant.
            Some(Want::Write) => {
                next = WRITER;
                push(&mut later, waiters.give_first(Want::Granted));
            }
            Some(Want::Read) => {
                while waiters.first_msg() == Some(&Want::Read) {
                    next += READER;
                    push(&mut later, waiters.give_first(Want::Granted));
                }
            }
            _ => {}
        }
        if !waiters.is_empty() {
            next |= QUEUED;
        }
        self.state.store(next, Ordering::Release);
        drop(waiters);
        later.into_iter().for_each(Completion::finish);
    }

    #[inline]
    fn read_unlock(&self) {
        let before = self.state.fetch_sub(READER, Ordering::Release);
        if before == READER | QUEUED {
            // The last reader, with waiters: they want a writer's turn.
            self.hand_over();
        }
    }

    #[inline]
    fn write_unlock(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.hand_over();
        }
    }
}

fn push(later: &mut Vec<Completion>, woken: Woken) {
    if let Woken::Later(completion) = woken {
        later.push(completion);
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds a read lock: no writer.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the write lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the write lock, and `&mut self` makes
        // this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.poison.done(self.poison);
        self.lock.write_unlock();
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
