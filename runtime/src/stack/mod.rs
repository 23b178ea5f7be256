//! Stack memory: where stacks come from and the sizes that shape them.
//!
//! Invariants (see DESIGN.md, "Stack memory"):
//!
//! - Every stack growstack hands out is a *slot*: a power-of-two piece of a
//!   large `MAP_NORESERVE` reservation, with a guard region of
//!   [`GUARD_SIZE`] bytes at its low end. Memory above the guard is
//!   committed by demand paging as the stack grows down into it.
//! - A slot belongs to exactly one owner at a time: the arena's free list,
//!   a worker's cache of task slots, a task, a segment chain (in use or
//!   cached), or a thread's g0.
//! - Frames are never moved. A slot is returned to the arena only when no
//!   frame lives on it: when its thread exits or its task finishes, or
//!   (later) by a shrink pass. A task that never finishes (its runtime was
//!   dropped) keeps its memory forever: a pinned value may live there.
//! - A parked task's stack may be compacted (`task::compact`): its bytes
//!   are copied out and its pages released, then copied back to the same
//!   addresses before it runs again. No frame changes address.
//! - Reservations are never unmapped, so an address that was once in a slot
//!   stays classifiable by the signal handler without locks.

pub mod arena;
mod chain;
pub(crate) mod chunks;
pub(crate) mod resident;

pub use arena::Slot;
pub(crate) use chain::{Chain, Need, Pass, Saved, Shrunk, segment_for};

/// Size of the guard region at the low end of every slot. Rust's stack
/// probes touch every page of a large frame, so one page would catch any
/// overflow; 64 KiB leaves a margin for code built without probes. It is
/// address space only: `MADV_GUARD_INSTALL` needs no memory and no VMA.
pub const GUARD_SIZE: usize = 64 << 10;

/// Red zone: stack that stays usable below a thread's guard. It must hold
/// the frame of the annotated function whose check failed, the runtime's
/// own slow path up to the switch to g0, and whatever unannotated code runs
/// before the next check: std's formatting and panic machinery (the limit
/// panic is raised here) and a signal frame (up to ~4 KiB with AVX-512).
/// Address space, not memory, so it is generous.
pub const RED_ZONE: usize = 64 << 10;

/// The first segment of a thread; each next one is twice the previous.
pub const MIN_SEGMENT: usize = 1 << 20;

/// Segment size in stress mode: small, so that stress runs cross segment
/// boundaries often (each one leaves 128 KiB of frames between the red zone
/// and the guard region).
pub const STRESS_SEGMENT: usize = 256 << 10;

/// Size of the g0 slot of every thread, workers included (a worker's
/// scheduler may itself run annotated code, e.g. a destructor, so g0
/// cannot be a piece of its native stack): `newstack` and `lessstack` run
/// there and need a few KiB (a `Mutex`, a `Vec` push, one
/// or two system calls).
///
/// That `Vec` push (a segment list growing) calls the global allocator on
/// g0: a custom `#[global_allocator]` must fit in what is left of these
/// 128 KiB (every common one needs a few KiB at most). Nothing on g0
/// panics on purpose: a refusal is returned to the caller's stack and
/// raised there, and a panic on g0 (a bug) aborts, since `newstack` is
/// `extern "C"`; the panic hook then runs on g0 too.
pub const G0_SIZE: usize = 128 << 10;

/// Default size of a task's slot (`Builder::stack_size`): 64 KiB of guard
/// region, 64 KiB of red zone and 128 KiB in which annotated code runs in
/// place before it continues on segments. Address space, committed only as
/// touched; 256 KiB keeps eight tasks per 2 MiB page-table page.
pub const TASK_STACK: usize = 256 << 10;

/// The smallest task slot: the guard region and the red zone.
pub const MIN_TASK_STACK: usize = GUARD_SIZE + RED_ZONE;

/// Page size assumed for rounding (x86_64 Linux).
pub const PAGE_SIZE: usize = 4096;
