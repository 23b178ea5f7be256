//! Every line of assembly growstack has, for x86_64 System V (Linux).
//!
//! Three things live here: reading the stack pointer for the inline check,
//! the `morestack` trampoline that carries a call over to another stack and
//! back, and the context switch between a worker and its tasks.
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

// # The context switch
//
// `growstack_switch_v0_1(save, to)` suspends the running context and resumes
// another: it pushes the six callee-saved registers (everything else is
// dead across a call in the System V ABI), stores the stack pointer in
// `*save`, loads `to` into rsp, pops the other context's six registers and
// returns into it. A suspended context is therefore just its stack pointer:
//
// ```text
//   saved sp -> | r15 | r14 | r13 | r12 | rbx | rbp | return address | ...
//               low addresses                                   high addresses
// ```
//
// A task that never ran gets the same layout, built by [`init_stack`] at the
// top of its stack, with `growstack_task_start_v0_1` as return address, the
// entry function in rbx and its argument in r12:
//
// ```text
//   top - 72: r15 r14 r13 = 0, r12 = arg, rbx = entry, rbp = 0,
//   top - 24: &growstack_task_start_v0_1, then two zero words up to top
// ```
//
// After the `ret` into it, rsp = top - 16 is 16-byte aligned as a `call`
// requires. Its CFI marks the return address undefined, so unwinders and
// backtraces stop there: a task's outermost frame is its entry function.
// The x87 control word and MXCSR are not switched: Rust code does not
// change them.

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
    /// The context switch described above.
    #[link_name = "growstack_switch_v0_1"]
    fn switch_asm(save: *mut usize, to: usize);
    /// Where a new task's first switch returns to.
    #[link_name = "growstack_task_start_v0_1"]
    fn task_start();
}

/// Suspends the running context, storing its stack pointer in `*save`, and
/// resumes the context whose stack pointer is `to`. Returns when another
/// switch resumes the saved pointer.
///
/// # Safety
///
/// `save` must be valid for a write. `to` must be a stack pointer stored by
/// a `switch` whose context has not been resumed since, or one returned by
/// [`init_stack`] and not used since; that stack must stay valid while the
/// context runs.
#[inline]
pub unsafe fn switch(save: *mut usize, to: usize) {
    // SAFETY: forwarded to the caller's contract above.
    unsafe { switch_asm(save, to) }
}

/// Prepares the stack whose 16-byte aligned top is `top` so that the first
/// [`switch`] to the returned stack pointer calls `entry(arg)` there.
///
/// # Safety
///
/// The 72 bytes below `top` must be writable and not in use.
pub unsafe fn init_stack(top: usize, entry: unsafe extern "C" fn(usize) -> !, arg: usize) -> usize {
    debug_assert_eq!(top % 16, 0);
    let sp = top - 72;
    let frame: [usize; 9] = [
        0,                                // r15
        0,                                // r14
        0,                                // r13
        arg,                              // r12
        entry as *const () as usize,      // rbx
        0,                                // rbp
        task_start as *const () as usize, // return address of the switch
        0,                                // padding: rsp = top - 16 after the `ret`
        0,
    ];
    // SAFETY: [sp, top) is writable and unused by the caller's contract;
    // `sp` is 8-byte aligned.
    unsafe { (sp as *mut [usize; 9]).write(frame) };
    sp
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

global_asm!(
    ".pushsection .text.growstack_switch_v0_1,\"ax\",@progbits",
    ".globl growstack_switch_v0_1",
    ".hidden growstack_switch_v0_1",
    ".type growstack_switch_v0_1,@function",
    ".p2align 4",
    "growstack_switch_v0_1:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset rbp, -16",
    "push rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset rbx, -24",
    "push r12",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset r12, -32",
    "push r13",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset r13, -40",
    "push r14",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset r14, -48",
    "push r15",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset r15, -56",
    "mov [rdi], rsp",
    // The other context has the same layout, so the CFI above stays true.
    "mov rsp, rsi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    ".cfi_adjust_cfa_offset -48",
    "ret",
    ".cfi_endproc",
    ".size growstack_switch_v0_1, . - growstack_switch_v0_1",
    ".popsection",
    "",
    ".pushsection .text.growstack_task_start_v0_1,\"ax\",@progbits",
    ".globl growstack_task_start_v0_1",
    ".hidden growstack_task_start_v0_1",
    ".type growstack_task_start_v0_1,@function",
    ".p2align 4",
    "growstack_task_start_v0_1:",
    ".cfi_startproc",
    // The outermost frame of a task: nothing to unwind into.
    ".cfi_undefined rip",
    "mov rdi, r12",
    "call rbx",
    // entry never returns.
    "ud2",
    ".cfi_endproc",
    ".size growstack_task_start_v0_1, . - growstack_task_start_v0_1",
    ".popsection",
);
