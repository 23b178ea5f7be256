//! Every line of assembly growstack has, for x86_64 System V (Linux).
//!
//! Two things live here: reading the stack pointer for the inline check, and
//! the `morestack` trampoline that carries a call over to another stack and
//! back.
//!
//! # The trampoline
//!
//! `growstack_morestack_v0_1(rec)` is called on the stack that ran out of room
//! (the *caller's stack*) with a pointer to a [`SwitchRecord`] that lives in
//! the caller's frame. It never touches the caller's stack below its own two
//! pushes, so frames on the caller's stack stay where they are: nothing is
//! ever copied or moved.
//!
//! ```text
//!  caller's stack                 g0 (scheduler stack)        target stack
//!  +----------------------+       +------------------+        +--------------------+
//!  | caller frames ...    |       |                  | g0_top | (segment top, or   |
//!  | SwitchRecord {       |       | newstack() frame |<-(2)   |  below saved_sp    |
//!  |   saved_sp ---------+|--.    |   later:         |        |  when the caller's |
//!  |   g0_top, data,     ||  |    | lessstack() frame|<-(4)   |  stack has room)   |
//!  |   entry }           ||  |    +------------------+        | entry(data) frame  |<-(3)
//!  | return address      ||  |                                | ... the re-called  |
//!  | saved rbp           ||  |                                |     function ...   |
//!  | saved rbx  <--------+|--'                                +--------------------+
//!  +----------------------+
//! ```
//!
//! 1. push rbp, rbx; keep `rec` in rbx (callee-saved, so it survives every
//!    call below) and store the stack pointer in `rec.saved_sp`.
//! 2. switch to `rec.g0_top` and call `newstack(rec)`, which returns the
//!    16-byte aligned top of the stack to run on, or 0 to refuse (the
//!    caller then panics on its own stack).
//! 3. switch to that stack and call `rec.entry(rec.data)`, which runs the
//!    re-call and stores its result (or its panic) in `data`. It never
//!    unwinds.
//! 4. `lessstack`: switch back to `g0_top` and call `lessstack(rec)` to
//!    restore the thread's stack bookkeeping,
//! 5. then switch back to `rec.saved_sp`, pop rbx, rbp and return.
//!
//! g0 is idle whenever user code runs, so every visit starts at its top.
//!
//! # Unwind information
//!
//! From step 1 on, the canonical frame address (CFA) of the trampoline is
//! computed from the record rather than from rsp, whichever stack rsp is on:
//! `CFA = *(rbx + 0) + 24` (saved_sp points at the saved rbx; above it lie
//! rbp and the return address). Unwinders (std's backtrace, gdb) therefore
//! walk from a frame on a segment or on g0 straight into the caller's frames,
//! down to `main`. Panics never cross the trampoline: `entry` catches them
//! and the caller resumes them on its own stack.

use core::arch::{asm, global_asm};

/// The part of a growth record the trampoline reads and writes. The
/// offsets are part of the assembly below: keep them in sync.
#[repr(C)]
pub struct SwitchRecord {
    /// Offset 0: the caller's stack pointer after the trampoline's pushes;
    /// written by the trampoline.
    pub saved_sp: usize,
    /// Offset 8: the top of g0, 16-byte aligned.
    pub g0_top: usize,
    /// Offset 16: the argument of `entry`.
    pub data: *mut u8,
    /// Offset 24: run on the target stack; must not unwind.
    pub entry: unsafe extern "C" fn(*mut u8),
}

/// Reads the stack pointer. Compiles to one `mov`.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies rsp into a register; reads no memory and changes nothing.
    unsafe {
        asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags, pure));
    }
    sp
}

/// Whether the stack pointer is above `guard`: one `cmp` of rsp with a
/// register and one branch, with no copy of rsp kept alive.
#[inline(always)]
pub fn sp_above(guard: usize) -> bool {
    // SAFETY: compares rsp with a register and branches to one of two Rust
    // blocks; reads no memory and changes nothing but the flags.
    unsafe {
        asm!(
            "cmp rsp, {guard}",
            "jbe {no_room}",
            guard = in(reg) guard,
            no_room = label { return false; },
            options(nomem, nostack),
        );
    }
    true
}

unsafe extern "C" {
    /// The trampoline described in the module docs.
    #[link_name = "growstack_morestack_v0_1"]
    fn morestack_trampoline(rec: *mut SwitchRecord);
}

/// Runs `rec.entry(rec.data)` on the stack chosen by `newstack`, going
/// through g0 on the way there and back (module docs, steps 1-5).
/// `newstack` and `lessstack` receive `rec` as passed here, so it may point
/// to the first field of a larger `#[repr(C)]` record.
///
/// # Safety
///
/// `rec` must be valid for reads and writes for the whole call;
/// `rec.g0_top` must be the 16-byte aligned top of a stack that nothing else
/// uses while this runs; `newstack` must return 0 or the 16-byte aligned top
/// of a stack region that is writable and unused below that address;
/// `rec.entry` must not unwind and must return normally.
#[inline]
pub unsafe fn morestack(rec: *mut SwitchRecord) {
    // SAFETY: forwarded to the caller's contract above.
    unsafe { morestack_trampoline(rec) }
}

global_asm!(
    ".pushsection .text.growstack_morestack_v0_1,\"ax\",@progbits",
    ".globl growstack_morestack_v0_1",
    ".hidden growstack_morestack_v0_1",
    ".type growstack_morestack_v0_1,@function",
    ".p2align 4",
    "growstack_morestack_v0_1:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset rbp, -16",
    "push rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset rbx, -24",
    // rbx = rec for the rest of the trampoline; every callee preserves it.
    "mov rbx, rdi",
    "mov [rbx], rsp",
    // From here on, CFA = *(rbx + 0) + 24 wherever rsp points:
    //   0x0f DW_CFA_def_cfa_expression, 0x05 bytes of expression:
    //   0x73 0x00 DW_OP_breg3 (rbx) + 0, 0x06 DW_OP_deref,
    //   0x23 0x18 DW_OP_plus_uconst 24.
    // rbp and rbx stay at CFA-16 and CFA-24 as recorded above.
    ".cfi_escape 0x0f, 0x05, 0x73, 0x00, 0x06, 0x23, 0x18",
    // Step 2: to g0, newstack(rec) picks the target stack (rdi is still rec).
    "mov rsp, [rbx + 8]",
    "call {newstack}",
    "test rax, rax",
    "jz 2f",
    // Step 3: to the target stack, entry(data).
    "mov rsp, rax",
    "mov rdi, [rbx + 16]",
    "call qword ptr [rbx + 24]",
    // Step 4: back to g0, lessstack(rec).
    "mov rsp, [rbx + 8]",
    "mov rdi, rbx",
    "call {lessstack}",
    // Step 5: back to the caller's stack.
    "2:",
    "mov rsp, [rbx]",
    ".cfi_def_cfa rsp, 24",
    "pop rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbx",
    "pop rbp",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore rbp",
    "ret",
    ".cfi_endproc",
    ".size growstack_morestack_v0_1, . - growstack_morestack_v0_1",
    ".popsection",
    newstack = sym crate::grow::newstack,
    lessstack = sym crate::grow::lessstack,
);
