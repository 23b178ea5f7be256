//! A worker: one OS thread that runs tasks, and the switches between its
//! scheduler loop (on the thread's native stack) and its tasks.
//!
//! Queues, from the cheapest to reach:
//!
//! - `ready` (thread-local, no lock): tasks pinned to this worker that were
//!   woken on this worker or yielded;
//! - the inbox (`Remote::inbox`, locked): tasks pinned to this worker that
//!   another thread woke;
//! - `new` (thread-local, no lock): tasks that never ran, spawned here
//!   (or found elsewhere as the worker was going to sleep); the owner takes
//!   the newest (depth first, so a tree of tasks stays narrow
//!   and reuses hot stacks);
//! - `fresh` (locked, stealable): new tasks the owner shared because some
//!   worker was idle (it moves the older half of `new` there and wakes
//!   one); thieves take the oldest. A busy runtime thus spawns and runs
//!   tasks without taking a lock;
//! - the runtime's injector (locked): tasks spawned from outside.
//!
//! A task runs only on the worker that first ran it, so thread-locals and
//! `!Send` values it keeps across a park stay on their thread.
//!
//! The worker also keeps its tasks' memory in check (`maintain`) and is
//! where preemption lands, when the runtime has it: a monitor thread
//! poisons the guard of a worker whose task has run too long, and the
//! task's next annotated call yields.
//!
//! At shutdown a worker leaves its loop, drains its queues (tasks that
//! never started are cancelled, started ones leaked), and keeps its thread
//! parked for good if tasks that started here have not finished: they may
//! borrow the thread's thread-locals.

mod compact;
mod dump;
mod maintain;
mod ready;
mod running;

use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ready::ReadyQueue;
use running::Running;

use super::cells::CellCache;
use super::parked::{META_BYTES, Meta, ParkedOn};
use super::raw::{Header, NOTIFIED, PARKED, RUNNING, TaskInfo, TaskRef};
use super::runtime::{Remote, Shard, Shared};
use super::state;
use crate::net::poller::Poller;
use crate::stack::{self, Chain, Slot};
use crate::thread::{self, ThreadStack};
use crate::{arch, guard, signal, stats};

/// Slots a worker takes from the arena at a time when its cache is empty.
const SLOT_BATCH: usize = 64;

/// Every this many scheduling rounds the worker looks at new tasks before
/// woken ones, so tasks that yield in a loop cannot starve them.
const FAIRNESS_TICK: u32 = 64;

/// Scheduling rounds between two looks beyond the worker's own queues: at
/// timers, the shared queues, idle peers, maintenance and shutdown. It also
/// looks whenever its own queues are empty or its inbox is not. Looking
/// every round cost about 60 of the 284 instructions of a yield.
const LOOK_AROUND_EVERY: u32 = 8;

// Rounds that must look around fall on a look-around round.
const _: () = assert!(FAIRNESS_TICK.is_multiple_of(LOOK_AROUND_EVERY));
const _: () = assert!(maintain::CHECK_EVERY.is_multiple_of(LOOK_AROUND_EVERY));

/// How long a worker that ran out of work keeps looking for more before it
/// sleeps. A producer and a consumer task on two workers, passing messages
/// through a one-slot channel, made their workers sleep and wake between
/// messages: 17 µs per message on this VM, 590 ns with this poll
/// (`examples/pipeline.rs`; two OS threads doing the same through std's
/// `sync_channel(1)` took 39-41 µs).
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(20);

/// The id a task's context keeps for its armed timer: the low bits of the
/// timer's sequence number, never 0 (which means none). 32 bits, not 64:
/// the 8 more bytes in every task cell pushed cells into the next size
/// class, and `spawning_in_steady_state_takes_no_page_fault` into page
/// faults (in half of its stress runs). Two timers of a worker share an
/// id only 2^32 timers apart, and only a stale entry that survived that
/// long, falling due while its task waits on a timer with the same id,
/// could fire that wait early (a spurious wake) and leave its own entry
/// skipped.
fn timer_id(seq: u64) -> u32 {
    (seq as u32).max(1)
}

/// Stale timer entries a worker keeps before it sweeps them out (and only
/// while they outnumber the live ones): a sweep costs a pass over the heap.
const STALE_TIMERS_KEPT: usize = 1024;

/// How often a busy worker looks at its sockets (Go's `sysmon` polls the
/// network when nobody did for 10 ms; a server's workers are rarely that
/// busy, and when they are, a socket should not wait that long).
const SOCKET_POLL_EVERY: Duration = Duration::from_micros(500);

/// Looks at the queues between two readings of the clock (64 `pause`s of
/// 8.4 ns each here: about half a microsecond).
const POLLS_PER_CLOCK_READ: u32 = 64;

/// Where a task that switches out goes. A scheduling round that would not
/// look around and picks a task from `ready` (one that ran before) needs
/// nothing of the scheduler loop: the worker is handed straight over to
/// that task, one switch instead of two and no loop round (a channel
/// ping-pong between two tasks went from 113 to 85 ns per round trip). Any
/// other round, and a task's first run, goes through the scheduler, whose
/// stack is the place to allocate a new task's stack or to sleep.
enum Handoff {
    /// Switch to the scheduler loop.
    Scheduler,
    /// A yield with nothing else ready: the round would pick the yielding
    /// task again, so it goes on without switching.
    Stay,
    /// Switch to this task.
    To(TaskRef),
}

/// Why a task switched back to its worker.
#[derive(Clone, Copy, Debug)]
enum Why {
    Yield,
    Park,
    /// Parks holding this lock, released once the task is marked parked
    /// ([`park_task_releasing`]).
    ParkReleasing(*const AtomicBool),
    Finished,
}

pub(crate) struct Worker {
    pub(crate) index: usize,
    /// `shared.workers[index]`, the part of this worker other threads reach.
    remote: *const Remote,
    /// This worker's share of the runtime, given to the tasks it spawns.
    pub(crate) shard: Arc<Shard>,
    shared: Arc<Shared>,
    thread: *mut ThreadStack,
    /// Tasks that ran here before and are runnable again: woken, or
    /// yielded. Only tasks that ran may be handed over to (`handoff`).
    ready: ReadyQueue,
    /// Tasks spawned here that never ran, newest last (module docs).
    new: RefCell<Vec<TaskRef>>,
    /// Ids of the tasks this worker spawns (`runtime::task_id`).
    next_seq: Cell<u64>,
    timers: RefCell<BinaryHeap<Reverse<Timer>>>,
    /// The last timer's sequence number (`add_timer`).
    timer_seq: Cell<u64>,
    /// Entries of `timers` whose park returned before they fired.
    stale_timers: Cell<usize>,
    /// Free slots with their pages (and their share of the resident
    /// estimate): a new task starts on memory that is already there.
    /// Trimmed to the runtime's `cached_stacks` by the maintenance pass.
    slots: RefCell<Vec<(Slot, usize)>>,
    /// Tasks whose stacks grew, for the maintenance pass (`maintain`).
    grown: RefCell<Vec<TaskRef>>,
    /// Memory of the task cells freed on this thread (`cells`).
    cells: CellCache,
    /// When the last maintenance pass ran.
    last_pass: Cell<Instant>,
    /// Whether a task ran since then (`maintain`).
    ran_since_pass: Cell<bool>,
    /// When this worker last looked at its sockets.
    last_socket_poll: Cell<Instant>,
    /// Tasks that started here and have not finished (not counted: each
    /// is alive until it finishes), each knowing its index here
    /// (`Context::index`): for `dump`, and compaction, which keeps the
    /// compacted ones first (`compact`).
    tasks: RefCell<Vec<NonNull<Header>>>,
    /// Stack compaction's state (`compact`).
    sweeper: compact::Sweeper,
    /// The task running now; empty while the scheduler runs.
    running: Running,
    /// The scheduler's stack pointer while a task runs (the link of
    /// `arch::resume`).
    sched_sp: Cell<usize>,
    why: Cell<Why>,
    tick: Cell<u32>,
    /// A task yielded (or was preempted): give new tasks the next turn (a
    /// new task of this worker's, or on a look-around round any new task),
    /// so that tasks that yield in a loop cannot starve them.
    prefer_new: Cell<bool>,
    /// The next round looks around whatever its tick (set by preemption).
    look_now: Cell<bool>,
    /// Set while the scheduler resumes a task only to capture its
    /// backtrace (`dump`).
    probe: Cell<*mut dump::Probe>,
}

struct Timer {
    at: Instant,
    seq: u64,
    task: TaskRef,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

thread_local! {
    /// The worker running on this thread, if it is one.
    static WORKER: Cell<*const Worker> = const { Cell::new(core::ptr::null()) };
}

/// The worker of the calling thread.
#[inline]
pub(crate) fn current() -> Option<&'static Worker> {
    let w = WORKER.try_with(Cell::get).ok()?;
    // SAFETY: WORKER points to the worker living in `run`'s frame on this
    // thread, and is reset before that frame goes away; the 'static
    // reference never leaves this thread's calls made inside `run`.
    (!w.is_null()).then(|| unsafe { &*w })
}

/// The task running on the calling thread, if any (an address, not a
/// counted reference: valid while the task runs, or blocks).
#[inline]
pub(crate) fn current_task() -> Option<NonNull<Header>> {
    current().and_then(|w| w.running.get())
}

/// Runs `f` with the info of the task running here, if any.
pub(crate) fn with_current_info<R>(f: impl FnOnce(Option<&TaskInfo>) -> R) -> R {
    let Some(w) = current() else { return f(None) };
    // SAFETY: `f` runs on this thread and does not switch out.
    f(unsafe { w.running.header() }.map(|h| &h.info))
}

/// The head of the task-local scopes of the task running on this thread
/// (`local`), `None` on a thread that runs no task. It is touched only by
/// the task itself, while it runs; the worker never touches it.
pub(crate) fn task_scopes() -> Option<*const Cell<*const super::local::Scope>> {
    let task = current_task()?;
    // SAFETY: the running task's cell is alive while it runs; only the
    // field's address is taken.
    Some(unsafe { &raw const (*task.as_ref().ctx.get()).scopes })
}

/// Queues a task that was just made runnable (`PARKED` to `RUNNING`) on the
/// worker it is pinned to.
pub(crate) fn schedule(task: TaskRef) {
    let pinned = task.header().pinned.load(Ordering::Relaxed);
    match current() {
        Some(w) if core::ptr::eq(w.remote, pinned) => w.push_ready(task),
        // SAFETY: a task that parked has run, so it is pinned; its worker's
        // `Remote` lives in its runtime's `Shared`, which the task keeps
        // alive (`Header::shard`) while we hold it.
        _ => unsafe { &*pinned }.push_remote(task),
    }
}

/// The poller of the calling thread's worker, if a task runs on it.
pub(crate) fn current_poller() -> Option<&'static Arc<Poller>> {
    let w = current()?;
    w.running.get()?;
    Some(&w.remote().poller)
}

/// Whether the caller is a task of the runtime `shared`.
pub(crate) fn runs_task_of(shared: &Shared) -> bool {
    current().is_some_and(|w| w.running.get().is_some() && core::ptr::eq(&*w.shared, shared))
}

/// The calling thread's worker, if `task` is pinned to it.
///
/// # Safety
///
/// The task's cell stays alive during the call.
#[inline]
pub(crate) unsafe fn pinned_here(task: NonNull<Header>) -> Option<&'static Worker> {
    // SAFETY: by the contract.
    let pinned = unsafe { task.as_ref() }.pinned.load(Ordering::Relaxed);
    current().filter(|w| core::ptr::eq(w.remote, pinned))
}

/// Parks the running task (see `park::park`); false on a thread that runs
/// no task.
pub(crate) fn park_task(on: &ParkedOn) -> bool {
    park_task_noting(on, None)
}

/// [`park_task`], noting the deadline its caller's timer has.
fn park_task_noting(on: &ParkedOn, until: Option<Instant>) -> bool {
    let Some(w) = current() else { return false };
    // SAFETY: we are the running task, and use its header before we switch
    // out.
    let Some(task) = (unsafe { w.running.header() }) else {
        return false;
    };
    // A wake since the last park is consumed instead of parking.
    if !state::take_notified(&task.state) {
        // SAFETY: the running task has started and not finished; we are on
        // its worker's thread.
        let meta = unsafe { Meta::of(NonNull::from(task)) };
        meta.note(on, until);
        w.switch_out(Why::Park);
        meta.clear();
    }
    true
}

/// Parks the running task until it is woken or `deadline` passes.
pub(crate) fn park_task_until(deadline: Instant, on: &ParkedOn) -> bool {
    let Some(w) = current() else { return false };
    if w.running.get().is_none() {
        return false;
    }
    w.add_timer(deadline);
    park_task_noting(on, Some(deadline));
    w.disarm_timer();
    true
}

/// Parks the running task while it holds `lock`, which is released once the
/// task is marked parked (see `park::park_releasing`); false, with the lock
/// still held, on a thread that runs no task.
///
/// # Safety
///
/// `lock` is a held lock flag (`true`) whose holder gives it up to this
/// call, and every wake of the running task, until it runs again, either
/// takes that lock first or runs on this worker's thread.
#[inline]
pub(crate) unsafe fn park_task_releasing(
    lock: &AtomicBool,
    deadline: Option<Instant>,
    on: &ParkedOn,
) -> bool {
    let Some(w) = current() else { return false };
    // SAFETY: we are the running task, and use its header before we switch
    // out.
    let Some(task) = (unsafe { w.running.header() }) else {
        return false;
    };
    // Nothing can wake us concurrently (the contract), so plain loads and
    // stores suffice for the state, here and when it is marked parked.
    let state = &task.state;
    if state.load(Ordering::Acquire) == NOTIFIED {
        // A wake since the last park: consume it instead of parking.
        state.store(RUNNING, Ordering::Relaxed);
        lock.store(false, Ordering::Release);
        return true;
    }
    if let Some(deadline) = deadline {
        w.add_timer(deadline);
    }
    // SAFETY: as in `park_task_noting`.
    let meta = unsafe { Meta::of(NonNull::from(task)) };
    meta.note(on, deadline);
    w.switch_out(Why::ParkReleasing(lock));
    meta.clear();
    if deadline.is_some() {
        w.disarm_timer();
    }
    true
}

/// Gives the worker to the next ready task; false on a thread that runs no
/// task.
pub(crate) fn yield_task() -> bool {
    match current() {
        Some(w) if w.running.get().is_some() => {
            w.switch_out(Why::Yield);
            true
        }
        _ => false,
    }
}

/// Called on the slow path of an annotated call: if the monitor asked the
/// running task to yield (it ran longer than the time slice), yields and
/// returns true.
pub(crate) fn preempt_point() -> bool {
    let Some(w) = current() else { return false };
    if w.running.get().is_none() || !w.remote().take_preempt() {
        return false;
    }
    stats::PREEMPTIONS.fetch_add(1, Ordering::Relaxed);
    // A time slice passed: timers and tasks from other threads must not
    // wait for the next look-around round too.
    w.look_now.set(true);
    w.switch_out(Why::Yield);
    true
}

impl Worker {
    /// The worker thread's body: runs tasks until the runtime shuts down.
    pub(crate) fn run(index: usize, shard: Arc<Shard>) {
        let thread = std::panic::catch_unwind(thread::current).ok().flatten();
        let Some(thread) = thread else {
            // (The panic hook said why.) This worker never runs a task; the
            // runtime must still stop and `Runtime::drop` not wait for it.
            eprintln!("growstack: worker {index} could not start; its runtime runs without it");
            // Marked exited: `shrink_now` and `dump` do not wait for it.
            shard.shared.workers[index].publish_guard(core::ptr::null());
            shard.shared.left_loop();
            shard.shared.drained();
            return;
        };
        let remote: *const Remote = &shard.shared.workers[index];
        let compact_after = shard.shared.config.compact_after;
        let worker = Worker {
            index,
            remote,
            shared: Arc::clone(&shard.shared),
            shard,
            thread,
            ready: ReadyQueue::new(),
            new: RefCell::new(Vec::new()),
            next_seq: Cell::new(0),
            timers: RefCell::new(BinaryHeap::new()),
            timer_seq: Cell::new(0),
            stale_timers: Cell::new(0),
            slots: RefCell::new(Vec::new()),
            grown: RefCell::new(Vec::new()),
            cells: CellCache::new(),
            last_pass: Cell::new(Instant::now()),
            ran_since_pass: Cell::new(false),
            last_socket_poll: Cell::new(Instant::now()),
            tasks: RefCell::new(Vec::new()),
            sweeper: compact::Sweeper::new(compact_after),
            running: Running::new(),
            sched_sp: Cell::new(0),
            why: Cell::new(Why::Yield),
            tick: Cell::new(0),
            prefer_new: Cell::new(false),
            look_now: Cell::new(false),
            probe: Cell::new(core::ptr::null_mut()),
        };
        worker.remote().publish_guard(guard::cell());
        WORKER.with(|w| w.set(&worker));
        // The loop runs no user code outside tasks (whose panics their
        // closures catch) except destructors it guards itself, and so does
        // the drain. Should one of their own checks panic anyway, the
        // thread must still not keep pointing at this frame, the runtime
        // must still stop, and a thread whose tasks borrow its
        // thread-locals must still not exit.
        let looped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _leaving = Leaving(&worker);
            worker.schedule_loop();
        }));
        let drained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.drain()));
        let keeps_thread = !worker.tasks.borrow().is_empty();
        if keeps_thread {
            // Said before `drained`: `Runtime::drop` must not join us.
            worker.remote().keep_thread();
        }
        worker.shared.drained();
        if let Err(payload) = looped.and(drained) {
            eprintln!(
                "growstack: the scheduler of worker {} panicked (a bug in growstack); \
                 its runtime stops",
                worker.index
            );
            if !keeps_thread {
                std::panic::resume_unwind(payload);
            }
            core::mem::forget(payload);
        }
        if keeps_thread {
            // Tasks that started here and will never finish may hold
            // references to this thread's thread-locals (a `with` closure
            // suspended in a park, a scoped thread borrowing them): its TLS
            // destructors must never run. The thread parks for good.
            loop {
                std::thread::park();
            }
        }
    }

    fn schedule_loop(&self) {
        loop {
            let tick = self.tick.get().wrapping_add(1);
            self.tick.set(tick);
            if !self.look_around(tick)
                && let Some(task) = self.next_local()
            {
                self.run_task(task);
                continue;
            }
            if self.shared.shutting_down() {
                return;
            }
            match self.next_task(tick) {
                Some(task) => self.run_task(task),
                None => self.idle(),
            }
        }
    }

    /// Whether this round looks beyond the worker's own queues: every
    /// [`LOOK_AROUND_EVERY`] rounds, after a preemption, and as soon as
    /// another thread woke one of its tasks (skynet, whose tasks wake
    /// parents on the other worker, measured 1.5% slower when woken tasks
    /// waited for the next look).
    fn look_around(&self, tick: u32) -> bool {
        tick.is_multiple_of(LOOK_AROUND_EVERY)
            || self.look_now.get()
            || self.remote().has_inbox.load(Ordering::Relaxed)
    }

    /// The next task from this worker's own queues, looking nowhere else:
    /// after a yield a new task first, otherwise the oldest woken one.
    fn next_local(&self) -> Option<TaskRef> {
        if self.prefer_new.take() {
            let newest = self.new.borrow_mut().pop();
            if newest.is_some() {
                return newest;
            }
        }
        self.ready.pop_front()
    }

    /// The next task, looking everywhere (`LOOK_AROUND_EVERY`).
    fn next_task(&self, tick: u32) -> Option<TaskRef> {
        let preempted = self.look_now.replace(false);
        self.maybe_maintain(tick);
        self.maybe_poll_sockets(tick, preempted);
        self.share_if_idle();
        if (self.prefer_new.take() || tick.is_multiple_of(FAIRNESS_TICK))
            && let Some(task) = self.take_new()
        {
            return Some(task);
        }
        let remote = self.remote();
        if remote.has_inbox.load(Ordering::Acquire) {
            remote.drain_inbox(|task| self.push_ready(task));
        }
        self.fire_timers();
        let ready = self.ready.pop_front();
        ready.or_else(|| self.take_new()).or_else(|| self.steal())
    }

    /// Queues a task that ran here before and is runnable again (only
    /// such tasks go to `ready`).
    #[inline]
    pub(crate) fn push_ready(&self, task: TaskRef) {
        assert!(
            core::ptr::eq(task.header().pinned.load(Ordering::Relaxed), self.remote),
            "growstack: a task that never ran here was queued as ready"
        );
        // SAFETY: the task is pinned to this worker, whose thread we run on
        // (a `Worker` is reached only from its own thread).
        unsafe { self.ready.push_back(task) };
        self.remote().note_waiting();
    }

    /// Wakes the running task at `deadline` (a spurious wake if it is no
    /// longer parked where it was). One timer per task is armed at a time:
    /// the park that armed it disarms it when it returns
    /// ([`disarm_timer`](Self::disarm_timer)), leaving its heap entry
    /// stale; stale entries are skipped when due, and dropped all at once
    /// when they outnumber the live ones (a server whose reads have long
    /// timeouts and complete quickly would otherwise keep one entry, and
    /// one reference to a task, per read for the whole timeout).
    fn add_timer(&self, deadline: Instant) {
        let task = self.running.clone_ref().expect("a task is running");
        let seq = self.timer_seq.get() + 1;
        self.timer_seq.set(seq);
        // SAFETY: the running task's context is touched only by this
        // worker, on this thread; no reference to it is held across this.
        unsafe { (*task.header().ctx.get()).timer = timer_id(seq) };
        let mut timers = self.timers.borrow_mut();
        let stale = self.stale_timers.get();
        if stale > STALE_TIMERS_KEPT && stale * 2 > timers.len() {
            // SAFETY: as above, for each (pinned here) task in the heap.
            timers.retain(|t| unsafe { (*t.0.task.header().ctx.get()).timer } == timer_id(t.0.seq));
            self.stale_timers.set(0);
        }
        timers.push(Reverse(Timer {
            at: deadline,
            seq,
            task,
        }));
    }

    /// Called by the running task when a park that armed a timer returns:
    /// the timer's entry, if it has not fired, is stale from now on.
    fn disarm_timer(&self) {
        // SAFETY: we are the running task, and use its header before we
        // switch out.
        let Some(task) = (unsafe { self.running.header() }) else {
            return;
        };
        // SAFETY: as in `add_timer`.
        let ctx = unsafe { &mut *task.ctx.get() };
        if ctx.timer != 0 {
            ctx.timer = 0;
            self.stale_timers.set(self.stale_timers.get() + 1);
        }
    }

    /// A task that never ran: the newest of ours, or one from the injector.
    fn take_new(&self) -> Option<TaskRef> {
        let newest = self.new.borrow_mut().pop();
        newest
            .or_else(|| self.remote().pop_fresh())
            .or_else(|| self.shared.pop_injected())
    }

    /// The part of this worker other threads reach.
    pub(crate) fn remote(&self) -> &Remote {
        // SAFETY: `remote` points into `shared.workers`, kept alive by
        // `shared`.
        unsafe { &*self.remote }
    }

    pub(crate) fn cells(&self) -> &CellCache {
        &self.cells
    }

    /// The id for the next task spawned here.
    pub(crate) fn next_id(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        super::runtime::task_id(&self.shared, self.index, seq)
    }

    /// Queues a task spawned on this worker (module docs).
    pub(crate) fn push_new(&self, task: TaskRef) {
        self.new.borrow_mut().push(task);
        self.remote().note_waiting();
        self.share_if_idle();
    }

    /// If another worker is idle, moves the older half of our new tasks
    /// where it can steal them, and wakes it.
    #[inline]
    fn share_if_idle(&self) {
        if self.shared.workers.len() >= 2 && self.shared.someone_idle() {
            self.share_new();
        }
    }

    /// The slow part of [`share_if_idle`](Self::share_if_idle).
    #[cold]
    fn share_new(&self) {
        let mut new = self.new.borrow_mut();
        if new.is_empty() {
            return;
        }
        let older = new.len().div_ceil(2);
        let shared: Vec<TaskRef> = new.drain(..older).collect();
        drop(new);
        self.remote().share_fresh(shared.into_iter());
        self.shared.notify_idle();
    }

    /// Its runtime's [`id`](crate::Runtime::id).
    pub(crate) fn runtime_id(&self) -> u64 {
        self.shared.id
    }

    /// The oldest new task of another worker. None while a `dump` is taken:
    /// a task moving from a worker that has not answered yet to one that
    /// has would be missing from it.
    fn steal(&self) -> Option<TaskRef> {
        if self.shared.steals_paused() {
            return None;
        }
        let n = self.shared.workers.len();
        (1..n).find_map(|k| self.shared.workers[(self.index + k) % n].steal_fresh())
    }

    fn fire_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        if timers.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while timers.peek().is_some_and(|t| t.0.at <= now) {
            let timer = timers.pop().expect("peeked").0;
            // SAFETY: the task is pinned here and not running (the
            // scheduler runs us); its context is this worker's.
            let ctx = unsafe { &mut *timer.task.header().ctx.get() };
            if ctx.timer == timer_id(timer.seq) {
                ctx.timer = 0;
                due.push(timer.task);
            } else {
                self.stale_timers
                    .set(self.stale_timers.get().saturating_sub(1));
            }
        }
        drop(timers);
        due.iter().for_each(super::park::wake_task);
    }

    /// A busy worker looks at its sockets every [`SOCKET_POLL_EVERY`] (on
    /// a round that looks at the clock anyway, or after a preemption), so
    /// that tasks that keep it busy do not starve them.
    fn maybe_poll_sockets(&self, tick: u32, preempted: bool) {
        let poller = &self.remote().poller;
        // A preemption is one round per time slice: look then too.
        if (preempted || tick.is_multiple_of(maintain::CHECK_EVERY)) && poller.has_sockets() {
            let now = Instant::now();
            if now.duration_since(self.last_socket_poll.get()) >= SOCKET_POLL_EVERY {
                self.last_socket_poll.set(now);
                poller.poll(Some(Duration::ZERO));
            }
        }
    }

    /// When the worker has something to do by itself: fire a timer, or
    /// sweep for stacks to compact.
    fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.borrow().peek().map(|t| t.0.at);
        match (timer, self.sweeper.due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sleeps until there is work, a timer is due or the runtime shuts down.
    fn idle(&self) {
        self.maintain_idle();
        let poller = &self.remote().poller;
        if poller.has_sockets() {
            // Go's `findrunnable` looks at the network before it spins.
            self.last_socket_poll.set(Instant::now());
            if poller.poll(Some(Duration::ZERO)) {
                return;
            }
        }
        if self.poll_for_work() {
            return;
        }
        let deadline = self.next_deadline();
        let remote = self.remote();
        self.shared.sleep(remote, deadline, || {
            // Found work after announcing sleep: a task that never ran,
            // so it goes with the new ones (`ready` holds tasks that ran).
            let Some(task) = self.take_new().or_else(|| self.steal()) else {
                return false;
            };
            self.new.borrow_mut().push(task);
            true
        });
    }

    /// Before sleeping, looks for work for up to [`POLL_BEFORE_SLEEP`];
    /// true if some came. Meanwhile the worker is not announced as idle, so
    /// whoever gives it work sets a flag and makes no system call.
    fn poll_for_work(&self) -> bool {
        let remote = self.remote();
        let due = self.next_deadline();
        let start = Instant::now();
        loop {
            for _ in 0..POLLS_PER_CLOCK_READ {
                if remote.has_inbox.load(Ordering::Acquire)
                    || self.shared.has_injected()
                    || remote.has_shrink_request()
                    || self.shared.shutting_down()
                {
                    return true;
                }
                core::hint::spin_loop();
            }
            let now = Instant::now();
            if due.is_some_and(|at| at <= now) {
                return true;
            }
            if now.duration_since(start) >= POLL_BEFORE_SLEEP {
                return false;
            }
        }
    }

    /// Switches to `task`; returns when a task switches back to the
    /// scheduler (`task`, or one it handed the worker over to).
    fn run_task(&self, task: TaskRef) {
        let Some((chain, sp)) = self.prepare(&task) else {
            return;
        };
        self.enter(task, chain);
        // SAFETY: `sp` was saved by the task's last switch out, or built by
        // init_stack; its stack (slot and segments) stays valid while it
        // runs. The task is pinned here, so it suspends to this link.
        unsafe { arch::resume(sp, self.sched_sp.as_ptr()) };
        // SAFETY: `thread` is this thread's stack state (it lives until the
        // thread exits, after `run`).
        unsafe { (*self.thread).run_native() };
        self.remote().suspended();
        signal::set_task(core::ptr::null());
        let task = self.running.take().expect("the task that switched out");
        match self.why.get() {
            Why::Finished => self.finished(task),
            why => {
                if matches!(why, Why::Yield) {
                    self.prefer_new.set(true);
                }
                // SAFETY: the task switched out; its context is ours.
                let sp = unsafe { (*task.header().ctx.get()).sp };
                self.left(task, why, sp);
            }
        }
    }

    /// Makes `task`, whose stack chain is `chain`, the running one.
    #[inline]
    fn enter(&self, task: TaskRef, chain: *mut Chain) {
        signal::set_task(&task.header().info);
        // SAFETY: nothing borrows `new` across a switch (only the worker
        // touches it, briefly); a read of its length.
        let new_waiting = !unsafe { &*self.new.as_ptr() }.is_empty();
        let others_waiting = !self.ready.is_empty() || new_waiting;
        self.remote()
            .will_resume(&task.header().info, others_waiting);
        self.ran_since_pass.set(true);
        // The task's reference moves into `running` for the run (the task
        // and `task_main` reach it there) and comes back when it leaves.
        self.running.set(task);
        // SAFETY: `thread` is this thread's stack state; the chain stays
        // valid and untouched by anything else until the task leaves
        // (`run_native`, or `run_chain` with the next task's chain).
        unsafe { (*self.thread).run_chain(chain) };
    }

    /// Puts a task that yielded or parked, with its stack pointer at `sp`,
    /// where it will be found again.
    #[inline(always)]
    fn left(&self, task: TaskRef, why: Why, sp: usize) {
        self.note_suspended(&task, sp);
        let lock = match why {
            Why::Yield => {
                self.push_ready(task);
                return;
            }
            Why::ParkReleasing(lock) => Some(lock),
            _ => None,
        };
        // Our reference goes to the PARKED state, for the wake to take over
        // (`park`).
        let parked = task.into_raw();
        // SAFETY: the reference given up above keeps the cell alive until
        // the state is PARKED; we do not touch it after that.
        let state = unsafe { &parked.as_ref().state };
        if let Some(lock) = lock {
            // The state is RUNNING (`park_task_releasing` consumed a
            // NOTIFIED) and no wake can come before the lock is released.
            state.store(PARKED, Ordering::Release);
            // SAFETY: the parking task gave us the lock, held, and the
            // lock outlives its hold (`park_task_releasing`'s contract).
            unsafe { &*lock }.store(false, Ordering::Release);
            return;
        }
        if !state::mark_parked(state) {
            // Woken before it was fully parked: run it again.
            // SAFETY: not parked, so the reference is still ours.
            let task = unsafe { TaskRef::from_raw(parked) };
            self.push_ready(task);
        }
    }

    /// Keeps the slot and the cache of a task that has switched out for
    /// good.
    fn finished(&self, task: TaskRef) {
        // SAFETY: as in `prepare`; the task has switched out for good.
        let ctx = unsafe { &mut *task.header().ctx.get() };
        self.unlist(ctx.index as usize);
        // Its records' block goes now, not with its cell (a handle may
        // keep that for long).
        super::record::free_block(ctx.record.take());
        let mut counted = 0;
        if let Some(mut chain) = ctx.chain.take() {
            chain.release_all();
            counted = chain.take_first_counted();
        }
        if let Some(slot) = ctx.slot.take() {
            self.slots.borrow_mut().push((slot, counted));
        }
    }

    /// The chain and stack pointer to resume `task` with; at its first run,
    /// pins it here and gives it a slot. `None` if it could not start.
    fn prepare(&self, task: &TaskRef) -> Option<(*mut Chain, usize)> {
        let h = task.header();
        // SAFETY: the context of a task is touched only by the worker that
        // runs it, and this one runs it now.
        let ctx = unsafe { &mut *h.ctx.get() };
        if ctx.slot.is_none() {
            h.pinned.store(self.remote.cast_mut(), Ordering::Relaxed);
            let slot = match self.take_slot(h.info.stack_size) {
                Ok(slot) => slot,
                Err(err) => {
                    let msg = format!("growstack: no memory for a task stack: {err}");
                    // SAFETY: the task never ran and never will.
                    unsafe { task.fail(Box::new(msg)) };
                    return None;
                }
            };
            let (lo, top) = (slot.usable_lo(), slot.top());
            h.info.slot_top.store(top, Ordering::Relaxed);
            let mut tasks = self.tasks.borrow_mut();
            // SAFETY: the slot is ours and unused; its top is page aligned.
            unsafe { Meta::init(top) };
            ctx.index = compact::index_of(tasks.len());
            tasks.push(NonNull::from(h));
            drop(tasks);
            let max = Some(self.shared.config.max_stack);
            ctx.chain = Some(Chain::new(lo, top, max, true));
            // SAFETY: the slot is ours and unused below the record; its top
            // is page aligned, and the record's size a multiple of 16.
            ctx.sp = unsafe {
                arch::init_stack(top - META_BYTES, task_main, self as *const Worker as usize)
            };
            ctx.slot = Some(slot);
        } else {
            // SAFETY: started here, not finished (it is being resumed), not
            // running (the scheduler runs us); `ctx` is not used across.
            unsafe { self.restore(NonNull::from(h)) };
        }
        // SAFETY: as above: a fresh borrow after `restore`.
        let ctx = unsafe { &mut *h.ctx.get() };
        let chain: *mut Chain = ctx.chain.as_mut().expect("set at first run");
        Some((chain, ctx.sp))
    }

    /// Called on the running task's stack: saves its context and switches
    /// to the next task ([`Handoff`]), which resumes this one later (or
    /// never, when finished).
    fn switch_out(&self, why: Why) {
        // A panic here is a bug of ours, and unwinding into the task would
        // go on with the worker's state half switched (and a parking
        // channel's lock held for good): abort instead.
        let abort = AbortOnUnwind;
        self.switch_out_inner(why);
        self.answer_probes();
        core::mem::forget(abort);
    }

    fn switch_out_inner(&self, why: Why) {
        self.why.set(why);
        let save = {
            // SAFETY: we run on the running task's stack, before it
            // switches out.
            let task = unsafe { self.running.header() }.expect("a task is running");
            // SAFETY: the running task's context belongs to this worker;
            // only the saved sp is written, by the switch.
            let ctx = unsafe { &mut *task.ctx.get() };
            &raw mut ctx.sp
        };
        let next = match self.handoff(why) {
            Handoff::Scheduler => {
                // SAFETY: we run on the task's stack, resumed with this
                // link (by run_task, or by a handoff from a task run_task
                // resumed). The task's reference is held by `running` until
                // the scheduler takes it, so `save` stays valid.
                unsafe { arch::suspend(save, self.sched_sp.as_ptr()) };
                return;
            }
            Handoff::Stay => return,
            Handoff::To(next) => next,
        };
        let task = self.running.take().expect("a task is running");
        // Our stack pointer is a few frames below the one saved next, close
        // enough for the resident estimate.
        self.left(task, why, arch::stack_pointer());
        // Restored only now that `left` released the lock a parking task
        // may hold (a restore faults a page in, and may make a system
        // call).
        // SAFETY: a task of the ready queue has run here and is neither
        // finished nor running.
        unsafe { self.restore(next.as_ptr()) };
        // SAFETY: as in `prepare`.
        let ctx = unsafe { &mut *next.header().ctx.get() };
        let chain: *mut Chain = ctx.chain.as_mut().expect("a ready task has run");
        let sp = ctx.sp;
        self.enter(next, chain);
        // SAFETY: we run on a task's stack, resumed with `sched_sp` as its
        // link, and so was `next` (it ran before, pinned here); its stack
        // stays valid while it runs. The cell behind `save` stays alive: a
        // reference to it is held by `ready` or, if it parked, by its
        // state, and it cannot finish before it runs here again.
        unsafe { arch::switch(save, sp) };
    }

    /// Where the running task, switching out for `why`, goes (see
    /// [`Handoff`]).
    fn handoff(&self, why: Why) -> Handoff {
        let tick = self.tick.get().wrapping_add(1);
        if matches!(why, Why::Finished)
            || self.look_around(tick)
            || (matches!(why, Why::Yield) && !self.new.borrow().is_empty())
        {
            return Handoff::Scheduler;
        }
        let Some(next) = self.ready.pop_front() else {
            return match why {
                // The round would pick the yielding task again.
                Why::Yield => {
                    self.tick.set(tick);
                    Handoff::Stay
                }
                _ => Handoff::Scheduler,
            };
        };
        self.tick.set(tick);
        Handoff::To(next)
    }

    /// A slot for a new task: the most recently freed one (its pages are
    /// there; their share of the estimate moves to the task's chain when
    /// the task is first suspended), or else one of a new batch.
    fn take_slot(&self, size: usize) -> std::io::Result<Slot> {
        let mut slots = self.slots.borrow_mut();
        if slots.is_empty() {
            // Highest address last: popped first, like carved stacks.
            let mut batch = stack::arena::alloc_batch(size, SLOT_BATCH)?;
            batch.sort_by_key(Slot::usable_lo);
            slots.extend(batch.into_iter().map(|slot| (slot, 0)));
        }
        let (slot, counted) = slots.pop().expect("refilled above");
        stack::resident::sub(counted);
        Ok(slot)
    }

    /// At shutdown: empties every queue. A task that never started is
    /// cancelled (`runtime::cancel_unstarted`: its closure dropped, its
    /// joiner answered). One that started and has not finished is never
    /// freed, since a channel's wait list or a timer may still point to it:
    /// its queued references are leaked with it (see `Context`), and so is
    /// the reference a parked one's state holds. No borrow is held while
    /// closures drop: they are user code.
    fn drain(&self) {
        let started = self.ready.take_all();
        let mut inbox = Vec::new();
        self.remote().drain_inbox(|task| inbox.push(task));
        core::mem::forget((started, inbox));
        // Every unfinished task that started here now has a reference that
        // is never given back: the ones just leaked, or its PARKED state's.
        // So the extra references of timers and the grown list can go (for
        // tasks that finished, they are the last), without reading any
        // task's context (the stopper may be cancelling one right now).
        drop(core::mem::take(&mut *self.timers.borrow_mut()));
        drop(core::mem::take(&mut *self.grown.borrow_mut()));
        let new = core::mem::take(&mut *self.new.borrow_mut());
        for task in new {
            super::runtime::cancel_unstarted(&task);
        }
        while let Some(task) = self.remote().pop_fresh() {
            super::runtime::cancel_unstarted(&task);
        }
        let slots = core::mem::take(&mut *self.slots.borrow_mut());
        maintain::release_slots(slots);
    }
}

/// Leaves the scheduling loop, also when it unwinds: the thread forgets
/// its worker, withdraws its guard, and the runtime learns that one more
/// worker will never run a task again (`Shared::left_loop`).
struct Leaving<'a>(&'a Worker);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(core::ptr::null()));
        self.0.remote().publish_guard(core::ptr::null());
        // Sockets registered here move to a live worker's poller when a
        // task waits for them next.
        self.0.remote().poller.retire();
        self.0.shared.left_loop();
    }
}

/// Aborts the process when dropped, which only unwinding does (it is
/// forgotten otherwise).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        std::process::abort();
    }
}

/// A task's outermost frame, entered by the first switch to it.
///
/// # Safety
///
/// `worker` is the address of the `Worker` running the task (run_task).
unsafe extern "C" fn task_main(worker: usize) -> ! {
    // SAFETY: by the contract; the worker outlives all its tasks' runs.
    let worker = unsafe { &*(worker as *const Worker) };
    {
        let task = worker.running.get().expect("running");
        // SAFETY: a view of the scheduler's reference, held in `running`
        // (not touched until we switch out) and never dropped; this is the
        // task's one run, on its own stack.
        unsafe { ManuallyDrop::new(TaskRef::from_raw(task)).run() };
    }
    // Nothing with a destructor is left in this frame: it is abandoned.
    worker.switch_out(Why::Finished);
    // The scheduler never resumes a finished task.
    std::process::abort();
}
