//! Model checks of the task state machines (`src/task/state.rs`) and of
//! the idle protocol (`src/task/idle.rs`), included here as they are, over
//! loom's atomics and locks: every interleaving of a joiner, a completer,
//! a second waker and a detaching handle, and of a worker going to sleep
//! while work arrives, within loom's bounds.
//!
//! What loom cannot express: the biased channel lock's revocation, whose
//! key step is `membarrier`, a barrier the kernel runs on every thread of
//! the process at once (loom has no way to put a fence into another
//! thread's execution at an arbitrary point). It is checked by
//! `a_biased_lock_excludes_the_thread_that_revokes_it` in `spin`,
//! which loses increments when the barrier is removed.
//!
//! The select token (`src/chan/select_state.rs`) is checked the same
//! way: a select parked on two channels, two senders completing it and a
//! timeout, with no message lost or delivered twice.
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
    pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
}

mod sync {
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
}

#[allow(dead_code)]
#[path = "../src/task/state.rs"]
mod state;

#[allow(dead_code)]
#[path = "../src/task/idle.rs"]
mod idle;

#[allow(dead_code)]
#[path = "../src/chan/select_state.rs"]
mod select_state;

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

/// A joiner, whose park state starts as `initial`, blocks on a task that
/// completes on another thread: it always returns, with DONE.
fn joiner_sees_the_completion(initial: u8) {
    let joiner = Arc::new(Task::new());
    joiner.state.store(initial, atomic::Ordering::Relaxed);
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
}

/// (Without CLAIMING, loom finds the lost wake-up: the joiner consumes the
/// noted wake before DONE and parks for good, reported as a deadlock.)
#[test]
fn a_joiner_always_sees_the_completion() {
    loom::model(|| joiner_sees_the_completion(RUNNING));
}

/// The same with a stale wake pending on the joiner (a timer of an
/// earlier sleep fired while it was running): the completion's claim finds
/// it `NOTIFIED`, and the joiner consumes that note concurrently. A claim
/// that only read the state there gave the joiner nothing to synchronise
/// with: it could consume the note, still read `WAITING`, and park for
/// good (the soak found this; loom reports it as a deadlock).
#[test]
fn a_joiner_with_a_stale_wake_pending_always_sees_the_completion() {
    loom::model(|| joiner_sees_the_completion(state::NOTIFIED));
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

/// An eventfd as the worker's poller uses it: `write` makes it readable,
/// `read` waits until it is and resets it.
#[derive(Default)]
struct EventFd {
    count: Mutex<u64>,
    readable: Condvar,
}

impl EventFd {
    fn write(&self) {
        *self.count.lock().unwrap() += 1;
        self.readable.notify_one();
    }

    fn read(&self) {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.readable.wait(count).unwrap();
        }
        *count = 0;
    }
}

/// The state under a model worker's lock: its sleeping flags and an inbox.
#[derive(Default)]
struct Worker {
    sleep: idle::Flags,
    inbox: usize,
}

fn flags(w: &mut Worker) -> &mut idle::Flags {
    &mut w.sleep
}

/// A worker goes to sleep while one thread pushes a task where its recheck
/// looks (the injector) and another delivers one to its inbox: it never
/// sleeps through either. (Without the recheck after the announcement,
/// loom finds the worker asleep for good: the pusher read no sleeper.)
#[test]
fn an_idle_worker_never_sleeps_through_work() {
    loom::model(|| {
        let sleepers = Arc::new(sync::AtomicUsize::new(0));
        let worker = Arc::new((Mutex::new(Worker::default()), EventFd::default()));
        let injected = Arc::new(sync::AtomicUsize::new(0));
        let pusher = {
            let (sleepers, worker, injected) = (sleepers.clone(), worker.clone(), injected.clone());
            thread::spawn(move || {
                injected.fetch_add(1, Ordering::SeqCst);
                idle::notify(&sleepers, || {
                    idle::kick(&worker.0, || worker.1.write(), flags);
                });
            })
        };
        let deliverer = {
            let worker = worker.clone();
            thread::spawn(move || {
                idle::deliver(&worker.0, || worker.1.write(), flags, |w| w.inbox += 1)
            })
        };
        // The worker's loop: take what it finds; sleep when it found
        // nothing; until it has run both tasks.
        let mut ran = 0;
        while ran < 2 {
            let taken = injected.swap(0, Ordering::SeqCst)
                + std::mem::take(&mut worker.0.lock().unwrap().inbox);
            if taken > 0 {
                ran += taken;
                continue;
            }
            idle::sleep(
                &sleepers,
                &worker.0,
                flags,
                |w| w.inbox > 0,
                || {
                    let n = injected.swap(0, Ordering::SeqCst);
                    ran += n;
                    n > 0
                },
                // As the runtime's worker does: wait outside the lock, on
                // an eventfd, which keeps a wake written before the wait.
                |g| {
                    drop(g);
                    worker.1.read();
                    (worker.0.lock().unwrap(), true)
                },
            );
        }
        pusher.join().unwrap();
        deliverer.join().unwrap();
        assert_eq!(ran, 2);
    });
}

/// A channel of the select model: the arms of the select registered in its
/// wait list, and the message slot of each arm's waiter (written under the
/// channel's lock, as `wait::WaitList::give` does).
struct Chan {
    waiting: Mutex<Vec<usize>>,
}

/// One arm's waiter: its message slot and completion state (`wait`'s
/// WAITING / DONE; the CLAIMING step is the task state's business, checked
/// above).
struct ArmWaiter {
    msg: loom::cell::UnsafeCell<Option<u32>>,
    done: AtomicUsize,
}

/// A select parked on two channels, a sender on each, and optionally a
/// timeout racing them: exactly one sender hands its message over if the
/// select did not give up first, the other keeps its own; the select gets
/// the winner's message, from the arm the token names.
fn select_with_two_senders(times_out: bool) {
    let owner = Arc::new(Task::new());
    let token = Arc::new(atomic::AtomicUsize::new(select_state::WAITING));
    let chans: Arc<[Chan; 2]> = Arc::new([0, 1].map(|_| Chan {
        waiting: Mutex::new(Vec::new()),
    }));
    let arms: Arc<[ArmWaiter; 2]> = Arc::new([0, 1].map(|_| ArmWaiter {
        msg: loom::cell::UnsafeCell::new(None),
        done: AtomicUsize::new(0),
    }));
    // Registration, under each channel's lock (the select holds them all).
    for (i, chan) in chans.iter().enumerate() {
        chan.waiting.lock().unwrap().push(i);
    }
    let senders: Vec<_> = (0..2)
        .map(|i| {
            let (owner, token, chans, arms) =
                (owner.clone(), token.clone(), chans.clone(), arms.clone());
            thread::spawn(move || {
                let msg = 10 + i as u32;
                let mut waiting = chans[i].waiting.lock().unwrap();
                // `pop_winner`: take the waiter only if this sender wins.
                while let Some(arm) = waiting.pop() {
                    if select_state::try_select(&token, arm) {
                        arms[arm].msg.with_mut(|m| unsafe { *m = Some(msg) });
                        let claimed = claim(&owner.state);
                        arms[arm].done.store(1, Ordering::Release);
                        drop(waiting);
                        owner.wake(claimed);
                        return true; // handed over
                    }
                }
                false // kept its message
            })
        })
        .collect();
    let won = loop {
        if let Some(arm) = select_state::selected(&token) {
            break Some(arm);
        }
        if times_out {
            break select_state::abort(&token);
        }
        owner.park();
    };
    // Unregister every arm under its channel's lock.
    for (i, chan) in chans.iter().enumerate() {
        chan.waiting.lock().unwrap().retain(|&arm| arm != i);
    }
    let got = won.map(|arm| {
        while arms[arm].done.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        arms[arm].msg.with_mut(|m| unsafe { (*m).take() })
    });
    let handed: Vec<bool> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    match won {
        Some(arm) => {
            assert_eq!(got, Some(Some(10 + arm as u32)));
            assert_eq!(handed, [arm == 0, arm == 1], "one sender, the winner");
        }
        None => assert_eq!(handed, [false, false], "a sender after the timeout"),
    }
}

/// Three threads with a task's park make the full exploration take over
/// seven minutes; bounded to three preemptions (the bugs loom finds need
/// one or two: a sender winning the token between the owner's look and
/// its park, a timeout between a sender's win and its completion) it takes
/// seconds.
fn model_select(times_out: bool) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || select_with_two_senders(times_out));
}

#[test]
fn a_parked_select_takes_exactly_one_message() {
    model_select(false);
}

#[test]
fn a_select_timing_out_loses_no_message() {
    model_select(true);
}
