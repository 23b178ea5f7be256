//! A worker's side of stack compaction (`task::compact`), run by its
//! maintenance pass when the runtime opted in
//! ([`Builder::compact_after`](crate::Builder::compact_after)).
//!
//! The worker's list of started tasks keeps the compacted ones first
//! (`compacted` of them), so a sweep visits only the others, and a million
//! compacted tasks cost it nothing. A sweep looks at each task not
//! compacted: one suspended since the last look (`Context::stirred`, set
//! at every suspension) starts a quiet period; one parked and quiet for
//! `compact_after` is compacted, if it runs on its slot alone (no segment:
//! the shrink pass gives unused ones back first, and a task parked on a
//! segment or in another library's coroutine is skipped) and uses at most
//! [`MAX_BYTES`] of it. So a task woken often is never compacted: each
//! wake starts a new quiet period. Sweeps run at most twice per threshold
//! unless one is due or under way (`maybe_sweep`), and each stops at a
//! budget, going on at the next.
//!
//! The slots' pages are released together at the end of a sweep
//! (neighbours in one `madvise`). A 2 MiB chunk all of whose slots are
//! compacted is released whole, page table included (`stack::chunks`),
//! once it has stayed so for [`CHUNK_QUIET`] thresholds.
//!
//! A compacted task is restored by its worker just before it runs again
//! (`run_task`, or a handoff once the task handing over has left), before
//! a dump captures its backtrace (and compacted again after), and when its
//! cell is dropped unfinished.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Worker;
use crate::stack::{GUARD_SIZE, Slot, chunks};
use crate::stats;
use crate::task::compact::Compacted;
use crate::task::raw::{Context, Header, PARKED};

/// A task using more of its stack than this is not compacted: its pages
/// are mostly full, and copying them would save little.
pub(super) const MAX_BYTES: usize = 16 << 10;

/// Tasks a sweep looks at, and compacts, at most, before the worker goes
/// back to its queues (the next sweep goes on from there, at once): a
/// compaction costs about 2.5 µs of CPU here (copy, allocation, its share
/// of the `madvise` calls), so a sweep stays within about 10 ms.
const VISIT_BUDGET: usize = 64 * 1024;
const COMPACT_BUDGET: usize = 4 * 1024;

/// A worker's compaction state.
pub(super) struct Sweeper {
    /// `Builder::compact_after`, if the runtime opted in.
    after: Option<Duration>,
    /// The worker's clock: quiet periods are counted in its milliseconds.
    epoch: Instant,
    /// How many of `Worker::tasks`, first, are compacted.
    compacted: core::cell::Cell<usize>,
    /// Where the next sweep starts.
    cursor: core::cell::Cell<usize>,
    /// When a sweep is due, if some task may become compactable.
    due: core::cell::Cell<Option<Instant>>,
    /// When the last sweep ran, and the worker's round then (`tick`).
    last: core::cell::Cell<(Instant, u32)>,
    /// Chunks this worker found compacted whole, and when (milliseconds of
    /// its clock), oldest first: each is released once it has stayed so
    /// for [`CHUNK_QUIET`] times `after`.
    full: core::cell::RefCell<std::collections::VecDeque<(chunks::Full, u32)>>,
}

/// How many times `compact_after` a chunk must stay compacted whole before
/// its page table goes: restoring a slot of a released chunk costs a new
/// page-table page and a system call (its guard) on top of the page fault,
/// which a task parked that long can afford.
const CHUNK_QUIET: u32 = 10;

impl Sweeper {
    pub(super) fn new(after: Option<Duration>) -> Sweeper {
        Sweeper {
            after,
            epoch: Instant::now(),
            compacted: core::cell::Cell::new(0),
            cursor: core::cell::Cell::new(0),
            due: core::cell::Cell::new(None),
            last: core::cell::Cell::new((Instant::now(), 0)),
            full: core::cell::RefCell::new(std::collections::VecDeque::new()),
        }
    }

    /// When the next sweep is due (the idle worker wakes up for it).
    pub(super) fn due(&self) -> Option<Instant> {
        self.due.get()
    }

    fn now_ms(&self, now: Instant) -> u32 {
        // Wraps after 49 days; quiet periods are compared with wrapping
        // arithmetic, and are far shorter.
        now.duration_since(self.epoch).as_millis() as u32
    }
}

/// Released slot pages and whole chunks of a sweep, given back together:
/// each `madvise` costs a TLB shootdown on every core.
#[derive(Default)]
pub(super) struct Batch {
    slots: Vec<(usize, usize)>,
    /// Chunks found compacted whole.
    full: Vec<chunks::Full>,
    /// Chunks compacted whole long enough to go, if they still are.
    chunks: Vec<chunks::Full>,
}

impl Batch {
    /// Releases the pages of the compacted slots (neighbours in one call),
    /// then the chunks that are now compacted whole.
    fn flush(&mut self) {
        self.slots.sort_unstable();
        let mut run: Option<(usize, usize)> = None;
        for &(lo, hi) in &self.slots {
            run = match run {
                Some((start, end)) if end + GUARD_SIZE == lo => Some((start, hi)),
                Some((start, end)) => {
                    // SAFETY: slots of compacted tasks (and the guard
                    // regions between them): their bytes are in buffers,
                    // nothing runs on them.
                    unsafe { Slot::release_range(start, end) };
                    Some((lo, hi))
                }
                None => Some((lo, hi)),
            };
        }
        if let Some((start, end)) = run {
            // SAFETY: as above.
            unsafe { Slot::release_range(start, end) };
        }
        self.slots.clear();
        // Marked releasing only now, so that restores in them wait for two
        // system calls per run of chunks, not for the slots' ones too.
        let whole = self
            .chunks
            .drain(..)
            .filter_map(|f| chunks::start_release(&f));
        // SAFETY: every slot of these chunks is compacted (`start_release`
        // said so), and their restores wait for this release.
        unsafe { chunks::release(whole.collect()) };
    }
}

/// The context of a task of this worker.
///
/// # Safety
///
/// `task` is alive, started here, and not running; the caller makes no
/// other reference to its context meanwhile.
unsafe fn ctx<'a>(task: NonNull<Header>) -> &'a mut Context {
    // SAFETY: by the contract, the worker alone touches it, and only here.
    unsafe { &mut *task.as_ref().ctx.get() }
}

impl Worker {
    /// Sets the index of the task at `i` of `tasks`.
    fn reindex(tasks: &[NonNull<Header>], i: usize) {
        // SAFETY: a listed task has started here and not finished; only
        // its index is written (no reference to its context is made: the
        // running task's may be in use by our caller).
        unsafe { (*tasks[i].as_ref().ctx.get()).index = index_of(i) };
    }

    /// Swaps two entries of `tasks`, keeping their indexes right.
    fn swap_tasks(tasks: &mut [NonNull<Header>], i: usize, j: usize) {
        tasks.swap(i, j);
        Self::reindex(tasks, i);
        Self::reindex(tasks, j);
    }

    /// Takes the task at `index` out of the list of started tasks.
    pub(super) fn unlist(&self, mut index: usize) {
        let mut tasks = self.tasks.borrow_mut();
        let compacted = self.sweeper.compacted.get();
        if index < compacted {
            Self::swap_tasks(&mut tasks, index, compacted - 1);
            self.sweeper.compacted.set(compacted - 1);
            index = compacted - 1;
        }
        tasks.swap_remove(index);
        if index < tasks.len() {
            Self::reindex(&tasks, index);
        }
    }

    /// Gives a compacted task its bytes back, before it runs or is looked
    /// at. A no-op for one that is not.
    ///
    /// # Safety
    ///
    /// `task` started here, has not finished, and is not running.
    #[inline]
    pub(super) unsafe fn restore(&self, task: NonNull<Header>) {
        // SAFETY: by the contract.
        if unsafe { ctx(task) }.compacted.is_some() {
            // SAFETY: forwarded.
            unsafe { self.restore_slow(task) };
        }
    }

    #[cold]
    #[inline(never)]
    unsafe fn restore_slow(&self, task: NonNull<Header>) {
        // SAFETY: forwarded.
        let ctx = unsafe { ctx(task) };
        let bytes = ctx.compacted.take().expect("compacted");
        let slot = ctx.slot.as_ref().expect("a started task has a slot");
        // SAFETY: taken from the top of this slot by `compact`; the task
        // is not running, so nothing uses its stack.
        unsafe { bytes.restore(slot) };
        if let Some(chain) = ctx.chain.as_mut() {
            chain.note_sp(ctx.sp);
        }
        // It leaves the compacted part of the list.
        let mut tasks = self.tasks.borrow_mut();
        let last = self.sweeper.compacted.get() - 1;
        Self::swap_tasks(&mut tasks, ctx.index as usize, last);
        self.sweeper.compacted.set(last);
    }

    /// Compacts `task` if it runs on its slot alone and uses at most
    /// [`MAX_BYTES`] of it; its pages go into `batch`. True if it was
    /// compacted.
    ///
    /// # Safety
    ///
    /// `task` is in this worker's list, suspended (not running), and not
    /// compacted.
    unsafe fn compact(&self, task: NonNull<Header>, batch: &mut Batch) -> bool {
        // SAFETY: by the contract.
        let ctx = unsafe { ctx(task) };
        let (Some(slot), Some(chain)) = (ctx.slot.as_ref(), ctx.chain.as_mut()) else {
            return false;
        };
        let top = slot.top();
        if ctx.listed || chain.has_segments() || !(top - MAX_BYTES..top).contains(&ctx.sp) {
            return false;
        }
        // SAFETY: `[sp, top)` is the suspended task's stack, on its slot;
        // nothing writes it while the task does not run (its runtime's
        // records are off it; the rest is `compact_after`'s contract).
        ctx.compacted = Some(unsafe { Compacted::take(ctx.sp, top) });
        crate::stack::resident::sub(chain.take_first_counted());
        batch.slots.push((slot.usable_lo(), top));
        batch.full.extend(chunks::compacted(slot));
        stats::COMPACTIONS.fetch_add(1, Ordering::Relaxed);
        let mut tasks = self.tasks.borrow_mut();
        let first = self.sweeper.compacted.get();
        Self::swap_tasks(&mut tasks, ctx.index as usize, first);
        self.sweeper.compacted.set(first + 1);
        true
    }

    /// Called by every maintenance pass (`idle` false) and before the
    /// worker sleeps (`idle` true): sweeps if a sweep is under way (it
    /// stopped at its budget) or due, or if tasks ran since the last one
    /// and half the threshold passed since (their quiet periods start at
    /// the sweep that first finds them parked). A sweep visits every task
    /// not compacted, so tasks woken more often than the threshold are
    /// visited at most twice per threshold, not at every pass. A worker
    /// going to sleep is woken for the next sweep it will need.
    pub(super) fn maybe_sweep(&self, idle: bool) {
        let sweeper = &self.sweeper;
        let Some(after) = sweeper.after else { return };
        let now = Instant::now();
        let (last, tick) = sweeper.last.get();
        let ran = tick != self.tick.get();
        let next = last + after / 2;
        if sweeper.cursor.get() != 0
            || sweeper.due.get().is_some_and(|due| due <= now)
            || (ran && now >= next)
        {
            self.sweep();
        } else if idle && ran && sweeper.due.get().is_none_or(|due| due > next) {
            sweeper.due.set(Some(next));
        }
    }

    /// A compaction sweep, if the runtime opted in (module docs).
    pub(super) fn sweep(&self) {
        let sweeper = &self.sweeper;
        let Some(after) = sweeper.after else { return };
        let now = Instant::now();
        sweeper.last.set((now, self.tick.get()));
        let now_ms = sweeper.now_ms(now);
        let after_ms = u32::try_from(after.as_millis()).unwrap_or(u32::MAX);
        let running = self.running.get();
        let mut batch = Batch::default();
        // The earliest end of a quiet period seen.
        let mut next: Option<u32> = None;
        let (mut visits, mut compactions) = (VISIT_BUDGET, COMPACT_BUDGET);
        let mut i = sweeper.cursor.get().max(sweeper.compacted.get());
        loop {
            let task = {
                let tasks = self.tasks.borrow();
                if i >= tasks.len() {
                    break;
                }
                tasks[i]
            };
            if visits == 0 || compactions == 0 {
                // Go on from here soon.
                next = Some(now_ms);
                break;
            }
            visits -= 1;
            i += 1;
            if running == Some(task) {
                continue;
            }
            // SAFETY: a listed task of this worker that is not running.
            let c = unsafe { ctx(task) };
            if c.stirred {
                c.stirred = false;
                c.quiet_since = now_ms;
            }
            // SAFETY: listed tasks are alive.
            let parked = unsafe { task.as_ref() }.state.load(Ordering::Acquire) == PARKED;
            if !parked {
                continue;
            }
            let quiet = now_ms.wrapping_sub(c.quiet_since);
            if quiet < after_ms {
                let end = c.quiet_since.wrapping_add(after_ms);
                next = Some(next.map_or(end, |n| earliest(n, end, now_ms)));
                continue;
            }
            // SAFETY: listed here, not running, and past the compacted
            // part of the list (so not compacted). Compacting swaps it
            // with the first task not compacted, which this sweep already
            // passed: the task now at `i - 1` was seen.
            if unsafe { self.compact(task, &mut batch) } {
                compactions -= 1;
            }
        }
        let len = self.tasks.borrow().len();
        sweeper.cursor.set(if i >= len { 0 } else { i });
        // Chunks compacted whole for long enough go with their page table.
        let chunk_ms = after_ms.saturating_mul(CHUNK_QUIET);
        let mut full = sweeper.full.borrow_mut();
        full.extend(batch.full.drain(..).map(|f| (f, now_ms)));
        while let Some((_, since)) = full.front() {
            let end = since.wrapping_add(chunk_ms);
            if now_ms.wrapping_sub(*since) < chunk_ms {
                next = Some(next.map_or(end, |n| earliest(n, end, now_ms)));
                break;
            }
            let (f, _) = full.pop_front().expect("looked at");
            batch.chunks.push(f);
        }
        drop(full);
        batch.flush();
        sweeper.due.set(next.map(|end| {
            now + Duration::from_millis(u64::from(end.wrapping_sub(now_ms).min(chunk_ms)))
        }));
    }

    /// Restores `task` for a dump (it gets its bytes back to be captured);
    /// true if it was compacted.
    ///
    /// # Safety
    ///
    /// As for [`restore`](Self::restore).
    pub(super) unsafe fn restore_for_dump(&self, task: NonNull<Header>) -> bool {
        // SAFETY: forwarded.
        let was = unsafe { ctx(task) }.compacted.is_some();
        // SAFETY: forwarded.
        unsafe { self.restore(task) };
        was
    }

    /// Compacts again a task [`restore_for_dump`](Self::restore_for_dump)
    /// restored, now that it is captured.
    ///
    /// # Safety
    ///
    /// As for `compact`.
    pub(super) unsafe fn compact_after_dump(&self, task: NonNull<Header>) {
        // A capture that ran on a segment (the task parked in its red zone,
        // or stress mode) left it cached: the task is back on its slot.
        // SAFETY: as in `compact`.
        if let Some(chain) = unsafe { ctx(task) }.chain.as_mut() {
            let shrunk = chain.drop_cached();
            stats::SHRINKS.fetch_add(shrunk.actions, Ordering::Relaxed);
        }
        let mut batch = Batch::default();
        // SAFETY: forwarded.
        unsafe { self.compact(task, &mut batch) };
        let now_ms = self.sweeper.now_ms(Instant::now());
        let mut full = self.sweeper.full.borrow_mut();
        full.extend(batch.full.drain(..).map(|f| (f, now_ms)));
        drop(full);
        batch.flush();
    }
}

/// A task's index in its worker's list, as its context keeps it.
pub(super) fn index_of(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 4 billion tasks per worker")
}

/// The earlier of two millisecond stamps, both at or after `now`.
fn earliest(a: u32, b: u32, now: u32) -> u32 {
    if a.wrapping_sub(now) <= b.wrapping_sub(now) {
        a
    } else {
        b
    }
}
