//! Poisoning, as std's locks do it: a lock whose guard was dropped by a
//! panic is marked poisoned, and later lockers get `Err(PoisonError)`
//! holding their guard.

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LockResult, PoisonError};

/// Set once a guard of the lock was dropped while its thread panicked.
pub(super) struct Flag {
    failed: AtomicBool,
}

/// Whether the thread was panicking when it took the guard: a guard taken
/// during a panic (in a destructor) and dropped in it poisons nothing.
#[derive(Clone, Copy)]
pub(super) struct Guard {
    panicking: bool,
}

impl Flag {
    pub(super) const fn new() -> Flag {
        Flag {
            failed: AtomicBool::new(false),
        }
    }

    /// Called with the lock just taken: the guard to keep, and whether the
    /// lock is poisoned.
    #[inline]
    pub(super) fn guard(&self) -> (Guard, bool) {
        let guard = Guard {
            panicking: std::thread::panicking(),
        };
        (guard, self.get())
    }

    /// Called when the guard is dropped, before unlocking.
    #[inline]
    pub(super) fn done(&self, guard: Guard) {
        if !guard.panicking && std::thread::panicking() {
            self.failed.store(true, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(super) fn get(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(super) fn clear(&self) {
        self.failed.store(false, Ordering::Relaxed);
    }
}

/// `Ok(value)`, or `Err` holding it if `poisoned`.
#[inline]
pub(super) fn result<T>(value: T, poisoned: bool) -> LockResult<T> {
    if poisoned {
        Err(PoisonError::new(value))
    } else {
        Ok(value)
    }
}
