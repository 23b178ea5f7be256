//! The token of a select, as plain functions on an atomic: who completes a
//! select parked on several channels.
//!
//! A select parked on its channels has one waiter per arm, all sharing one
//! token, `WAITING` while it waits. The side that completes an arm (a
//! sender giving a message, a receiver taking one, a disconnect) first
//! moves the token to that arm's index with [`try_select`]; only the
//! winner completes its arm, the others unlink their waiter and leave it
//! alone. The select itself, when its deadline passes, takes the token
//! with [`abort`], so that no arm can be completed after it gave up; if
//! an arm won first, it takes that arm's outcome instead.
//!
//! Written against `super::atomic`, which is `core`'s atomics in the
//! runtime and loom's in `runtime/tests/loom.rs`, which includes this file.

use super::atomic::{AtomicUsize, Ordering};

/// No arm completed, and the select has not given up.
pub(crate) const WAITING: usize = usize::MAX;
/// The select gave up (its deadline passed): no arm may complete.
pub(crate) const ABORTED: usize = usize::MAX - 1;

/// A completer of arm `arm` claims the select; true if it won, and then
/// alone completes that arm.
#[inline]
pub(crate) fn try_select(token: &AtomicUsize, arm: usize) -> bool {
    token
        .compare_exchange(WAITING, arm, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// The arm that won the select, if any yet.
#[inline]
pub(crate) fn selected(token: &AtomicUsize) -> Option<usize> {
    match token.load(Ordering::Acquire) {
        WAITING | ABORTED => None,
        arm => Some(arm),
    }
}

/// The select gives up: `None` if no arm had won (none will now), or the
/// arm that won first.
#[inline]
pub(crate) fn abort(token: &AtomicUsize) -> Option<usize> {
    token
        .compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire)
        .err()
}
