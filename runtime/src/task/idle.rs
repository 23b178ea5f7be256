//! How an idle worker sleeps without missing work: the protocol between a
//! worker going to sleep and whoever gives it work, as functions on the
//! worker's lock, its condition variable and the runtime's count of
//! sleepers.
//!
//! An idle worker first announces itself (`idle = true` under its lock,
//! then `sleepers += 1`), then looks for work once more (the recheck), and
//! only then waits (on its condition variable, or outside the lock on
//! something that keeps a wake, like an eventfd) until kicked or given
//! work under its lock. Whoever adds work where the recheck looks pushes it
//! first and then reads `sleepers` (both sequentially consistent): either
//! the recheck finds the work, or the pusher sees the sleeper and kicks it.
//! Work delivered under the worker's own lock (its inbox) needs no count:
//! the lock orders it with the wait.
//!
//! Written against `super::sync`, std's types in the runtime and loom's in
//! `runtime/tests/loom.rs`, which includes this very file.

use super::sync::{AtomicUsize, Mutex, MutexGuard, Ordering, fence};

/// A worker's sleeping flags, kept under its lock with whatever else the
/// lock guards.
#[derive(Default, Debug)]
pub(crate) struct Flags {
    /// Announced idle: about to sleep, or asleep.
    pub(crate) idle: bool,
    /// Told to wake up (and not yet awake).
    pub(crate) kicked: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The worker side. `flags` finds the flags in the guarded state;
/// `has_work` tells whether work was delivered under the lock (or the
/// runtime stops); `recheck` looks once more where pushers leave work
/// (and takes it: true); `wait` waits until woken (`kick`, `deliver`),
/// returning the guard and whether to keep waiting (false once a deadline
/// passed, or something else woke the worker). A `wait` that releases the
/// lock while it waits must wait on something that keeps a wake given
/// before it started (an eventfd does).
pub(crate) fn sleep<'a, T>(
    sleepers: &AtomicUsize,
    state: &'a Mutex<T>,
    flags: fn(&mut T) -> &mut Flags,
    has_work: impl Fn(&T) -> bool,
    recheck: impl FnOnce() -> bool,
    mut wait: impl FnMut(MutexGuard<'a, T>) -> (MutexGuard<'a, T>, bool),
) {
    flags(&mut lock(state)).idle = true;
    sleepers.fetch_add(1, Ordering::SeqCst);
    // The recheck's loads may be relaxed: this fence, paired with the
    // pusher's, orders them after the count (on x86 the locked add already
    // does; the language's memory model needs the fence).
    fence(Ordering::SeqCst);
    let found = recheck();
    let mut guard = lock(state);
    let mut waiting = !found;
    while waiting && !flags(&mut guard).kicked && !has_work(&guard) {
        (guard, waiting) = wait(guard);
    }
    let f = flags(&mut guard);
    f.idle = false;
    f.kicked = false;
    drop(guard);
    sleepers.fetch_sub(1, Ordering::SeqCst);
}

/// The pusher side, after it pushed work where a recheck looks: if some
/// worker announced itself idle, `kick_one` wakes one.
pub(crate) fn notify(sleepers: &AtomicUsize, kick_one: impl FnOnce()) {
    fence(Ordering::SeqCst);
    if sleepers.load(Ordering::SeqCst) > 0 {
        kick_one();
    }
}

/// Wakes the worker (with `wake`, under its lock) if it is idle and not
/// kicked yet; true if it did.
pub(crate) fn kick<T>(
    state: &Mutex<T>,
    wake: impl FnOnce(),
    flags: fn(&mut T) -> &mut Flags,
) -> bool {
    let mut guard = lock(state);
    let f = flags(&mut guard);
    if f.idle && !f.kicked {
        f.kicked = true;
        wake();
        return true;
    }
    false
}

/// Changes the worker's guarded state with `f` (gives it work), then wakes
/// it (with `wake`) if it is idle.
pub(crate) fn deliver<T>(
    state: &Mutex<T>,
    wake: impl FnOnce(),
    flags: fn(&mut T) -> &mut Flags,
    f: impl FnOnce(&mut T),
) {
    let mut guard = lock(state);
    f(&mut guard);
    let fl = flags(&mut guard);
    if fl.idle && !fl.kicked {
        fl.kicked = true;
        wake();
    }
}
