//! The runtime: its workers, their shared queues, and the protocol by which
//! idle workers sleep and are woken.
//!
//! Sleeping without lost wake-ups: an idle worker first announces itself
//! (`idle = true` under its lock, then `sleepers += 1`), then looks for work
//! once more, and only then waits on its condition variable. Whoever adds
//! work pushes it first and then reads `sleepers` (both sequentially
//! consistent): either the worker's last look finds the work, or the pusher
//! sees the sleeper and kicks it.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::JoinHandle;
use super::raw::{TaskCell, TaskInfo, TaskRef};
use super::worker::{self, Worker};
use crate::stack::{MIN_TASK_STACK, TASK_STACK, arena};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Config {
    pub(crate) stack_size: usize,
    pub(crate) max_stack: usize,
}

/// The part of a worker other threads reach.
pub(crate) struct Remote {
    fresh: Mutex<VecDeque<TaskRef>>,
    fresh_len: AtomicUsize,
    pub(crate) has_inbox: AtomicBool,
    state: Mutex<RemoteState>,
    wakeup: Condvar,
}

#[derive(Default)]
struct RemoteState {
    inbox: Vec<TaskRef>,
    idle: bool,
    kicked: bool,
}

impl Remote {
    fn new() -> Remote {
        Remote {
            fresh: Mutex::new(VecDeque::new()),
            fresh_len: AtomicUsize::new(0),
            has_inbox: AtomicBool::new(false),
            state: Mutex::new(RemoteState::default()),
            wakeup: Condvar::new(),
        }
    }

    /// Queues a task pinned to this worker, from another thread.
    pub(crate) fn push_remote(&self, task: TaskRef) {
        let mut state = lock(&self.state);
        state.inbox.push(task);
        self.has_inbox.store(true, Ordering::Release);
        if state.idle {
            state.kicked = true;
            self.wakeup.notify_one();
        }
    }

    pub(crate) fn drain_inbox(&self, into: &mut VecDeque<TaskRef>) {
        let mut state = lock(&self.state);
        self.has_inbox.store(false, Ordering::Relaxed);
        into.extend(state.inbox.drain(..));
    }

    fn push_fresh(&self, task: TaskRef) {
        let mut fresh = lock(&self.fresh);
        fresh.push_back(task);
        self.fresh_len.store(fresh.len(), Ordering::Relaxed);
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
        let mut state = lock(&self.state);
        if state.idle && !state.kicked {
            state.kicked = true;
            self.wakeup.notify_one();
            return true;
        }
        false
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
        let stride = self.shared.workers.len() as u64 + 1;
        self.next_seq.fetch_add(1, Ordering::Relaxed) * stride + self.index + 1
    }
}

/// Creates a task and queues it: on the calling worker, if it belongs to
/// the shard's runtime, with that worker's shard; else on the injector.
pub(crate) fn spawn<F, T>(outside: &Arc<Shard>, name: Option<String>, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let shared = &outside.shared;
    let on_worker = worker::current().filter(|w| Arc::ptr_eq(&w.shard.shared, shared));
    let shard = on_worker.map_or(outside, |w| &w.shard);
    let info = TaskInfo {
        id: shard.next_id(),
        name: name.map(String::into_boxed_str),
        stack_size: shared.config.stack_size,
    };
    let cell = TaskCell::new(Arc::clone(shard), info, f);
    let task: TaskRef = cell.clone();
    match on_worker {
        Some(w) => {
            shared.workers[w.index].push_fresh(task);
            // The only worker is this one, and it is busy: nobody to wake.
            if shared.workers.len() > 1 {
                shared.notify_idle();
            }
        }
        None => {
            let mut injector = lock(&shared.injector);
            injector.push_back(task);
            shared.injected.store(injector.len(), Ordering::Relaxed);
            drop(injector);
            shared.notify_idle();
        }
    }
    JoinHandle::new(cell)
}

/// What the workers of one runtime share.
pub(crate) struct Shared {
    pub(crate) workers: Box<[Remote]>,
    injector: Mutex<VecDeque<TaskRef>>,
    injected: AtomicUsize,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    pub(crate) config: Config,
}

impl Shared {
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn pop_injected(&self) -> Option<TaskRef> {
        if self.injected.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut injector = lock(&self.injector);
        let task = injector.pop_front();
        self.injected.store(injector.len(), Ordering::Relaxed);
        task
    }

    /// After work was added: wakes one sleeping worker, if any.
    fn notify_idle(&self) {
        core::sync::atomic::fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.workers.iter().any(Remote::kick);
        }
    }

    /// The idle protocol (module docs). `recheck` looks for work once more
    /// after the announcement and takes it if there is some.
    pub(crate) fn sleep(
        &self,
        me: &Remote,
        deadline: Option<Instant>,
        recheck: impl FnOnce() -> Option<()>,
    ) {
        lock(&me.state).idle = true;
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let found = recheck().is_some();
        let mut state = lock(&me.state);
        while !found && !state.kicked && state.inbox.is_empty() && !self.shutting_down() {
            match deadline {
                None => state = me.wakeup.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    let now = Instant::now();
                    if at <= now {
                        break;
                    }
                    state = me
                        .wakeup
                        .wait_timeout(state, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        state.idle = false;
        state.kicked = false;
        drop(state);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
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
/// now switch out. Tasks that have not finished by then never run again:
/// one that never started drops its closure; one that is parked keeps its
/// stack memory forever and its destructors never run (as with
/// [`std::mem::forget`]). Join your tasks before you drop the runtime.
pub struct Runtime {
    shared: Arc<Shared>,
    /// The share of tasks spawned from outside the workers.
    outside: Arc<Shard>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Runtime {
    /// A runtime with the default settings (see [`Builder`]).
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to choose the number of workers and the stack sizes.
    pub fn builder() -> Builder {
        Builder::new()
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
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
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
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in self.shared.workers.iter() {
            let mut state = lock(&w.state);
            state.kicked = true;
            w.wakeup.notify_one();
        }
        let on_own_worker =
            worker::current().is_some_and(|w| Arc::ptr_eq(&w.shard.shared, &self.shared));
        if on_own_worker {
            // Dropped by one of its own tasks: the workers stop by themselves;
            // joining would wait for this very thread.
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        lock(&self.shared.injector).clear();
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

    /// Starts the worker threads.
    pub fn build(self) -> io::Result<Runtime> {
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
        let stack_size = self.stack_size.max(MIN_TASK_STACK).next_power_of_two();
        let size = 1usize << arena::class_for(stack_size);
        let shared = Arc::new(Shared {
            workers: (0..workers).map(|_| Remote::new()).collect(),
            injector: Mutex::new(VecDeque::new()),
            injected: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            config: Config {
                stack_size: size,
                max_stack: self.max_stack,
            },
        });
        let mut rt = Runtime {
            outside: Shard::new(Arc::clone(&shared), workers),
            shared,
            threads: Vec::with_capacity(workers),
        };
        for index in 0..workers {
            let shard = Shard::new(Arc::clone(&rt.shared), index);
            let thread = std::thread::Builder::new()
                .name(format!("growstack-worker-{index}"))
                .spawn(move || Worker::run(index, shard))?;
            rt.threads.push(thread);
        }
        Ok(rt)
    }
}
