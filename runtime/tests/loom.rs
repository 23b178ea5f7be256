//! Model checks of the task state machines (`src/task/state.rs`, included
//! here as it is, over loom's atomics): every interleaving of a joiner, a
//! completer, a second waker and a detaching handle, within loom's bounds.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p growstack-runtime --test loom --release
//! ```
//!
//! A task is modelled by a loom thread: switching out to park is the
//! thread parking until a waker queued it (`queued`), as its worker would
//! resume it only once it is queued.

#![cfg(loom)]

mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicU8, Ordering};
}

#[allow(dead_code)]
#[path = "../src/task/state.rs"]
mod state;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Condvar, Mutex};
use loom::thread;

use state::{
    Claim, Completed, JOIN_DETACHED, JOIN_DONE, JOIN_PENDING, RUNNING, claim, complete,
    mark_parked, start_waiting, take_notified, wait_done,
};

/// A task: its park state, and whether a waker queued it to run (its
/// worker, here a condition variable, resumes it once queued).
struct Task {
    state: atomic::AtomicU8,
    queued: Mutex<bool>,
    resume: Condvar,
}

impl Task {
    fn new() -> Task {
        Task {
            state: atomic::AtomicU8::new(RUNNING),
            queued: Mutex::new(false),
            resume: Condvar::new(),
        }
    }

    /// `park::park` of a running task: consume a wake, or switch out and
    /// stay out until queued (may return spuriously, as the real one).
    fn park(&self) {
        if take_notified(&self.state) {
            return;
        }
        if !mark_parked(&self.state) {
            return; // woken while switching out: it runs again
        }
        let mut queued = self.queued.lock().unwrap();
        while !*queued {
            queued = self.resume.wait(queued).unwrap();
        }
        *queued = false;
    }

    /// What a waker does with a claim: queue the task if it was parked.
    fn wake(&self, claim: Claim) {
        if claim == Claim::WasParked {
            *self.queued.lock().unwrap() = true;
            self.resume.notify_one();
        }
    }
}

/// A joiner blocks on a task that completes on another thread: the joiner
/// always returns, with DONE. (Without CLAIMING, loom finds the lost
/// wake-up: the joiner consumes the noted wake before DONE and parks for
/// good, reported as a deadlock.)
#[test]
fn a_joiner_always_sees_the_completion() {
    loom::model(|| {
        let joiner = Arc::new(Task::new());
        let join = Arc::new(atomic::AtomicU8::new(JOIN_PENDING));
        let (j, jn) = (joiner.clone(), join.clone());
        let waiting = thread::spawn(move || {
            if start_waiting(&jn) {
                wait_done(&jn, || j.park(), thread::yield_now);
            }
            assert_eq!(jn.load(atomic::Ordering::Acquire), JOIN_DONE);
        });
        match complete(&join, || claim(&joiner.state)) {
            Completed::Woke(c) => joiner.wake(c),
            Completed::Done => {}
            Completed::Detached => unreachable!("the handle is joining"),
        }
        waiting.join().unwrap();
    });
}

/// Two wakers (a completion and a stale timer) claim one parked task: it
/// is queued at most once, and a park never loses both wakes.
#[test]
fn two_claims_queue_a_parked_task_at_most_once() {
    loom::model(|| {
        let task = Arc::new(Task::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let claimers: Vec<_> = (0..2)
            .map(|_| {
                let (t, q) = (task.clone(), queued.clone());
                thread::spawn(move || {
                    if claim(&t.state) == Claim::WasParked {
                        q.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // The task parks once: either it consumed a wake, or it parked and
        // a claim took it out of PARKED (and queues it), or it parked last.
        let parked = !take_notified(&task.state) && mark_parked(&task.state);
        for c in claimers {
            c.join().unwrap();
        }
        let n = queued.load(Ordering::SeqCst);
        assert!(n <= 1, "queued {n} times");
        if parked {
            // Both claims came after it parked, or one before (noted, then
            // consumed by nobody: the park CAS saw NOTIFIED and failed).
            assert_eq!(n, 1, "parked with both wakes lost");
        }
    });
}

/// A handle dropped unjoined while the task completes: the outcome is
/// dropped exactly once, by the task (DETACHED seen) or by the handle
/// (DONE seen by its swap).
#[test]
fn a_detach_racing_a_completion_leaves_the_outcome_to_exactly_one_side() {
    loom::model(|| {
        let join = Arc::new(atomic::AtomicU8::new(JOIN_PENDING));
        let drops = Arc::new(AtomicUsize::new(0));
        let (jn, d) = (join.clone(), drops.clone());
        let handle = thread::spawn(move || {
            if jn.swap(JOIN_DETACHED, atomic::Ordering::AcqRel) == JOIN_DONE {
                d.fetch_add(1, Ordering::SeqCst);
            }
        });
        if let Completed::Detached = complete(&join, || unreachable!("nobody waits")) {
            drops.fetch_add(1, Ordering::SeqCst);
        }
        handle.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

