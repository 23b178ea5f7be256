//! Records other threads reach while their owner is parked (a channel's or
//! a lock's waiter, a select's token: Go's `sudog`s), kept off the owner's
//! stack.
//!
//! A task's stack may be compacted while it is parked (`worker::compact`):
//! its bytes move to a buffer, its pages go back to the kernel, and they
//! are copied back to the same addresses before it runs again. Nothing of
//! another thread may point into it meanwhile, so a blocked call keeps its
//! waiter in a [`Record`]: in a block its task keeps for the purpose (one
//! per task, allocated at its first wait, reused by every later one, freed
//! when the task finishes). A record made while the task's block is in use
//! (a select's arms, a wait nested in another) takes a block of its own
//! from the worker's cache; a plain thread's, or a value too large for a
//! block, is boxed. Taking the task's block is a few loads and stores: a
//! channel ping-pong parks twice per round trip.
//!
//! A record never outlives the blocking call that made it: it is a local
//! of that call (`chan`'s send and receive, the waits of `sync`, a
//! select's token), or, for a select's arms, dropped by the select before
//! it returns. So it is dropped by the task that made it, in the frames of
//! that call (or while they unwind), and gives its block back into the
//! context of a task that is certainly alive: the one running. (The arms of
//! a select live on in the caller's frame, which a foreign coroutine can
//! carry to another task of the worker after the first one finished: when
//! they kept their records, dropping them there wrote into a freed cell.)
//! No user code that could switch coroutines runs while a record lives: a
//! message a record holds is taken out before the call returns.

use core::alloc::Layout;
use core::cell::Cell;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use super::cells;
use super::raw::Header;

/// Size of a task's record block.
const BLOCK_BYTES: usize = 128;
/// Its alignment (malloc's).
const BLOCK_ALIGN: usize = 16;

const BLOCK: Layout = match Layout::from_size_align(BLOCK_BYTES, BLOCK_ALIGN) {
    Ok(layout) => layout,
    Err(_) => panic!("a valid layout"),
};

/// A value at an address that does not change while it lives and that is
/// not on the owner's stack. Derefs to the value.
pub(crate) struct Record<W> {
    ptr: NonNull<W>,
    /// The task whose block holds the value; `None` for a box.
    task: Option<NonNull<Header>>,
}

impl<W> Record<W> {
    /// Whether a `W` fits in a task's block.
    const FITS: bool = size_of::<W>() <= BLOCK_BYTES && align_of::<W>() <= BLOCK_ALIGN;

    /// The value `make` returns, in the block of `task` (the running task:
    /// the caller got it from `worker::current_task` on this thread) if it
    /// is free and large enough, else in a box. (Made once its place is
    /// known, so that it is written there directly.)
    #[inline(always)]
    pub(crate) fn new_in(task: Option<NonNull<Header>>, make: impl FnOnce() -> W) -> Record<W> {
        let ptr = match task.filter(|_| Self::FITS) {
            Some(task) => {
                // SAFETY: `task` is the running task: its cell is alive, and
                // its context is touched only on this thread (its worker's),
                // never across a switch; only this field is borrowed,
                // briefly.
                let spare = unsafe { &*block_of(task) };
                spare.take().unwrap_or_else(new_block).cast()
            }
            None => boxed::<W>(),
        };
        // SAFETY: the place is ours, and holds a `W`: a block is
        // `BLOCK_BYTES` long and aligned to `BLOCK_ALIGN` (`FITS`), a box
        // was made for one.
        unsafe { ptr.write(make()) };
        Record {
            ptr,
            task: task.filter(|_| Self::FITS),
        }
    }

    /// `value` in the running task's block, or in a box.
    pub(crate) fn new(value: W) -> Record<W> {
        Record::new_in(super::worker::current_task(), || value)
    }
}

impl<W> Deref for Record<W> {
    type Target = W;
    fn deref(&self) -> &W {
        // SAFETY: the value lives until the record is dropped.
        unsafe { self.ptr.as_ref() }
    }
}

impl<W> DerefMut for Record<W> {
    fn deref_mut(&mut self) -> &mut W {
        // SAFETY: as in `deref`; the record is its only owner.
        unsafe { self.ptr.as_mut() }
    }
}

impl<W> Drop for Record<W> {
    #[inline(always)]
    fn drop(&mut self) {
        let Some(task) = self.task else {
            // SAFETY: made by `boxed` and written in `new_in`; freed once,
            // here.
            unsafe { unbox(self.ptr) };
            return;
        };
        // SAFETY: the value was written by `new_in` and is dropped once,
        // here.
        unsafe { self.ptr.drop_in_place() };
        debug_assert_eq!(
            super::worker::current_task(),
            Some(task),
            "a record dropped outside its blocking call"
        );
        // SAFETY: `task` runs this code, so its cell is alive and its
        // context is touched on this thread only (as in `new_in`): a record
        // never outlives the blocking call that made it (module docs).
        let spare = unsafe { &*block_of(task) };
        if spare.get().is_none() {
            spare.set(Some(self.ptr.cast()));
        } else {
            // A nested record took a fresh block meanwhile, and gave it
            // back first.
            // SAFETY: a block, and its value is dropped.
            unsafe { free_nested(self.ptr.cast()) };
        }
    }
}

/// A block for a record nested in another (the task's own is in use).
#[cold]
#[inline(never)]
fn new_block() -> NonNull<u8> {
    cells::allocate(BLOCK)
}

/// Frees a block [`new_block`] made.
///
/// # Safety
///
/// `block` came from `new_block`, and holds no value.
#[cold]
#[inline(never)]
unsafe fn free_nested(block: NonNull<u8>) {
    // SAFETY: by the contract.
    unsafe { cells::deallocate(block, BLOCK) };
}

/// Room for a `W` in a box of its own (a plain thread's record).
#[cold]
#[inline(never)]
fn boxed<W>() -> NonNull<W> {
    NonNull::from(Box::leak(Box::<W>::new_uninit())).cast()
}

/// Drops and frees a record [`boxed`] made.
///
/// # Safety
///
/// `ptr` came from `boxed`, holds a `W`, and is not used again.
#[cold]
#[inline(never)]
unsafe fn unbox<W>(ptr: NonNull<W>) {
    // SAFETY: by the contract: a box of `W`, initialised.
    drop(unsafe { Box::from_raw(ptr.as_ptr()) });
}

/// The spare block field of `task`'s context.
///
/// # Safety
///
/// `task`'s cell is alive.
unsafe fn block_of(task: NonNull<Header>) -> *const Cell<Option<NonNull<u8>>> {
    // SAFETY: by the contract; no reference to the context is made.
    unsafe { &raw const (*task.as_ref().ctx.get()).record }
}

/// Frees a task's spare block, once the task is gone (its context dropped).
pub(crate) fn free_block(block: Option<NonNull<u8>>) {
    if let Some(block) = block {
        // SAFETY: spare blocks come from `cells::allocate(BLOCK)` and hold
        // no value.
        unsafe { cells::deallocate(block, BLOCK) };
    }
}
