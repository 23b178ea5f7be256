//! The thread-local stack guard and the inline check.
//!
//! Each thread has one word, the *guard*: an annotated function may run its
//! body on the current stack only if the stack pointer is above it. The
//! runtime keeps it at `limit` (the lowest usable address of the running
//! stack plus the red zone) and stores `usize::MAX` to force the next check
//! to fail:
//!
//! - a new thread starts at `usize::MAX`, so its first check enters the
//!   runtime, which finds the thread's real stack bounds;
//! - a runtime's monitor stores `usize::MAX` into a worker's guard to make
//!   the running task yield at its next annotated call (preemption);
//! - stress mode (`GROWSTACK_STRESS=1`) keeps it at `usize::MAX` for good.
//!   A re-call would then fail its own check forever, so the runtime sets
//!   a one-shot *bypass* before running it: the first failed check after
//!   that runs its body (see [`take_bypass`]). The bypass is read on the
//!   slow path only.
//!
//! Whatever the guard says, the runtime decides with the real limit it keeps
//! in the thread's state (`thread.rs`), so a failed check is never wrong,
//! only slower.

use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::arch;

thread_local! {
    // `const`-initialised and without a destructor: every access is a plain
    // thread-pointer-relative load, with no lazy-initialisation branch.
    // Atomic only so that a runtime's monitor thread may poison a worker's
    // guard to preempt it; relaxed loads and stores are plain moves.
    static GUARD: AtomicUsize = const { AtomicUsize::new(usize::MAX) };
    static BYPASS: Cell<bool> = const { Cell::new(false) };
    /// The top of the stack the running chain is on, set with the guard
    /// (0 until then). The check of `#[growable]` code does not read it;
    /// the stacker compat crate's does, to tell a stack of the running
    /// chain from another library's coroutine stack above it.
    static TOP: Cell<usize> = const { Cell::new(0) };
}

/// Whether an annotated function may run its body here: true when the stack
/// pointer is above the guard. About four instructions and no call.
#[inline(always)]
pub fn has_room() -> bool {
    arch::sp_above(GUARD.with(|g| g.load(Relaxed)))
}

/// Like [`has_room`], for a function whose body needs `frame` bytes of stack
/// beyond the red zone (its body then runs out of line, after the check).
/// A frame larger than the stack pointer fails the check (it wrapped
/// around to a high address and passed).
#[inline(always)]
pub fn has_room_for(frame: usize) -> bool {
    arch::stack_pointer()
        .checked_sub(frame)
        .is_some_and(|low| low > GUARD.with(|g| g.load(Relaxed)))
}

/// This thread's guard.
#[inline]
pub(crate) fn get() -> usize {
    GUARD.with(|g| g.load(Relaxed))
}

/// Sets this thread's guard.
#[inline]
pub(crate) fn set(value: usize) {
    GUARD.with(|g| g.store(value, Relaxed));
}

/// The top of the stack the running chain is on (see `TOP`).
#[inline]
pub(crate) fn top() -> usize {
    TOP.with(Cell::get)
}

/// Sets this thread's guard and the top of the running stack.
#[inline]
pub(crate) fn set_running(guard: usize, top: usize) {
    set(guard);
    TOP.with(|t| t.set(top));
}

/// The address of this thread's `TOP`, for switches to write directly.
pub(crate) fn top_cell() -> *const Cell<usize> {
    TOP.with(|t| t as *const Cell<usize>)
}

/// The address of this thread's guard, for a monitor to poison.
pub(crate) fn cell() -> *const AtomicUsize {
    GUARD.with(|g| g as *const AtomicUsize)
}

/// Called when a check failed: true (once) if the runtime has just moved
/// this call to a stack with room while the guard stays poisoned (stress
/// mode), so the body must run now instead of growing again.
///
/// Generic (the macro passes `()`) only so that it is instantiated in the
/// caller's crate: the call is then a direct `call`, where a call into
/// another crate loads its address from the GOT, a load the compiler hoisted
/// into a callee-saved register for the whole function (objdump of
/// `fib_growable`: five pushes with the GOT load, three without).
#[cold]
#[inline(never)]
pub fn take_bypass<R>() -> bool {
    BYPASS.with(|b| b.replace(false))
}

/// Makes the next failed check on this thread run its body.
#[inline]
pub(crate) fn set_bypass() {
    BYPASS.with(|b| b.set(true));
}
