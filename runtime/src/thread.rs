//! A thread's stacks: its native stack, its chain of segments and its g0.
//!
//! The chain is indexed by depth: `segments[0]` is where a call that ran out
//! of native stack continues, `segments[1]` where a call that ran out of
//! `segments[0]` continues, and so on. `segments[..depth]` hold live frames;
//! the rest are cached for the next growth at that depth, so a call that
//! sits on a boundary in a loop reuses the same segment every time.

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering::Relaxed;

use crate::frame::FrameDesc;
use crate::grow::{Refusal, max_stack, stress};
use crate::stack::{self, GUARD_SIZE, MIN_SEGMENT, PAGE_SIZE, RED_ZONE, STRESS_SEGMENT, Slot};
use crate::{guard, signal, stats};

pub(crate) struct ThreadStack {
    /// The lowest stack pointer at which an annotated body may start on the
    /// stack running now (its lowest usable byte plus the red zone).
    limit: usize,
    /// Segments `[..depth]` hold frames.
    depth: usize,
    /// Bytes of stack in use: the native stack plus `segments[..depth]`.
    in_use: usize,
    segments: Vec<Slot>,
    /// The top of `g0`, where `newstack` and `lessstack` run.
    g0_top: usize,
    /// Owned until the thread exits.
    g0: Option<Slot>,
    /// Our alternate signal stack, if the thread had none.
    altstack: Option<Slot>,
}

/// What `lessstack` restores when a call comes back from another stack.
#[derive(Clone, Copy, Default)]
pub(crate) struct Saved {
    limit: usize,
    depth: usize,
    in_use: usize,
}

thread_local! {
    static THREAD: UnsafeCell<Option<ThreadStack>> = const { UnsafeCell::new(None) };
}

/// This thread's stack state, set up on first use. `None` once the thread
/// is exiting and its state is gone; calls then stay on the stack they are on.
pub(crate) fn current() -> Option<*mut ThreadStack> {
    THREAD
        .try_with(|cell| {
            // SAFETY: only this thread reaches its THREAD, and no reference
            // into it outlives a runtime call: the growth protocol works
            // through the raw pointer returned here, one step at a time.
            let state = unsafe { &mut *cell.get() };
            let state = state.get_or_insert_with(|| {
                ThreadStack::new().unwrap_or_else(|err| {
                    panic!("growstack: cannot set up the stacks of this thread: {err}")
                })
            });
            state as *mut ThreadStack
        })
        .ok()
}

impl ThreadStack {
    fn new() -> std::io::Result<ThreadStack> {
        let (lo, hi) = native_bounds();
        signal::install();
        signal::remember_thread_name();
        let g0 = stack::arena::alloc(stack::G0_SIZE)?;
        let t = ThreadStack {
            limit: (lo + RED_ZONE).min(hi),
            depth: 0,
            in_use: hi - lo,
            segments: Vec::new(),
            g0_top: g0.top(),
            g0: Some(g0),
            altstack: signal::ensure_altstack()?,
        };
        t.set_guard();
        Ok(t)
    }

    /// The 16-byte aligned top of g0.
    pub(crate) fn g0_top(&self) -> usize {
        self.g0_top
    }

    /// The limit of the running stack (see the field).
    pub(crate) fn limit(&self) -> usize {
        self.limit
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

    fn set_guard(&self) {
        guard::set(if stress() { usize::MAX } else { self.limit });
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
            None if stress() => needed.max(STRESS_SEGMENT),
            None => {
                let previous = self
                    .depth
                    .checked_sub(1)
                    .map_or(0, |i| self.segments[i].size());
                needed.max(MIN_SEGMENT).max(previous * 2)
            }
        };
        let total = self.in_use + size;
        let limit = max_stack();
        if total > limit {
            return Err(Refusal::Limit { total, limit });
        }
        if cached.is_none() {
            let slot = stack::arena::alloc(size).map_err(Refusal::Memory)?;
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
}

impl ThreadStack {
    /// Returns the cached segments (those beyond the ones in use) to the
    /// arena, their pages released.
    pub(crate) fn drop_cached(&mut self) {
        let cached = self.segments.split_off(self.depth);
        stats::SEGMENTS_LIVE.fetch_sub(cached.len() as u64, Relaxed);
        cached.into_iter().for_each(release);
    }
}

impl Drop for ThreadStack {
    fn drop(&mut self) {
        // Later checks on this thread (other thread-locals' destructors)
        // pass and stay on the native stack.
        guard::set(0);
        stats::SEGMENTS_LIVE.fetch_sub(self.segments.len() as u64, Relaxed);
        for slot in self.segments.drain(..) {
            release(slot);
        }
        if let Some(slot) = self.altstack.take() {
            signal::drop_altstack(slot);
        }
        if let Some(slot) = self.g0.take() {
            stack::arena::free(slot);
        }
    }
}

/// Returns a segment to the arena with its pages released: nothing of this
/// thread will run on it again.
fn release(slot: Slot) {
    slot.release_below(slot.top());
    stack::arena::free(slot);
}

/// `[lo, hi)` of the calling thread's native stack.
fn native_bounds() -> (usize, usize) {
    // SAFETY: pthread_getattr_np fills `attr`, which we read with
    // pthread_attr_getstack and destroy exactly once; all pointers are to
    // locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        assert_eq!(
            libc::pthread_getattr_np(libc::pthread_self(), &mut attr),
            0,
            "growstack: pthread_getattr_np failed"
        );
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size: libc::size_t = 0;
        libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (addr as usize, addr as usize + size)
    }
}
