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
//! growth protocol reaches it through the thread's `running` pointer, and
//! a worker's maintenance pass shrinks the chains of its parked tasks.
//!
//! Shrinking never moves a frame. It returns cached segments (all of them
//! on demand; in periodic passes only those not entered since the previous
//! pass, so a call sitting on a boundary in a loop keeps its segment), and
//! releases the lower half of the pages the stack it is parked on has
//! resident, when it uses less than a quarter of its resident stack.

use core::sync::atomic::Ordering::Relaxed;

use super::resident;
use super::{GUARD_SIZE, MIN_SEGMENT, PAGE_SIZE, RED_ZONE, STRESS_SEGMENT, Slot, arena};
use crate::frame::FrameDesc;
use crate::grow::{Refusal, max_stack, stacker_max_stack, stress};
use crate::{guard, stats};

pub(crate) struct Chain {
    /// The lowest stack pointer at which an annotated body may start on the
    /// stack running now: its lowest usable byte plus the red zone, always
    /// (even above the top of a stack smaller than the red zone), so that
    /// `limit - RED_ZONE` is the real end of the running stack.
    limit: usize,
    /// Segments `[..depth]` hold frames.
    depth: usize,
    /// Bytes of stack in use: the first stack plus `segments[..depth]`.
    in_use: usize,
    segments: Vec<Segment>,
    /// The first stack, `[lo, hi)`, and whether a shrink may release its
    /// pages (a task's slot: yes; a thread's native stack belongs to the OS).
    first: (usize, usize),
    release_first: bool,
    /// Bytes the first stack adds to the resident-stack estimate (tasks
    /// only): from its top down to the lowest stack pointer seen.
    first_counted: usize,
    /// The most this chain may hold in use; `None`: the process-wide
    /// [`max_stack`].
    max: Option<usize>,
    /// Stress mode, read once: the global flag shares a cache line with
    /// counters other threads write, and the guard is set on every switch.
    stress: bool,
    /// Times the chain grew onto a segment (saturating; for `dump`). In
    /// the struct's padding: a task cell keeps its size class.
    growths: u32,
}

struct Segment {
    slot: Slot,
    /// Entered since the previous periodic shrink.
    used: bool,
    /// Bytes it adds to the resident-stack estimate (`stack::resident`).
    counted: usize,
}

/// What a shrink gave back.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Shrunk {
    /// Segments returned plus stacks whose pages were released.
    pub(crate) actions: u64,
}

impl core::ops::AddAssign for Shrunk {
    fn add_assign(&mut self, other: Shrunk) {
        self.actions += other.actions;
    }
}

/// How hard a shrink looks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pass {
    /// A worker's periodic pass: keep cached segments entered since the
    /// previous one.
    Periodic,
    /// `shrink_now`: give back everything not in use.
    Now,
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
    /// slot (`lo` above its guard region) whose pages a shrink may release.
    pub(crate) fn new(lo: usize, hi: usize, max: Option<usize>, release_first: bool) -> Chain {
        Chain {
            limit: lo + RED_ZONE,
            depth: 0,
            in_use: hi - lo,
            segments: Vec::new(),
            first: (lo, hi),
            release_first,
            first_counted: 0,
            max,
            stress: stress(),
            growths: 0,
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

    /// Makes the thread's guard (and the top of its running stack) this
    /// chain's.
    pub(crate) fn set_guard(&self) {
        guard::set_running(self.guard(), self.running_stack().1);
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

    /// Records that the context was suspended at `sp`, for the estimate of
    /// resident stack: a task's slot is resident from its top down to the
    /// lowest stack pointer seen (rounded to pages).
    #[inline]
    pub(crate) fn note_sp(&mut self, sp: usize) {
        let (lo, hi) = self.first;
        if self.release_first && self.depth == 0 && (lo..hi).contains(&sp) {
            self.count_first(hi - (sp & !(PAGE_SIZE - 1)));
        }
    }

    #[inline]
    fn count_first(&mut self, bytes: usize) {
        if bytes > self.first_counted {
            resident::add(bytes - self.first_counted);
            self.first_counted = bytes;
        }
    }

    /// Bytes of the first stack counted as resident.
    pub(crate) fn first_counted(&self) -> usize {
        self.first_counted
    }

    /// Hands over the first stack's share of the estimate (the task
    /// finished; its slot goes to a cache with its pages).
    pub(crate) fn take_first_counted(&mut self) -> usize {
        core::mem::take(&mut self.first_counted)
    }

    /// Whether `sp` lies on the stack this chain runs on now (its first
    /// stack, or its deepest segment in use): false for a context that is
    /// not this chain's, such as another library's coroutine.
    pub(crate) fn runs_on(&self, sp: usize) -> bool {
        let (lo, hi) = self.running_stack();
        (lo..=hi).contains(&sp)
    }

    /// `[lo, hi)` of the stack this chain runs on now: its first stack
    /// (above the guard region, for a task's slot), or its deepest segment
    /// in use (above that segment's guard region).
    pub(crate) fn running_stack(&self) -> (usize, usize) {
        match self.depth {
            0 => self.first,
            d => {
                let slot = &self.segments[d - 1].slot;
                (slot.usable_lo(), slot.top())
            }
        }
    }

    /// How many segments hold frames.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Whether the context has grown onto segments (in use or cached).
    /// For `dump`: bytes of stack resident by the estimate (the first
    /// stack's counted part and every segment's), segments holding frames,
    /// and growths so far.
    pub(crate) fn usage(&self) -> (usize, usize, u32) {
        let resident = self.first_counted + self.segments.iter().map(|s| s.counted).sum::<usize>();
        (resident, self.depth, self.growths)
    }

    pub(crate) fn has_segments(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Picks the stack on which a call whose check failed at `sp` continues
    /// and makes it the running one; returns the 16-byte aligned top to
    /// switch to. Runs on g0.
    ///
    /// The call needs `frame` bytes beyond the red zone. With
    /// [`Need::Room`] it may stay on the running stack if that has room
    /// after all, and a new segment is twice the size of the one below;
    /// with [`Need::Segment`] (stacker's `grow`) it always continues on a
    /// segment, just big enough, so that nested calls ask for what they
    /// need and no more.
    pub(crate) fn grow(
        &mut self,
        sp: usize,
        desc: &'static FrameDesc,
        frame: usize,
        need: Need,
    ) -> Result<usize, Refusal> {
        if need == Need::Room && sp.saturating_sub(frame) > self.limit {
            // The guard was poisoned (first call on this thread, stress
            // mode, a preemption request), not reached: carry on right
            // below the caller.
            self.set_guard();
            return Ok((sp - 16) & !15);
        }
        let needed = segment_for(frame);
        let cached = self
            .segments
            .get(self.depth)
            .filter(|s| s.slot.size() >= needed);
        let size = match cached {
            Some(s) => s.slot.size(),
            None if self.stress => needed.max(STRESS_SEGMENT),
            None if need == Need::Segment => needed.max(MIN_SEGMENT),
            None => {
                let previous = self
                    .depth
                    .checked_sub(1)
                    .map_or(0, |i| self.segments[i].slot.size());
                needed.max(MIN_SEGMENT).max(previous * 2)
            }
        };
        let total = self.in_use.saturating_add(size);
        let limit = self.max.unwrap_or_else(|| match need {
            Need::Room => max_stack(),
            Need::Segment => stacker_max_stack(),
        });
        if total > limit {
            return Err(Refusal::Limit { total, limit });
        }
        if cached.is_none() {
            let slot = arena::alloc(size).map_err(Refusal::Memory)?;
            slot.prefer_huge_pages();
            stats::SEGMENTS_ALLOCATED.fetch_add(1, Relaxed);
            // Counted as resident in full while we hold it: an estimate.
            let counted = slot.top() - slot.usable_lo();
            resident::add(counted);
            let segment = Segment {
                slot,
                used: false,
                counted,
            };
            if let Some(old) = self.segments.get_mut(self.depth) {
                // Too small for this frame: give it back, keep the new one.
                let old = core::mem::replace(old, segment);
                resident::sub(old.counted);
                release(old.slot);
            } else {
                stats::SEGMENTS_LIVE.fetch_add(1, Relaxed);
                self.segments.push(segment);
            }
        }
        if self.depth == 0 && self.release_first {
            // The slot was used down to its limit.
            let (lo, hi) = self.first;
            self.count_first(hi - lo);
        }
        let segment = &mut self.segments[self.depth];
        segment.used = true;
        let top = segment.slot.top();
        self.limit = segment.slot.usable_lo() + RED_ZONE;
        self.depth += 1;
        self.growths = self.growths.saturating_add(1);
        self.in_use = total;
        self.set_guard();
        desc.count_growth(size);
        stats::GROWTHS.fetch_add(1, Relaxed);
        stats::PEAK_STACK.fetch_max(total as u64, Relaxed);
        Ok(top)
    }

    /// Returns the cached segments (those beyond the ones in use) to the
    /// arena, their pages released.
    pub(crate) fn drop_cached(&mut self) -> Shrunk {
        let mut shrunk = Shrunk::default();
        while self.segments.len() > self.depth {
            shrunk += give_back(self.segments.pop().expect("len > depth"));
        }
        shrunk
    }

    /// Gives memory back; `sp` is the context's stack pointer (saved, if it
    /// is parked). Runs on the thread of the context, while the context is
    /// parked or is the caller.
    pub(crate) fn shrink(&mut self, sp: usize, pass: Pass) -> Shrunk {
        // Cached segments, deepest first; a periodic pass stops at the
        // first one entered since the previous pass (hysteresis).
        let mut shrunk = Shrunk::default();
        while self.segments.len() > self.depth {
            let last = self.segments.last().expect("len > depth");
            if pass == Pass::Periodic && last.used {
                break;
            }
            shrunk += give_back(self.segments.pop().expect("len > depth"));
        }
        for s in &mut self.segments[self.depth..] {
            s.used = false;
        }
        shrunk += self.release_below(sp);
        shrunk
    }

    /// If the context uses less than a quarter of the stack it has
    /// resident, releases the pages below half of what the running stack
    /// has resident (Go halves a stack at a quarter), keeping at least a red
    /// zone below `sp`. Repeated passes halve again until that floor.
    fn release_below(&mut self, sp: usize) -> Shrunk {
        let in_use = self.in_use;
        let (lo, hi, counted) = match self.depth {
            0 if self.release_first => (self.first.0, self.first.1, &mut self.first_counted),
            0 => return Shrunk::default(),
            d => {
                let segment = &mut self.segments[d - 1];
                let (lo, hi) = (segment.slot.usable_lo(), segment.slot.top());
                (lo, hi, &mut segment.counted)
            }
        };
        if !(lo..hi).contains(&sp) {
            return Shrunk::default();
        }
        // In use: the stacks below this one in full, and this one above sp.
        let below_stacks = in_use - (hi - lo);
        let used = below_stacks + (hi - sp);
        let resident = below_stacks + *counted;
        let keep = (*counted / 2).max(hi - sp + RED_ZONE);
        let below = hi.saturating_sub(keep).saturating_sub(lo) & !(PAGE_SIZE - 1);
        let now = (*counted).min(hi - (lo + below));
        if below == 0 || now == *counted || used >= resident / 4 {
            return Shrunk::default();
        }
        // SAFETY: [lo, lo + below) lies in the running stack, at least a red
        // zone below the context's stack pointer (`keep`): no frame lives
        // there.
        unsafe { libc::madvise(lo as *mut libc::c_void, below, libc::MADV_DONTNEED) };
        let bytes = *counted - now;
        *counted = now;
        resident::sub(bytes);
        Shrunk { actions: 1 }
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

/// What a call that grows needs (see [`Chain::grow`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Need {
    /// Room for its frame: on the running stack if it has it after all
    /// (the guard was poisoned), else on a segment twice the previous one.
    Room,
    /// A segment of its own with room for its frame (stacker's `grow`).
    Segment,
}

/// The size of a slot that gives a body `frame` bytes beyond the red zone:
/// at least the frame, the red zone and the guard region, as a power of
/// two.
pub(crate) fn segment_for(frame: usize) -> usize {
    frame
        .saturating_add(RED_ZONE + GUARD_SIZE + PAGE_SIZE)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
}

/// Returns a cached segment to the arena and takes it out of the figures.
fn give_back(segment: Segment) -> Shrunk {
    stats::SEGMENTS_LIVE.fetch_sub(1, Relaxed);
    resident::sub(segment.counted);
    release(segment.slot);
    Shrunk { actions: 1 }
}

/// Returns a segment to the arena with its pages released: nothing of this
/// context will run on it again.
fn release(slot: Slot) {
    slot.release_below(slot.top());
    arena::free(slot);
}
