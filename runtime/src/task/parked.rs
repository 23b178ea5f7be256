//! What a parked task waits for, as its dump shows it.
//!
//! Every blocking operation passes a [`ParkedOn`] in its own frame to the
//! park call; the park writes its address (and the deadline) into the
//! task's [`Meta`], a record at the top of the task's stack slot, and
//! clears it when it returns. Only the task's own worker reads it, at its
//! scheduler, while the task is suspended: the frame it points into is
//! then intact. A plain thread ignores it.

use core::cell::Cell;
use core::ptr::NonNull;
use std::time::Instant;

use super::raw::Header;

/// What a parked task waits for: the state of a task in
/// [`dump`](crate::task::dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParkedOn {
    /// A receive on a channel of `elem`s, at address `chan`.
    Recv {
        /// The element type's name.
        elem: &'static str,
        /// The channel's address (the same for all its handles).
        chan: usize,
    },
    /// A send on a channel of `elem`s, at address `chan`.
    Send {
        /// The element type's name.
        elem: &'static str,
        /// The channel's address.
        chan: usize,
    },
    /// A `select!` over `arms` operations.
    Select {
        /// How many arms.
        arms: usize,
    },
    /// A join of task number `task`.
    Join {
        /// The joined task's id.
        task: u64,
    },
    /// A lock of `growstack::sync` (`kind`: `"Mutex"`, `"RwLock"`,
    /// `"Condvar"`, `"Semaphore"`, `"WaitGroup"`, `"Barrier"`,
    /// `"OnceLock"`), at address `addr`.
    Lock {
        /// The primitive's type name.
        kind: &'static str,
        /// Its address.
        addr: usize,
    },
    /// `sleep`.
    Sleep,
    /// A socket of `growstack::net`, file descriptor `fd`.
    Io {
        /// The socket's descriptor.
        fd: i32,
        /// Waiting to write (else to read).
        write: bool,
    },
    /// The task called `dump` and waits for the workers' answers.
    Dump,
}

/// A record at the top of every started task's stack slot: what it is
/// parked on. (Part of the stack: a compacted task's goes with its bytes.)
#[repr(C, align(16))]
pub(crate) struct Meta {
    /// What it is parked on, while it is; null otherwise.
    pub(crate) on: Cell<*const ParkedOn>,
    /// The deadline of its park, if any.
    pub(crate) until: Cell<Option<Instant>>,
}

/// Bytes reserved at the top of a task's slot for its [`Meta`].
pub(crate) const META_BYTES: usize = size_of::<Meta>();

const _: () = assert!(META_BYTES.is_multiple_of(16));

impl Meta {
    /// The record of a started task.
    ///
    /// # Safety
    ///
    /// `task` has run (it has a slot), has not finished, and is not
    /// compacted; the record is touched only on its worker's thread.
    pub(crate) unsafe fn of<'a>(task: NonNull<Header>) -> &'a Meta {
        // SAFETY: by the contract, the cell is alive and its slot's top was
        // published at its first run; the record was written there then.
        unsafe {
            let top = task
                .as_ref()
                .info
                .slot_top
                .load(core::sync::atomic::Ordering::Relaxed);
            &*((top - META_BYTES) as *const Meta)
        }
    }

    /// The running task is about to park on `on` (in its caller's frame)
    /// until `until`.
    #[inline]
    pub(crate) fn note(&self, on: &ParkedOn, until: Option<Instant>) {
        self.on.set(on);
        self.until.set(until);
    }

    /// The park returned: `on` is about to go.
    #[inline]
    pub(crate) fn clear(&self) {
        self.on.set(core::ptr::null());
    }

    /// Writes a fresh record at `top - META_BYTES`.
    ///
    /// # Safety
    ///
    /// The bytes are writable, unused, and 16-byte aligned.
    pub(crate) unsafe fn init(top: usize) {
        // SAFETY: by the contract.
        unsafe {
            ((top - META_BYTES) as *mut Meta).write(Meta {
                on: Cell::new(core::ptr::null()),
                until: Cell::new(None),
            });
        }
    }
}
