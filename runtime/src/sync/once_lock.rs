//! [`OnceLock`]: a cell initialised once, whose waiters park.

use core::cell::UnsafeCell;
use core::fmt;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::spin::SpinLock;
use crate::task::{ParkedOn, park_releasing};
use crate::wait::{Completion, WaitList, Waiter, Woken};

const EMPTY: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;

/// A cell written once: [`get_or_init`](Self::get_or_init) runs its
/// initialiser in the first caller only; the others wait for it (a task
/// parks) instead of running theirs. Shaped like [`std::sync::OnceLock`],
/// whose waiters block their thread, and with it a task's whole worker.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use growstack::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// let rt = growstack::Runtime::new()?;
/// let tasks: Vec<_> = (0..10)
///     .map(|_| {
///         rt.spawn(|| {
///             CONFIG.get_or_init(|| {
///                 RUNS.fetch_add(1, Ordering::Relaxed);
///                 growstack::sleep(std::time::Duration::from_millis(5)); // parks
///                 "loaded".to_string()
///             }).len()
///         })
///     })
///     .collect();
/// for t in tasks {
///     assert_eq!(t.join().unwrap(), 6);
/// }
/// assert_eq!(RUNS.load(Ordering::Relaxed), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// If the initialiser panics, the cell stays empty and one of the waiters
/// runs its own initialiser. An initialiser that reaches its own cell
/// waits for itself forever (std's may also panic).
pub struct OnceLock<T> {
    state: AtomicU8,
    waiters: SpinLock<WaitList<()>>,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: as std's OnceLock: the value is written once, by one caller,
// before `READY` is published (release), and only read after (acquire).
unsafe impl<T: Send> Send for OnceLock<T> {}
// SAFETY: as above; readers share `&T`, and any thread may write it.
unsafe impl<T: Send + Sync> Sync for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicU8::new(EMPTY),
            waiters: SpinLock::new(WaitList::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if it is set.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY (acquired) means written, and never again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, through `&mut`, if it is set.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means written; `&mut self` is unique.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Sets the value if the cell is empty; gives it back otherwise. Waits
    /// if another caller is initialising it.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialised with `init` by the first caller. Callers that
    /// come while it runs wait for it.
    #[inline]
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        if let Some(value) = self.get() {
            return value;
        }
        self.init_slow(init)
    }

    /// The value, taking the cell apart.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if *self.state.get_mut() != READY {
            return None;
        }
        *self.state.get_mut() = EMPTY;
        // SAFETY: it was READY, and the state now says empty, so the value
        // is read out once.
        Some(unsafe { self.value.get_mut().assume_init_read() })
    }

    #[cold]
    fn init_slow(&self, init: impl FnOnce() -> T) -> &T {
        let mut init = Some(init);
        loop {
            match self
                .state
                .compare_exchange(EMPTY, RUNNING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    let init = init.take().expect("runs once");
                    return self.run(init);
                }
                // SAFETY: as in `get`.
                Err(READY) => return unsafe { (*self.value.get()).assume_init_ref() },
                Err(_) => self.wait_running(),
            }
        }
    }

    /// Runs the initialiser (the state is `RUNNING`, set by us).
    fn run(&self, init: impl FnOnce() -> T) -> &T {
        /// Puts the cell back to empty if the initialiser panics, and lets
        /// the waiters try theirs.
        struct Reset<'a, T>(&'a OnceLock<T>);
        impl<T> Drop for Reset<'_, T> {
            fn drop(&mut self) {
                self.0.publish(EMPTY);
            }
        }
        let reset = Reset(self);
        let value = init();
        core::mem::forget(reset);
        // SAFETY: RUNNING is ours: nobody else touches the value.
        unsafe { (*self.value.get()).write(value) };
        self.publish(READY);
        // SAFETY: just written and published.
        unsafe { (*self.value.get()).assume_init_ref() }
    }

    /// Ends a run with `state`, and wakes the waiters.
    fn publish(&self, state: u8) {
        let mut later: Vec<Completion> = Vec::new();
        let mut waiters = self.waiters.lock();
        self.state.store(state, Ordering::Release);
        while let Ok(woken) = waiters.give(()) {
            if let Woken::Later(completion) = woken {
                later.push(completion);
            }
        }
        drop(waiters);
        later.into_iter().for_each(Completion::finish);
    }

    /// Waits until the running initialiser ends.
    fn wait_running(&self) {
        let mut waiters = self.waiters.lock();
        if self.state.load(Ordering::Relaxed) != RUNNING {
            return;
        }
        let waiter = Waiter::new(None);
        // SAFETY: `waiter` is new, and stays where it is (a record held by this
        // frame), touched only through `is_done`, until it is done: every
        // waiter is woken when the run ends.
        unsafe { waiters.register(&waiter) };
        let on = ParkedOn::Lock {
            kind: "OnceLock",
            addr: core::ptr::from_ref(self) as *const () as usize,
        };
        loop {
            // SAFETY: the guard holds the list's lock and gives it up; the
            // cell outlives the wait (the caller borrows it). Every wake of
            // a waiter (`publish`) takes that lock first.
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
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means written; dropped once, here.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(value) => d.field(value),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
