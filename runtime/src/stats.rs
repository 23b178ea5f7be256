//! Process-wide counters behind [`stats`].

use core::sync::atomic::{AtomicIsize, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub(crate) static GROWTHS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_ALLOCATED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static PEAK_STACK: AtomicU64 = AtomicU64::new(0);
pub(crate) static SHRINKS: AtomicU64 = AtomicU64::new(0);
pub(crate) static PREEMPTIONS: AtomicU64 = AtomicU64::new(0);
pub(crate) static COMPACTIONS: AtomicU64 = AtomicU64::new(0);

/// Counters that threads update all the time (a worker counts every task it
/// spawns and finishes): each thread owns a cell of its own and updates it
/// with a plain load and store, since it is the only writer; the value is
/// the sum over all cells. A read-modify-write on a shared counter costs
/// several nanoseconds per task even uncontended, and bounces between cores
/// when it is contended. A thread's cell goes back to a free list when the
/// thread exits and the next new thread carries on in it, so the sum stays
/// right and cells do not pile up.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    TasksLive,
    StackResident,
    CompactedTasks,
    CompactedBytes,
}

#[derive(Default)]
struct Cells([AtomicIsize; 4]);

impl Cells {
    fn get(&self, c: Counter) -> &AtomicIsize {
        &self.0[c as usize]
    }
}

static ALL_CELLS: Mutex<Vec<&'static Cells>> = Mutex::new(Vec::new());
static FREE_CELLS: Mutex<Vec<&'static Cells>> = Mutex::new(Vec::new());
/// For threads whose cell is gone (counting from another thread-local's
/// destructor): shared, so updated with read-modify-writes.
static SHARED_CELLS: Cells = Cells([const { AtomicIsize::new(0) }; 4]);

/// A thread's cell while it lives.
struct Owned(&'static Cells);

impl Owned {
    fn take() -> Owned {
        let reused = FREE_CELLS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Owned(reused.unwrap_or_else(|| {
            let cells: &'static Cells = Box::leak(Box::default());
            ALL_CELLS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cells);
            cells
        }))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        FREE_CELLS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0);
    }
}

thread_local! {
    static MY_CELLS: Owned = Owned::take();
}

/// Adds `delta` to a per-thread counter.
pub(crate) fn add(c: Counter, delta: isize) {
    let done = MY_CELLS.try_with(|owned| {
        let cell = owned.0.get(c);
        // The only writer of this cell (see `Counter`).
        cell.store(cell.load(Relaxed) + delta, Relaxed);
    });
    if done.is_err() {
        SHARED_CELLS.get(c).fetch_add(delta, Relaxed);
    }
}

/// The value of a per-thread counter, never below zero.
pub(crate) fn sum(c: Counter) -> usize {
    let all = ALL_CELLS.lock().unwrap_or_else(|e| e.into_inner());
    let total: isize = all.iter().map(|cells| cells.get(c).load(Relaxed)).sum();
    (total + SHARED_CELLS.get(c).load(Relaxed)).max(0) as usize
}

/// Counts a task in `tasks_live` (at spawn).
pub(crate) fn task_started() {
    add(Counter::TasksLive, 1);
}

/// Counts a task out of `tasks_live` (finished, or dropped unfinished).
pub(crate) fn task_ended() {
    add(Counter::TasksLive, -1);
}

/// A snapshot of growstack's process-wide counters, from [`stats`].
///
/// Counters only grow, except `segments_live`; compare two snapshots to
/// see what a piece of code did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Growth events: calls that continued on a segment because the stack
    /// they were called on had no room left.
    pub growths: u64,
    /// Segments taken from the arena, i.e. not reused from a thread's cache.
    pub segments_allocated: u64,
    /// Segments held by threads right now, in use or cached. A thread's
    /// segments go back to the arena when it exits.
    pub segments_live: u64,
    /// The largest stack any thread has held at once: its native stack plus
    /// the segments in use, in bytes of address space.
    pub peak_stack_bytes: u64,
    /// Tasks spawned and not finished yet, in all runtimes.
    pub tasks_live: usize,
    /// Shrink actions: cached segments returned and stacks whose unused
    /// pages were released, by maintenance passes and [`shrink_now`](crate::shrink_now).
    pub shrinks: u64,
    /// Tasks made to yield because they ran longer than their runtime's
    /// time slice.
    pub preemptions: u64,
    /// An estimate of the stack memory committed by all tasks and segments
    /// (not native thread stacks): segments count in full while held, a
    /// task's slot from its top down to the lowest stack pointer seen when
    /// it was suspended, a cached free slot with what it had.
    pub stack_resident_bytes: usize,
    /// Stacks compacted so far: parked tasks whose stack bytes were moved
    /// to a buffer and whose pages were released
    /// ([`Builder::compact_after`](crate::Builder::compact_after)). A
    /// compacted task that a [`dump`](crate::dump) restores to capture its
    /// backtrace is compacted again, and counted again.
    pub compactions: u64,
    /// Tasks parked compacted right now (those a dropped runtime left
    /// parked for good included).
    pub compacted_tasks: usize,
    /// Bytes of their stacks held in buffers right now (counted in
    /// neither `stack_resident_bytes` nor anything else).
    pub compacted_bytes: usize,
}

/// Reads the process-wide counters.
///
/// ```
/// # use growstack_runtime as growstack;
/// let before = growstack::stats();
/// growstack::maybe_grow(|| ());
/// assert!(growstack::stats().growths >= before.growths);
/// ```
pub fn stats() -> Stats {
    Stats {
        growths: GROWTHS.load(Relaxed),
        segments_allocated: SEGMENTS_ALLOCATED.load(Relaxed),
        segments_live: SEGMENTS_LIVE.load(Relaxed),
        peak_stack_bytes: PEAK_STACK.load(Relaxed),
        tasks_live: sum(Counter::TasksLive),
        shrinks: SHRINKS.load(Relaxed),
        preemptions: PREEMPTIONS.load(Relaxed),
        stack_resident_bytes: crate::stack::resident::bytes(),
        compactions: COMPACTIONS.load(Relaxed),
        compacted_tasks: sum(Counter::CompactedTasks),
        compacted_bytes: sum(Counter::CompactedBytes),
    }
}
