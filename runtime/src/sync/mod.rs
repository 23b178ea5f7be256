//! Locks and other synchronisation for tasks: their waits park the
//! calling task (its worker runs other tasks meanwhile) or block the
//! calling plain thread, so tasks and threads can share them.
//!
//! Shaped like `std::sync` ([`Mutex`], [`RwLock`], [`Condvar`],
//! [`Barrier`], [`OnceLock`], with std's [`LockResult`] and poisoning),
//! plus Go's [`WaitGroup`] and a counting [`Semaphore`]. Each type's docs
//! say where it differs from its std namesake.
//!
//! **Why not std's in tasks?** A task blocked in `std::sync::Mutex::lock`
//! blocks its worker thread, and every other task of that worker with it.
//! If the lock's holder is one of those tasks, parked (on a channel, a
//! sleep, a socket) while holding it, it never runs again to unlock, and
//! the worker hangs:
//!
//! ```
//! # use growstack_runtime as growstack;
//! use std::sync::Arc;
//! use growstack::sync::Mutex;
//!
//! let rt = growstack::Runtime::builder().workers(1).build()?;
//! let shared = Arc::new(Mutex::new(0));
//! let (tx, rx) = growstack::chan::bounded::<()>(0);
//! let holder = {
//!     let shared = Arc::clone(&shared);
//!     rt.spawn(move || {
//!         let mut n = shared.lock().unwrap();
//!         rx.recv().unwrap(); // parks holding the lock
//!         *n += 1;
//!     })
//! };
//! let other = rt.spawn(move || {
//!     growstack::yield_now(); // let the holder lock first
//!     let before = *shared.lock().unwrap(); // parks too: the worker runs on
//!     before
//! });
//! tx.send(()).unwrap();
//! holder.join().unwrap();
//! assert!(other.join().unwrap() <= 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! All of them wait the same way, through the wait lists the channels use
//! (a waiter in the waiting caller's frame, completed in place).
//!
//! **When a runtime is dropped** with tasks waiting on a lock, those tasks
//! never run again, and the lock passes over them to the next waiter. A
//! lock already handed to such a task (an `RwLock`, a `Semaphore`'s
//! permits, a `Mutex` in starvation mode), which had not run since because
//! its worker was busy, stays held for good, as it would by a thread that
//! never returns.

mod condvar;
mod group;
mod mutex;
mod once_lock;
mod poison;
mod raw_mutex;
mod rwlock;
mod semaphore;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use group::{Barrier, BarrierWaitResult, WaitGroup};
pub use mutex::{Mutex, MutexGuard};
pub use once_lock::OnceLock;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{MAX_PERMITS, Semaphore, SemaphorePermit};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

// As std's: a panic while a lock is held poisons it, so the locks are
// unwind safe (a caller sees the poison); the others hold no user state a
// panic could leave half changed.
mod unwind {
    use std::panic::{RefUnwindSafe, UnwindSafe};

    use super::*;

    impl<T: ?Sized> UnwindSafe for Mutex<T> {}
    impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}
    impl<T: ?Sized> UnwindSafe for RwLock<T> {}
    impl<T: ?Sized> RefUnwindSafe for RwLock<T> {}
    impl UnwindSafe for Condvar {}
    impl RefUnwindSafe for Condvar {}
    impl UnwindSafe for Barrier {}
    impl RefUnwindSafe for Barrier {}
    impl UnwindSafe for WaitGroup {}
    impl RefUnwindSafe for WaitGroup {}
    impl UnwindSafe for Semaphore {}
    impl RefUnwindSafe for Semaphore {}
    impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}
    impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
}
