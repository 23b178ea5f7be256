//! The maintenance pass: giving stack memory back.
//!
//! A worker runs it every [`PASS_EVERY`] of activity, when it goes idle,
//! and when `shrink_now` asks. It visits only the tasks on its `grown` list
//! (those that hold segments or have more than [`LIST_ABOVE`] of their slot
//! resident), so a million idle tasks that never grew cost nothing; a task
//! leaves the list once it holds no segment. For each of them that is not
//! running, the task's chain shrinks (`Chain::shrink`). Then the free slots
//! beyond the runtime's `cached_stacks` are released, neighbours in one
//! `madvise` (each call costs a TLB shootdown on every core the process
//! runs on: releasing a million slots one by one took 13 s).

use std::time::Duration;

use super::{Worker, stack};
use crate::stack::{PAGE_SIZE, Pass, Shrunk, Slot};
use crate::stats;
use core::sync::atomic::Ordering::Relaxed;

/// Go's scavenger runs about this often; the issue asks for at least this.
pub(super) const PASS_EVERY: Duration = Duration::from_millis(10);

/// Scheduling rounds between two looks at the clock.
pub(super) const CHECK_EVERY: u32 = 64;

/// A task whose slot has more than this resident goes on the list.
const LIST_ABOVE: usize = 16 * PAGE_SIZE;

impl Worker {
    /// Called every scheduling round: answers shrink requests, and runs a
    /// periodic pass when one is due.
    pub(super) fn maybe_maintain(&self, tick: u32) {
        let remote = &self.remote();
        if remote.has_shrink_request() {
            self.answer_requests();
        }
        if tick.is_multiple_of(CHECK_EVERY)
            && self.ran_since_pass.get()
            && self.last_pass.get().elapsed() >= PASS_EVERY
        {
            self.pass(Pass::Periodic);
        }
    }

    /// Answers `dump` callers, then runs a pass for `shrink_now` callers
    /// and tells them.
    fn answer_requests(&self) {
        let (shrinks, dumps) = self.remote().take_requests();
        // A request whose caller gave up on us (it waited its while) is
        // not worth resuming every task for.
        for request in dumps.into_iter().filter(|r| !r.abandoned()) {
            let tasks = self.dump_tasks(request.caller, request.runtime);
            request.answer(self.index, tasks);
        }
        if !shrinks.is_empty() {
            self.pass(Pass::Now);
            for done in shrinks {
                let _ = done.send(());
            }
        }
    }

    /// Called before the worker sleeps. A periodic pass runs only if a task
    /// ran since the previous one: two passes with nothing in between would
    /// see a segment used just before the first as unused since the
    /// previous pass, defeating the hysteresis.
    pub(super) fn maintain_idle(&self) {
        let remote = &self.remote();
        if remote.has_shrink_request() {
            self.answer_requests();
        } else if self.ran_since_pass.get()
            && (!self.grown.borrow().is_empty()
                || self.slots.borrow().len() > self.shared.config.cached_stacks)
        {
            self.pass(Pass::Periodic);
        }
        self.maybe_sweep(true);
    }

    /// After a task was suspended (not finished) with its stack pointer at
    /// `sp`: updates its share of the resident estimate and lists it if it
    /// grew.
    #[inline(always)]
    pub(super) fn note_suspended(&self, task: &super::TaskRef, sp: usize) {
        // SAFETY: the task is being suspended by this worker, which alone
        // touches its context.
        let ctx = unsafe { &mut *task.header().ctx.get() };
        let Some(chain) = ctx.chain.as_mut() else {
            return;
        };
        ctx.stirred = true;
        chain.note_sp(sp);
        if !ctx.listed && (chain.has_segments() || chain.first_counted() > LIST_ABOVE) {
            ctx.listed = true;
            self.grown.borrow_mut().push(task.clone());
        }
    }

    /// A `shrink_now` pass run by the worker's own thread, from its
    /// scheduler (a destructor it runs called `shrink_now`): asking itself
    /// and waiting would never end.
    pub(crate) fn shrink_here(&self) {
        self.pass(Pass::Now);
    }

    /// One pass (module docs).
    fn pass(&self, pass: Pass) -> Shrunk {
        self.last_pass.set(std::time::Instant::now());
        self.ran_since_pass.set(false);
        let running = self.running.get().map(|t| t.as_ptr().cast_const());
        let mut total = Shrunk::default();
        self.grown.borrow_mut().retain(|task| {
            let h = task.header();
            if running == Some(core::ptr::from_ref(h)) {
                // Its frames are live on the stack we run on.
                return true;
            }
            // SAFETY: a task of this worker that is not running: only this
            // worker touches its context, and it is here.
            let ctx = unsafe { &mut *h.ctx.get() };
            let keep = match ctx.chain.as_mut() {
                Some(chain) => {
                    total += chain.shrink(ctx.sp, pass);
                    chain.has_segments()
                }
                None => false,
            };
            ctx.listed = keep;
            keep
        });
        let bound = self.shared.config.cached_stacks;
        let excess = {
            let mut slots = self.slots.borrow_mut();
            let n = slots.len().saturating_sub(bound);
            // The oldest ones go; the most recently freed stay hot.
            slots.drain(..n).collect::<Vec<_>>()
        };
        total += release_slots(excess);
        stats::SHRINKS.fetch_add(total.actions, Relaxed);
        self.maybe_sweep(false);
        total
    }
}

/// Releases the pages of free slots and returns them to the arena.
/// Neighbouring slots go in one `madvise`: the range then covers their
/// guard regions too, which `MADV_DONTNEED` leaves in place.
pub(super) fn release_slots(mut slots: Vec<(Slot, usize)>) -> Shrunk {
    let mut shrunk = Shrunk::default();
    if slots.is_empty() {
        return shrunk;
    }
    slots.sort_by_key(|(slot, _)| slot.usable_lo());
    let mut run: Option<(usize, usize)> = None;
    for (slot, counted) in &slots {
        let (lo, hi) = (slot.usable_lo(), slot.top());
        run = match run {
            Some((start, end)) if end + crate::stack::GUARD_SIZE == lo => Some((start, hi)),
            Some((start, end)) => {
                // SAFETY: the run covers free slots we own (and the guard
                // regions between them); no task runs on them.
                unsafe { Slot::release_range(start, end) };
                Some((lo, hi))
            }
            None => Some((lo, hi)),
        };
        stack::resident::sub(*counted);
        shrunk.actions += 1;
    }
    if let Some((start, end)) = run {
        // SAFETY: as above.
        unsafe { Slot::release_range(start, end) };
    }
    stack::arena::free_many(slots.into_iter().map(|(slot, _)| slot));
    shrunk
}
