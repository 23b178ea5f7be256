//! The architecture interface: [`stack_pointer`], [`sp_above`],
//! [`SwitchRecord`] and [`morestack`] for growth, [`init_stack`] and
//! [`resume`], [`suspend`] and [`switch`] for tasks. One file per target; nothing outside `arch/` has assembly.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("growstack supports x86_64 Linux only (aarch64 is planned)");

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{
    SwitchRecord, init_stack, morestack, resume, sp_above, stack_pointer, suspend, switch,
};
