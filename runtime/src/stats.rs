//! Process-wide counters behind [`stats`].

use core::cell::Cell;
use core::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};

pub(crate) static GROWTHS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_ALLOCATED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static PEAK_STACK: AtomicU64 = AtomicU64::new(0);

/// Live tasks, counted in shards so that workers spawning and finishing
/// tasks do not fight over one cache line: a thread adds and subtracts on
/// its own shard, and the sum is the count.
#[repr(align(128))]
struct Shard(AtomicIsize);

const SHARDS: usize = 16;
static TASKS_LIVE: [Shard; SHARDS] = [const { Shard(AtomicIsize::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn my_shard() -> &'static AtomicIsize {
    let i = MY_SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0);
    &TASKS_LIVE[i].0
}

/// Counts a task in `tasks_live` (at spawn).
pub(crate) fn task_started() {
    my_shard().fetch_add(1, Relaxed);
}

/// Counts a task out of `tasks_live` (finished, or dropped unfinished).
pub(crate) fn task_ended() {
    my_shard().fetch_sub(1, Relaxed);
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
        tasks_live: TASKS_LIVE
            .iter()
            .map(|s| s.0.load(Relaxed))
            .sum::<isize>()
            .max(0) as usize,
    }
}
