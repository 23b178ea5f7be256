//! A worker's ready queue: tasks that ran on it and are runnable again.

use core::cell::Cell;
use core::ptr::NonNull;

use crate::task::raw::{Header, TaskRef};

/// First in, first out, linked through the tasks' contexts (which only
/// their worker touches), holding one reference to each. A `VecDeque`
/// took about 20 instructions to push and as many to pop, with a
/// `RefCell` around it; every channel wake and every handoff does one.
pub(super) struct ReadyQueue {
    head: Cell<Option<NonNull<Header>>>,
    tail: Cell<Option<NonNull<Header>>>,
}

impl ReadyQueue {
    pub(super) const fn new() -> ReadyQueue {
        ReadyQueue {
            head: Cell::new(None),
            tail: Cell::new(None),
        }
    }

    /// Queues `task`, last.
    ///
    /// # Safety
    ///
    /// The calling thread is the worker `task` is pinned to (so the task's
    /// context is its to touch), and this is that worker's queue.
    #[inline]
    pub(super) unsafe fn push_back(&self, task: TaskRef) {
        let task = task.into_raw();
        // SAFETY: by the contract; the reference given up above keeps the
        // cell alive while it is queued.
        unsafe { (*task.as_ref().ctx.get()).next_ready = None };
        match self.tail.replace(Some(task)) {
            // SAFETY: the tail is queued here, so alive and pinned to this
            // worker too.
            Some(tail) => unsafe { (*tail.as_ref().ctx.get()).next_ready = Some(task) },
            None => self.head.set(Some(task)),
        }
    }

    /// Whether no task is queued.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.head.get().is_none()
    }

    /// Takes the oldest task.
    #[inline]
    pub(super) fn pop_front(&self) -> Option<TaskRef> {
        let head = self.head.get()?;
        // SAFETY: the head is queued here: alive, and its context is this
        // worker's (`push_back`).
        let next = unsafe { (*head.as_ref().ctx.get()).next_ready.take() };
        self.head.set(next);
        if next.is_none() {
            self.tail.set(None);
        }
        // SAFETY: the queue's reference, given up by `push_back`, taken over
        // once (the task left the queue above).
        Some(unsafe { TaskRef::from_raw(head) })
    }

    /// Takes every task out, oldest first.
    pub(super) fn take_all(&self) -> Vec<TaskRef> {
        core::iter::from_fn(|| self.pop_front()).collect()
    }
}

impl Drop for ReadyQueue {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}
