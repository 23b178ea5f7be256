//! The estimate of resident stack memory behind `Stats::stack_resident_bytes`.
//!
//! Each stack owns its share: a segment counts its usable size while a
//! chain holds it (it may not all be touched: an upper bound), a task's
//! slot counts from its top down to the lowest stack pointer its worker
//! saw when the task was suspended (all of it once the task grew past it),
//! and a free slot in a worker's cache keeps the share it had. Releasing
//! pages or returning a stack subtracts exactly what was counted. Native
//! thread stacks are not counted. A per-thread counter like `tasks_live`,
//! since workers update it on every first run of a task.

use crate::stats::{self, Counter};

pub(crate) fn add(bytes: usize) {
    stats::add(Counter::StackResident, bytes as isize);
}

pub(crate) fn sub(bytes: usize) {
    stats::add(Counter::StackResident, -(bytes as isize));
}

/// The current estimate, in bytes.
pub(crate) fn bytes() -> usize {
    stats::sum(Counter::StackResident)
}
