//! The runtime of [growstack](https://docs.rs/growstack): the stack check,
//! the morestack trampoline, stack memory and growth, tasks and channels.
//!
//! Users depend on the `growstack` crate, which re-exports what is public
//! here; macro expansions reach the rest through `growstack::__private`.
//! DESIGN.md in the repository explains the architecture.

#![warn(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

mod arch;
mod args;
pub mod chan;
mod deep_box;
mod frame;
mod grow;
mod guard;
mod membarrier;
pub mod net;
mod signal;
mod spin;
mod stack;
#[doc(hidden)]
pub mod stacker;
mod stats;
pub mod sync;
pub mod task;
mod thread;
mod wait;

pub use deep_box::DeepBox;
pub use frame::{GrowthSite, profile, profile_report};
pub use grow::{max_stack, maybe_grow, remaining_stack, set_max_stack};
pub use stats::{Stats, stats};
pub use task::runtime::{Builder, Handle, Runtime};
pub use task::{
    JoinHandle, dump, dump_report, shrink_now, sleep, spawn, spawn_blocking, yield_now,
};

/// Items used by the code `#[growable]` generates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::args::*;
    pub use crate::frame::FrameDesc;
    pub use crate::grow::{drop_cached_segments, morestack, morestack_body, out_of_line};
    pub use crate::guard::{has_room, has_room_for, take_bypass};
    /// For the `stacker` compat crate (`compat/stacker`).
    pub use crate::stacker;
    pub use crate::task::probe::switch_round_trips;
    pub use crate::task::runtime::dump_runtimes;
    // Expansions name these through `::growstack::__private`, never
    // `::core`: in edition 2015 `::core` is a path from the crate root.
    pub use core::mem::forget;
    pub use core::option::Option::Some;
    pub use core::prelude::v1::test;
    pub use core::{compile_error, file, line, module_path, unreachable};

    /// The value of the unused binding that keeps rustc's warning about an
    /// unused parameter (the re-call uses every parameter).
    pub struct Unused;
}
