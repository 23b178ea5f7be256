//! Process-wide counters behind [`stats`].

use core::cell::Cell;
use core::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};

pub(crate) static GROWTHS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_ALLOCATED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static PEAK_STACK: AtomicU64 = AtomicU64::new(0);
pub(crate) static SHRINKS: AtomicU64 = AtomicU64::new(0);
pub(crate) static PREEMPTIONS: AtomicU64 = AtomicU64::new(0);

/// A counter in shards, so that threads updating it often (workers
/// spawning and finishing tasks) do not fight over one cache line: a thread
/// adds to its own shard, and the sum is the value.
pub(crate) struct Sharded([Shard; SHARDS]);

#[repr(align(128))]
struct Shard(AtomicIsize);

const SHARDS: usize = 16;
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn my_shard() -> usize {
    MY_SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0)
}

impl Sharded {
    pub(crate) const fn new() -> Sharded {
        Sharded([const { Shard(AtomicIsize::new(0)) }; SHARDS])
    }

    pub(crate) fn add(&self, delta: isize) {
        self.0[my_shard()].0.fetch_add(delta, Relaxed);
    }

    /// The sum, never below zero.
    pub(crate) fn sum(&self) -> usize {
        self.0
            .iter()
            .map(|s| s.0.load(Relaxed))
            .sum::<isize>()
            .max(0) as usize
    }
}

static TASKS_LIVE: Sharded = Sharded::new();

/// Counts a task in `tasks_live` (at spawn).
pub(crate) fn task_started() {
    TASKS_LIVE.add(1);
}

/// Counts a task out of `tasks_live` (finished, or dropped unfinished).
pub(crate) fn task_ended() {
    TASKS_LIVE.add(-1);
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
        tasks_live: TASKS_LIVE.sum(),
        shrinks: SHRINKS.load(Relaxed),
        preemptions: PREEMPTIONS.load(Relaxed),
        stack_resident_bytes: crate::stack::resident::bytes(),
    }
}
