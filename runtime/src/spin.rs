//! The channel lock: a spin lock for critical sections of a few dozen
//! instructions, biased to the thread that uses it alone.
//!
//! An uncontended `std::sync::Mutex` costs two atomic read-modify-writes,
//! one to lock and one to unlock (the unlock must swap to learn whether a
//! sleeper needs a futex wake), plus its poison checks. Each costs about
//! 6 ns here, and a ping-pong round trip (two messages) took twelve. This
//! lock takes one: unlocking is a plain release store. Nothing that blocks,
//! parks or runs user code happens while it is held (wakers are called and
//! messages dropped after unlocking).
//!
//! A waiter yields its thread until the lock looks free, without spinning:
//! with 64 `pause`s (8.4 ns each here, measured) before each yield,
//! one thread streaming to another measured 191-253 ns per message and 16
//! threads streaming to 4 tasks 128-240 ns; yielding at once, 49-62 ns and
//! 30-45 ns (with `std::sync::Mutex`: 89-231 and 49-151 ns).
//!
//! # Bias
//!
//! Tasks stay on the worker that first ran them, so a channel between two
//! tasks of one worker is locked by one thread only, and its
//! read-modify-write excludes no one, yet costs: a ping-pong round trip
//! (four locks) measured 64-72 ns with the owner's lock below (then biased
//! after 256 locks in a row, since replaced) against 69-83 ns without
//! (scratch program, 6 alternating runs each).
//!
//! A channel whose first [`BIAS_AFTER`] wakes of blocked operations all
//! woke tasks of the waker's own worker (`SpinGuard::note_wake`) is biased
//! to that worker's thread, which from then on locks with a plain store
//! and load on `owner_holds` and `owner` (Dekker's protocol, with only a
//! compiler fence between its store and its load). A wake of another
//! thread's task, or of a plain thread, first settles it unbiased for good.
//! Any other thread that locks a biased lock revokes the bias, once and for
//! good: holding `locked`, it clears `owner`, runs a barrier on every
//! thread of the process (`membarrier`), then waits for `owner_holds` to
//! be false. The barrier stands in for the owner's missing fence: the owner
//! either set `owner_holds` before its barrier point (the revoker sees it,
//! and waits for the owner's release), or reads `owner` after it and backs
//! off to `locked`. A revocation costs one system call (about 130 ns
//! here), and a lock is biased at most once. Locks are biased only once a
//! `Runtime` registered the process for membarrier, and never where it is
//! missing (an old kernel, a seccomp filter, Miri).
//!
//! The bias costs the other locks little: a thread that owns no biased
//! lock goes straight to the compare-exchange, and a lock counts wakes, not
//! locks. (Counting locks in a row by one thread in the critical section,
//! and reading `owner` before every compare-exchange, made a producer and a
//! consumer task on two workers, through `bounded(64)`, take 71-73 ns per
//! message, where the lock without a bias took 57-64 and this one takes
//! 60-61: scratch program, 3 alternating runs each.)
//!
//! Tasks of one worker share the bias of its thread; they never switch
//! while they hold the lock (a channel that parks hands it over, and it is
//! released before the next task runs), so they exclude each other by
//! running one at a time.

use core::cell::{Cell, UnsafeCell};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering, compiler_fence};

use crate::membarrier;

/// Wakes of tasks of the waker's own worker, and none of another thread,
/// that bias a lock.
const BIAS_AFTER: u8 = 64;

/// `SpinLock::owner` of a lock biased to no thread.
const UNBIASED: u64 = 0;

/// `THREAD_ID` of a thread that owns no biased lock.
const NO_ID: u64 = u64::MAX;

/// The ids of the threads locks are biased to: never reused, so a bias to
/// a thread that exited is revoked like any other.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's id once a lock was biased to it, `NO_ID` before.
    static THREAD_ID: Cell<u64> = const { Cell::new(NO_ID) };
}

#[inline]
fn thread_id() -> u64 {
    THREAD_ID.with(Cell::get)
}

/// This thread's id, given now if it has none.
#[cold]
fn assign_thread_id() -> u64 {
    THREAD_ID.with(|cell| {
        if cell.get() == NO_ID {
            cell.set(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        }
        cell.get()
    })
}

/// Laid out by hand: the lock's words take 16 bytes before the value, so
/// that a channel (with its `Arc` counts) still fits two cache lines, as it
/// did before the bias (laid out by the compiler, `locked` went to a third
/// one, after the value).
#[repr(C)]
pub(crate) struct SpinLock<T> {
    /// Held by whoever locks with a read-modify-write: every thread but the
    /// owner.
    locked: AtomicBool,
    /// Held by the owner when it locks through its bias.
    owner_holds: AtomicBool,
    /// Touched only by a holder of `locked`.
    bias: UnsafeCell<Bias>,
    /// The thread id the lock is biased to, or `UNBIASED`. Changed only by
    /// a holder of `locked`.
    owner: AtomicU64,
    value: UnsafeCell<T>,
}

/// Whether the lock may still be biased.
struct Bias {
    /// Wakes so far, all of tasks of the waker's own worker.
    local_wakes: u8,
    /// Biased once, or woke another thread's task: never biased (again).
    settled: bool,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (acquire on lock, release on unlock; module docs for the bias), so
// sharing it needs only `T: Send`, as for `std::sync::Mutex`. `bias` is
// touched under `locked` only.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            owner_holds: AtomicBool::new(false),
            owner: AtomicU64::new(UNBIASED),
            bias: UnsafeCell::new(Bias {
                local_wakes: 0,
                settled: false,
            }),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, for a caller that knows the lock is held (by itself,
    /// through a guard kept elsewhere: `select` locks several channels).
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.value.get()
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        let me = thread_id();
        if me != NO_ID && self.owner.load(Ordering::Relaxed) == me {
            self.owner_holds.store(true, Ordering::Relaxed);
            // Our half of the handshake with `revoke`: the store above
            // before the load below. The compiler keeps that order; the
            // revoker's barrier makes the processor keep it too.
            compiler_fence(Ordering::SeqCst);
            if self.owner.load(Ordering::Acquire) == me {
                return SpinGuard {
                    lock: self,
                    held: &self.owner_holds,
                };
            }
            // Revoked meanwhile.
            self.owner_holds.store(false, Ordering::Release);
        }
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.wait_unlocked();
        }
        if self.owner.load(Ordering::Relaxed) != UNBIASED {
            self.revoke();
        }
        SpinGuard {
            lock: self,
            held: &self.locked,
        }
    }

    /// Called holding `locked` on a biased lock: makes the owner lock
    /// through `locked` too, and waits until it no longer holds its bias.
    #[cold]
    fn revoke(&self) {
        self.owner.store(UNBIASED, Ordering::Relaxed);
        // The owner, if it set `owner_holds` before its barrier point, has
        // that store visible to us now; if after, its load of `owner` comes
        // after the point too and sees `UNBIASED` (module docs).
        membarrier::run();
        while self.owner_holds.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
    }

    /// Waits, reading only, until `locked` looks free.
    #[cold]
    fn wait_unlocked(&self) {
        while self.locked.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
    }

    /// Called holding `locked` (see `SpinGuard::note_wake`).
    fn note_wake(&self, here: bool) {
        // SAFETY: we hold `locked`, under which alone `bias` is touched.
        let bias = unsafe { &mut *self.bias.get() };
        if bias.settled {
            return;
        }
        if !here {
            bias.settled = true;
            return;
        }
        bias.local_wakes += 1;
        if bias.local_wakes == BIAS_AFTER {
            bias.settled = true;
            // Biasing needs a barrier for the revoker.
            if membarrier::available() {
                // Seen by the next holder of `locked` (released after this)
                // and by our own next `lock`.
                self.owner.store(assign_thread_id(), Ordering::Relaxed);
            }
        }
    }

    /// Whether the lock is biased to the calling thread (for tests).
    #[cfg(test)]
    fn is_biased_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_id()
    }
}

pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// The flag this guard holds: `locked`, or `owner_holds`.
    held: &'a AtomicBool,
}

impl<'a, T> SpinGuard<'a, T> {
    /// Gives up the guard without releasing the lock, and returns the flag
    /// whose release store of `false` releases it.
    ///
    /// # Safety
    ///
    /// The lock is released exactly once, through the returned flag, with
    /// release ordering, and on the calling thread if it holds the lock
    /// through its bias (that is, before the thread locks it again).
    pub(crate) unsafe fn hand_over(self) -> &'a AtomicBool {
        let guard = core::mem::ManuallyDrop::new(self);
        guard.held
    }

    /// Notes that the holder woke a blocked operation of the other side:
    /// a task of this thread's worker (`here`), or another thread's task
    /// or a plain thread. Biases the lock to this thread after
    /// [`BIAS_AFTER`] wakes that all stayed here (module docs).
    #[inline]
    pub(crate) fn note_wake(&self, here: bool) {
        if core::ptr::eq(self.held, &self.lock.locked) {
            self.lock.note_wake(here);
        }
    }
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
        self.held.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::AtomicUsize;

    use super::*;

    fn add_one(lock: &SpinLock<u64>) {
        *lock.lock() += 1;
    }

    /// `add_one` with a critical section long enough for two threads in it
    /// at once to lose an increment.
    fn add_one_slowly(lock: &SpinLock<u64>) {
        let mut guard = lock.lock();
        let seen = *guard;
        (0..20).for_each(|_| core::hint::spin_loop());
        *guard = seen + 1;
    }

    /// Locks `lock` to note a wake, `BIAS_AFTER` times.
    fn wake_here_enough(lock: &SpinLock<u64>) {
        (0..BIAS_AFTER).for_each(|_| lock.lock().note_wake(true));
    }

    fn registered() {
        membarrier::register();
        assert!(membarrier::available(), "this kernel offers membarrier");
    }

    #[test]
    fn a_lock_whose_wakes_stay_on_its_thread_gets_biased_to_it_once() {
        registered();
        let lock = SpinLock::new(0u64);
        (1..BIAS_AFTER).for_each(|_| lock.lock().note_wake(true));
        assert!(!lock.is_biased_here());
        lock.lock().note_wake(true);
        assert!(lock.is_biased_here());
        // The owner now holds `owner_holds`, not `locked`.
        let guard = lock.lock();
        assert!(core::ptr::eq(guard.held, &lock.owner_holds));
        assert!(!lock.locked.load(Ordering::Relaxed));
        drop(guard);
        add_one(&lock);
        // Another thread revokes the bias; the lock is not biased again.
        std::thread::scope(|s| {
            s.spawn(|| add_one(&lock));
        });
        wake_here_enough(&lock);
        assert!(!lock.is_biased_here());
        assert!(core::ptr::eq(lock.lock().held, &lock.locked));
        assert_eq!(*lock.lock(), 2);
    }

    #[test]
    fn a_lock_that_woke_another_thread_is_never_biased() {
        registered();
        let lock = SpinLock::new(0u64);
        lock.lock().note_wake(false);
        wake_here_enough(&lock);
        wake_here_enough(&lock);
        assert!(!lock.is_biased_here());
    }

    /// Each of many locks is revoked by one thread while its owner keeps
    /// taking it through its bias: no increment may be lost. (Without the
    /// barrier in `revoke`, increments are lost.)
    #[test]
    fn a_biased_lock_excludes_the_thread_that_revokes_it() {
        const LOCKS: usize = 2000;
        const ADDS: u64 = 20;
        registered();
        let locks: Vec<SpinLock<u64>> = (0..LOCKS).map(|_| SpinLock::new(0)).collect();
        for lock in &locks {
            wake_here_enough(lock);
            assert!(lock.is_biased_here());
        }
        // How many locks the owner has started on, and how many the
        // revoking thread is done with.
        let started = AtomicUsize::new(0);
        let revoked = AtomicUsize::new(0);
        let owner_adds: Vec<u64> = std::thread::scope(|s| {
            s.spawn(|| {
                for (k, lock) in locks.iter().enumerate() {
                    while started.load(Ordering::Acquire) <= k {
                        core::hint::spin_loop();
                    }
                    (0..ADDS).for_each(|_| add_one_slowly(lock));
                    revoked.store(k + 1, Ordering::Release);
                }
            });
            // The owner hammers each lock until the other thread is done
            // with it.
            (0..LOCKS)
                .map(|k| {
                    let mut adds = 0;
                    loop {
                        add_one_slowly(&locks[k]);
                        adds += 1;
                        started.store(k + 1, Ordering::Release);
                        if revoked.load(Ordering::Acquire) > k {
                            return adds;
                        }
                    }
                })
                .collect()
        });
        for (lock, adds) in locks.iter().zip(owner_adds) {
            assert!(!lock.is_biased_here());
            assert_eq!(*lock.lock(), adds + ADDS);
        }
    }
}
