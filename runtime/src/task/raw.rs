//! The task cell: one heap allocation per task holding its header (state,
//! join protocol, execution context) and its stage (the closure, then the
//! result).
//!
//! Ownership: the cell is an `Arc`. The scheduler holds one reference while
//! the task is queued or running, the `JoinHandle` one, and every waker
//! registered for it (a channel's wait list, a timer, a joiner) one. The
//! execution context (`Context`) and the stage are touched only by the
//! worker that runs the task, except that the joiner reads the stage after
//! the join state says `DONE` (release/acquire).

use core::any::Any;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::park::Waker;
use super::runtime::Shard;
use crate::stack::{Chain, Slot};
use crate::stats;

/// Park states (`Header::state`). A task is `RUNNING` while it runs or
/// waits in a run queue; `NOTIFIED` when woken while `RUNNING` (its next
/// park returns at once); `PARKED` when suspended with nothing queued.
pub(crate) const RUNNING: u8 = 0;
pub(crate) const NOTIFIED: u8 = 1;
pub(crate) const PARKED: u8 = 2;

/// Join states (`Header::join`). `DETACHED`: the `JoinHandle` was dropped
/// without joining, so the task drops its outcome itself, on its own stack
/// (a result's destructor never runs on the worker's scheduler, where a
/// blocking call would block the whole worker).
const JOIN_PENDING: u8 = 0;
const JOIN_WAITING: u8 = 1;
const JOIN_DONE: u8 = 2;
const JOIN_DETACHED: u8 = 3;

/// `Header::worker` of a task that has not run yet.
pub(crate) const NO_WORKER: usize = usize::MAX;

/// What diagnostics say about a task.
pub(crate) struct TaskInfo {
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    /// Size of the task's slot.
    pub(crate) stack_size: usize,
}

/// Where a task runs: touched only by the worker that runs it.
pub(crate) struct Context {
    /// The stack pointer saved when the task was suspended.
    pub(crate) sp: usize,
    /// The task's slot, from its first run until it finishes.
    pub(crate) slot: Option<Slot>,
    /// The task's stack chain (its slot, then segments), likewise.
    pub(crate) chain: Option<Chain>,
    pub(crate) finished: bool,
    /// On its worker's list of tasks that grew (see `worker::maintain`).
    pub(crate) listed: bool,
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.finished {
            stats::task_ended();
        }
        // A task that started and never finished (its runtime was dropped
        // while it was parked) still has frames on its stacks, and a pinned
        // value among them may be pointed to from elsewhere: its memory is
        // leaked, never reused. (A `Slot` goes back to the arena only
        // through `arena::free`; dropping one leaks it.)
        self.slot = None;
        if let Some(chain) = self.chain.as_mut() {
            chain.leak();
        }
    }
}

pub(crate) struct Header {
    pub(crate) state: AtomicU8,
    join: AtomicU8,
    /// Written by the joiner before it sets `JOIN_WAITING`; taken by the
    /// completion after it sees that state.
    joiner: UnsafeCell<Option<Waker>>,
    /// The worker the task is pinned to from its first run on.
    pub(crate) worker: AtomicUsize,
    pub(crate) info: TaskInfo,
    /// Keeps the runtime alive while the task may be woken.
    pub(crate) shard: Arc<Shard>,
    pub(crate) ctx: UnsafeCell<Context>,
}

impl Header {
    fn new(shard: Arc<Shard>, info: TaskInfo) -> Header {
        stats::task_started();
        Header {
            state: AtomicU8::new(RUNNING),
            join: AtomicU8::new(JOIN_PENDING),
            joiner: UnsafeCell::new(None),
            worker: AtomicUsize::new(NO_WORKER),
            info,
            shard,
            ctx: UnsafeCell::new(Context {
                sp: 0,
                slot: None,
                chain: None,
                finished: false,
                listed: false,
            }),
        }
    }

    /// The task has run: it no longer counts as live.
    fn mark_finished(&self) {
        // SAFETY: called by the worker running the task (run or fail), the
        // only one touching its context.
        unsafe { (*self.ctx.get()).finished = true };
        stats::task_ended();
    }

    fn is_detached(&self) -> bool {
        self.join.load(Ordering::Acquire) == JOIN_DETACHED
    }

    /// Publishes the stage (written just before) and wakes the joiner.
    /// False if the handle was dropped meanwhile: nobody will take the
    /// outcome, and the caller drops it.
    fn complete(&self) -> bool {
        match self.join.swap(JOIN_DONE, Ordering::AcqRel) {
            JOIN_WAITING => {
                // SAFETY: the joiner wrote `joiner` before setting
                // JOIN_WAITING (release), which our swap acquired; it never
                // touches it again.
                let joiner = unsafe { (*self.joiner.get()).take() };
                if let Some(w) = joiner {
                    w.wake();
                }
                true
            }
            JOIN_DETACHED => false,
            _ => true,
        }
    }

    /// The handle is dropped without joining. True if the task had already
    /// completed: then the caller takes the outcome and drops it.
    fn detach(&self) -> bool {
        self.join.swap(JOIN_DETACHED, Ordering::AcqRel) == JOIN_DONE
    }

    pub(crate) fn is_done(&self) -> bool {
        self.join.load(Ordering::Acquire) == JOIN_DONE
    }

    /// Blocks (parks the task or the thread) until the task completed.
    ///
    /// # Safety
    ///
    /// Called by the one `JoinHandle` of the task, at most once.
    pub(crate) unsafe fn wait(&self) {
        if self.is_done() {
            return;
        }
        // SAFETY: only the JoinHandle writes `joiner`, and only here, before
        // JOIN_WAITING; the completion reads it only after.
        unsafe { *self.joiner.get() = Some(Waker::current()) };
        if self
            .join
            .compare_exchange(
                JOIN_PENDING,
                JOIN_WAITING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            while !self.is_done() {
                super::park::park();
            }
        }
    }
}

/// A task as the scheduler sees it.
pub(crate) trait Task: Send + Sync {
    fn header(&self) -> &Header;
    /// Runs the closure, stores its outcome and completes the join.
    ///
    /// # Safety
    ///
    /// Called once, by the worker running the task, on the task's stack.
    unsafe fn run(&self);
    /// Completes the task with a panic payload without running it (its
    /// stack could not be allocated).
    ///
    /// # Safety
    ///
    /// As for `run`, instead of it.
    unsafe fn fail(&self, payload: Box<dyn Any + Send>);
}

/// A task as its `JoinHandle` sees it.
pub(crate) trait Joinable<T>: Send + Sync {
    fn header(&self) -> &Header;
    /// Takes the outcome.
    ///
    /// # Safety
    ///
    /// Only after `Header::is_done`, once.
    unsafe fn take(&self) -> std::thread::Result<T>;
    /// The handle is dropped without joining: the outcome is dropped by the
    /// task when it completes, or here if it already has.
    fn detach(&self);
}

pub(crate) type TaskRef = Arc<dyn Task>;

enum Stage<F, T> {
    Pending(F),
    Running,
    Done(std::thread::Result<T>),
    Taken,
}

pub(crate) struct TaskCell<F, T> {
    header: Header,
    stage: UnsafeCell<Stage<F, T>>,
}

// SAFETY: the stage is accessed by one thread at a time: the worker that
// runs the task until it completes (F: Send moves it there); then, decided
// by one atomic swap each on `join` (T: Send), either the handle (joining,
// or dropping it after JOIN_DONE) or, if the handle went first
// (JOIN_DETACHED), the task itself. The header's cells follow the
// protocols documented on their fields.
unsafe impl<F: Send, T: Send> Sync for TaskCell<F, T> {}

impl<F, T> TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(shard: Arc<Shard>, info: TaskInfo, f: F) -> Arc<Self> {
        Arc::new(TaskCell {
            header: Header::new(shard, info),
            stage: UnsafeCell::new(Stage::Pending(f)),
        })
    }

    fn finish(&self, outcome: std::thread::Result<T>) {
        self.header.mark_finished();
        if self.header.is_detached() {
            // Nobody will join: drop it here, in the task.
            drop(outcome);
            return;
        }
        // SAFETY: the worker running the task is the only one touching the
        // stage until `complete` publishes it.
        unsafe { *self.stage.get() = Stage::Done(outcome) };
        if !self.header.complete() {
            // Detached meanwhile (the handle saw us pending): still ours.
            // SAFETY: the handle will not touch the stage (it saw the task
            // pending), so it is still ours alone.
            drop(unsafe { self.take_done() });
        }
    }

    /// Takes the outcome out of the stage.
    ///
    /// # Safety
    ///
    /// The caller alone has access to the stage, and it is `Done`.
    unsafe fn take_done(&self) -> std::thread::Result<T> {
        // SAFETY: by the contract.
        match core::mem::replace(unsafe { &mut *self.stage.get() }, Stage::Taken) {
            Stage::Done(outcome) => outcome,
            _ => unreachable!("growstack: outcome taken before completion"),
        }
    }
}

impl<F, T> Task for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    unsafe fn run(&self) {
        // SAFETY: by the contract, we are the one worker running the task.
        let stage = unsafe { &mut *self.stage.get() };
        let Stage::Pending(f) = core::mem::replace(stage, Stage::Running) else {
            unreachable!("growstack: task run twice");
        };
        self.finish(catch_unwind(AssertUnwindSafe(f)));
    }

    unsafe fn fail(&self, payload: Box<dyn Any + Send>) {
        // SAFETY: as in `run`; the closure is dropped here, unrun.
        unsafe { *self.stage.get() = Stage::Running };
        self.finish(Err(payload));
    }
}

impl<F, T> Joinable<T> for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    unsafe fn take(&self) -> std::thread::Result<T> {
        // SAFETY: after JOIN_DONE (acquired by the caller) nobody else
        // touches the stage.
        unsafe { self.take_done() }
    }

    fn detach(&self) {
        if self.header.detach() {
            // SAFETY: the task completed (our swap acquired JOIN_DONE) and,
            // having seen the handle alive, left the outcome to it.
            drop(unsafe { self.take_done() });
        }
    }
}
