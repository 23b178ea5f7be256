//! Compacted stacks: the bytes of a parked task's stack, kept in a buffer
//! while the stack's pages are given back. Buffers come from the worker's
//! cell cache (64-byte classes up to 1 KiB: a million compacted tasks
//! fragment nothing), malloc above.
//!
//! Go copies a goroutine's stack to a new place and fixes every pointer
//! into it, which needs the stack maps Rust does not have. A parked task's
//! stack can still be copied *out and back to the same addresses*: nothing
//! of it runs while it is parked, so its used bytes (from its saved stack
//! pointer to the top of its slot, typically a few hundred) can wait in a
//! buffer, its slot's pages can be released, and the bytes are copied back
//! before anything reads them again: before the task runs
//! (`worker::compact`), before a dump captures its backtrace, and when its
//! cell is dropped with the task unfinished. No address changes.
//!
//! Nothing outside the stack may use a reference into it meanwhile (one
//! merely stored is fine: the addresses stay). The runtime's own
//! records that other threads reach while a task is parked live off its
//! stack (`record`); user code that lends a parked task's locals to others
//! (`std::thread::scope`, an intrusive future of another crate) is ruled
//! out by the contract of `Builder::compact_after`, which is why it is
//! `unsafe`.

use core::alloc::Layout;
use core::ptr::NonNull;

use super::cells;
use crate::stack::{Slot, chunks};
use crate::stats::{self, Counter};

/// The bytes of a compacted stack: a buffer holding their length, then
/// them (one word in the task's context).
pub(crate) struct Compacted {
    buf: NonNull<u8>,
}

/// Where the bytes start in the buffer, after their length.
const HEAD: usize = size_of::<usize>();

// One word in every task's context.
const _: () = assert!(size_of::<Option<Compacted>>() == size_of::<usize>());

impl Compacted {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(HEAD + len, 16).expect("a stack's length")
    }

    /// Copies `[sp, top)` out into a new buffer.
    ///
    /// # Safety
    ///
    /// `sp < top`, and `[sp, top)` is readable and not written meanwhile.
    pub(crate) unsafe fn take(sp: usize, top: usize) -> Compacted {
        let len = top - sp;
        let buf = cells::allocate(Self::layout(len));
        // SAFETY: by the contract the source is readable; the buffer is
        // new, `HEAD + len` bytes long and 16-byte aligned, and apart from
        // it.
        unsafe {
            buf.cast::<usize>().write(len);
            core::ptr::copy_nonoverlapping(sp as *const u8, buf.as_ptr().add(HEAD), len);
        }
        stats::add(Counter::CompactedTasks, 1);
        stats::add(Counter::CompactedBytes, len as isize);
        Compacted { buf }
    }

    /// Copies the bytes back to the top of `slot` (its guard first
    /// reinstalled if its chunk was released whole) and frees the buffer.
    ///
    /// # Safety
    ///
    /// The bytes were taken from there, and nothing uses that range now.
    pub(crate) unsafe fn restore(self, slot: &Slot) {
        chunks::restoring(slot);
        // SAFETY: written by `take`.
        let len = unsafe { self.buf.cast::<usize>().read() };
        // SAFETY: by the contract the range is in our slot and unused; its
        // pages are zero-fill-on-demand if they were released. The buffer
        // holds the `len` bytes after its head, apart from the slot.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.buf.as_ptr().add(HEAD),
                (slot.top() - len) as *mut u8,
                len,
            )
        };
        stats::add(Counter::CompactedTasks, -1);
        stats::add(Counter::CompactedBytes, -(len as isize));
        // SAFETY: allocated in `take` with this layout, and no longer used.
        unsafe { cells::deallocate(self.buf, Self::layout(len)) };
    }
}
