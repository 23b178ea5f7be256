//! Parking and waking, the same for tasks and plain threads.
//!
//! Every blocking operation (join, channel send/recv, sleep) follows one
//! pattern: check the condition, register a [`Waker::current`] where the
//! other side will find it, then [`park`] and check again. Parking may
//! return spuriously; a wake that comes before the park is not lost (a
//! task's state records it, std's thread parker a token).
//!
//! A waker counts no reference to its task. While a task is `PARKED`, the
//! scheduler's reference to it belongs to its state, and the wake that
//! moves it back to `RUNNING` takes that reference over to queue the task
//! ([`Waker::claim`]). A counted waker would cost two atomic
//! read-modify-writes per blocking operation (clone, then drop once the
//! task ran), a third of a channel ping-pong's. The price is one rule: the
//! other side claims a waker while its owner is certainly still blocked in
//! the operation that registered it (a completed channel waiter is marked
//! `CLAIMING` until then, see `wait`; a join completion claims before
//! its state says done), since the owner may return, finish and be freed
//! as soon as it can see the operation completed. It acts on the claim
//! ([`Wakeup::wake`]) afterwards, outside any lock.
//!
//! A consequence of that rule: while a task is blocked, only wakes of the
//! operation it is blocked in can come from other threads (the wakes of
//! its earlier operations were done before those returned). An operation
//! whose wakes all take a lock first can therefore park holding that lock
//! and have it released once the task is marked parked
//! ([`park_releasing`], Go's `gopark` with an unlock function): parking
//! then needs no read-modify-write, since no wake can race with it. The
//! channels park that way; join and sleep use [`park`].

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::parked::ParkedOn;
use super::raw::{Header, TaskRef};
use super::state::{self, Claim};
use super::worker;

/// Whom a blocked operation wakes: a task, or a plain thread blocked in
/// [`park`].
pub(crate) enum Waker {
    /// Not counted (module docs).
    Task(NonNull<Header>),
    Thread(std::thread::Thread),
}

impl Waker {
    /// The running task, or else the calling thread.
    #[inline]
    pub(crate) fn current() -> Waker {
        match worker::current_task() {
            Some(task) => Waker::Task(task),
            None => Waker::Thread(std::thread::current()),
        }
    }

    /// Whether the owner is a task that will never run again: its runtime
    /// stopped (every worker left its loop) with the task not finished.
    ///
    /// # Safety
    ///
    /// The owner is still blocked in the operation that registered this
    /// waker, as for [`claim`](Self::claim).
    pub(crate) unsafe fn never_runs(&self) -> bool {
        match self {
            // SAFETY: the owner is blocked, so its cell is alive (a
            // stopped runtime leaks the cells of the tasks it leaves
            // parked, as `claim` relies on too).
            Waker::Task(task) => unsafe { task.as_ref() }.runtime_stopped(),
            Waker::Thread(_) => false,
        }
    }

    /// Wakes the owner: a parked task is made runnable (the returned
    /// [`Wakeup`] queues it), a running one's next park returns at once.
    ///
    /// # Safety
    ///
    /// The owner is still blocked in the operation that registered this
    /// waker, and cannot see it completed before this returns; the caller
    /// completes that operation (it is the one party of it that claims).
    pub(crate) unsafe fn claim(self) -> Wakeup {
        let task = match self {
            Waker::Task(task) => task,
            Waker::Thread(thread) => return Wakeup::Thread(thread),
        };
        // SAFETY: the owner is blocked, so it has not finished: its cell
        // is alive (its scheduler's reference is held by the run queue, by
        // `running` or by its PARKED state).
        let claimed = if unsafe { worker::pinned_here(task) }.is_some() {
            // SAFETY: alive as above, and we complete the operation the
            // task is blocked in, on its worker's thread.
            unsafe { claim_here(task) }
        } else {
            // SAFETY: alive as above.
            unsafe { claim(task) }
        };
        match claimed {
            Some(task) => Wakeup::Task(task),
            None => Wakeup::Nothing,
        }
    }

    /// Wakes the owner at once if it is a task of the calling thread's
    /// worker, and gives the waker back otherwise. Such a wake moves the
    /// task's state with a plain load and store and queues it on a
    /// thread-local queue, so it may be done under the claimer's lock (a
    /// channel's): the task cannot run before this thread lets it.
    ///
    /// # Safety
    ///
    /// As for [`claim`](Self::claim).
    #[inline]
    pub(crate) unsafe fn wake_here(self) -> Result<(), Waker> {
        let Waker::Task(task) = self else {
            return Err(self);
        };
        // SAFETY: the owner is blocked, so its cell is alive (`claim`).
        let Some(worker) = (unsafe { worker::pinned_here(task) }) else {
            return Err(self);
        };
        // SAFETY: alive as above, and we complete the operation the task is
        // blocked in, on its worker's thread.
        if let Some(task) = unsafe { claim_here(task) } {
            worker.push_ready(task);
        }
        Ok(())
    }
}

/// What is left to do of a claimed wake, once the claimer's lock is
/// released (queueing a task may take its worker's lock and wake the
/// worker's thread).
#[must_use = "a claimed task that is not queued never runs again"]
pub(crate) enum Wakeup {
    /// Queue the task (the parked reference, taken over).
    Task(TaskRef),
    Thread(std::thread::Thread),
    /// The task was running: its next park returns at once.
    Nothing,
}

impl Wakeup {
    pub(crate) fn wake(self) {
        match self {
            Wakeup::Task(task) => worker::schedule(task),
            Wakeup::Thread(thread) => thread.unpark(),
            Wakeup::Nothing => {}
        }
    }
}

/// Wakes a task the caller holds a reference to (a timer's).
pub(crate) fn wake_task(task: &TaskRef) {
    // SAFETY: our reference keeps the cell alive.
    if let Some(parked) = unsafe { claim(task.as_ptr()) } {
        worker::schedule(parked);
    }
}

/// Makes a parked task runnable and returns its parked reference, or, if it
/// is running, makes its next park return at once (`state::claim`).
///
/// # Safety
///
/// The task's cell stays alive during the call.
unsafe fn claim(task: NonNull<Header>) -> Option<TaskRef> {
    // SAFETY: by the contract.
    let state = unsafe { &task.as_ref().state };
    match state::claim(state) {
        // SAFETY: a PARKED state holds the scheduler's reference (given up
        // by `into_raw` when the task parked); our exchange took the state
        // out of PARKED, so that reference is ours alone.
        Claim::WasParked => Some(unsafe { TaskRef::from_raw(task) }),
        Claim::Noted => None,
    }
}

/// [`claim`] made on the task's own worker thread by the completer of the
/// operation the task is blocked in. Nothing else can move its state
/// meanwhile: not the task (it is not running: its thread runs us), not
/// its timers (its worker fires them, on this thread), not another party of
/// its operation (only the completer claims), not an earlier operation's
/// (those were done before they returned). So a load and a store do, where
/// a claim from another thread needs a read-modify-write (about 4 ns
/// here, two per ping-pong round trip).
///
/// # Safety
///
/// As stated, and the task's cell stays alive during the call.
#[inline]
unsafe fn claim_here(task: NonNull<Header>) -> Option<TaskRef> {
    // SAFETY: by the contract.
    let state = unsafe { &task.as_ref().state };
    match state::claim_here(state) {
        // SAFETY: as in `claim`: the PARKED state's reference is ours.
        Claim::WasParked => Some(unsafe { TaskRef::from_raw(task) }),
        Claim::Noted => None,
    }
}

/// Suspends the running task until it is woken, or blocks the calling
/// thread until it is unparked. May return spuriously.
///
/// `on` says what the task waits for, for its dump.
pub(crate) fn park(on: &ParkedOn) {
    if !worker::park_task(on) {
        std::thread::park();
    }
}

/// Like [`park`], returning at `deadline` at the latest.
pub(crate) fn park_until(deadline: Instant, on: &ParkedOn) {
    if !worker::park_task_until(deadline, on) {
        park_thread_until(deadline);
    }
}

/// Like [`park`] (or [`park_until`], given a deadline), called holding a
/// lock that every wake of the caller takes first: the lock is released
/// once the caller is parked, as Go's `gopark` releases a channel's lock.
/// A wake then always finds a parked task, so parking needs no atomic
/// read-modify-write (a channel ping-pong took 8 per round trip, each
/// about 4 ns here).
///
/// # Safety
///
/// `lock` is a lock flag the caller holds (`true`) and gives up to this
/// call, which releases it with a release store of `false`; it stays alive
/// while the caller is parked. Until the caller runs again, whatever wakes
/// it acquires that lock first, or runs on the caller's worker thread
/// (a timer).
#[inline]
pub(crate) unsafe fn park_releasing(lock: &AtomicBool, deadline: Option<Instant>, on: &ParkedOn) {
    // SAFETY: forwarded to our caller's contract.
    if unsafe { worker::park_task_releasing(lock, deadline, on) } {
        return;
    }
    lock.store(false, Ordering::Release);
    match deadline {
        Some(deadline) => park_thread_until(deadline),
        None => std::thread::park(),
    }
}

fn park_thread_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::park_timeout(deadline - now);
    }
}
