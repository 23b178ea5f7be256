//! [`Mutex`]: std's shape on a lock that parks tasks.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use std::sync::{LockResult, TryLockError, TryLockResult};

use super::poison;
use super::raw_mutex::RawMutex;

/// A mutual exclusion lock whose `lock` parks the calling task (its worker
/// runs other tasks meanwhile) or blocks the calling plain thread.
///
/// Shaped like [`std::sync::Mutex`], with std's [`LockResult`] and
/// poisoning: a guard dropped by a panic poisons the lock, and later
/// `lock`s return `Err` holding the guard
/// ([`PoisonError::into_inner`](std::sync::PoisonError::into_inner) takes it).
///
/// Use it instead of std's in tasks. A task blocked on a contended
/// `std::sync::Mutex` blocks its whole worker; if the holder is another
/// task of that worker, parked while it holds the lock, the worker never
/// runs it again and both hang. This one parks the task instead.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::Arc;
/// use growstack::sync::Mutex;
///
/// let rt = growstack::Runtime::new()?;
/// let count = Arc::new(Mutex::new(0));
/// let tasks: Vec<_> = (0..8)
///     .map(|_| {
///         let count = Arc::clone(&count);
///         rt.spawn(move || {
///             for _ in 0..1000 {
///                 *count.lock().unwrap() += 1;
///             }
///         })
///     })
///     .collect();
/// for t in tasks {
///     t.join().unwrap();
/// }
/// assert_eq!(*count.lock().unwrap(), 8000);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Fairness
///
/// Lockers that arrive while the lock is free take it, even if others are
/// parked (that keeps it busy). But a waiter that has waited more than a
/// millisecond gets the lock handed to it at the next unlock, as in Go's
/// starvation mode, so a task that relocks in a loop cannot starve the
/// others.
///
/// # Differences from std
///
/// Locking it again on the thread or task that holds it deadlocks (std
/// may panic instead). A guard is not `Send`, as std's; it may be held
/// across a park, since a task never leaves its worker.
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one holder at a time
// (acquire on lock, release on unlock), as std's Mutex.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: shared, it gives `&mut T` to one holder at a time.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The lock of a [`Mutex`], held until the guard is dropped. It derefs to
/// the value.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    poison: poison::Guard,
    /// Not `Send`, as std's guard.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard gives `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex::new(),
            poison: poison::Flag::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The value, taking the mutex apart; `Err` holding it if poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        poison::result(self.data.into_inner(), poisoned)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking the task (or blocking the thread) while another
    /// holds the lock. `Err` holding the guard if the mutex is poisoned.
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock();
        // SAFETY: just locked.
        unsafe { self.guard() }
    }

    /// Locks if that needs no waiting.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if !self.raw.try_lock() {
            return Err(TryLockError::WouldBlock);
        }
        // SAFETY: just locked.
        unsafe { self.guard() }.map_err(TryLockError::Poisoned)
    }

    /// Whether a holder of the lock panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Forgets that a holder panicked.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The value, through `&mut` (no locking needed); `Err` holding it if
    /// poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.get();
        poison::result(self.data.get_mut(), poisoned)
    }

    /// # Safety
    ///
    /// The caller holds the lock and gives it to the guard.
    #[inline]
    unsafe fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let (poison, poisoned) = self.poison.guard();
        let guard = MutexGuard {
            lock: self,
            poison,
            _not_send: PhantomData,
        };
        poison::result(guard, poisoned)
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex, given up by the guard without unlocking it (for
    /// `Condvar`, which unlocks it while it waits).
    pub(super) fn into_raw(self) -> &'a Mutex<T> {
        let guard = core::mem::ManuallyDrop::new(self);
        guard.lock
    }

    /// The raw lock, for `Condvar`.
    pub(super) fn raw(mutex: &Mutex<T>) -> &RawMutex {
        &mutex.raw
    }

    /// A guard of `mutex`, locked by the caller (`Condvar` relocks it).
    ///
    /// # Safety
    ///
    /// As for `Mutex::guard`.
    pub(super) unsafe fn relocked(mutex: &'a Mutex<T>) -> LockResult<MutexGuard<'a, T>> {
        // SAFETY: forwarded.
        unsafe { mutex.guard() }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this
        // access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(self.poison);
        // SAFETY: the guard holds the lock.
        unsafe { self.lock.raw.unlock() };
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
