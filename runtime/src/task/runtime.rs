//! The runtime: its workers, their shared queues, and the protocol by which
//! idle workers sleep and are woken.
//!
//! Sleeping without lost wake-ups: see `idle`.
//!
//! The monitor thread (when preemption or the stall warning is on) looks at
//! every worker periodically. Preemption (opt-in, `Builder::preempt`): a
//! worker that has been running the same task for a time slice (its resume
//! count has not moved) gets its guard poisoned with `usize::MAX` and a
//! preemption flag; the task's next annotated call fails its check, sees
//! the flag on the slow path and yields (Go's `stackPreempt`). The worker
//! publishes the address of its guard under its lock and withdraws it
//! before its thread exits. Stall warning: a task that has held its worker
//! for `Builder::stall_warning` while other tasks wait for that worker is
//! named on stderr, once.
//!
//! Stopping: each worker leaves its loop once the runtime shuts down; the
//! last one stops the runtime (`Shared::left_loop`): no task runs again,
//! joins that would never finish are cancelled.

use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::JoinHandle;
use super::dump::{self, DumpRequest, TaskDump, TaskState};
use super::idle;
use super::raw::{TaskInfo, TaskRef};
use super::worker::{self, Worker};
use crate::chan::{self, Sender};
use crate::net::poller::Poller;
use crate::stack::{MIN_TASK_STACK, TASK_STACK, arena};
use crate::stack::{Pass, Shrunk};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Config {
    pub(crate) stack_size: usize,
    pub(crate) max_stack: usize,
    pub(crate) cached_stacks: usize,
    /// The time slice, if tasks are preempted (`Builder::preempt`).
    pub(crate) preempt: Option<Duration>,
    /// How long a task stays parked before its stack is compacted, if
    /// stacks are (`Builder::compact_after`).
    pub(crate) compact_after: Option<Duration>,
    /// How long a task may hold its worker, while others wait for it,
    /// before the monitor warns (`Builder::stall_warning`).
    pub(crate) stall_warning: Option<Duration>,
    /// How long the runtime may make no progress before the monitor prints
    /// a dump (`Builder::stall_report`).
    pub(crate) stall_report: Option<Duration>,
    /// Whether a panic in a task gets a line naming it (`panic_note`).
    pub(crate) panic_note: bool,
}

/// The part of a worker other threads reach.
pub(crate) struct Remote {
    fresh: Mutex<VecDeque<TaskRef>>,
    fresh_len: AtomicUsize,
    pub(crate) has_inbox: AtomicBool,
    has_shrink: AtomicBool,
    state: Mutex<RemoteState>,
    /// Where the worker sleeps when idle, and polls its sockets.
    pub(crate) poller: Arc<Poller>,
    preempt: Preempt,
}

/// What the monitor reads on every look and the worker writes on every
/// switch: on a cache line of its own, away from what other workers read.
#[repr(align(128))]
#[derive(Default)]
struct Preempt {
    resumes: AtomicU64,
    running: AtomicBool,
    requested: AtomicBool,
    /// The id and spawn location of the task resumed last, for the stall
    /// warning (a location is `'static`: the monitor may read it whenever).
    task_id: AtomicU64,
    spawned_at: AtomicPtr<Location<'static>>,
    /// Other tasks of this worker wait to run (its ready or new queue was
    /// not empty at the last resume, or got a task since).
    others_waiting: AtomicBool,
}

#[derive(Default)]
struct RemoteState {
    inbox: Vec<TaskRef>,
    sleep: idle::Flags,
    /// Address of the worker's guard (`guard::cell`); 0 when it is gone.
    guard: usize,
    /// `shrink_now` callers waiting for a pass; each gets a message.
    shrink_requests: Vec<Sender<()>>,
    /// `dump` callers waiting for this worker's tasks.
    dump_requests: Vec<DumpRequest>,
    exited: bool,
    /// The worker stopped with tasks in flight and parks its thread for
    /// good (`Worker::run`).
    keeps_thread: bool,
}

impl Remote {
    fn new() -> io::Result<Remote> {
        Ok(Remote {
            fresh: Mutex::new(VecDeque::new()),
            fresh_len: AtomicUsize::new(0),
            has_inbox: AtomicBool::new(false),
            has_shrink: AtomicBool::new(false),
            state: Mutex::new(RemoteState::default()),
            poller: Poller::new()?,
            preempt: Preempt::default(),
        })
    }

    /// The worker stopped with tasks in flight: its thread stays parked.
    pub(crate) fn keep_thread(&self) {
        lock(&self.state).keeps_thread = true;
    }

    /// The worker publishes (or, with null, withdraws) its guard's address.
    pub(crate) fn publish_guard(&self, guard: *const AtomicUsize) {
        let mut state = lock(&self.state);
        state.guard = guard as usize;
        if guard.is_null() {
            // The worker is leaving: answer what waits (dropping a sender
            // tells `shrink_now` not to wait for it).
            state.exited = true;
            state.shrink_requests.clear();
            state.dump_requests.clear();
        }
    }

    /// The worker is about to resume the task `info`; `others_waiting`:
    /// whether other tasks of it wait to run.
    #[inline]
    pub(crate) fn will_resume(&self, info: &TaskInfo, others_waiting: bool) {
        let p = &self.preempt;
        p.requested.store(false, Ordering::Relaxed);
        p.task_id.store(info.id, Ordering::Relaxed);
        p.spawned_at.store(
            core::ptr::from_ref(info.spawned_at).cast_mut(),
            Ordering::Relaxed,
        );
        p.others_waiting.store(others_waiting, Ordering::Relaxed);
        p.resumes
            .store(p.resumes.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        p.running.store(true, Ordering::Relaxed);
    }

    /// A task of this worker became runnable while another runs.
    #[inline]
    pub(crate) fn note_waiting(&self) {
        self.preempt.others_waiting.store(true, Ordering::Relaxed);
    }

    /// The task the worker ran has switched back to it.
    pub(crate) fn suspended(&self) {
        self.preempt.running.store(false, Ordering::Relaxed);
    }

    /// Whether the monitor asked the running task to yield (once).
    pub(crate) fn take_preempt(&self) -> bool {
        let r = &self.preempt.requested;
        r.load(Ordering::Relaxed) && r.swap(false, Ordering::Relaxed)
    }

    /// The monitor: makes the running task's next annotated call yield.
    fn request_preempt(&self) {
        let state = lock(&self.state);
        if state.guard != 0 {
            self.preempt.requested.store(true, Ordering::Relaxed);
            // SAFETY: the worker withdraws the address under this lock
            // before its thread (and the thread-local) goes away.
            unsafe { (*(state.guard as *const AtomicUsize)).store(usize::MAX, Ordering::Relaxed) };
        }
    }

    /// Asks the worker for a `shrink_now` pass.
    fn request_shrink(&self, done: Sender<()>) {
        self.deliver(|state| {
            // An exited worker answers by dropping `done`.
            if !state.exited {
                state.shrink_requests.push(done);
                self.has_shrink.store(true, Ordering::Release);
            }
        });
    }

    /// Asks the worker for its tasks (`dump`).
    pub(crate) fn request_dump(&self, request: DumpRequest) {
        self.deliver(|state| {
            // An exited worker answers by dropping the request.
            if !state.exited {
                state.dump_requests.push(request);
                self.has_shrink.store(true, Ordering::Release);
            }
        });
    }

    /// Whether a `shrink_now` or `dump` caller waits for this worker.
    pub(crate) fn has_shrink_request(&self) -> bool {
        self.has_shrink.load(Ordering::Acquire)
    }

    /// Takes the `shrink_now` and `dump` requests: the worker answers
    /// them (a `shrink_now` caller by a message after its pass).
    pub(crate) fn take_requests(&self) -> (Vec<Sender<()>>, Vec<DumpRequest>) {
        let mut state = lock(&self.state);
        self.has_shrink.store(false, Ordering::Relaxed);
        (
            core::mem::take(&mut state.shrink_requests),
            core::mem::take(&mut state.dump_requests),
        )
    }

    /// How many times the worker resumed a task so far.
    pub(crate) fn resumes(&self) -> u64 {
        self.preempt.resumes.load(Ordering::Relaxed)
    }

    /// The task running on this worker now, as far as other threads see
    /// (for a `dump` the worker did not answer).
    pub(crate) fn running_now(&self) -> Option<TaskDump> {
        let p = &self.preempt;
        if !p.running.load(Ordering::Relaxed) {
            return None;
        }
        let at = p.spawned_at.load(Ordering::Relaxed);
        // SAFETY: only ever set from a `&'static Location` (`will_resume`).
        let spawned_at = unsafe { at.as_ref() }?;
        Some(TaskDump {
            id: p.task_id.load(Ordering::Relaxed),
            name: None,
            state: TaskState::Running,
            spawned_at,
            runtime: 0,
            worker: None,
            stack_resident: 0,
            segments: 0,
            growths: 0,
            backtrace: None,
        })
    }

    /// Queues a task pinned to this worker, from another thread.
    pub(crate) fn push_remote(&self, task: TaskRef) {
        self.deliver(|state| {
            state.inbox.push(task);
            self.has_inbox.store(true, Ordering::Release);
        });
    }

    /// Changes the worker's state under its lock, then wakes it if it sleeps.
    fn deliver(&self, f: impl FnOnce(&mut RemoteState)) {
        idle::deliver(&self.state, || self.poller.wake(), RemoteState::sleep, f);
    }

    /// Hands every task other threads woke for this worker to `each`,
    /// oldest first, under the inbox lock (so `each` runs no user code).
    pub(crate) fn drain_inbox(&self, each: impl FnMut(TaskRef)) {
        let mut state = lock(&self.state);
        self.has_inbox.store(false, Ordering::Relaxed);
        state.inbox.drain(..).for_each(each);
    }

    /// Makes new tasks of this worker stealable (oldest first).
    pub(crate) fn share_fresh(&self, tasks: impl Iterator<Item = TaskRef>) {
        let mut fresh = lock(&self.fresh);
        fresh.extend(tasks);
        self.fresh_len.store(fresh.len(), Ordering::Relaxed);
    }

    /// References to the new tasks shared for stealing (`dump`).
    pub(crate) fn fresh_tasks(&self) -> Vec<TaskRef> {
        lock(&self.fresh).iter().cloned().collect()
    }

    /// The owner's end: the newest task.
    pub(crate) fn pop_fresh(&self) -> Option<TaskRef> {
        if self.fresh_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut fresh = lock(&self.fresh);
        let task = fresh.pop_back();
        self.fresh_len.store(fresh.len(), Ordering::Relaxed);
        task
    }

    /// The thieves' end: the oldest task.
    pub(crate) fn steal_fresh(&self) -> Option<TaskRef> {
        if self.fresh_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut fresh = self.fresh.try_lock().ok()?;
        let task = fresh.pop_front();
        self.fresh_len.store(fresh.len(), Ordering::Relaxed);
        task
    }

    /// Wakes the worker if it sleeps; true if it did.
    fn kick(&self) -> bool {
        idle::kick(&self.state, || self.poller.wake(), RemoteState::sleep)
    }
}

impl RemoteState {
    fn sleep(&mut self) -> &mut idle::Flags {
        &mut self.sleep
    }
}

/// A share of a runtime, held by the tasks spawned in one place (one per
/// worker, one for threads outside the runtime). Tasks keep their runtime
/// alive through it; giving each worker its own `Arc` keeps spawning tasks
/// on two workers from bouncing one reference count between cores. It also
/// hands out task ids: shard `i` of `n` gives `i + 1, i + 1 + n, ...`.
pub(crate) struct Shard {
    pub(crate) shared: Arc<Shared>,
    index: u64,
    next_seq: AtomicU64,
}

impl Shard {
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Arc<Shard> {
        Arc::new(Shard {
            shared,
            index: index as u64,
            next_seq: AtomicU64::new(0),
        })
    }

    fn next_id(&self) -> u64 {
        task_id(
            &self.shared,
            self.index as usize,
            self.next_seq.fetch_add(1, Ordering::Relaxed),
        )
    }
}

/// The id of the `seq`-th task of shard `index` (see `Shard`).
pub(crate) fn task_id(shared: &Shared, index: usize, seq: u64) -> u64 {
    seq * (shared.workers.len() as u64 + 1) + index as u64 + 1
}

/// Creates a task and queues it: on the calling worker, if it belongs to
/// the shard's runtime, with that worker's shard; else on the injector.
#[track_caller]
pub(crate) fn spawn<F, T>(outside: &Arc<Shard>, name: Option<String>, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let shared = &outside.shared;
    let on_worker = worker::current().filter(|w| Arc::ptr_eq(&w.shard.shared, shared));
    let shard = on_worker.map_or(outside, |w| &w.shard);
    let info = TaskInfo {
        id: on_worker.map_or_else(|| shard.next_id(), |w| w.next_id()),
        name: name.map(String::into_boxed_str),
        stack_size: shared.config.stack_size,
        slot_top: AtomicUsize::new(0),
        spawned_at: Location::caller(),
    };
    let (task, handle) = TaskRef::new(Some(Arc::clone(shard)), info, f);
    match on_worker {
        Some(w) => w.push_new(task),
        None => {
            let mut injector = lock(&shared.injector);
            injector.push_back(task);
            shared.injected.store(injector.len(), Ordering::Relaxed);
            drop(injector);
            shared.notify_idle();
            if shared.has_stopped() {
                // Spawned through a `Handle` on a runtime that has stopped:
                // nothing will run the task, nor drop its closure (a join
                // would cancel it, a detached one would stay queued). The
                // drain in `left_loop` stores `stopped` before it takes the
                // injector, under the same lock as this push: either it
                // took this task, or this load sees `stopped`.
                cancel_late(shared);
            }
        }
    }
    JoinHandle::new(handle)
}

/// Cancels the tasks queued on a stopped runtime. A closure whose drop
/// spawns again through a handle queues its task for the loop of the
/// outermost call on this thread instead of recursing (a closure that
/// respawns itself on drop would overflow the stack).
fn cancel_late(shared: &Shared) {
    thread_local! {
        static CANCELLING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    }
    if CANCELLING.with(|c| c.replace(true)) {
        return;
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            CANCELLING.with(|c| c.set(false));
        }
    }
    let _done = Done;
    loop {
        let late = core::mem::take(&mut *lock(&shared.injector));
        if late.is_empty() {
            return;
        }
        late.iter().for_each(cancel_unstarted);
    }
}

/// What the workers of one runtime share.
pub(crate) struct Shared {
    /// The runtime's number in the process ([`Runtime::id`]).
    pub(crate) id: u64,
    pub(crate) workers: Box<[Remote]>,
    /// `dump` calls holding steals off (`steals_paused`): how many, and
    /// each one's number and the end of its lease.
    dumping: AtomicUsize,
    dump_pauses: Mutex<Vec<(u64, Instant)>>,
    injector: Mutex<VecDeque<TaskRef>>,
    injected: AtomicUsize,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    /// Workers still in their scheduling loop; the one that takes it to 0
    /// stops the runtime (`stop`).
    in_loop: AtomicUsize,
    /// `in_loop` reached 0 (set under `joins`).
    stopped: AtomicBool,
    /// Joins waited on by threads and tasks outside this runtime
    /// (`Header::wait`), and whether the runtime has stopped.
    joins: Mutex<Joins>,
    /// The shard of tasks spawned from outside the workers (held by the
    /// `Runtime`, its `Handle`s and those tasks), for `Handle::current`.
    outside: std::sync::OnceLock<Weak<Shard>>,
    /// How many workers have drained their queues, for `Runtime::drop`.
    drained: Mutex<usize>,
    drained_cv: Condvar,
    monitor_lock: Mutex<()>,
    monitor_wakeup: Condvar,
    pub(crate) config: Config,
}

#[derive(Default)]
struct Joins {
    stopped: bool,
    waiting: Vec<TaskRef>,
}

impl Shared {
    /// Registers the join of `task` by a joiner outside this runtime, which
    /// is waiting (`Header::wait`); false if the runtime has stopped, in
    /// which case the task is cancelled here if it has not finished.
    pub(crate) fn register_join(&self, task: &TaskRef) -> bool {
        let mut joins = lock(&self.joins);
        if joins.stopped {
            drop(joins);
            cancel_started(task);
            cancel_unstarted(task);
            return false;
        }
        joins.waiting.push(task.clone());
        true
    }

    /// The joiner of `task` stopped waiting.
    pub(crate) fn unregister_join(&self, task: &TaskRef) {
        let mut joins = lock(&self.joins);
        if let Some(i) = joins
            .waiting
            .iter()
            .position(|t| t.as_ptr() == task.as_ptr())
        {
            joins.waiting.swap_remove(i);
        }
    }

    /// A worker left its scheduling loop for good. The last one stops the
    /// runtime: no task of it will ever run again, so the joins waited on
    /// from outside are completed with [`Cancelled`](super::Cancelled)
    /// (tasks that never started are failed the same way by whoever
    /// drains their queue: the workers, and here the injector).
    pub(crate) fn left_loop(&self) {
        if self.in_loop.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let waiting = {
            let mut joins = lock(&self.joins);
            joins.stopped = true;
            self.stopped.store(true, Ordering::Release);
            ANY_STOPPED.store(true, Ordering::Release);
            core::mem::take(&mut joins.waiting)
        };
        for task in &waiting {
            cancel_started(task);
            cancel_unstarted(task);
        }
        let injected = core::mem::take(&mut *lock(&self.injector));
        self.injected.store(0, Ordering::Relaxed);
        injected.iter().for_each(cancel_unstarted);
    }

    /// A `dump` starts: no steals until it ends (`resume_steals`), or
    /// its lease runs out unrenewed. A task stolen by a worker that has
    /// answered, from one that has not, would be missing from the dump;
    /// the lease bounds the pause of a dump whose caller never returns (a
    /// task whose own runtime was dropped while it waited). Returns the
    /// pause's number.
    pub(crate) fn pause_steals(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pause = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut pauses = lock(&self.dump_pauses);
        pauses.push((pause, Instant::now() + DUMP_LEASE));
        self.dumping.store(pauses.len(), Ordering::Release);
        pause
    }

    /// The dump is still waiting for answers (its pause is back if it had
    /// lapsed).
    pub(crate) fn renew_steal_pause(&self, pause: u64) {
        let until = Instant::now() + DUMP_LEASE;
        let mut pauses = lock(&self.dump_pauses);
        match pauses.iter_mut().find(|(p, _)| *p == pause) {
            Some(entry) => entry.1 = until,
            None => pauses.push((pause, until)),
        }
        self.dumping.store(pauses.len(), Ordering::Release);
    }

    /// The dump ended.
    pub(crate) fn resume_steals(&self, pause: u64) {
        let mut pauses = lock(&self.dump_pauses);
        pauses.retain(|(p, _)| *p != pause);
        self.dumping.store(pauses.len(), Ordering::Release);
    }

    /// Whether a dump holds steals off. One load while none does; else
    /// the pauses are looked at, and those whose lease ran out dropped.
    pub(crate) fn steals_paused(&self) -> bool {
        if self.dumping.load(Ordering::Acquire) == 0 {
            return false;
        }
        let now = Instant::now();
        let mut pauses = lock(&self.dump_pauses);
        pauses.retain(|&(_, until)| until > now);
        self.dumping.store(pauses.len(), Ordering::Release);
        !pauses.is_empty()
    }

    /// Whether every worker has left its loop: no task runs again.
    pub(crate) fn has_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// A worker drained its queues (`Runtime::drop` waits for all).
    pub(crate) fn drained(&self) {
        *lock(&self.drained) += 1;
        self.drained_cv.notify_all();
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// References to the tasks waiting in the injector (`dump`).
    pub(crate) fn injected_tasks(&self) -> Vec<TaskRef> {
        lock(&self.injector).iter().cloned().collect()
    }

    /// Whether tasks spawned from outside wait in the injector.
    pub(crate) fn has_injected(&self) -> bool {
        self.injected.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn pop_injected(&self) -> Option<TaskRef> {
        if !self.has_injected() {
            return None;
        }
        let mut injector = lock(&self.injector);
        let task = injector.pop_front();
        self.injected.store(injector.len(), Ordering::Relaxed);
        task
    }

    /// Whether some worker is idle (about to sleep, or asleep): then a busy
    /// worker shares its new tasks. A plain load, checked often.
    pub(crate) fn someone_idle(&self) -> bool {
        self.sleepers.load(Ordering::Relaxed) > 0
    }

    /// After work was added where an idle worker's recheck looks (the
    /// injector, a worker's fresh queue): wakes one sleeping worker, if any.
    pub(crate) fn notify_idle(&self) {
        idle::notify(&self.sleepers, || {
            self.workers.iter().any(Remote::kick);
        });
    }

    /// The idle protocol (`idle`). `recheck` looks for work once more
    /// after the announcement and takes it if there is some.
    pub(crate) fn sleep(
        &self,
        me: &Remote,
        deadline: Option<Instant>,
        recheck: impl FnOnce() -> bool,
    ) {
        idle::sleep(
            &self.sleepers,
            &me.state,
            RemoteState::sleep,
            |state| {
                !state.inbox.is_empty()
                    || !state.shrink_requests.is_empty()
                    || !state.dump_requests.is_empty()
                    || self.shutting_down()
            },
            recheck,
            |state| {
                // The eventfd keeps a wake given after the lock is
                // released: epoll_wait then returns at once.
                drop(state);
                let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
                let timed_out = timeout.is_some_and(|t| t.is_zero());
                // A socket event woke tasks of ours (or of others): back
                // to the loop to run them.
                let sockets = !timed_out && me.poller.poll(timeout);
                let keep_waiting = !sockets && deadline.is_none_or(|at| Instant::now() < at);
                (lock(&me.state), keep_waiting)
            },
        );
    }
}

/// How long a `dump`'s pause of steals holds unless renewed (it renews
/// it at least every `dump::ANSWER_WITHIN` while it waits).
const DUMP_LEASE: Duration = Duration::from_secs(3);

/// Set once any runtime of the process has stopped: until then no task
/// can be left parked for good, and wait lists need not look for such
/// tasks (`WaitList::drop_gone_heads`), a load of this flag being all that
/// costs. After, a non-empty list's pop also reads its head task's runtime
/// (three dependent loads).
static ANY_STOPPED: AtomicBool = AtomicBool::new(false);

/// Whether any runtime has stopped (see `ANY_STOPPED`).
#[inline]
pub(crate) fn any_stopped() -> bool {
    ANY_STOPPED.load(Ordering::Relaxed)
}

/// Completes a task of a stopped runtime that started and has not
/// finished with a [`Cancelled`](super::Cancelled) payload. A task that
/// never started is left to the owner of the queue it is in
/// ([`cancel_unstarted`]).
///
/// Called once every worker has left its scheduling loop (`left_loop`).
pub(crate) fn cancel_started(task: &TaskRef) {
    let h = task.header();
    if h.has_started() && !h.is_done() {
        // SAFETY: the task started, has not finished, and never runs again:
        // every worker of its runtime has left its loop, and the stop
        // acquired their last steps through `in_loop`. Nobody else cancels
        // a started task: the stopper takes each registered join once, and
        // a joiner registering later finds the runtime stopped under the
        // lock the stopper took.
        unsafe { task.fail(Box::new(super::Cancelled)) };
    }
}

/// Fails a task that never started, once its runtime's workers have left
/// their loops (or the task was taken out of a queue that no loop will look
/// at again): its closure is dropped and its joiner gets a
/// [`Cancelled`](super::Cancelled) payload. Whoever gets there first does
/// it (a drain, the stopper, or a joiner that finds the runtime stopped), so
/// that a closure whose destructor joins another unstarted task never waits
/// for a drain that is busy dropping it.
pub(crate) fn cancel_unstarted(task: &TaskRef) {
    let h = task.header();
    if !h.has_started() && h.take_cancel() {
        // SAFETY: the task never ran and never will: no loop can start it
        // (its runtime stopped, or its queue's owner took it out and left
        // its loop), and the cancel right, taken above, is had once.
        unsafe { task.fail(Box::new(super::Cancelled)) };
    }
}

/// A pool of worker threads that run growstack tasks.
///
/// Each task starts on a slot of [`Builder::stack_size`] bytes of address
/// space (256 KiB by default), of which it commits only the pages it
/// touches; `#[growable]` functions continue on segments when the slot runs
/// out, up to [`Builder::max_stack`] (1 GiB) per task.
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::new()?;
/// let handles: Vec<_> = (0..100u64).map(|i| rt.spawn(move || i * i)).collect();
/// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 328_350);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the runtime stops its workers after the tasks they are running
/// now switch out, and waits for that. Tasks that have not finished by then
/// never run again: one that never started drops its closure; one that
/// started keeps its stack and cell forever and its destructors never run
/// (as with [`std::mem::forget`]), and its worker's thread stays parked for
/// good, since the task may borrow that thread's thread-locals. Joining
/// such a task returns `Err` with a [`Cancelled`](crate::task::Cancelled)
/// payload, and [`JoinHandle::is_finished`](crate::JoinHandle::is_finished)
/// says true. Join your tasks before you drop the runtime.
///
/// The first runtime wraps the process's panic hook so that a panic in a
/// task is preceded by a line naming the task (id, name, where it was
/// spawned) with the panic's location and message, since std's message
/// names only the worker thread; the hook that was in place still runs
/// after it. The line is written to stderr directly, so a test harness
/// that captures std's message still shows it. [`Builder::panic_note`]
/// turns it off.
///
/// A destructor that runs while a task panics should not block on
/// growstack: std counts panics per thread, so the worker's next task
/// would see [`std::thread::panicking`] return true until the first one
/// resumes.
pub struct Runtime {
    shared: Arc<Shared>,
    /// The share of tasks spawned from outside the workers.
    outside: Arc<Shard>,
    threads: Vec<std::thread::JoinHandle<()>>,
    monitor: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    /// A runtime with the default settings (see [`Builder`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`]: the operating system refused to start a
    /// thread.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to choose the number of workers and the stack sizes.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The runtime's number, unique in the process (1 for the first built):
    /// [`TaskDump::runtime`](crate::task::TaskDump::runtime) names it.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Runs `f` as a task and waits for it: the calling thread blocks (or,
    /// called from a task, the task parks). A panic in `f` resumes here.
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// let rt = growstack::Runtime::new()?;
    /// let n = rt.block_on(|| {
    ///     let h = growstack::spawn(|| 40);
    ///     h.join().unwrap() + 2
    /// });
    /// assert_eq!(n, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        block_on(&self.outside, f)
    }

    /// Spawns a task on this runtime.
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// let rt = growstack::Runtime::new()?;
    /// let h = rt.spawn(|| "hello from a task");
    /// assert_eq!(h.join().unwrap(), "hello from a task");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn(&self.outside, None, f)
    }

    pub(crate) fn outside(&self) -> &Arc<Shard> {
        &self.outside
    }

    /// A [`Handle`] to spawn on this runtime from elsewhere.
    pub fn handle(&self) -> Handle {
        Handle {
            outside: Arc::clone(&self.outside),
        }
    }
}

/// A handle to a [`Runtime`]: spawns tasks on it from anywhere, such as a
/// plain thread that a task started. Cheap to clone.
///
/// It does not keep the runtime's workers alive: once the `Runtime` is
/// dropped, a task spawned through a handle is cancelled at once (its
/// closure dropped unrun; joining it returns `Err` with a
/// [`Cancelled`](crate::task::Cancelled) payload).
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::new()?;
/// let sum = rt.block_on(|| {
///     let handle = growstack::Handle::current();
///     // A plain thread spawns tasks back on this task's runtime.
///     std::thread::spawn(move || {
///         let tasks: Vec<_> = (0..10u64).map(|i| handle.spawn(move || i * i)).collect();
///         tasks.into_iter().map(|t| t.join().unwrap()).sum::<u64>()
///     })
///     .join()
///     .unwrap()
/// });
/// assert_eq!(sum, 285);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    outside: Arc<Shard>,
}

impl Handle {
    /// The handle of the runtime whose task, or worker, calls this.
    ///
    /// A [`spawn_blocking`](crate::spawn_blocking) job runs on a plain
    /// thread of a pool, outside any runtime: get the handle in the task
    /// and move it into the job.
    ///
    /// # Panics
    ///
    /// Called elsewhere (a plain thread, a `spawn_blocking` job), or on a
    /// worker of a runtime that has been dropped;
    /// [`Handle::try_current`] returns `None` instead.
    #[track_caller]
    pub fn current() -> Handle {
        Handle::try_current().expect(
            "growstack::Handle::current called outside a growstack runtime: call it in a \
             task, or get one from Runtime::handle",
        )
    }

    /// The handle of the runtime whose task, or worker, calls this, if any.
    pub fn try_current() -> Option<Handle> {
        let w = worker::current()?;
        let outside = w.shard.shared.outside.get()?.upgrade()?;
        Some(Handle { outside })
    }

    /// The runtime's number ([`Runtime::id`]).
    pub fn id(&self) -> u64 {
        self.outside.shared.id
    }

    /// Spawns a task on the runtime (see [`Runtime::spawn`]).
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn(&self.outside, None, f)
    }

    /// Runs `f` as a task on the runtime and waits for its value (see
    /// [`Runtime::block_on`]).
    ///
    /// # Panics
    ///
    /// As `block_on`; and with a [`Cancelled`](crate::task::Cancelled)
    /// payload if the runtime has been dropped.
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        block_on(&self.outside, f)
    }
}

/// Runs `f` as a task spawned with `outside` and waits for its value,
/// resuming its panic here (`Runtime::block_on`, `Handle::block_on`).
#[track_caller]
fn block_on<F, T>(outside: &Arc<Shard>, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match spawn(outside, None, f).join() {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in self.shared.workers.iter() {
            let mut state = lock(&w.state);
            state.sleep.kicked = true;
            w.poller.wake();
        }
        {
            let _guard = lock(&self.shared.monitor_lock);
            self.shared.monitor_wakeup.notify_all();
        }
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        let on_own_worker =
            worker::current().is_some_and(|w| Arc::ptr_eq(&w.shard.shared, &self.shared));
        if on_own_worker {
            // Dropped by one of its own tasks: the workers stop by themselves;
            // waiting would wait for this very thread.
            return;
        }
        let mut drained = lock(&self.shared.drained);
        while *drained < self.threads.len() {
            drained = self
                .shared
                .drained_cv
                .wait(drained)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(drained);
        // A worker that still has tasks in flight keeps its thread (and its
        // thread-locals, which those tasks may borrow) parked for good:
        // joining it would never return.
        for (t, w) in self.threads.drain(..).zip(self.shared.workers.iter()) {
            if !lock(&w.state).keeps_thread {
                let _ = t.join();
            }
        }
    }
}

impl core::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.shared.workers.len())
            .field("stack_size", &self.shared.config.stack_size)
            .field("max_stack", &self.shared.config.max_stack)
            .finish()
    }
}

/// The longest `compact_after`: the sweeps count quiet periods (and ten
/// times them, for whole chunks) in wrapping 32-bit milliseconds.
const COMPACT_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// Settings for a [`Runtime`].
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::builder()
///     .workers(2)
///     .stack_size(128 << 10)
///     .max_stack(64 << 20)
///     .build()?;
/// assert_eq!(rt.block_on(|| 1 + 1), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    max_stack: usize,
    cached_stacks: usize,
    preempt: Option<Duration>,
    compact_after: Option<Duration>,
    stall_warning: Option<Duration>,
    stall_report: Option<Duration>,
    dump_on_sigquit: bool,
    panic_note: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: one worker per available core, 256 KiB slots, 1 GiB
    /// at most per task.
    pub fn new() -> Builder {
        Builder {
            workers: None,
            stack_size: TASK_STACK,
            max_stack: 1 << 30,
            cached_stacks: 256,
            preempt: None,
            compact_after: None,
            stall_warning: Some(Duration::from_secs(1)),
            stall_report: None,
            dump_on_sigquit: false,
            panic_note: true,
        }
    }

    /// Number of worker threads (default: [`std::thread::available_parallelism`]).
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Size of each task's slot, the stack it starts on and grows into in
    /// place (default 256 KiB). Rounded up to a power of two, at least
    /// 128 KiB; 64 KiB of it is the guard region and 64 KiB the red zone.
    /// Only touched pages use memory.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// The most stack one task may use, slot and segments together
    /// (default 1 GiB, as in Go). Growing past it panics in the task.
    pub fn max_stack(mut self, bytes: usize) -> Builder {
        self.max_stack = bytes;
        self
    }

    /// How many free task stacks each worker keeps with their pages, so
    /// that new tasks start on memory that is already there (default 256).
    /// The maintenance pass releases the pages of the others.
    pub fn cached_stacks(mut self, n: usize) -> Builder {
        self.cached_stacks = n;
        self
    }

    /// Preempts tasks: one that runs for `time_slice` without blocking or
    /// yielding (10 ms is Go's) yields at its next `#[growable]` call, so
    /// that a busy task cannot keep the others of its worker waiting. Off by
    /// default: tasks switch only where they block on growstack (join, its
    /// channels, sleep, yield). Code that makes no annotated call is never
    /// preempted, nor are `#[nosplit]` functions.
    ///
    /// A switch that the code did not write lands wherever an annotated
    /// call is, and two things of std are not ready for that:
    ///
    /// - a `std::sync::Mutex` (or any lock that blocks the thread) held
    ///   across annotated calls: preempted while holding it, the task lets
    ///   another task of its worker block the worker's thread on the lock,
    ///   and neither ever runs again (a deadlock, not undefined behaviour);
    /// - a `thread_local!` lazy initialiser that makes annotated calls:
    ///   std lets the initialiser of a key be re-entered by another `with`
    ///   of that key on the same thread only when no reference to its value
    ///   is alive; another task of the worker initialising the same key
    ///   meanwhile breaks that, and std then frees a value while a task
    ///   still borrows it.
    ///
    /// # Safety
    ///
    /// No task of this runtime runs a `#[growable]` function (or
    /// [`maybe_grow`](crate::maybe_grow), or, with growstack's `stacker`
    /// patched in, anything that calls `stacker::maybe_grow`: `recursive`,
    /// `stacksafe`, `serde_stacker`) inside the initialiser of a lazily
    /// initialised `thread_local!`. (Locks held across annotated
    /// calls deadlock but are not unsound.)
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// use std::time::Duration;
    /// // SAFETY: no task of this runtime initialises thread-locals.
    /// let rt = unsafe { growstack::Runtime::builder().preempt(Duration::from_millis(10)) }
    ///     .workers(1)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn preempt(mut self, time_slice: Duration) -> Builder {
        self.preempt = Some(time_slice.max(Duration::from_micros(100)));
        self
    }

    /// Compacts the stacks of parked tasks, as Go copies goroutine
    /// stacks: a task parked for `after` (not woken meanwhile) that uses at
    /// most 16 KiB of its slot and holds no segment has its used stack
    /// bytes (typically a few hundred) moved to a buffer (their length,
    /// then them) and its slot's pages given back to the kernel; once every slot of a
    /// 2 MiB chunk has been compacted for ten times `after`, the chunk's
    /// page table goes too. The bytes are copied back to the same
    /// addresses before the task runs again, so no pointer changes. Off by
    /// default. A threshold above a day is taken as a day.
    ///
    /// A million tasks parked on channels take about 5 KiB each without it
    /// and about 1 KiB with it, page tables included (Go's goroutines take
    /// 2.7 KiB; `examples/million_idle`). Waking a compacted task costs a
    /// page fault and a copy on top, about 2.5 µs here. A task woken more
    /// often than every `after` is never compacted. Stats:
    /// [`compactions`](crate::Stats::compactions),
    /// [`compacted_tasks`](crate::Stats::compacted_tasks),
    /// [`compacted_bytes`](crate::Stats::compacted_bytes).
    ///
    /// # Safety
    ///
    /// While a task of this runtime is parked, no other thread or task
    /// reads or writes its stack: nothing outside the stack uses a
    /// reference or pointer into it. This is Go's invariant for goroutine
    /// stacks. growstack keeps it for its own records (the waiters of its
    /// channels, locks and selects live off the stack). Safe code can break
    /// it: a task that lends its locals to other threads or tasks and parks
    /// while they use them, through `std::thread::scope`, a scoped pool
    /// (`rayon::scope`), or another crate's intrusive wait list (a future
    /// pinned on the task's stack and registered with a lock or timer of
    /// another runtime, as tokio's are). While the task is compacted, such
    /// a borrower would read zeroes and its writes would be lost: undefined
    /// behaviour. (A pointer into the stack that is only stored, and used
    /// by the task itself once it runs, is fine: the addresses stay.)
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// use std::time::Duration;
    /// // SAFETY: no task of this runtime lends its stack to others while
    /// // it parks.
    /// let rt = unsafe { growstack::Runtime::builder().compact_after(Duration::from_millis(100)) }
    ///     .build()?;
    /// let (tx, rx) = growstack::chan::bounded::<u64>(0);
    /// let task = rt.spawn(move || rx.recv().unwrap() + 1);
    /// std::thread::sleep(Duration::from_millis(300)); // parked, compacted
    /// tx.send(41).unwrap();
    /// assert_eq!(task.join().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn compact_after(mut self, after: Duration) -> Builder {
        self.compact_after = Some(after.min(COMPACT_AFTER_MAX));
        self
    }

    /// Warns on stderr, once per occurrence, when a task holds its worker
    /// for `after` without switching out while other tasks wait for that
    /// worker, naming the task (id and spawn location): it is blocking its
    /// thread (a std lock or channel, std I/O, `std::thread::sleep`, a long
    /// computation), and the tasks pinned to that worker cannot run
    /// meanwhile, even while other workers idle. Default: on, after 1 s;
    /// `None` turns it off.
    pub fn stall_warning(mut self, after: Option<Duration>) -> Builder {
        self.stall_warning = after;
        self
    }

    /// Prints [`dump_report`](crate::dump_report) on stderr, once per
    /// stall, when no task of this runtime has been resumed for `after`
    /// while its tasks are ready, running, or parked with nothing that
    /// could wake them: no deadline, no socket (a deadlock, or a task
    /// holding its worker). Default: off.
    ///
    /// It cannot see plain threads: tasks parked on a channel or a lock
    /// that a plain thread will serve later are reported too, once, if
    /// that thread takes longer than `after`.
    pub fn stall_report(mut self, after: Duration) -> Builder {
        self.stall_report = Some(after);
        self
    }

    /// Prints [`dump_report`](crate::dump_report) on stderr when the
    /// process gets `SIGQUIT` (Ctrl-\\ in a terminal), as Go does, but
    /// without exiting. Also turned on by the environment variable
    /// `GROWSTACK_DUMP_ON_SIGQUIT=1`. Default: off. Once on, it stays on
    /// for the process: it replaces `SIGQUIT`'s default action (quit with
    /// a core dump) with a handler that wakes a thread of ours, which
    /// prints the dump.
    pub fn dump_on_sigquit(mut self, on: bool) -> Builder {
        self.dump_on_sigquit = on;
        self
    }

    /// Whether a panic in one of this runtime's tasks is preceded, on
    /// stderr, by a line naming the task (id, name, where it was spawned)
    /// with the panic's location and message (default: on). std's own
    /// message names only the worker thread. Turn it off in a program that
    /// silences some panics with its own hook: the line is written before
    /// that hook runs, whatever it decides.
    pub fn panic_note(mut self, on: bool) -> Builder {
        self.panic_note = on;
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for settings out of range (no worker, more than 4096
    /// workers, a task stack over 1 GiB, `max_stack` below the task
    /// stack), with a message naming the setting; otherwise the error of
    /// the operating system when it refuses to start a worker or the
    /// monitor thread (the threads already started are stopped first).
    pub fn build(self) -> io::Result<Runtime> {
        // Before this runtime starts threads: registering is cheap while
        // the process has one (`membarrier`).
        crate::membarrier::register();
        let workers = match self.workers {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "growstack: a runtime needs at least one worker",
                ));
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if workers > MAX_WORKERS {
            return Err(invalid(format!(
                "growstack: {workers} workers asked for, at most {MAX_WORKERS} allowed"
            )));
        }
        if self.stack_size > MAX_TASK_STACK {
            return Err(invalid(format!(
                "growstack: a task stack (slot) of {} bytes asked for, at most {MAX_TASK_STACK} \
                 (1 GiB) allowed; tasks that need more grow onto segments (max_stack)",
                self.stack_size
            )));
        }
        let stack_size = self.stack_size.max(MIN_TASK_STACK).next_power_of_two();
        if stack_size > self.max_stack {
            return Err(invalid(format!(
                "growstack: max_stack ({} bytes) is below the task stack size ({stack_size} bytes)",
                self.max_stack
            )));
        }
        let size = 1usize << arena::class_for(stack_size);
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            workers: (0..workers)
                .map(|_| Remote::new())
                .collect::<io::Result<_>>()?,
            dumping: AtomicUsize::new(0),
            dump_pauses: Mutex::new(Vec::new()),
            injector: Mutex::new(VecDeque::new()),
            injected: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            in_loop: AtomicUsize::new(workers),
            stopped: AtomicBool::new(false),
            joins: Mutex::new(Joins::default()),
            outside: std::sync::OnceLock::new(),
            drained: Mutex::new(0),
            drained_cv: Condvar::new(),
            monitor_lock: Mutex::new(()),
            monitor_wakeup: Condvar::new(),
            config: Config {
                stack_size: size,
                max_stack: self.max_stack,
                cached_stacks: self.cached_stacks,
                preempt: self.preempt,
                compact_after: self.compact_after,
                stall_warning: self.stall_warning,
                stall_report: self.stall_report,
                panic_note: self.panic_note,
            },
        });
        name_tasks_in_panics();
        register(&shared);
        let outside = Shard::new(Arc::clone(&shared), workers);
        let _ = shared.outside.set(Arc::downgrade(&outside));
        let mut rt = Runtime {
            outside,
            shared,
            threads: Vec::with_capacity(workers),
            monitor: None,
        };
        for index in 0..workers {
            let shard = Shard::new(Arc::clone(&rt.shared), index);
            let thread = std::thread::Builder::new()
                .name(format!("growstack-worker-{index}"))
                .spawn(move || Worker::run(index, shard));
            match thread {
                Ok(thread) => rt.threads.push(thread),
                Err(err) => {
                    // The workers that did not start never leave a loop:
                    // account for them, so that dropping `rt` stops the
                    // others (and waits for them only).
                    for _ in index..workers {
                        rt.shared.left_loop();
                    }
                    return Err(err);
                }
            }
        }
        if self.dump_on_sigquit
            || std::env::var_os("GROWSTACK_DUMP_ON_SIGQUIT").is_some_and(|v| v == "1")
        {
            super::sigquit::install()?;
        }
        if self.preempt.is_some() || self.stall_warning.is_some() || self.stall_report.is_some() {
            let shared = Arc::clone(&rt.shared);
            rt.monitor = Some(
                std::thread::Builder::new()
                    .name("growstack-monitor".into())
                    .spawn(move || monitor(&shared))?,
            );
        }
        Ok(rt)
    }
}

/// At most this many workers per runtime.
const MAX_WORKERS: usize = 4096;

/// The largest task slot `Builder::stack_size` accepts.
const MAX_TASK_STACK: usize = 1 << 30;

/// Puts a line naming the task in front of the message of a panic in a
/// task (std names only the thread, a worker), once per process: the
/// panic hook in place is wrapped and still runs after it. A hook set later
/// replaces this one, as with any hook. Not while this thread panics (a
/// runtime built in a destructor during unwinding): std refuses to change
/// the hook then, and a later build installs it.
fn name_tasks_in_panics() {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    if std::thread::panicking() {
        return;
    }
    let mut installed = lock(&INSTALLED);
    if *installed {
        return;
    }
    *installed = true;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let note = worker::current().is_some_and(|w| w.shard.shared.config.panic_note);
        if let Some(spawned) = worker::with_current_info(|i| i.map(|i| i.spawned_at))
            && note
        {
            // One write, whose failure is ignored (a panic in a panic hook
            // aborts, and stderr may be a closed pipe). It goes straight to
            // stderr, past a test harness's capture of std's message, so
            // it says in full what happened.
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("Box<dyn Any>");
            let at = info
                .location()
                .map_or(String::new(), |l| format!(" at {l}"));
            let line = format!(
                "growstack: {} (spawned at {spawned}) panicked{at}: {msg}\n",
                crate::task::describe_current()
            );
            write_stderr(line.as_bytes());
        }
        previous(info);
    }));
}

/// Writes `bytes` to file descriptor 2, ignoring errors, without std's
/// stderr lock: another thread, or a task parked on another worker, may
/// hold that lock for good, and std's own panic message does not take it
/// either.
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write(2) reads `bytes.len()` bytes from a live slice.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// What the monitor knows of one worker.
struct Watch {
    /// Its resume count at the last look, and since when it has not moved.
    resumes: u64,
    since: Instant,
    /// The stall of this resume was reported.
    warned: bool,
}

/// The monitor thread (module docs): preemption requests, and the stall
/// warning.
fn monitor(shared: &Shared) {
    let config = &shared.config;
    let stall_look = config
        .stall_warning
        .map(|d| (d / 4).max(Duration::from_millis(1)));
    let report_look = config
        .stall_report
        .map(|d| (d / 4).max(Duration::from_millis(1)));
    let Some(period) = [config.preempt, stall_look, report_look]
        .into_iter()
        .flatten()
        .min()
    else {
        return;
    };
    let mut progress = dump::Progress::new();
    let now = Instant::now();
    let mut watches: Vec<Watch> = (0..shared.workers.len())
        .map(|_| Watch {
            resumes: u64::MAX,
            since: now,
            warned: false,
        })
        .collect();
    let mut guard = lock(&shared.monitor_lock);
    while !shared.shutting_down() {
        guard = shared
            .monitor_wakeup
            .wait_timeout(guard, period)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        let now = Instant::now();
        for (index, (w, watch)) in shared.workers.iter().zip(&mut watches).enumerate() {
            let p = &w.preempt;
            let resumes = p.resumes.load(Ordering::Relaxed);
            if !p.running.load(Ordering::Relaxed) || resumes != watch.resumes {
                *watch = Watch {
                    resumes,
                    since: now,
                    warned: false,
                };
                continue;
            }
            // The same task has run since `watch.since` at least.
            let held = now - watch.since;
            if config.preempt.is_some_and(|slice| held >= slice) {
                w.request_preempt();
            }
            let waiting = p.others_waiting.load(Ordering::Relaxed)
                || w.has_inbox.load(Ordering::Relaxed)
                || w.fresh_len.load(Ordering::Relaxed) > 0
                || shared.has_injected();
            if !watch.warned && waiting && config.stall_warning.is_some_and(|after| held >= after) {
                watch.warned = true;
                warn_stall(index, p, held);
            }
        }
        if let Some(after) = config.stall_report {
            let resumes = shared.workers.iter().map(Remote::resumes).sum();
            if progress.stalled(resumes, now, after) {
                // The dump waits for the workers: not under the lock.
                drop(guard);
                dump::report_stall(shared.id, after);
                guard = lock(&shared.monitor_lock);
            }
        }
    }
}

/// The stall warning (`Builder::stall_warning`).
fn warn_stall(worker: usize, p: &Preempt, held: Duration) {
    let id = p.task_id.load(Ordering::Relaxed);
    let at = p.spawned_at.load(Ordering::Relaxed);
    // SAFETY: only ever set from a `&'static Location` (`will_resume`).
    let at = unsafe { at.as_ref() }.map_or_else(String::new, |l| format!(", spawned at {l}"));
    // Not `eprintln!`: the stuck task may hold std's stderr lock.
    write_stderr(
        format!(
            "growstack: task #{id}{at} has held worker {worker} for {:.1} s without switching out, \
             while other tasks wait for that worker. It blocks its thread (a std lock or channel, \
             std I/O, std::thread::sleep, or a long computation): run blocking calls with \
             growstack::spawn_blocking, use growstack's channels and sleep, or call \
             growstack::yield_now in long loops. (Builder::stall_warning turns this off.)\n",
            held.as_secs_f64()
        )
        .as_bytes(),
    );
}

/// What every live runtime's workers are doing, as far as other threads
/// can see: for watchdogs (the soak), not a stable format.
pub fn dump_runtimes() -> String {
    use core::fmt::Write;
    let runtimes: Vec<Arc<Shared>> = lock(&RUNTIMES).iter().filter_map(Weak::upgrade).collect();
    let mut out = String::new();
    for (r, shared) in runtimes.iter().enumerate() {
        let _ = writeln!(
            out,
            "runtime {r}: {} workers, {} in their loop, {} sleepers, {} injected, shutting down: {}",
            shared.workers.len(),
            shared.in_loop.load(Ordering::Relaxed),
            shared.sleepers.load(Ordering::Relaxed),
            shared.injected.load(Ordering::Relaxed),
            shared.shutting_down(),
        );
        for (i, w) in shared.workers.iter().enumerate() {
            let p = &w.preempt;
            let at = p.spawned_at.load(Ordering::Relaxed);
            // SAFETY: only ever set from a `&'static Location`.
            let at = unsafe { at.as_ref() }.map_or_else(|| "-".into(), ToString::to_string);
            let state = lock(&w.state);
            let _ = writeln!(
                out,
                "  worker {i}: running {} (last task #{} spawned at {at}), resumes {}, \
                 others waiting {}, idle {}, kicked {}, inbox {}, fresh {}, exited {}",
                p.running.load(Ordering::Relaxed),
                p.task_id.load(Ordering::Relaxed),
                p.resumes.load(Ordering::Relaxed),
                p.others_waiting.load(Ordering::Relaxed),
                state.sleep.idle,
                state.sleep.kicked,
                state.inbox.len(),
                w.fresh_len.load(Ordering::Relaxed),
                state.exited,
            );
        }
    }
    out
}

/// Every runtime alive, in the order they were built.
pub(crate) fn live_runtimes() -> Vec<Arc<Shared>> {
    lock(&RUNTIMES).iter().filter_map(Weak::upgrade).collect()
}

/// Every runtime alive, for `shrink_now` and `dump`.
static RUNTIMES: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn register(shared: &Arc<Shared>) {
    let mut all = lock(&RUNTIMES);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(shared));
}

/// Gives stack memory back now, in the calling thread and in every
/// runtime, and returns when done.
///
/// - The calling thread (unless it is a task) returns all its cached
///   segments to the arena.
/// - Every worker of every runtime runs its maintenance pass at once: tasks
///   that grew and are not running return their cached segments, and those
///   that use less than a quarter of the stack they have resident release
///   the lower half of it (keeping a red zone below their stack pointer);
///   free slots beyond
///   [`Builder::cached_stacks`] are released. Called from a task, the task
///   is parked while its worker does this, so its own stacks shrink too.
///
/// Workers also run this pass by themselves, at least every 10 ms while
/// busy and when they go idle, but then keep segments that were entered
/// since the previous pass (so a call sitting on a segment boundary in a
/// loop does not lose its segment every time).
///
/// It waits for each worker to reach its scheduler: a task that runs
/// without blocking and without annotated calls delays it.
///
/// A plain thread has no such pass: it keeps the segments it grew onto,
/// cached for its next deep call, until it calls `shrink_now` or exits.
/// (A periodic release would need a clock read each time a call returns
/// across a segment boundary: 33-39 ns on our test machine, against about
/// 60 ns for a whole call that sits on a boundary in a loop.) Call it
/// after a deep phase of work.
///
/// [`Stats::shrinks`](crate::Stats::shrinks) counts what it gave back:
/// segments returned and stacks whose pages were released. Segments a
/// task held when it finished go back as it ends, not by a shrink.
///
/// ```
/// # use growstack_runtime as growstack;
/// fn down(n: u32) -> u32 {
///     growstack::maybe_grow(|| {
///         let pad = std::hint::black_box([1u8; 1024]);
///         if n == 0 { 0 } else { down(n - 1) + u32::from(pad[0]) }
///     })
/// }
///
/// let before = growstack::stats().shrinks;
/// assert_eq!(down(20_000), 20_000); // 20+ MiB of stack: onto segments
/// growstack::shrink_now(); // this thread's cached segments go back
/// assert!(growstack::stats().shrinks > before);
/// ```
pub fn shrink_now() {
    let mut shrunk = Shrunk::default();
    if worker::current_task().is_none()
        && let Some(t) = crate::thread::current()
    {
        // SAFETY: this thread's live state and its running chain (no task
        // runs here); we are the context, so its frames are above our sp.
        let chain = unsafe { &mut *(*t).running() };
        shrunk += chain.shrink(crate::arch::stack_pointer(), Pass::Now);
    }
    crate::stats::SHRINKS.fetch_add(shrunk.actions, Ordering::Relaxed);
    // On a worker's scheduler (no task running: a destructor it runs), its
    // own pass runs here; a task waits for its worker like anyone else.
    let here = worker::current().filter(|_| worker::current_task().is_none());
    let mine = here.map(|w| {
        w.shrink_here();
        core::ptr::from_ref(w.remote())
    });
    let runtimes: Vec<Arc<Shared>> = lock(&RUNTIMES).iter().filter_map(Weak::upgrade).collect();
    let (done_tx, done_rx) = chan::unbounded();
    for shared in &runtimes {
        for w in shared.workers.iter() {
            if mine != Some(core::ptr::from_ref(w)) {
                w.request_shrink(done_tx.clone());
            }
        }
    }
    drop(done_tx);
    // Each worker answers, or drops its sender when it exits.
    for () in done_rx.iter() {}
}
