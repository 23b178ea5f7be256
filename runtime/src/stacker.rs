//! What the `stacker` compat crate (`compat/stacker` in the repository)
//! needs: stacker's three functions on growstack's stacks. The crate is a
//! thin shell over these, so that everything that touches the stacks stays
//! in the runtime. Reached through `growstack::__private::stacker`; not a
//! stable API.
//!
//! stacker measures room from the stack pointer down to the *real* end of
//! the stack (code that trusts its red zone runs unchecked until the next
//! call), where `#[growable]` measures down to the guard, a red zone above
//! it. So:
//!
//! - [`remaining_stack`] is the distance from the stack pointer to the real
//!   end of the stack it is on: the running chain's (a thread's native
//!   stack, a task's slot or a segment, above its guard region), or any
//!   other slot of growstack's; `None` on a stack growstack does not know
//!   (another library's coroutine);
//! - [`has_room`] answers the same question from two thread-locals, the
//!   guard (the real end plus `RED_ZONE`, 64 KiB, whenever it is not poisoned) and
//!   the top of the running stack: the fast path of `maybe_grow`;
//! - [`grow`] always continues on a segment with at least the asked room
//!   beyond its red zone: the running chain's next one (cached, or new and
//!   just big enough), or, on a stack growstack does not know, a slot of
//!   the call's own, as stacker would map one.

use core::panic::Location;

use crate::grow::{Entry, Site, run_with_room};
use crate::stack::{RED_ZONE, arena};
use crate::{arch, guard, thread};

/// Bytes from the stack pointer down to the real end of the stack the
/// caller runs on; `None` on a stack growstack does not know, or on a
/// thread whose stack state is gone (it is exiting).
pub fn remaining_stack() -> Option<usize> {
    let t = thread::current()?;
    let sp = arch::stack_pointer();
    // SAFETY: this thread's live state, and its running chain (valid while
    // it runs); read only.
    let (lo, hi) = unsafe { (*(*t).running()).running_stack() };
    if (lo..=hi).contains(&sp) {
        return Some(sp - lo);
    }
    // Not the running chain's stack, but maybe one of growstack's slots:
    // the slot a `grow` from another library's coroutine runs on.
    arena::slot_bounds(sp).map(|(lo, _)| sp.saturating_sub(lo))
}

/// Whether at least `red_zone` bytes remain above the real end of the
/// stack: the guard is that end plus `RED_ZONE` (64 KiB) while it is not poisoned,
/// and the stack pointer lies below the running stack's top. False (ask
/// [`maybe_grow_slow`]) whenever the two cannot tell: a new thread, a
/// preemption request, stress mode, a thread that is exiting, a stack
/// growstack does not know.
#[inline(always)]
pub fn has_room(red_zone: usize) -> bool {
    let sp = arch::stack_pointer();
    sp <= guard::top()
        && sp
            .checked_sub(red_zone)
            .is_some_and(|low| low >= guard::get().wrapping_sub(RED_ZONE))
}

/// The slow path of stacker's `maybe_grow`: runs `f` here if `red_zone`
/// bytes remain above the real end of this stack, else as [`grow`] does.
///
/// When the guard is a real one and the stack pointer lies on the running
/// stack, [`has_room`]'s "no" was exact: straight to the growth (a call
/// sitting on a boundary in a loop comes here every time). Otherwise
/// (a poisoned guard, another library's stack) it takes a pending
/// preemption, as an annotated call would, and measures exactly.
#[cold]
#[inline(never)]
#[track_caller]
pub fn maybe_grow_slow(red_zone: usize, stack_size: usize, f: &mut dyn FnMut()) {
    let guard = guard::get();
    let sp = arch::stack_pointer();
    let exact = guard != usize::MAX && (guard.wrapping_sub(RED_ZONE)..=guard::top()).contains(&sp);
    if !exact {
        crate::task::preempt_point();
        if remaining_stack().is_some_and(|left| left >= red_zone) {
            return f();
        }
    }
    grow_at("stacker::maybe_grow", Location::caller(), stack_size, f);
}

/// stacker's `grow`: runs `f` on a segment with at least `stack_size`
/// bytes above its red zone, and returns (or resumes its panic) here.
/// Counted in [`profile`](crate::profile) at the caller's location.
#[track_caller]
pub fn grow(stack_size: usize, f: &mut dyn FnMut()) {
    grow_at("stacker::grow", Location::caller(), stack_size, f);
}

#[track_caller]
fn grow_at(
    name: &'static str,
    at: &'static Location<'static>,
    stack_size: usize,
    f: &mut dyn FnMut(),
) {
    run_with_room(
        Site::Call { name, at },
        Entry::Segment { room: stack_size },
        f,
    );
}
