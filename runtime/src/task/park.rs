//! Parking and waking, the same for tasks and plain threads.
//!
//! Every blocking operation (join, channel send/recv, sleep) follows one
//! pattern: check the condition, register a [`Waker::current`] where the
//! other side will find it, then [`park`] and check again. Parking may
//! return spuriously; a wake that comes before the park is not lost (a
//! task's state records it, std's thread parker a token).

use std::time::Instant;

use super::raw::{NOTIFIED, PARKED, RUNNING, TaskRef};
use super::worker;
use core::sync::atomic::Ordering;

/// Whom to wake: a task, or a plain thread blocked in `park`.
#[derive(Clone)]
pub(crate) enum Waker {
    Task(TaskRef),
    Thread(std::thread::Thread),
}

impl Waker {
    /// The running task, or else the calling thread.
    pub(crate) fn current() -> Waker {
        match worker::current_task() {
            Some(task) => Waker::Task(task),
            None => Waker::Thread(std::thread::current()),
        }
    }

    pub(crate) fn wake(self) {
        match self {
            Waker::Task(task) => wake_task(task),
            Waker::Thread(thread) => thread.unpark(),
        }
    }
}

/// Makes a parked task runnable again, or, if it is running, makes its
/// next park return at once.
pub(crate) fn wake_task(task: TaskRef) {
    let state = &task.header().state;
    let mut s = state.load(Ordering::Acquire);
    loop {
        let next = match s {
            PARKED => RUNNING,
            RUNNING => NOTIFIED,
            _ => return,
        };
        match state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) if s == PARKED => return worker::schedule(task),
            Ok(_) => return,
            Err(actual) => s = actual,
        }
    }
}

/// Suspends the running task until it is woken, or blocks the calling
/// thread until it is unparked. May return spuriously.
pub(crate) fn park() {
    if !worker::park_task() {
        std::thread::park();
    }
}

/// Like [`park`], returning at `deadline` at the latest.
pub(crate) fn park_until(deadline: Instant) {
    if !worker::park_task_until(deadline) {
        let now = Instant::now();
        if deadline > now {
            std::thread::park_timeout(deadline - now);
        }
    }
}
