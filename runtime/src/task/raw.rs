//! The task cell: one allocation per task holding its header (reference
//! count, state, join protocol, execution context) and its stage (the
//! closure, then the result).
//!
//! Ownership: a [`TaskRef`] is one counted reference. The scheduler holds
//! one while the task is queued or running, and while it is `PARKED` that
//! reference belongs to its state: the wake that moves it back to
//! `RUNNING` takes it over (`park::claim`). The `JoinHandle` holds one, and
//! so does a timer. Wakers registered in a channel's wait list or for a
//! joiner count none (see `park` for why that is sound and what it saves).
//! The cell is reference-counted by hand rather than an `Arc` so that its
//! memory can come from its worker's cache (`cells`). The execution context
//! (`Context`) and the stage are touched only by the worker that runs the
//! task, except that the joiner reads the stage after the join state says
//! `DONE` (release/acquire).

use core::alloc::Layout;
use core::any::Any;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::cells;

use super::park::Waker;
use super::runtime::{Remote, Shard};
use crate::stack::{Chain, Slot};
use crate::stats;

use super::state::{
    Completed, JOIN_DETACHED, JOIN_DONE, JOIN_PENDING, complete, start_waiting, wait_done,
};
pub(crate) use super::state::{NOTIFIED, PARKED, RUNNING};

/// What diagnostics say about a task.
pub(crate) struct TaskInfo {
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    /// Size of the task's slot.
    pub(crate) stack_size: usize,
    /// The top of the task's slot once it has one (0 before its first
    /// run), for the overflow report to tell its own stack from a segment.
    pub(crate) slot_top: core::sync::atomic::AtomicUsize,
    /// Where it was spawned.
    pub(crate) spawned_at: &'static core::panic::Location<'static>,
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
    /// The next task in its worker's ready queue, while it is in it.
    pub(crate) next_ready: Option<NonNull<Header>>,
    /// The innermost task-local scope the task has entered (`local`):
    /// touched only by the task itself, while it runs.
    pub(crate) scopes: core::cell::Cell<*const super::local::Scope>,
    /// The id of the task's timer (`worker::add_timer`, `timer_id`) while
    /// it is armed, 0 otherwise: an entry of the worker's timer heap with
    /// another id is stale, and skipped.
    pub(crate) timer: u32,
    /// The task's index in its worker's list of started tasks
    /// (`Worker::tasks`).
    pub(crate) index: u32,
    /// The block the task's records live in while it waits (`record`),
    /// when no record is using it: touched only by the task itself.
    pub(crate) record: core::cell::Cell<Option<NonNull<u8>>>,
    /// The bytes of its stack while it is parked compacted (`compact`).
    pub(crate) compacted: Option<super::compact::Compacted>,
    /// The task was suspended since the maintenance pass last looked at
    /// it (`compact`).
    pub(crate) stirred: bool,
    /// When the maintenance pass last found it stirred, in milliseconds of
    /// its worker's clock (`compact`).
    pub(crate) quiet_since: u32,
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.finished {
            stats::task_ended();
        }
        // A task that started and never finished (its runtime was dropped
        // while it was queued; a parked one is never dropped, its park
        // state holding a reference) still has frames on its stacks, and a
        // pinned value among them may be pointed to from elsewhere: its
        // memory is leaked, never reused. (A `Slot` goes back to the arena
        // only through `arena::free`; dropping one leaks it.)
        // A compacted stack gets its bytes back first: it is leaked as it
        // was.
        if let (Some(bytes), Some(slot)) = (self.compacted.take(), self.slot.as_ref()) {
            // SAFETY: the bytes were copied from the top of this slot,
            // which nothing uses (the task will never run).
            unsafe { bytes.restore(slot) };
        }
        super::record::free_block(self.record.take());
        self.slot = None;
        if let Some(chain) = self.chain.as_mut() {
            chain.leak();
        }
    }
}

pub(crate) struct Header {
    /// Counted references ([`TaskRef`]s) to the cell.
    refs: AtomicUsize,
    /// The operations that know the cell's closure and result types.
    vtable: &'static Vtable,
    pub(crate) state: AtomicU8,
    join: AtomicU8,
    /// Written by the joiner before it sets `JOIN_WAITING`; taken by the
    /// completion after it sees that state.
    joiner: UnsafeCell<Option<Waker>>,
    /// The worker the task is pinned to from its first run on (the part of
    /// it other threads reach); null before.
    pub(crate) pinned: AtomicPtr<Remote>,
    /// Taken by whoever cancels the task without running it, once its
    /// runtime has stopped (`runtime::cancel_unstarted`): a drain, or a
    /// joiner that finds the runtime stopped.
    cancel_taken: AtomicBool,
    pub(crate) info: TaskInfo,
    /// Keeps the runtime alive while the task may be woken (and with it
    /// the worker `pinned` points to). `None` for a job of the blocking
    /// pool, which is never pinned.
    shard: Option<Arc<Shard>>,
    pub(crate) ctx: UnsafeCell<Context>,
}

impl Header {
    // Inlined, so that `TaskRef::new` builds the header in the cell: built
    // apart, past 256 bytes, it was copied in with a `memcpy` (29
    // instructions of a spawn and join, callgrind).
    #[inline(always)]
    fn new(shard: Option<Arc<Shard>>, info: TaskInfo, vtable: &'static Vtable) -> Header {
        stats::task_started();
        Header {
            refs: AtomicUsize::new(1),
            vtable,
            state: AtomicU8::new(RUNNING),
            join: AtomicU8::new(JOIN_PENDING),
            joiner: UnsafeCell::new(None),
            pinned: AtomicPtr::new(core::ptr::null_mut()),
            cancel_taken: AtomicBool::new(false),
            info,
            shard,
            ctx: UnsafeCell::new(Context {
                sp: 0,
                slot: None,
                chain: None,
                finished: false,
                listed: false,
                next_ready: None,
                scopes: core::cell::Cell::new(core::ptr::null()),
                timer: 0,
                index: 0,
                record: core::cell::Cell::new(None),
                compacted: None,
                stirred: false,
                quiet_since: 0,
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

    /// Publishes the stage (written just before) and wakes the joiner
    /// (`state::complete`). False if the handle was dropped meanwhile:
    /// nobody will take the outcome, and the caller drops it.
    fn complete(&self) -> bool {
        let completed = complete(&self.join, || {
            // SAFETY: the joiner wrote `joiner` before setting JOIN_WAITING
            // (release), which `complete` acquired, and never touches it
            // again. The joiner stays blocked in `wait` until DONE is
            // stored after this returns: its waker is still valid to claim.
            unsafe { (*self.joiner.get()).take().map(|w| w.claim()) }
        });
        match completed {
            Completed::Woke(wakeup) => {
                if let Some(w) = wakeup {
                    w.wake();
                }
                true
            }
            Completed::Done => true,
            Completed::Detached => false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.join.load(Ordering::Acquire) == JOIN_DONE
    }

    /// Blocks (parks the task or the thread) until the task completed, or
    /// was cancelled because its runtime stopped first.
    ///
    /// A joiner that is not a task of the task's own runtime registers
    /// with that runtime while it waits: if the runtime stops before the
    /// task finishes, nothing else would ever complete the join
    /// (`Shared::stop`). A task of the same runtime needs no registration:
    /// it would never run again either.
    ///
    /// # Safety
    ///
    /// Called by the one `JoinHandle` of the task, at most once; `task` is
    /// a reference to this header's cell.
    unsafe fn wait(&self, task: &TaskRef) {
        if self.is_done() {
            return;
        }
        // SAFETY: only the JoinHandle writes `joiner`, and only here, before
        // JOIN_WAITING; the completion reads it only after.
        unsafe { *self.joiner.get() = Some(Waker::current()) };
        if start_waiting(&self.join) {
            let shared = self.shard.as_ref().map(|shard| &shard.shared);
            let registered = shared.is_some_and(|shared| {
                !super::worker::runs_task_of(shared) && shared.register_join(task)
            });
            // The thread yields through a CLAIMING, not the task: as for
            // a channel waiter (`wait`).
            let on = super::ParkedOn::Join { task: self.info.id };
            wait_done(
                &self.join,
                || super::park::park(&on),
                std::thread::yield_now,
            );
            if let Some(shared) = shared.filter(|_| registered) {
                shared.unregister_join(task);
            }
        }
    }

    /// Takes the right to cancel the task without running it; true for
    /// the one caller that gets it.
    pub(crate) fn take_cancel(&self) -> bool {
        !self.cancel_taken.swap(true, Ordering::AcqRel)
    }

    /// Whether the runtime of the task has stopped (blocking jobs have none).
    pub(crate) fn runtime_stopped(&self) -> bool {
        self.shard.as_ref().is_some_and(|s| s.shared.has_stopped())
    }

    /// Whether the task has started running (it is pinned to a worker).
    pub(crate) fn has_started(&self) -> bool {
        !self.pinned.load(Ordering::Acquire).is_null()
    }
}

/// What a cell can do, for callers that do not know its types.
struct Vtable {
    /// Runs the closure, stores its outcome and completes the join. Called
    /// once, by the worker running the task, on the task's stack.
    run: unsafe fn(NonNull<Header>),
    /// Completes the task with a panic payload without running it (its
    /// stack could not be allocated, or its runtime stopped before it
    /// started), instead of `run`; or, for a task that started and will
    /// never run again (its runtime stopped), instead of finishing it.
    fail: unsafe fn(NonNull<Header>, Box<dyn Any + Send>),
    /// Moves the outcome into `out`, a `*mut std::thread::Result<T>`, once
    /// the join state is `DONE`.
    take: unsafe fn(NonNull<Header>, *mut ()),
    /// Drops the outcome of a completed task nobody will join.
    drop_outcome: unsafe fn(NonNull<Header>),
    /// Drops the cell and frees its memory, after the last reference.
    destroy: unsafe fn(NonNull<Header>),
}

enum Stage<F, T> {
    Pending(F),
    Running,
    Done(std::thread::Result<T>),
    Taken,
}

/// The cell; `repr(C)` so that a pointer to it is a pointer to its header.
#[repr(C)]
struct TaskCell<F, T> {
    header: Header,
    stage: UnsafeCell<Stage<F, T>>,
}

impl<F, T> TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    const VTABLE: Vtable = Vtable {
        run: Self::run,
        fail: Self::fail,
        take: Self::take,
        drop_outcome: Self::drop_outcome,
        destroy: Self::destroy,
    };

    /// # Safety (of every function below taking a header)
    ///
    /// `ptr` points to the header of a live `TaskCell<F, T>`.
    unsafe fn cell<'a>(ptr: NonNull<Header>) -> &'a Self {
        // SAFETY: by the contract; the header is the cell's first field.
        unsafe { ptr.cast::<Self>().as_ref() }
    }

    unsafe fn run(ptr: NonNull<Header>) {
        // SAFETY: by the vtable contract, `ptr` is a live cell of ours.
        let this = unsafe { Self::cell(ptr) };
        // SAFETY: we are the one worker running the task: the stage is ours.
        let stage = unsafe { &mut *this.stage.get() };
        let Stage::Pending(f) = core::mem::replace(stage, Stage::Running) else {
            unreachable!("growstack: task run twice");
        };
        this.finish(catch_unwind(AssertUnwindSafe(f)));
    }

    unsafe fn fail(ptr: NonNull<Header>, payload: Box<dyn Any + Send>) {
        // SAFETY: by the vtable contract, `ptr` is a live cell of ours.
        let this = unsafe { Self::cell(ptr) };
        // SAFETY: as in `run`: the stage is ours. A task that started has
        // `Running` there (its closure lives on its stack, never dropped);
        // one that did not has its closure, dropped here, unrun, before the
        // join completes (a joiner may count on what it captured being
        // gone, as after a run). Its destructor is user code, run by the
        // scheduler or a drain: a panic in it (reported by the panic hook)
        // must not unwind into them.
        drop_quietly(unsafe { core::mem::replace(&mut *this.stage.get(), Stage::Running) });
        this.finish(Err(payload));
    }

    unsafe fn take(ptr: NonNull<Header>, out: *mut ()) {
        // SAFETY: by the vtable contract, `ptr` is a live cell of ours.
        let this = unsafe { Self::cell(ptr) };
        // SAFETY: after JOIN_DONE (acquired by the caller) nobody else
        // touches the stage; `out` has the type the handle knows.
        unsafe { out.cast::<std::thread::Result<T>>().write(this.take_done()) };
    }

    unsafe fn drop_outcome(ptr: NonNull<Header>) {
        // SAFETY: the caller alone has the stage, and it is `Done`.
        drop(unsafe { Self::cell(ptr).take_done() });
    }

    unsafe fn destroy(ptr: NonNull<Header>) {
        let cell = ptr.cast::<Self>();
        // SAFETY: the last reference is gone: nobody else can reach the
        // cell; it was allocated by `cells::allocate` with this layout.
        unsafe {
            cell.drop_in_place();
            cells::deallocate(cell.cast(), Layout::new::<Self>());
        }
    }

    fn finish(&self, outcome: std::thread::Result<T>) {
        self.header.mark_finished();
        if self.header.is_detached() {
            // Nobody will join: drop it here, in the task. Its destructor
            // is user code run where no panic may unwind (the end of a
            // task, a blocking-pool thread).
            drop_quietly(outcome);
            return;
        }
        // SAFETY: the worker running the task is the only one touching the
        // stage until `complete` publishes it.
        unsafe { *self.stage.get() = Stage::Done(outcome) };
        if !self.header.complete() {
            // Detached meanwhile (the handle saw us pending): still ours.
            // SAFETY: the handle will not touch the stage (it saw the task
            // pending), so it is still ours alone.
            drop_quietly(unsafe { self.take_done() });
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

/// Drops `value`, catching a panic of its destructor, and of the panic
/// payload's destructor in turn (whose own payload is leaked): for user
/// values that the runtime drops where no panic may unwind.
pub(crate) fn drop_quietly<V>(value: V) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value)))
        && let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload)))
    {
        core::mem::forget(again);
    }
}

/// One counted reference to a task cell.
pub(crate) struct TaskRef {
    ptr: NonNull<Header>,
}

// SAFETY: a cell is shared by the threads holding references to it: its
// closure and result are `Send` (required by `new`) and are touched by one
// thread at a time (the worker running the task until it completes; then,
// decided by one atomic swap each on `join`, either the handle or, if the
// handle went first (JOIN_DETACHED), the task itself); the header's cells
// follow the protocols documented on their fields.
unsafe impl Send for TaskRef {}
// SAFETY: as for Send: every shared access goes through those protocols.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// A new task running `f`, and the handle's typed view of it.
    /// `shard` is `None` for a job of the blocking pool (`spawn_blocking`),
    /// which runs on a plain thread of its own.
    pub(crate) fn new<F, T>(
        shard: Option<Arc<Shard>>,
        info: TaskInfo,
        f: F,
    ) -> (TaskRef, Joinable<T>)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let vtable = &TaskCell::<F, T>::VTABLE;
        // Allocated first, so that the cell is built where it lives: built
        // on the stack and then written, it was copied with a `memcpy`
        // (about 30 instructions per spawn, more once it passed 256 bytes).
        let ptr = cells::allocate(Layout::new::<TaskCell<F, T>>()).cast::<TaskCell<F, T>>();
        // SAFETY: fresh memory of the cell's layout.
        unsafe {
            ptr.write(TaskCell {
                header: Header::new(shard, info, vtable),
                stage: UnsafeCell::new(Stage::Pending(f)),
            })
        };
        let task = TaskRef { ptr: ptr.cast() };
        let handle = Joinable {
            task: task.clone(),
            _result: PhantomData,
        };
        (task, handle)
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: our reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    /// The cell's address, for a reference that is not counted.
    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.ptr
    }

    /// Gives up this reference without releasing it: from now on the one
    /// who calls [`from_raw`](Self::from_raw) with the address owns it.
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        core::mem::ManuallyDrop::new(self).ptr
    }

    /// Takes over a reference given up by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw`, and that reference is taken over once.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> TaskRef {
        TaskRef { ptr }
    }

    /// Runs the task's closure (see `Vtable::run`).
    ///
    /// # Safety
    ///
    /// Called once, by the worker running the task, on the task's stack.
    pub(crate) unsafe fn run(&self) {
        // SAFETY: by the contract; the vtable is the cell's own.
        unsafe { (self.header().vtable.run)(self.ptr) }
    }

    /// Runs a job of the blocking pool on the calling plain thread's own
    /// stack (see `Vtable::run`).
    ///
    /// # Safety
    ///
    /// The task is a blocking job (made with no shard), run once.
    pub(crate) unsafe fn run_on_thread(&self) {
        // SAFETY: by the contract: no worker runs it, so this thread alone
        // touches its stage and context, once.
        unsafe { (self.header().vtable.run)(self.ptr) }
    }

    /// Completes the task with a panic payload without running it
    /// (further); see `Vtable::fail`.
    ///
    /// # Safety
    ///
    /// As for `run`, instead of it; or the task started, has not finished,
    /// and will never run again (its runtime's workers have all left their
    /// loops), and the caller alone touches its stage and its context's
    /// `finished` flag (a worker still draining may unlink it from its ready
    /// queue meanwhile: another field of the context).
    pub(crate) unsafe fn fail(&self, payload: Box<dyn Any + Send>) {
        // SAFETY: by the contract.
        unsafe { (self.header().vtable.fail)(self.ptr, payload) }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        // Relaxed, as in `Arc::clone`: a new reference is made from an
        // existing one, which keeps the cell alive meanwhile.
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Leaked references wrapped the count: freeing would be unsound.
            std::process::abort();
        }
        TaskRef { ptr: self.ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // Release, then acquire before destroying, as in `Arc::drop`: every
        // use through other references happens before the cell is freed.
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: that was the last reference.
        unsafe { (self.header().vtable.destroy)(self.ptr) }
    }
}

/// A task as its `JoinHandle` sees it: a reference that knows the result
/// type.
pub(crate) struct Joinable<T> {
    task: TaskRef,
    _result: PhantomData<T>,
}

impl<T> Joinable<T> {
    pub(crate) fn header(&self) -> &Header {
        self.task.header()
    }

    /// Waits for the task to complete and takes its outcome.
    pub(crate) fn join(self) -> std::thread::Result<T> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the reference
        // moves out of it exactly once.
        let task = unsafe { core::ptr::read(&this.task) };
        let mut out = core::mem::MaybeUninit::<std::thread::Result<T>>::uninit();
        // SAFETY: this is the task's only handle, consumed here, so `wait`
        // runs once; after it the task is done and the outcome is ours;
        // `take` writes a `std::thread::Result<T>` (the handle was made by
        // `TaskRef::new` for this `T`).
        unsafe {
            task.header().wait(&task);
            (task.header().vtable.take)(task.ptr, out.as_mut_ptr().cast());
            out.assume_init()
        }
    }
}

impl<T> Drop for Joinable<T> {
    /// Dropped without joining: the outcome is dropped by the task when it
    /// completes, or here if it already has.
    fn drop(&mut self) {
        let h = self.task.header();
        if h.join.swap(JOIN_DETACHED, Ordering::AcqRel) == JOIN_DONE {
            // SAFETY: the task completed (our swap acquired JOIN_DONE) and,
            // having seen the handle alive, left the outcome to us.
            unsafe { (h.vtable.drop_outcome)(self.task.ptr) };
        }
    }
}
