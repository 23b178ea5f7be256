//! The blocking pool: plain threads that run the closures given to
//! [`spawn_blocking`], so that a task can wait for a blocking call without
//! blocking its worker (and the other tasks pinned to it).
//!
//! A job is a task cell without a stack of its own: a pool thread runs its
//! closure on the thread's stack (`TaskRef::run_on_thread`), and its
//! `JoinHandle` is an ordinary one. Threads are started on demand, up to
//! [`MAX_THREADS`], and exit after [`KEEP_IDLE`] without work, like
//! tokio's blocking pool.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::JoinHandle;
use super::raw::{TaskInfo, TaskRef};

/// At most this many pool threads at once (tokio's default); jobs beyond
/// wait in the queue.
const MAX_THREADS: usize = 512;

/// A pool thread with nothing to do exits after this long.
const KEEP_IDLE: Duration = Duration::from_secs(10);

/// Native stack of a pool thread (std's default for spawned threads).
const THREAD_STACK: usize = 2 << 20;

/// Ids of blocking jobs: their own range, apart from tasks' ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(FIRST_ID);
const FIRST_ID: u64 = 1 << 63;

/// Whether `id` is a blocking job's (a task's join may wait on one).
pub(crate) fn is_job(id: u64) -> bool {
    id >= FIRST_ID
}

struct Pool {
    queue: VecDeque<TaskRef>,
    threads: usize,
    /// Threads waiting for work and not yet notified.
    idle: usize,
    /// Notifications sent and not yet taken: a notified thread no longer
    /// counts as idle, so that jobs spawned back to back each get a thread
    /// of their own (counting it idle until it woke, N idle threads took
    /// N+1 jobs without starting one, and N+1 jobs waiting for each other
    /// hung).
    notified: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    queue: VecDeque::new(),
    threads: 0,
    idle: 0,
    notified: 0,
});
static WORK: Condvar = Condvar::new();

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    // Nothing panics while holding it; recover anyway.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a thread of the blocking pool and returns a handle to join
/// it: from a task, joining parks the task (its worker runs others
/// meanwhile); from a plain thread, it blocks the thread. Use it for calls
/// that block the OS thread (std I/O, std locks held elsewhere, a
/// `std::thread` join, long computations without `#[growable]` calls):
/// made directly in a task, they stall every task of its worker.
///
/// A panic in `f` is returned by `join`, as for a task.
///
/// ```
/// # use growstack_runtime as growstack;
/// let rt = growstack::Runtime::new()?;
/// let len = rt.block_on(|| {
///     // Blocking file I/O, off the worker.
///     growstack::spawn_blocking(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len()))
///         .join()
///         .unwrap()
/// })?;
/// assert!(len > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let info = TaskInfo {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        name: None,
        stack_size: THREAD_STACK,
        slot_top: core::sync::atomic::AtomicUsize::new(0),
        spawned_at: core::panic::Location::caller(),
    };
    let (job, handle) = TaskRef::new(None, info, f);
    let mut pool = lock();
    pool.queue.push_back(job);
    if pool.idle > 0 {
        pool.idle -= 1;
        pool.notified += 1;
        WORK.notify_one();
    } else if pool.threads < MAX_THREADS {
        let started = std::thread::Builder::new()
            .name("growstack-blocking".into())
            .stack_size(THREAD_STACK)
            .spawn(pool_thread);
        match started {
            Ok(_) => pool.threads += 1,
            // With no thread at all, nothing would ever run the job.
            Err(err) if pool.threads == 0 => {
                let job = pool.queue.pop_back().expect("pushed above");
                drop(pool);
                let msg =
                    format!("growstack: no thread could be started for spawn_blocking: {err}");
                // SAFETY: the job never ran and never will (it is out of the
                // queue); no worker touches it.
                unsafe { job.fail(Box::new(msg)) };
            }
            // Without a new thread, the job waits for a busy one.
            Err(_) => {}
        }
    }
    JoinHandle::new(handle)
}

fn pool_thread() {
    let mut pool = lock();
    loop {
        if let Some(job) = pool.queue.pop_front() {
            drop(pool);
            // SAFETY: the job came out of the queue once, never ran, and
            // is not a runtime's task (no worker touches it).
            unsafe { job.run_on_thread() };
            drop(job);
            pool = lock();
            continue;
        }
        pool.idle += 1;
        loop {
            let (next, timeout) = WORK
                .wait_timeout(pool, KEEP_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            pool = next;
            if pool.notified > 0 {
                // Counted out of `idle` by whoever notified.
                pool.notified -= 1;
                break;
            }
            if timeout.timed_out() {
                pool.idle -= 1;
                pool.threads -= 1;
                return;
            }
            // A spurious wake-up: still idle.
        }
    }
}
