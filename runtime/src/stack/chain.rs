//! The stack chain of one execution context (a thread or a task): the stack
//! it started on and the segments it continued on.
//!
//! The chain is indexed by depth: `segments[0]` is where a call that ran out
//! of the first stack continues, `segments[1]` where a call that ran out of
//! `segments[0]` continues, and so on. `segments[..depth]` hold live frames;
//! the rest are cached for the next growth at that depth, so a call that
//! sits on a boundary in a loop reuses the same segment every time.
//!
//! A chain is only ever touched by the thread running its context: the
//! growth protocol reaches it through the thread's `running` pointer.

use core::sync::atomic::Ordering::Relaxed;

use super::{GUARD_SIZE, MIN_SEGMENT, PAGE_SIZE, RED_ZONE, STRESS_SEGMENT, Slot, arena};
use crate::frame::FrameDesc;
use crate::grow::{Refusal, max_stack, stress};
use crate::{guard, stats};

pub(crate) struct Chain {
    /// The lowest stack pointer at which an annotated body may start on the
    /// stack running now (its lowest usable byte plus the red zone).
    limit: usize,
    /// Segments `[..depth]` hold frames.
    depth: usize,
    /// Bytes of stack in use: the first stack plus `segments[..depth]`.
    in_use: usize,
    segments: Vec<Slot>,
    /// The most this chain may hold in use; `None`: the process-wide
    /// [`max_stack`].
    max: Option<usize>,
    /// Stress mode, read once: the global flag shares a cache line with
    /// counters other threads write, and the guard is set on every switch.
    stress: bool,
}

/// What `lessstack` restores when a call comes back from another stack.
#[derive(Clone, Copy, Default)]
pub(crate) struct Saved {
    limit: usize,
    depth: usize,
    in_use: usize,
}

impl Chain {
    /// A chain on the stack `[lo, hi)`: a thread's native stack, or a task's
    /// slot (`lo` above its guard region).
    pub(crate) fn new(lo: usize, hi: usize, max: Option<usize>) -> Chain {
        Chain {
            limit: (lo + RED_ZONE).min(hi),
            depth: 0,
            in_use: hi - lo,
            segments: Vec::new(),
            max,
            stress: stress(),
        }
    }

    /// The limit of the running stack (see the field).
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The value the thread's guard must hold while this chain runs.
    pub(crate) fn guard(&self) -> usize {
        if self.stress { usize::MAX } else { self.limit }
    }

    /// Makes the thread's guard this chain's.
    pub(crate) fn set_guard(&self) {
        guard::set(self.guard());
    }

    pub(crate) fn save(&self) -> Saved {
        Saved {
            limit: self.limit,
            depth: self.depth,
            in_use: self.in_use,
        }
    }

    pub(crate) fn restore(&mut self, saved: Saved) {
        self.limit = saved.limit;
        self.depth = saved.depth;
        self.in_use = saved.in_use;
        self.set_guard();
    }

    /// Picks the stack on which a call whose check failed at `sp` continues
    /// and makes it the running one; returns the 16-byte aligned top to
    /// switch to. Runs on g0.
    pub(crate) fn grow(&mut self, sp: usize, desc: &FrameDesc) -> Result<usize, Refusal> {
        if sp.saturating_sub(desc.frame) > self.limit {
            // The guard was poisoned (first call on this thread, stress
            // mode), not reached: carry on right below the caller.
            self.set_guard();
            return Ok((sp - 16) & !15);
        }
        // At least the body's frame, the red zone and the guard region.
        let needed = (desc.frame + RED_ZONE + GUARD_SIZE + PAGE_SIZE).next_power_of_two();
        let cached = self.segments.get(self.depth).filter(|s| s.size() >= needed);
        let size = match cached {
            Some(s) => s.size(),
            None if self.stress => needed.max(STRESS_SEGMENT),
            None => {
                let previous = self
                    .depth
                    .checked_sub(1)
                    .map_or(0, |i| self.segments[i].size());
                needed.max(MIN_SEGMENT).max(previous * 2)
            }
        };
        let total = self.in_use + size;
        let limit = self.max.unwrap_or_else(max_stack);
        if total > limit {
            return Err(Refusal::Limit { total, limit });
        }
        if cached.is_none() {
            let slot = arena::alloc(size).map_err(Refusal::Memory)?;
            stats::SEGMENTS_ALLOCATED.fetch_add(1, Relaxed);
            if let Some(old) = self.segments.get_mut(self.depth) {
                // Too small for this frame: give it back, keep the new one.
                release(core::mem::replace(old, slot));
            } else {
                stats::SEGMENTS_LIVE.fetch_add(1, Relaxed);
                self.segments.push(slot);
            }
        }
        let segment = &self.segments[self.depth];
        let top = segment.top();
        self.limit = segment.usable_lo() + RED_ZONE;
        self.depth += 1;
        self.in_use = total;
        self.set_guard();
        desc.count_growth();
        stats::GROWTHS.fetch_add(1, Relaxed);
        stats::PEAK_STACK.fetch_max(total as u64, Relaxed);
        Ok(top)
    }

    /// Returns the cached segments (those beyond the ones in use) to the
    /// arena, their pages released.
    pub(crate) fn drop_cached(&mut self) {
        if self.segments.len() <= self.depth {
            // The common case for a finished task: nothing to return, and
            // no reason to touch the process-wide counter.
            return;
        }
        let cached = self.segments.split_off(self.depth);
        stats::SEGMENTS_LIVE.fetch_sub(cached.len() as u64, Relaxed);
        cached.into_iter().for_each(release);
    }

    /// Returns every segment to the arena. The context must have no frame
    /// on any of them: it has finished or its thread is exiting.
    pub(crate) fn release_all(&mut self) {
        self.depth = 0;
        self.drop_cached();
    }

    /// Forgets the segments without returning them: frames of a context
    /// that will never finish may live on them, and something may still
    /// point into those frames (a pinned value), so their memory must never
    /// be reused.
    pub(crate) fn leak(&mut self) {
        if self.segments.is_empty() {
            return;
        }
        stats::SEGMENTS_LIVE.fetch_sub(self.segments.len() as u64, Relaxed);
        // A `Slot` goes back to the arena only through `arena::free`.
        self.segments.clear();
    }
}

/// Returns a segment to the arena with its pages released: nothing of this
/// context will run on it again.
fn release(slot: Slot) {
    slot.release_below(slot.top());
    arena::free(slot);
}
