//! The channel lock: a spin lock for critical sections of a few dozen
//! instructions.
//!
//! An uncontended `std::sync::Mutex` costs two atomic read-modify-writes,
//! one to lock and one to unlock (the unlock must swap to learn whether a
//! sleeper needs a futex wake), plus its poison checks. Each costs about
//! 6 ns here, and a ping-pong round trip (two messages) took twelve. This
//! lock takes one: unlocking is a plain release store. Nothing that blocks,
//! parks or runs user code happens while it is held (wakers are called and
//! messages dropped after unlocking), so waiters spin briefly, then yield
//! their thread to a holder the OS may have preempted.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// Spins before each `yield_now` while the lock is held.
const SPINS: u32 = 64;

pub(super) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (acquire on lock, release on unlock), so sharing it needs only `T: Send`,
// as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(super) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub(super) fn lock(&self) -> SpinGuard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.wait_unlocked();
        }
        SpinGuard { lock: self }
    }

    /// Waits, reading only, until the lock looks free.
    #[cold]
    fn wait_unlocked(&self) {
        let mut spins = 0;
        while self.locked.load(Ordering::Relaxed) {
            if spins < SPINS {
                spins += 1;
                core::hint::spin_loop();
            } else {
                spins = 0;
                std::thread::yield_now();
            }
        }
    }
}

pub(super) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no one else accesses the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
