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
//! (four locks) measured 64-72 ns with the bias below against 69-83 ns
//! without (scratch program, 6 alternating runs each).
//!
//! After [`BIAS_AFTER`] locks in a row by one thread, the lock is biased to
//! that thread, which from then on locks with a plain store and load on
//! `owner_holds` and `owner` (Dekker's protocol, with only a compiler fence
//! between its store and its load). Any other thread revokes the bias, once
//! and for good: holding `locked`, it clears `owner`, runs a barrier on
//! every thread of the process (`membarrier`), then waits for `owner_holds`
//! to be false. The barrier stands in for the owner's missing fence: the
//! owner either set `owner_holds` before its barrier point (the revoker
//! sees it, and waits for the owner's release), or reads `owner` after it
//! and backs off to `locked`. A revocation costs one system call (about
//! 130 ns here), and a lock is biased at most once. Locks are biased only
//! once a `Runtime` registered the process for membarrier, and never where
//! it is missing (an old kernel, a seccomp filter, Miri).
//!
//! Tasks of one worker share the bias of its thread; they never switch
//! while they hold the lock (a channel that parks hands it over, and it is
//! released before the next task runs), so they exclude each other by
//! running one at a time.

use core::cell::{Cell, UnsafeCell};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering, compiler_fence};

use crate::membarrier;

/// Locks in a row by one thread that bias the lock to it. Enough that a
/// channel used by several threads rarely gets biased (and revoked) by
/// chance: a revocation then costs at most 0.5 ns per lock taken before.
const BIAS_AFTER: u32 = 256;

/// `SpinLock::owner` of a lock biased to no thread.
const UNBIASED: u64 = 0;

/// `THREAD_ID` of a thread that never needed one (no lock is biased to
/// it).
const NO_ID: u64 = u64::MAX;

/// The ids of the threads locks are biased to: never reused, so a bias to
/// a thread that exited is revoked like any other.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_ID: Cell<u64> = const { Cell::new(NO_ID) };
}

/// This thread's bias id, or `NO_ID` if it never took one.
#[inline]
fn thread_id() -> u64 {
    THREAD_ID.with(Cell::get)
}

/// This thread's bias id, taken now if needed.
fn assigned_thread_id() -> u64 {
    THREAD_ID.with(|id| {
        if id.get() == NO_ID {
            id.set(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

pub(super) struct SpinLock<T> {
    /// Held by whoever locks with a read-modify-write: every thread but the
    /// owner.
    locked: AtomicBool,
    /// Held by the owner when it locks through its bias.
    owner_holds: AtomicBool,
    /// The thread id the lock is biased to, or `UNBIASED`. Changed only by
    /// a holder of `locked`.
    owner: AtomicU64,
    /// Touched only by a holder of `locked`.
    streak: UnsafeCell<Streak>,
    value: UnsafeCell<T>,
}

/// Who took `locked` last, and how many times in a row.
struct Streak {
    last: u64,
    count: u32,
    /// The lock was biased once: never again.
    settled: bool,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (acquire on lock, release on unlock; module docs for the bias), so
// sharing it needs only `T: Send`, as for `std::sync::Mutex`. `streak` is
// touched under `locked` only.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(super) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            owner_holds: AtomicBool::new(false),
            owner: AtomicU64::new(UNBIASED),
            streak: UnsafeCell::new(Streak {
                last: NO_ID,
                count: 0,
                settled: false,
            }),
            value: UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(super) fn lock(&self) -> SpinGuard<'_, T> {
        let me = thread_id();
        if self.owner.load(Ordering::Relaxed) == me {
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
        self.lock_shared()
    }

    /// Takes `locked`, revoking the bias if the lock has one.
    #[inline(never)]
    fn lock_shared(&self) -> SpinGuard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.wait_unlocked();
        }
        if self.owner.load(Ordering::Relaxed) == UNBIASED {
            self.count_streak();
        } else {
            self.revoke();
        }
        SpinGuard {
            lock: self,
            held: &self.locked,
        }
    }

    /// Called holding `locked` on an unbiased lock: biases it to this
    /// thread after `BIAS_AFTER` locks in a row.
    fn count_streak(&self) {
        // SAFETY: we hold `locked`, under which alone `streak` is touched.
        let streak = unsafe { &mut *self.streak.get() };
        if streak.settled {
            return;
        }
        let me = assigned_thread_id();
        if streak.last != me {
            streak.last = me;
            streak.count = 0;
        }
        streak.count += 1;
        if streak.count == BIAS_AFTER {
            streak.settled = true;
            // Biasing needs a barrier for the revoker.
            if membarrier::available() {
                // Seen by the next holder of `locked` (released after this)
                // and by our own next `lock`.
                self.owner.store(me, Ordering::Relaxed);
            }
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

    /// Whether the lock is biased to the calling thread (for tests).
    #[cfg(test)]
    fn is_biased_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_id()
    }
}

pub(super) struct SpinGuard<'a, T> {
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
    pub(super) unsafe fn hand_over(self) -> &'a AtomicBool {
        let guard = core::mem::ManuallyDrop::new(self);
        guard.held
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

    #[test]
    fn a_lock_taken_in_a_row_by_one_thread_gets_biased_to_it_once() {
        membarrier::register();
        assert!(membarrier::available(), "this kernel offers membarrier");
        let lock = SpinLock::new(0u64);
        for _ in 1..BIAS_AFTER {
            add_one(&lock);
        }
        assert!(!lock.is_biased_here());
        add_one(&lock);
        assert!(lock.is_biased_here());
        // The owner now holds `owner_holds`, not `locked`.
        let guard = lock.lock();
        assert!(core::ptr::eq(guard.held, &lock.owner_holds));
        assert!(!lock.locked.load(Ordering::Relaxed));
        drop(guard);
        // Another thread revokes the bias; the lock is not biased again,
        // however often one thread takes it.
        std::thread::scope(|s| {
            s.spawn(|| add_one(&lock));
        });
        for _ in 0..2 * BIAS_AFTER {
            add_one(&lock);
        }
        assert!(!lock.is_biased_here());
        assert!(core::ptr::eq(lock.lock().held, &lock.locked));
        assert_eq!(*lock.lock(), u64::from(3 * BIAS_AFTER + 1));
    }

    /// Each of many locks is revoked by one thread while its owner keeps
    /// taking it through its bias: no increment may be lost. (Without the
    /// barrier in `revoke`, increments are lost.)
    #[test]
    fn a_biased_lock_excludes_the_thread_that_revokes_it() {
        const LOCKS: usize = 2000;
        const ADDS: u64 = 20;
        membarrier::register();
        assert!(membarrier::available(), "this kernel offers membarrier");
        let locks: Vec<SpinLock<u64>> = (0..LOCKS).map(|_| SpinLock::new(0)).collect();
        for lock in &locks {
            (0..BIAS_AFTER).for_each(|_| add_one(lock));
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
            assert_eq!(*lock.lock(), u64::from(BIAS_AFTER) + adds + ADDS);
        }
    }
}
