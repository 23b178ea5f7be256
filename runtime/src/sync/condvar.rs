//! [`Condvar`]: std's condition variable for [`Mutex`](super::Mutex).

use core::fmt;
use std::sync::LockResult;
use std::time::{Duration, Instant};

use super::mutex::MutexGuard;
use super::poison;
use crate::spin::SpinLock;
use crate::task::{ParkedOn, park_releasing};
use crate::wait::{Completion, WaitList, Waiter, Woken};

/// A condition variable: tasks and threads wait on it, holding a
/// [`Mutex`](super::Mutex) they give up while they wait, until another
/// notifies them. Shaped like [`std::sync::Condvar`]; a waiting task parks.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::Arc;
/// use growstack::sync::{Condvar, Mutex};
///
/// let rt = growstack::Runtime::new()?;
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let waiter = {
///     let pair = Arc::clone(&pair);
///     rt.spawn(move || {
///         let (ready, cv) = &*pair;
///         let ready = cv.wait_while(ready.lock().unwrap(), |ready| !*ready).unwrap();
///         *ready
///     })
/// };
/// *pair.0.lock().unwrap() = true;
/// pair.1.notify_all();
/// assert!(waiter.join().unwrap());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Unlike std's, a wait returns only when notified or timed out, never
/// spuriously; code that checks its condition in a loop (as it should,
/// since another may change the state between the notify and the wake)
/// works the same. Using one condvar with two mutexes is not detected.
pub struct Condvar {
    waiters: SpinLock<WaitList<()>>,
}

/// Whether a timed wait of a [`Condvar`] timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because its time was up.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Condvar {
        Condvar {
            waiters: SpinLock::new(WaitList::new()),
        }
    }

    /// Gives up the lock of `guard`, waits to be notified, and locks again.
    /// `Err` holding the guard if the mutex is poisoned.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let (guard, _) = self.wait_until(guard, None);
        guard
    }

    /// Waits while `condition` holds for the value: checks it, and waits
    /// again after each notify while it is true.
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`wait`](Self::wait), for at most `timeout`.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (guard, timed_out) = self.wait_until(guard, Instant::now().checked_add(timeout));
        let result = WaitTimeoutResult(timed_out);
        match guard {
            Ok(guard) => Ok((guard, result)),
            Err(err) => poison::result((err.into_inner(), result), true),
        }
    }

    /// Like [`wait_while`](Self::wait_while), for at most `timeout` in all.
    /// The result says whether the time ran out with `condition` still
    /// true.
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let (relocked, _) = self.wait_until(guard, deadline);
            match relocked {
                Ok(relocked) => guard = relocked,
                Err(err) => {
                    return poison::result((err.into_inner(), WaitTimeoutResult(false)), true);
                }
            }
        }
    }

    /// Wakes one waiter, if any (the one that waited longest).
    pub fn notify_one(&self) {
        let mut waiters = self.waiters.lock();
        let woken = waiters.give(()).ok();
        drop(waiters);
        if let Some(Woken::Later(completion)) = woken {
            completion.finish();
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let mut later: Vec<Completion> = Vec::new();
        let mut waiters = self.waiters.lock();
        while let Ok(woken) = waiters.give(()) {
            if let Woken::Later(completion) = woken {
                later.push(completion);
            }
        }
        drop(waiters);
        later.into_iter().for_each(Completion::finish);
    }

    /// Waits (see `wait`) until notified or `deadline`; true if it timed
    /// out.
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        let mutex = guard.into_raw();
        let raw = MutexGuard::raw(mutex);
        let mut waiters = self.waiters.lock();
        let waiter = Waiter::new(None);
        // SAFETY: `waiter` is new, and stays where it is (a record held by this
        // frame), touched only through `is_done`, until it is done or
        // unregistered below.
        unsafe { waiters.register(&waiter) };
        // Registered before the mutex is given up: a notify made under the
        // mutex after this point finds the waiter.
        // SAFETY: the guard given up above held the lock.
        unsafe { raw.unlock() };
        let mut timed_out = false;
        let on = ParkedOn::Lock {
            kind: "Condvar",
            addr: core::ptr::from_ref(self) as *const () as usize,
        };
        loop {
            // SAFETY: the guard holds the list's lock and gives it up; the
            // condvar outlives the wait (the caller borrows it). Every wake
            // of a waiter (a notify) takes that lock first; a timeout is
            // the worker's own.
            unsafe { park_releasing(waiters.hand_over(), deadline, &on) };
            if waiter.is_done() {
                break;
            }
            waiters = self.waiters.lock();
            if waiter.is_done() {
                drop(waiters);
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // SAFETY: registered in this list above, if still.
                unsafe { waiters.unregister(&waiter) };
                drop(waiters);
                timed_out = true;
                break;
            }
            // Woken for no reason of ours: still registered.
        }
        raw.lock();
        // SAFETY: locked just above.
        (unsafe { MutexGuard::relocked(mutex) }, timed_out)
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
