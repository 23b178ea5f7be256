//! The arena: huge `MAP_NORESERVE` reservations carved into power-of-two
//! slots, each with a guard region at its low end.
//!
//! Slots of one size class are carved from the top of the class's current
//! reservation downwards, so a stack allocated later usually sits below the
//! ones allocated before it (debuggers expect deeper frames at lower
//! addresses). Freed slots go to a LIFO free list per class.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::GUARD_SIZE;

/// log2 of the smallest slot (64 KiB) and of the largest (1 TiB).
const MIN_CLASS: u32 = 16;
const MAX_CLASS: u32 = 40;
const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;

/// Address space reserved at a time for classes smaller than it. Costs no
/// memory (`MAP_NORESERVE`, untouched) and keeps the region table short.
const RESERVATION: usize = 1 << 30;

/// Reservations the signal handler can classify. 4096 of at least 1 GiB
/// cover 4 TiB of slots.
const MAX_REGIONS: usize = 4096;

/// `madvise` advice that installs guard markers in page tables (Linux
/// 6.13); not yet in every libc release.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// One slot: `[base, base + size)`, guard region at `[base, base + GUARD_SIZE)`.
#[derive(Debug)]
pub struct Slot {
    base: usize,
    class: u32,
}

impl Slot {
    /// Total size, guard region included.
    pub fn size(&self) -> usize {
        1 << self.class
    }
    /// One past the highest byte: where a stack on this slot starts.
    pub fn top(&self) -> usize {
        self.base + self.size()
    }
    /// Lowest usable byte, just above the guard region.
    pub fn usable_lo(&self) -> usize {
        self.base + GUARD_SIZE
    }

    /// Releases the pages between the guard region and `keep_from` (an
    /// address in the slot; everything below it is released). Guard markers
    /// survive `MADV_DONTNEED`.
    pub fn release_below(&self, keep_from: usize) {
        let lo = self.usable_lo();
        let hi = keep_from.clamp(lo, self.top()) & !(super::PAGE_SIZE - 1);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside this slot, which the caller owns
            // and on which no frame lives below `keep_from`; MADV_DONTNEED
            // only replaces those pages with zero-fill-on-demand ones.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
        }
    }
}

impl Slot {
    /// Asks for transparent huge pages on the part of a large slot above
    /// the 2 MiB block that holds its guard region: a deep recursion
    /// touches its stack once going down and once coming back, and with
    /// 4 KiB pages it misses the TLB every 4 KiB (the kernel honours this
    /// in THP's default `madvise` mode; elsewhere it is a no-op).
    pub fn prefer_huge_pages(&self) {
        const HUGE: usize = 2 << 20;
        if self.size() >= 2 * HUGE {
            let lo = self.base + HUGE;
            // SAFETY: [lo, top) is inside this slot, which the caller owns;
            // MADV_HUGEPAGE only changes how its pages will be backed.
            unsafe {
                libc::madvise(
                    lo as *mut libc::c_void,
                    self.top() - lo,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }

    /// Releases the pages of `[lo, hi)` (page aligned), a range covered by
    /// slots the caller owns, guard regions included (their markers survive
    /// `MADV_DONTNEED`).
    ///
    /// # Safety
    ///
    /// No frame or other live data may lie in `[lo, hi)`: its contents
    /// become zero pages.
    pub unsafe fn release_range(lo: usize, hi: usize) {
        if hi > lo {
            // SAFETY: by the caller's contract; MADV_DONTNEED only replaces
            // the pages with zero-fill-on-demand ones.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
        }
    }
}

struct Pool {
    free: Vec<usize>,
    /// Carving cursor: slots are cut from `[floor, next)` downwards.
    next: usize,
    floor: usize,
}

static POOLS: Mutex<[Pool; CLASSES]> = Mutex::new(
    [const {
        Pool {
            free: Vec::new(),
            next: 0,
            floor: 0,
        }
    }; CLASSES],
);

/// Set when the kernel refused `MADV_GUARD_INSTALL` and guards fell back to
/// `mprotect` (two VMAs per slot).
static GUARD_FALLBACK: AtomicBool = AtomicBool::new(false);

/// Whether guard regions are `mprotect`ed (the kernel has no guard
/// markers): they cannot be removed and reinstalled then (`chunks`).
pub(crate) fn guards_are_mprotect() -> bool {
    GUARD_FALLBACK.load(Ordering::Relaxed)
}

/// The size class holding at least `bytes`.
pub fn class_for(bytes: usize) -> u32 {
    bytes
        .checked_next_power_of_two()
        .map_or(usize::BITS, usize::trailing_zeros)
        .max(MIN_CLASS)
}

/// Takes a slot of at least `bytes` (rounded up to a power of two, at least
/// 64 KiB): the most recently freed one of its class, or a new one.
pub fn alloc(bytes: usize) -> io::Result<Slot> {
    let class = class_for(bytes);
    if class > MAX_CLASS {
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "stack slot larger than 1 TiB",
        ));
    }
    let size = 1usize << class;
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pool = &mut pools[(class - MIN_CLASS) as usize];
    if let Some(base) = pool.free.pop() {
        return Ok(Slot { base, class });
    }
    if pool.next - pool.floor < size {
        let len = size.max(RESERVATION);
        let base = reserve(len, class)?;
        pool.floor = base;
        pool.next = base + len;
    }
    pool.next -= size;
    let base = pool.next;
    drop(pools);
    // SAFETY: the low end of the slot just carved from our reservation.
    unsafe { install_guard(base)? };
    Ok(Slot { base, class })
}

/// Takes up to `n` slots of at least `bytes` at once, under one lock: the
/// most recently freed ones of the class, then new ones carved next to each
/// other. A worker refills its cache this way, so the slots it frees later
/// are neighbours that one `madvise` can release together.
pub fn alloc_batch(bytes: usize, n: usize) -> io::Result<Vec<Slot>> {
    let class = class_for(bytes);
    if class > MAX_CLASS || n == 0 {
        return alloc(bytes).map(|slot| vec![slot]);
    }
    let size = 1usize << class;
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pool = &mut pools[(class - MIN_CLASS) as usize];
    let reused = pool.free.len().min(n);
    let mut slots: Vec<Slot> = pool
        .free
        .drain(pool.free.len() - reused..)
        .map(|base| Slot { base, class })
        .collect();
    let mut carved = Vec::new();
    while slots.len() + carved.len() < n {
        if pool.next - pool.floor < size {
            if !carved.is_empty() || !slots.is_empty() {
                break; // enough for now; the next refill reserves more
            }
            let len = size.max(RESERVATION);
            let base = reserve(len, class)?;
            pool.floor = base;
            pool.next = base + len;
        }
        pool.next -= size;
        carved.push(pool.next);
    }
    drop(pools);
    for base in carved {
        // SAFETY: the low end of a slot just carved from our reservation.
        unsafe { install_guard(base)? };
        slots.push(Slot { base, class });
    }
    Ok(slots)
}

/// Returns a slot to its class's free list. Its resident pages stay as they
/// are; the caller releases them first if it wants them gone.
pub fn free(slot: Slot) {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    pools[(slot.class - MIN_CLASS) as usize]
        .free
        .push(slot.base);
}

/// Returns many slots under one lock.
pub fn free_many(slots: impl IntoIterator<Item = Slot>) {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    for slot in slots {
        pools[(slot.class - MIN_CLASS) as usize]
            .free
            .push(slot.base);
    }
}

/// Alignment of every reservation: a page-table page maps 2 MiB, and
/// slots of up to that size must not straddle two such chunks (`chunks`).
const RESERVATION_ALIGN: usize = 2 << 20;

fn reserve(len: usize, class: u32) -> io::Result<usize> {
    let padded = len + RESERVATION_ALIGN;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choosing; it aliases nothing.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            padded,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = p as usize;
    let base = start.next_multiple_of(RESERVATION_ALIGN);
    let (head, tail) = (base - start, start + padded - (base + len));
    // SAFETY: the parts of our own fresh mapping outside [base, base +
    // len), never handed out.
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
        }
        if tail > 0 {
            libc::munmap((base + len) as *mut libc::c_void, tail);
        }
    }
    if !regions::publish(base, len, class) {
        // SAFETY: the mapping made above, not handed out to anyone.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "more than {MAX_REGIONS} stack reservations (each of at least 1 GiB); \
                 use smaller task stacks"
            ),
        ));
    }
    Ok(base)
}

/// Installs the guard region of the slot at `base`: guard markers, or,
/// where the kernel has none, `mprotect`.
///
/// # Safety
///
/// `[base, base + GUARD_SIZE)` is the low end of a slot the caller owns,
/// and nothing lives there.
pub(crate) unsafe fn install_guard(base: usize) -> io::Result<()> {
    let p = base as *mut libc::c_void;
    if !GUARD_FALLBACK.load(Ordering::Relaxed) {
        let mut tries = 0;
        loop {
            // SAFETY: by the contract: installing markers on unused pages
            // only makes them fault.
            if unsafe { libc::madvise(p, GUARD_SIZE, MADV_GUARD_INSTALL) } == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // The kernel asks to retry when it raced with a fault.
                Some(libc::EAGAIN | libc::EINTR) if tries < 100 => tries += 1,
                Some(libc::EINVAL) => break,
                _ => return Err(err),
            }
        }
        GUARD_FALLBACK.store(true, Ordering::Relaxed);
    }
    // SAFETY: by the contract; PROT_NONE only makes those unused pages
    // fault.
    if unsafe { libc::mprotect(p, GUARD_SIZE, libc::PROT_NONE) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOMEM) {
            return Err(io::Error::new(
                err.kind(),
                "growstack: mprotect for a stack guard failed: without MADV_GUARD_INSTALL \
                 (Linux 6.13+) every stack takes two memory mappings; raise vm.max_map_count",
            ));
        }
        return Err(err);
    }
    Ok(())
}

/// What a faulting address is, as far as the arena knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardHit {
    /// Size of the slot whose guard region was hit.
    pub slot_size: usize,
    /// The top of that slot (its highest address, exclusive).
    pub slot_top: usize,
}

/// Whether `addr` lies in the guard region of a slot. Lock-free and
/// allocation-free: safe to call from a signal handler.
pub fn guard_hit(addr: usize) -> Option<GuardHit> {
    regions::find(addr).and_then(|(base, class)| {
        let slot_size = 1usize << class;
        let offset = (addr - base) % slot_size;
        (offset < GUARD_SIZE).then_some(GuardHit {
            slot_size,
            slot_top: addr - offset + slot_size,
        })
    })
}

/// `[usable_lo, top)` of the slot that holds `addr`, if any: whoever owns
/// it, a stack on it ends at its guard region.
pub fn slot_bounds(addr: usize) -> Option<(usize, usize)> {
    regions::find(addr).map(|(base, class)| {
        let slot_size = 1usize << class;
        let lo = addr - (addr - base) % slot_size;
        (lo + GUARD_SIZE, lo + slot_size)
    })
}

/// The append-only table of reservations, readable from signal handlers.
mod regions {
    use super::*;

    struct Region {
        base: AtomicUsize,
        len: AtomicUsize,
        class: AtomicUsize,
    }

    static TABLE: [Region; MAX_REGIONS] = [const {
        Region {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            class: AtomicUsize::new(0),
        }
    }; MAX_REGIONS];
    static COUNT: AtomicUsize = AtomicUsize::new(0);

    /// Records a reservation; false if the table is full. Callers hold the
    /// pool lock, so there is one writer at a time.
    pub(super) fn publish(base: usize, len: usize, class: u32) -> bool {
        let i = COUNT.load(Ordering::Relaxed);
        if i >= MAX_REGIONS {
            return false;
        }
        TABLE[i].base.store(base, Ordering::Relaxed);
        TABLE[i].len.store(len, Ordering::Relaxed);
        TABLE[i].class.store(class as usize, Ordering::Relaxed);
        COUNT.store(i + 1, Ordering::Release);
        true
    }

    /// The reservation holding `addr`: its base and size class.
    pub(super) fn find(addr: usize) -> Option<(usize, u32)> {
        let n = COUNT.load(Ordering::Acquire);
        TABLE[..n].iter().find_map(|r| {
            let base = r.base.load(Ordering::Relaxed);
            let len = r.len.load(Ordering::Relaxed);
            (addr.wrapping_sub(base) < len).then(|| (base, r.class.load(Ordering::Relaxed) as u32))
        })
    }
}
