//! Memory for task cells, recycled by each worker.
//!
//! Spawning and joining a task allocates and frees one cell. glibc's
//! per-thread cache keeps only 7 free blocks of a size, so a burst of
//! spawns followed by a burst of joins went through malloc's slow paths:
//! a third of the instructions of `spawn` + `join` (callgrind of
//! benches/tasks.rs's pattern, 1000 tasks at a time). A worker therefore
//! keeps the cells freed on its thread, by size class, and hands them out
//! again newest first, while they are still in its cache. Cells freed on
//! other threads, and cells too large or too aligned for a class, go back
//! to the global allocator.

use core::cell::RefCell;
use core::ptr::NonNull;
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};

use super::worker;

/// Size classes are multiples of this.
const GRAIN: usize = 64;
/// The largest cached cell.
const MAX_CACHED: usize = 1024;
const CLASSES: usize = MAX_CACHED / GRAIN;
/// Free cells a worker keeps per class (256 KiB for 256-byte cells).
const PER_CLASS: usize = 1024;
/// malloc's own alignment: blocks of a class are allocated with it.
const BLOCK_ALIGN: usize = 16;

/// A worker's free cells.
pub(crate) struct CellCache {
    free: RefCell<[Vec<NonNull<u8>>; CLASSES]>,
}

impl CellCache {
    pub(crate) fn new() -> CellCache {
        CellCache {
            free: RefCell::new(core::array::from_fn(|_| Vec::new())),
        }
    }
}

impl Drop for CellCache {
    fn drop(&mut self) {
        for (class, blocks) in self.free.get_mut().iter_mut().enumerate() {
            for ptr in blocks.drain(..) {
                // SAFETY: every cached block was allocated by `allocate`
                // with the layout of its class, and is free.
                unsafe { dealloc(ptr.as_ptr(), class_layout(class)) };
            }
        }
    }
}

/// The class of cells of `layout`, if they are cached.
fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_CACHED && layout.align() <= BLOCK_ALIGN)
        .then(|| layout.size().max(1).div_ceil(GRAIN) - 1)
}

/// The layout every block of `class` is allocated with.
fn class_layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * GRAIN, BLOCK_ALIGN).expect("small and aligned")
}

/// Memory for a cell of `layout` (never zero-sized: a cell holds a
/// header): a cached block of its class if this thread is a worker that
/// has one, else a new one.
pub(crate) fn allocate(layout: Layout) -> NonNull<u8> {
    let class = class_of(layout);
    if let (Some(class), Some(w)) = (class, worker::current())
        && let Some(ptr) = w.cells().free.borrow_mut()[class].pop()
    {
        return ptr;
    }
    let block = class.map_or(layout, class_layout);
    // SAFETY: `block` is not zero-sized: a class is at least GRAIN bytes,
    // and a cell's own layout holds a header.
    let ptr = unsafe { alloc(block) };
    NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(block))
}

/// Gives back the memory of a cell of `layout`.
///
/// # Safety
///
/// `ptr` came from [`allocate`] with the same `layout`, and the cell in it
/// has been dropped.
pub(crate) unsafe fn deallocate(ptr: NonNull<u8>, layout: Layout) {
    let class = class_of(layout);
    if let (Some(class), Some(w)) = (class, worker::current()) {
        let mut free = w.cells().free.borrow_mut();
        if free[class].len() < PER_CLASS {
            free[class].push(ptr);
            return;
        }
    }
    // SAFETY: by the contract, allocated with this layout's block layout.
    unsafe { dealloc(ptr.as_ptr(), class.map_or(layout, class_layout)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_their_sizes() {
        for size in 1..=MAX_CACHED {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let class = class_of(layout).unwrap();
            assert!(class_layout(class).size() >= size);
            assert!(class == 0 || class_layout(class - 1).size() < size);
        }
        let big = Layout::from_size_align(MAX_CACHED + 1, 8).unwrap();
        assert_eq!(class_of(big), None);
        let aligned = Layout::from_size_align(64, 64).unwrap();
        assert_eq!(class_of(aligned), None);
    }
}
