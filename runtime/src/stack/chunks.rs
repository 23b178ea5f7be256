//! Whole 2 MiB chunks of compacted slots, released with their page tables.
//!
//! A compacted task (`task::compact`) gives back its slot's pages, but the
//! page-table page that maps them stays: 4 KiB per 2 MiB, 512 bytes per
//! task at 256 KiB slots. Linux frees it only when one `MADV_DONTNEED`
//! covers the whole 2 MiB and no entry is left in it, and the slots' guard
//! markers are entries. So once every slot of a chunk is compacted, the
//! chunk is released as a whole: its guard markers removed
//! (`MADV_GUARD_REMOVE`), then its pages and page table (measured here:
//! 2,100 kB of page tables for 1 GiB of such slots, 52 kB after). A slot of
//! such a chunk is *bare* until its task is restored, which reinstalls its
//! guard before the task may run again.
//!
//! Each chunk's state is one atomic word, in a flat table indexed by
//! address (reserved without memory; only the entries of chunks that hold
//! slots are ever touched): which of its slots are compacted, which are
//! bare, and whether it is being released. Only slots of at most a chunk
//! take part (a larger slot's upper chunks hold no guard, and are freed
//! with its pages; reservations are aligned to chunks, so no slot straddles
//! two), and only where guards are markers, not `mprotect`.
//!
//! Protocol: a compaction marks its slot's bit; the one whose mark
//! completes the chunk is told, and later (the chunk must stay complete for
//! a while: a restore from a released chunk costs a page-table page and a
//! system call more) sets `RELEASING` if the chunk is still complete, and
//! releases it (`release`) before clearing that bit and marking every
//! slot bare. A restore clears
//! its slot's bit, waiting out a release in progress (which would zero the
//! bytes it copies back); from then on no release of the chunk can start
//! until that slot is compacted again. It then reinstalls its guard if it
//! is bare.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::Slot;

/// log2 of the chunk size: one page-table page maps 2 MiB.
const CHUNK_SHIFT: u32 = 21;
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// Addresses of user space are below this (x86_64, 4-level paging).
const ADDRESS_BITS: u32 = 47;
/// Slots per chunk at most: 128 KiB slots (the smallest task slot).
const MAX_PER_CHUNK: usize = 16;
const _: () = assert!(CHUNK / super::MIN_TASK_STACK <= MAX_PER_CHUNK);

const RELEASING: u64 = 1 << 32;
const BARE_SHIFT: u32 = 16;

/// `madvise` advice that removes guard markers (Linux 6.13).
const MADV_GUARD_REMOVE: libc::c_int = 103;

/// The table: one word per chunk of the address space, or `None` if it
/// could not be reserved (chunks are then never released whole).
fn table() -> Option<&'static [AtomicU64]> {
    static TABLE: OnceLock<Option<usize>> = OnceLock::new();
    let len = 1usize << (ADDRESS_BITS - CHUNK_SHIFT);
    let base = *TABLE.get_or_init(|| {
        // SAFETY: a fresh anonymous mapping of our own; zero-filled pages
        // are valid `AtomicU64`s (0: nothing compacted).
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len * size_of::<AtomicU64>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(p as usize)
    });
    // SAFETY: the mapping is `len` words, never unmapped, and only ever
    // accessed through atomics.
    base.map(|base| unsafe { core::slice::from_raw_parts(base as *const AtomicU64, len) })
}

/// Where a slot sits in its chunk, if its chunk takes part.
struct Place {
    word: &'static AtomicU64,
    /// Its bit in the compacted mask.
    bit: u64,
    /// The mask of a chunk whose slots are all compacted.
    full: u64,
    chunk: usize,
}

fn place(slot: &Slot) -> Option<Place> {
    let size = slot.size();
    if size > CHUNK {
        return None;
    }
    let base = slot.top() - size;
    let chunk = base & !(CHUNK - 1);
    if (slot.top() - 1) & !(CHUNK - 1) != chunk {
        // Straddles two chunks (reservations are aligned: never).
        return None;
    }
    let per_chunk = CHUNK / size;
    debug_assert!(per_chunk <= MAX_PER_CHUNK);
    let word = table()?.get(chunk >> CHUNK_SHIFT)?;
    Some(Place {
        word,
        bit: 1 << ((base - chunk) / size),
        full: (1 << per_chunk) - 1,
        chunk,
    })
}

/// A chunk whose slots were all compacted when [`compacted`] returned it:
/// [`start_release`] may release it later.
pub(crate) struct Full {
    chunk: usize,
    /// Its compacted mask when full.
    full: u64,
}

/// A chunk whose release the caller took on: pass it to [`release`].
#[must_use = "a chunk marked releasing blocks every restore in it until released"]
pub(crate) struct Whole(usize);

/// `slot` was compacted: its task is parked and its pages are released.
/// Returns its chunk if this made every slot of it compacted.
pub(crate) fn compacted(slot: &Slot) -> Option<Full> {
    if super::arena::guards_are_mprotect() {
        // `mprotect`ed guards cannot be removed and reinstalled. (A restore
        // still looks at its chunk: the guards may have fallen back to
        // `mprotect` after the chunk was released.)
        return None;
    }
    let p = place(slot)?;
    let now = p.word.fetch_or(p.bit, Ordering::AcqRel) | p.bit;
    (now & p.full == p.full).then_some(Full {
        chunk: p.chunk,
        full: p.full,
    })
}

/// Takes on the release of a chunk [`compacted`] found full, if every
/// slot of it is still compacted (none was restored since).
pub(crate) fn start_release(full: &Full) -> Option<Whole> {
    let word = table()?.get(full.chunk >> CHUNK_SHIFT)?;
    let s = word.load(Ordering::Acquire);
    if s & full.full != full.full || s & RELEASING != 0 {
        return None;
    }
    word.compare_exchange(s, s | RELEASING, Ordering::AcqRel, Ordering::Relaxed)
        .ok()
        .map(|_| Whole(full.chunk))
}

/// Releases whole chunks, neighbours in one call each: their guard markers
/// go, then their pages and page tables; their slots are bare until
/// restored.
///
/// # Safety
///
/// Every slot of every chunk is compacted (`compacted` said so, and
/// restores wait for `RELEASING` to clear): no byte of them is in use.
pub(crate) unsafe fn release(mut chunks: Vec<Whole>) {
    // (No chunk is ever `Whole` without the table.)
    let Some(table) = table().filter(|_| !chunks.is_empty()) else {
        return;
    };
    chunks.sort_by_key(|w| w.0);
    let mut i = 0;
    while i < chunks.len() {
        let start = chunks[i].0;
        let mut end = start + CHUNK;
        let mut j = i + 1;
        while j < chunks.len() && chunks[j].0 == end {
            end += CHUNK;
            j += 1;
        }
        let (p, len) = (start as *mut libc::c_void, end - start);
        // SAFETY: by the contract nothing lives in [start, end): removing
        // the guard markers leaves plain zero-fill pages, never touched
        // until a restore reinstalls its slot's guard, and MADV_DONTNEED
        // then frees the pages and the page tables. A failure only keeps
        // memory.
        unsafe {
            libc::madvise(p, len, MADV_GUARD_REMOVE);
            libc::madvise(p, len, libc::MADV_DONTNEED);
        }
        i = j;
    }
    for Whole(chunk) in chunks {
        let word = &table[chunk >> CHUNK_SHIFT];
        let _ = word.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
            // Every slot compacted then is bare now.
            Some((s & !RELEASING) | ((s & 0xffff) << BARE_SHIFT))
        });
    }
}

/// `slot`'s task is about to get its bytes back: its chunk can no longer
/// be released, and its guard is back. Waits out a release of its chunk in
/// progress.
pub(crate) fn restoring(slot: &Slot) {
    let Some(p) = place(slot) else { return };
    let mut s = p.word.load(Ordering::Acquire);
    loop {
        if s & RELEASING != 0 {
            // Another worker's pass is releasing the chunk: a few system
            // calls.
            std::thread::yield_now();
            s = p.word.load(Ordering::Acquire);
            continue;
        }
        match p
            .word
            .compare_exchange_weak(s, s & !p.bit, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(actual) => s = actual,
        }
    }
    let bare = p.bit << BARE_SHIFT;
    if s & bare != 0 {
        // SAFETY: the slot's guard region, in a slot the caller owns; its
        // chunk is no longer released (our bit is clear), so nobody else
        // touches it, and no frame lives there.
        if let Err(err) = unsafe { super::arena::install_guard(slot.top() - slot.size()) } {
            // The task must not run without its guard.
            eprintln!("growstack: could not reinstall a stack guard ({err}); aborting");
            std::process::abort();
        }
        p.word.fetch_and(!bare, Ordering::AcqRel);
    }
}
