//! The two state machines every blocking operation of a task goes
//! through, as plain functions on atomics: the park state (is the task
//! running, parked, or woken while running?) and the join state (has the
//! task completed, and who waits for it?).
//!
//! They are written against `super::atomic`, which is `core`'s atomics in
//! the runtime and loom's in `runtime/tests/loom.rs`, which includes this
//! very file: the model checker explores every interleaving of the code
//! that runs, not of a copy.
//!
//! # Park state
//!
//! `RUNNING` while the task runs or waits in a run queue; `NOTIFIED` when
//! woken while `RUNNING` (its next park returns at once); `PARKED` when
//! suspended with nothing queued, the state then holding the scheduler's
//! reference to the task, which the wake that moves it out of `PARKED`
//! takes over to queue it.
//!
//! # Join state
//!
//! `PENDING` until the task completes or its handle waits or goes;
//! `WAITING` once the joiner registered its waker and blocks; `CLAIMING`
//! while the completion claims that waker; `DONE` once the outcome is
//! published; `DETACHED` once the handle was dropped unjoined (the task
//! then drops its outcome itself).
//!
//! `CLAIMING` closes a lost wake-up: a claim that finds the joiner running
//! only notes the wake (`NOTIFIED`); had the joiner consumed that note and
//! seen no `DONE` yet, it would have parked again, for good. A joiner that
//! sees `CLAIMING` waits it out instead of parking.

use super::atomic::{AtomicU8, Ordering};

pub(crate) const RUNNING: u8 = 0;
pub(crate) const NOTIFIED: u8 = 1;
pub(crate) const PARKED: u8 = 2;

/// What a claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The task was parked: it is `RUNNING` now, and the claimer owns the
    /// parked reference and must queue the task.
    WasParked,
    /// The task was running (or already notified): its next park returns
    /// at once.
    Noted,
}

/// Wakes the task whose park state is `state`, from any thread.
///
/// It always writes the state, even one already `NOTIFIED` (by a stale
/// wake, such as a timer of an earlier sleep): the task may be consuming
/// that note right now, and its consuming read must see this claim's
/// release, so that it then sees what the claimer published before (a
/// join's `CLAIMING`). A claim that only read `NOTIFIED` there left the
/// joiner free to consume the note, read `WAITING`, and park for good.
#[inline]
pub(crate) fn claim(state: &AtomicU8) -> Claim {
    let mut s = state.load(Ordering::Acquire);
    loop {
        let next = match s {
            PARKED => RUNNING,
            _ => NOTIFIED,
        };
        match state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) if s == PARKED => return Claim::WasParked,
            Ok(_) => return Claim::Noted,
            Err(actual) => s = actual,
        }
    }
}

/// [`claim`] with a plain load and store, for a claimer that nothing can
/// race with: it runs on the task's own worker thread (so the task is not
/// running) and completes the operation the task is blocked in (so no
/// other party claims it meanwhile; see `park::claim_here`).
#[inline]
pub(crate) fn claim_here(state: &AtomicU8) -> Claim {
    match state.load(Ordering::Relaxed) {
        PARKED => {
            state.store(RUNNING, Ordering::Relaxed);
            Claim::WasParked
        }
        RUNNING => {
            state.store(NOTIFIED, Ordering::Relaxed);
            Claim::Noted
        }
        _ => Claim::Noted,
    }
}

/// The running task consumes a wake that came since its last park; true
/// if there was one (it then does not park).
#[inline]
pub(crate) fn take_notified(state: &AtomicU8) -> bool {
    // A load first: the read-modify-write is only needed when there is one.
    state.load(Ordering::Relaxed) == NOTIFIED
        && state
            .compare_exchange(NOTIFIED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
}

/// The task has switched out to park: marks it `PARKED`, handing its
/// scheduler reference to the state. False if it was woken meanwhile
/// (`NOTIFIED`): it is `RUNNING` again and must be queued to run.
#[inline]
pub(crate) fn mark_parked(state: &AtomicU8) -> bool {
    if state
        .compare_exchange(RUNNING, PARKED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        return true;
    }
    state.store(RUNNING, Ordering::Relaxed);
    false
}

pub(crate) const JOIN_PENDING: u8 = 0;
pub(crate) const JOIN_WAITING: u8 = 1;
pub(crate) const JOIN_DONE: u8 = 2;
pub(crate) const JOIN_DETACHED: u8 = 3;
pub(crate) const JOIN_CLAIMING: u8 = 4;

/// What [`complete`] found.
pub(crate) enum Completed<W> {
    /// The joiner waited: its claimed wake, to act on.
    Woke(W),
    /// Nobody waited yet: the joiner will see `DONE`.
    Done,
    /// The handle is gone: the caller drops the outcome itself.
    Detached,
}

/// The task completed (its outcome is written): publishes `DONE` and,
/// if the joiner waits, claims its waker with `claim_waker` first (while
/// the joiner is certainly still blocked: it may be freed once it sees
/// `DONE`).
#[inline]
pub(crate) fn complete<W>(join: &AtomicU8, claim_waker: impl FnOnce() -> W) -> Completed<W> {
    let mut s = join.load(Ordering::Acquire);
    loop {
        match s {
            JOIN_WAITING => {
                // Only we move the state on from WAITING. The claim's
                // release (a park-state CAS, or the claimer's own thread)
                // orders this store before the wake the joiner acquires.
                join.store(JOIN_CLAIMING, Ordering::Relaxed);
                let woke = claim_waker();
                join.store(JOIN_DONE, Ordering::Release);
                return Completed::Woke(woke);
            }
            JOIN_DETACHED => return Completed::Detached,
            _ => {}
        }
        // Pending: the joiner may start waiting or the handle go meanwhile.
        match join.compare_exchange(s, JOIN_DONE, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Completed::Done,
            Err(actual) => s = actual,
        }
    }
}

/// The joiner, having written its waker: true if it must wait (the state
/// is now `WAITING`), false if the task completed meanwhile.
#[inline]
pub(crate) fn start_waiting(join: &AtomicU8) -> bool {
    join.compare_exchange(
        JOIN_PENDING,
        JOIN_WAITING,
        Ordering::AcqRel,
        Ordering::Acquire,
    )
    .is_ok()
}

/// The joiner waits for `DONE`: parks (`park`, which may return
/// spuriously) while the state is `WAITING`, and waits a `CLAIMING` out
/// with `spin` (a few instructions of the completing thread).
#[inline]
pub(crate) fn wait_done(join: &AtomicU8, mut park: impl FnMut(), mut spin: impl FnMut()) {
    loop {
        match join.load(Ordering::Acquire) {
            JOIN_DONE => return,
            JOIN_CLAIMING => spin(),
            _ => park(),
        }
    }
}
