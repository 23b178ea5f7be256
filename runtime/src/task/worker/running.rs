//! The task a worker runs now.

use core::cell::Cell;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use crate::task::raw::{Header, TaskRef};

/// The task a worker runs now, holding the scheduler's reference to it
/// while it runs; empty while the scheduler runs.
///
/// A cell of the task's address: every park, wake and switch reads it, and
/// as a `RefCell<Option<TaskRef>>` each read was a borrow count and its
/// checks.
pub(super) struct Running(Cell<Option<NonNull<Header>>>);

impl Running {
    pub(super) const fn new() -> Running {
        Running(Cell::new(None))
    }

    /// The running task's address. The reference held here keeps its cell
    /// alive until [`take`](Self::take), which only the worker calls, once
    /// the task has switched out.
    #[inline]
    pub(super) fn get(&self) -> Option<NonNull<Header>> {
        self.0.get()
    }

    /// The running task's header.
    ///
    /// # Safety
    ///
    /// The reference is not used once the task switched out (its
    /// reference may then be taken and dropped): the task itself may use
    /// it until it switches out, the worker until it takes the task.
    #[inline]
    pub(super) unsafe fn header(&self) -> Option<&Header> {
        // SAFETY: the reference held here keeps the cell alive, for as
        // long as the contract lets the caller use it.
        self.get().map(|task| unsafe { task.as_ref() })
    }

    /// Makes `task` the running one (none is).
    #[inline]
    pub(super) fn set(&self, task: TaskRef) {
        debug_assert!(self.0.get().is_none(), "growstack: two tasks running");
        self.0.set(Some(task.into_raw()));
    }

    /// Takes the running task's reference back.
    #[inline]
    pub(super) fn take(&self) -> Option<TaskRef> {
        // SAFETY: the address came from `into_raw` in `set`, and emptying
        // the cell makes this the one taking that reference over.
        self.0.take().map(|task| unsafe { TaskRef::from_raw(task) })
    }

    /// A new reference to the running task.
    pub(super) fn clone_ref(&self) -> Option<TaskRef> {
        self.get().map(|task| {
            // SAFETY: a view of the reference held here, never dropped.
            let held = ManuallyDrop::new(unsafe { TaskRef::from_raw(task) });
            TaskRef::clone(&held)
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.take());
    }
}
