//! Tasks: green threads written as plain blocking code.
//!
//! A task is a closure that runs on a stack of its own, a slot of
//! [`Builder::stack_size`](crate::Builder::stack_size) bytes of address
//! space of which only the touched pages use memory. `#[growable]` code in
//! a task continues on segments when the slot runs out, exactly as on a
//! thread. Blocking calls ([`JoinHandle::join`], the [`chan`](crate::chan)
//! operations, [`sleep`], [`yield_now`]) suspend the task and let its
//! worker run others; called outside a task they block the thread.
//!
//! A task runs only on the worker thread that first ran it, so thread-locals
//! and `!Send` values it holds across a blocking call stay on their thread.

mod blocking;
mod cells;
mod compact;
mod dump;
/// The atomics the protocol state machines (`state`) are written
/// against: `core`'s here, loom's when `runtime/tests/loom.rs` includes
/// them.
mod atomic {
    pub(crate) use core::sync::atomic::{AtomicU8, Ordering};
}
/// The synchronisation types the idle protocol (`idle`) is written
/// against: std's here, loom's in `runtime/tests/loom.rs`.
mod sync {
    pub(crate) use core::sync::atomic::{AtomicUsize, Ordering, fence};
    pub(crate) use std::sync::{Mutex, MutexGuard};
}
mod idle;
mod local;
mod park;
mod parked;
pub(crate) mod probe;
mod raw;
mod record;
pub(crate) mod runtime;
mod sigquit;
mod state;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use blocking::spawn_blocking;
pub use dump::{TaskDump, TaskState, dump, dump_report};
pub use local::{AccessError, LocalKey};
pub(crate) use park::{Waker, Wakeup, park, park_releasing, park_until};
pub use parked::ParkedOn;
pub(crate) use raw::Header;
use raw::Joinable;
pub(crate) use raw::TaskInfo;
pub(crate) use record::Record;
use runtime::Shard;
pub use runtime::shrink_now;
pub(crate) use worker::{current_poller, current_task as running_task, preempt_point};

/// An owned permission to join a task (wait for it and take its result).
/// It is `Send` when `T` is, and `Sync` when `T` is.
///
/// Dropping the handle detaches the task: it keeps running, and drops its
/// result itself when it finishes.
pub struct JoinHandle<T> {
    task: Joinable<T>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Joinable<T>) -> Self {
        JoinHandle { task }
    }

    /// Waits for the task to finish: `Ok` with its value, or `Err` with the
    /// payload it panicked with, like [`std::thread::JoinHandle::join`].
    /// In a task this parks the task; on a plain thread it blocks.
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// let rt = growstack::Runtime::new()?;
    /// let ok = rt.spawn(|| 7);
    /// let bad = rt.spawn(|| -> u32 { panic!("boom") });
    /// assert_eq!(ok.join().unwrap(), 7);
    /// let payload = bad.join().unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        self.task.join()
    }

    /// Like [`join`](JoinHandle::join), waiting at most `timeout`: the
    /// handle comes back in `Err` if the task has not finished by then, to
    /// join later or drop (which detaches the task).
    ///
    /// It watches [`is_finished`](JoinHandle::is_finished) with sleeps that
    /// double from 50 µs up to 1 ms (parking a task, blocking a thread), so
    /// it returns within about 1 ms of the task's end; [`join`] itself
    /// wakes at once.
    ///
    /// [`join`]: JoinHandle::join
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// use std::time::Duration;
    /// let rt = growstack::Runtime::new()?;
    /// let (tx, rx) = growstack::chan::bounded::<()>(0);
    /// let waiting = rt.spawn(move || rx.recv().is_ok());
    /// let waiting = waiting.join_timeout(Duration::from_millis(20)).unwrap_err();
    /// tx.send(()).unwrap();
    /// assert!(waiting.join_timeout(Duration::from_secs(60)).ok().unwrap().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<std::thread::Result<T>, JoinHandle<T>> {
        // A timeout beyond any instant is no timeout.
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return Ok(self.join());
        };
        let mut nap = Duration::from_micros(50);
        loop {
            if self.is_finished() {
                return Ok(self.join());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self);
            }
            sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// Whether the task has finished, or will never finish because its
    /// runtime was dropped (either way, `join` would not block).
    pub fn is_finished(&self) -> bool {
        let h = self.task.header();
        h.is_done() || h.runtime_stopped()
    }

    /// The task's id, unique within its runtime.
    pub fn id(&self) -> u64 {
        self.task.header().info.id
    }
}

impl<T> core::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The panic payload [`JoinHandle::join`] returns for a task that will
/// never finish because its runtime was dropped first (like tokio's
/// `JoinError::Cancelled`).
///
/// A task that never started is dropped unrun. A task that started and
/// had not finished is not unwound: it never runs again, its stack and
/// the values on it are leaked, as with [`std::mem::forget`].
///
/// ```
/// # use growstack_runtime as growstack;
/// use growstack::task::Cancelled;
/// let rt = growstack::Runtime::builder().workers(1).build()?;
/// let (started_tx, started) = growstack::chan::bounded(1);
/// let (tx, rx) = growstack::chan::bounded::<()>(1);
/// // Started, then blocked for good on a channel nobody sends on.
/// let stuck = rt.spawn(move || {
///     started_tx.send(()).unwrap();
///     let _ = rx.recv();
/// });
/// started.recv().unwrap();
/// drop(rt);
/// let payload = stuck.join().unwrap_err();
/// assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
/// drop(tx);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl core::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the runtime was dropped before the task finished")
    }
}

impl std::error::Error for Cancelled {}

/// The shard of the worker the calling task runs on.
fn current_shard(what: &str) -> &'static Arc<Shard> {
    match worker::current() {
        Some(w) => &w.shard,
        None => panic!(
            "growstack::{what} called outside a growstack runtime: call it from a task \
             (inside Runtime::block_on or a spawned task), or use Runtime::spawn"
        ),
    }
}

/// Spawns a task on the runtime of the calling task.
///
/// The task runs only on the worker thread that first runs it, and
/// switches only where it blocks on growstack (a join, a channel
/// operation, `sleep`, `yield_now`), unless the runtime preempts
/// ([`Builder::preempt`](crate::Builder::preempt)).
///
/// # Thread-locals
///
/// The tasks of a worker share its thread-locals. Holding a
/// `thread_local!` value (inside `with`) across a blocking call is sound,
/// but another task of the worker may use the same value meanwhile; use
/// [`task_local!`](crate::task_local) for per-task state. **Do not block on
/// growstack inside a `thread_local!` lazy initialiser**: another task of
/// the worker could then initialise the same key, and std would drop a
/// value that a task still borrows.
///
/// # Panics
///
/// Outside a growstack runtime (on a thread that is not one of its
/// workers); use [`Runtime::spawn`](crate::Runtime::spawn) there.
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::new()?;
/// let total = rt.block_on(|| {
///     let hs: Vec<_> = (1..=10u32).map(|i| growstack::spawn(move || i)).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
/// });
/// assert_eq!(total, 55);
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    runtime::spawn(current_shard("spawn"), None, f)
}

/// Options for one task: for now its name, which diagnostics print.
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::new()?;
/// let h = rt.block_on(|| growstack::task::Builder::new().name("parser").spawn(|| 5));
/// assert_eq!(h.join().unwrap(), 5);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
}

impl Builder {
    /// A builder with no name set.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task; a stack overflow report or a limit panic names it.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Spawns the task on the runtime of the calling task (see [`spawn`]).
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        runtime::spawn(current_shard("task::Builder::spawn"), self.name, f)
    }

    /// Spawns the task on `rt`.
    #[track_caller]
    pub fn spawn_on<F, T>(self, rt: &crate::Runtime, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        runtime::spawn(rt.outside(), self.name, f)
    }
}

/// Lets other tasks of this worker run; outside a task, yields the thread.
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::builder().workers(1).build()?;
/// rt.block_on(|| {
///     let h = growstack::spawn(|| 1);
///     while !h.is_finished() {
///         growstack::yield_now();
///     }
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn yield_now() {
    if !worker::yield_task() {
        std::thread::yield_now();
    }
}

/// Suspends the calling task for at least `d` (its worker runs others
/// meanwhile); outside a task, sleeps the thread.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::time::{Duration, Instant};
/// let rt = growstack::Runtime::new()?;
/// let waited = rt.block_on(|| {
///     let start = Instant::now();
///     growstack::sleep(Duration::from_millis(5));
///     start.elapsed()
/// });
/// assert!(waited >= Duration::from_millis(5));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sleep(d: Duration) {
    if worker::current_task().is_none() {
        return std::thread::sleep(d);
    }
    // Past any instant: forever, as `std::thread::sleep` does.
    let Some(deadline) = Instant::now().checked_add(d) else {
        loop {
            park::park(&ParkedOn::Sleep);
        }
    };
    while Instant::now() < deadline {
        park_until(deadline, &ParkedOn::Sleep);
    }
}

/// The id of the calling task, `None` outside a task.
pub fn current_id() -> Option<u64> {
    worker::with_current_info(|info| info.map(|i| i.id))
}

/// "task #3 'name' (on thread 'growstack-worker-0')" or "thread 'main'",
/// for messages.
pub(crate) fn describe_current() -> String {
    let thread = std::thread::current();
    let thread_name = thread.name().unwrap_or("<unnamed>");
    worker::with_current_info(|info| match info {
        Some(i) => match &i.name {
            Some(name) => format!("task #{} '{name}' (on thread '{thread_name}')", i.id),
            None => format!("task #{} (on thread '{thread_name}')", i.id),
        },
        None => format!("thread '{thread_name}'"),
    })
}
