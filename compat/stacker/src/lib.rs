//! [stacker](https://docs.rs/stacker/0.1.25)'s API on growstack: put this
//! crate in place of stacker with two lines, and every crate in the
//! dependency graph that calls stacker (directly, or through
//! `#[recursive::recursive]`, `#[stacksafe::stacksafe]` or `serde_stacker`)
//! grows on growstack's segments, unchanged.
//!
//! ```toml
//! [patch.crates-io]
//! stacker = { git = "https://github.com/growstack/growstack" }
//! # or: stacker = { path = "…/growstack/compat/stacker" }
//! ```
//!
//! stacker maps a new stack (and a guard page) at every growth and unmaps
//! it on return, so a call that sits on a boundary in a loop pays for an
//! `mmap`, an `mprotect` and a `munmap` each time. Here a growth continues
//! on the thread's (or task's) next segment, which stays cached when the
//! call returns; it shows in [`growstack::profile`] at the caller's
//! location, and it is bounded by [`growstack::set_max_stack`].
//!
//! ```
//! // Grow the stack if we are within the "red zone" of 32K, and if we allocate
//! // a new stack allocate 1MB of stack space.
//! //
//! // If we're already in bounds, just run the provided closure on current stack.
//! stacker::maybe_grow(32 * 1024, 1024 * 1024, || {
//!     // guaranteed to have at least 32K of stack
//! });
//! ```
//!
//! # What is the same
//!
//! The three public functions of stacker 0.1.25, with the same names,
//! signatures and generic bounds ([`maybe_grow`], [`grow`],
//! [`remaining_stack`]); the closure runs on the calling thread; its value
//! comes back; a panic comes back with its payload, after its destructors
//! ran on the new stack; backtraces continue through the switch.
//!
//! # What differs, all of it
//!
//! - **Where the closure runs.** stacker maps a fresh stack of exactly
//!   `stack_size` bytes (rounded to pages) for every growth and unmaps it
//!   on return. Here it runs on the next growstack segment: a power of two
//!   of at least 1 MiB (256 KiB under `GROWSTACK_STRESS=1`) that holds
//!   `stack_size` bytes plus growstack's 64 KiB red zone and 64 KiB guard
//!   region. So the closure has *at least* `stack_size` bytes, often more.
//! - **Memory after a return.** The segment stays cached for the next
//!   growth at that depth (that is what makes a call on a boundary cheap),
//!   with its pages: a thread that once recursed 300 MiB deep keeps them
//!   until [`growstack::shrink_now`] or its exit (a growstack task's are
//!   given back by its runtime's periodic shrink). stacker unmaps at once.
//! - **How much is "remaining".** [`remaining_stack`] counts down to the
//!   real end of the stack the caller is on (its native stack, a growstack
//!   task's slot, a segment), as stacker does on a thread's native stack,
//!   and it is right on growstack's own stacks, where stacker, knowing only
//!   the thread's native stack, answers with an unrelated number.
//! - **Stacks growstack does not know** (another library's coroutine):
//!   [`remaining_stack`] returns `None`, and [`maybe_grow`] and [`grow`]
//!   run the closure on a slot of its own (its pages released when the
//!   closure returns), as stacker maps a stack; inside it,
//!   [`remaining_stack`] knows that slot. Such a coroutine must be resumed
//!   on the thread it was suspended on while it is inside one of these
//!   calls (stacker has no such rule).
//! - **Limits.** stacker has none: it maps until `mmap` fails. Here, once
//!   a program calls [`growstack::set_max_stack`], that limit bounds the
//!   stack of a thread in all (native stack and segments): a growth past
//!   it panics at the call of [`maybe_grow`] or [`grow`] with a message
//!   containing `exceeds <limit>-byte limit`. Until then, growths through
//!   this crate have no limit beyond memory (`#[growable]` code keeps
//!   growstack's 1 GiB default): `recursive`'s own test suite needs 3.3 GB
//!   of stack in a debug build. In a growstack task, the runtime's
//!   `Builder::max_stack` always applies. On a stack growstack does not
//!   know, each slot of its own is checked against the limit alone. A
//!   `stack_size` that no slot can have (over 1 TiB) is an ordinary panic.
//! - **Preemption.** In a growstack runtime built with
//!   [`Builder::preempt`](growstack::runtime::Builder::preempt), a
//!   pending preemption is taken in [`maybe_grow`]'s slow path, as at the
//!   check of a `#[growable]` function: see that function's `# Safety`.
//! - **A thread that is exiting** (in a thread-local's destructor, after
//!   growstack's own state is gone): [`remaining_stack`] returns `None`
//!   and the closure runs in place, on whatever stack is left; stacker
//!   still grows there. Deep recursion in such a destructor can overflow.
//! - **Platforms**: x86_64 Linux, growstack's platform. stacker runs on
//!   many more.
//! - **`#[track_caller]`**: [`maybe_grow`] and [`grow`] carry it, so that
//!   growth is profiled, and refused, at the caller's line. A function
//!   pointer to them still has the same type.

#![warn(missing_docs)]

use growstack::__private::stacker as rt;

/// Grows the call stack if necessary.
///
/// This function is intended to be called at manually instrumented points in a program where
/// recursion is known to happen quite a bit. This function will check to see if we're within
/// `red_zone` bytes of the end of the stack, and if so it will allocate a new stack of at least
/// `stack_size` bytes.
///
/// The closure `f` is guaranteed to run on a stack with at least `red_zone` bytes, and it will be
/// run on the current stack if there's space available.
///
/// On growstack: "the end of the stack" is the real end of the stack the
/// caller runs on (its native stack, a task's slot or a segment), and the
/// new stack is the next growstack segment, with at least `stack_size`
/// bytes beyond its red zone (see the crate docs for every difference).
///
/// ```
/// fn depth(n: u64) -> u64 {
///     stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
///         if n == 0 { 0 } else { 1 + depth(n - 1) }
///     })
/// }
/// # growstack::set_max_stack(16 << 30); // room for stress mode (GROWSTACK_STRESS=1)
/// assert_eq!(depth(1_000_000), 1_000_000);
/// ```
#[inline(always)]
#[track_caller]
pub fn maybe_grow<R, F: FnOnce() -> R>(red_zone: usize, stack_size: usize, callback: F) -> R {
    if rt::has_room(red_zone) {
        callback()
    } else {
        grow_if_needed(red_zone, stack_size, callback)
    }
}

/// [`maybe_grow`]'s slow path, out of line: a preemption to take, a new
/// thread, or too little room.
#[cold]
#[inline(never)]
#[track_caller]
fn grow_if_needed<R, F: FnOnce() -> R>(red_zone: usize, stack_size: usize, callback: F) -> R {
    // The runtime takes a `dyn FnMut()`, so that its growth path is
    // instantiated once, not for every closure type (stacker does the same).
    // Called here, not in a helper's closure: `#[track_caller]` does not
    // pass through closures.
    let mut callback = Some(callback);
    let mut value = None;
    rt::maybe_grow_slow(red_zone, stack_size, &mut || {
        value = callback.take().map(|f| f());
    });
    value.expect("stacker: the callback did not run")
}

/// Always creates a new stack for the passed closure to run on.
/// The closure will still be on the same thread as the caller of `grow`.
/// This will allocate a new stack with at least `stack_size` bytes.
///
/// On growstack, "a new stack" is the next segment of the caller's stack,
/// with at least `stack_size` bytes beyond its red zone: a cached one if
/// the previous call at this depth left one big enough.
///
/// ```
/// let here = stacker::remaining_stack().unwrap();
/// let there = stacker::grow(4 << 20, || stacker::remaining_stack().unwrap());
/// assert!(there >= 4 << 20, "{there} < 4 MiB (from {here})");
/// ```
#[track_caller]
pub fn grow<R, F: FnOnce() -> R>(stack_size: usize, callback: F) -> R {
    // As in `grow_if_needed`.
    let mut callback = Some(callback);
    let mut value = None;
    rt::grow(stack_size, &mut || value = callback.take().map(|f| f()));
    value.expect("stacker: the callback did not run")
}

/// Queries the amount of remaining stack as interpreted by this library.
///
/// This function will return the amount of stack space left which will be used
/// to determine whether a stack switch should be made or not.
///
/// On growstack: the bytes between the stack pointer and the real end of
/// the stack the caller runs on (a thread's native stack, a growstack
/// task's slot or a segment), or `None` on a stack growstack does not know.
///
/// ```
/// let left = stacker::remaining_stack().unwrap();
/// assert!(left > 0);
/// ```
pub fn remaining_stack() -> Option<usize> {
    rt::remaining_stack()
}
