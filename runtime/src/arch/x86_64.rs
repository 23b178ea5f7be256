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
// Switching between a worker's scheduler and a task is asymmetric, like a
// call and its return: the scheduler [`resume`]s a task with a `call` into
// the task's resume address, and the task [`suspend`]s with a `ret` back to
// that call site. Each `ret` thus matches the latest `call`, which keeps
// the CPU's return-stack predictor right (a symmetric switch that `ret`s
// into another context mispredicts every time: it measured 16.9 ns per
// round trip against 1.50 ns for this design, and 1.5-2.2 ns for
// corosensei, in benches/tasks.rs). Both are inline asm that
// declare every register clobbered, so the compiler saves only the ones it
// has live; rbx and rbp, which asm cannot declare, are pushed by hand.
//
// A suspended task is its stack pointer, pointing at its resume address:
//
// ```text
//   task sp -> | resume address | rbx | rbp | ...the task's frames
// ```
//
// and the scheduler, while a task runs, is its stack pointer saved in the
// worker's *link*, pointing at the return address of its `call`. Resuming
// passes the task's sp in rax and the link in rsi; the code at the resume
// address stores the scheduler's sp in the link, moves rsp past the resume
// address and pops rbx and rbp.
//
// A task may also hand the worker straight to another suspended task
// ([`switch`]): it saves itself as `suspend` does and `jmp`s to the other's
// resume address, passing as the link the word where it just saved its own
// sp, so the link itself keeps the scheduler's sp. The scheduler's `call`
// is then matched by the `ret` of whichever task suspends to it next.
//
// A task that never ran has, at the top of its stack (built by
// [`init_stack`]):
//
// ```text
//   top - 40: &growstack_task_start_v0_1, entry, arg, then two zero words
// ```
//
// `growstack_task_start_v0_1` is its resume address: it skips itself, pops
// `entry` and `arg` and calls `entry(arg)` with rsp = top - 16, 16-byte
// aligned as a call requires. Its CFI marks the return address undefined,
// so unwinders and backtraces stop there: a task's outermost frame is its
// entry function. The x87 control word and MXCSR are not switched: Rust
// code does not change them.

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
///
/// Not `pure`: the reference makes it undefined behaviour for a pure block
/// to give different outputs for the same inputs, and this one has no
/// inputs but reads a different rsp at every depth (the compiler could
/// merge two reads made at different depths).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies rsp into a register; reads no memory and changes nothing.
    unsafe {
        asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
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
    /// The first resume address of every task (see above).
    #[link_name = "growstack_task_start_v0_1"]
    fn task_start();
}

/// Saves the running task as a suspended one (see above): pushes rbp, rbx
/// and the resume address (label `2`, the `resume_point!` that follows,
/// through rcx), and stores the stack pointer in `[rdi]`.
macro_rules! save_context {
    () => {
        concat!(
            "push rbp\n",
            "push rbx\n",
            "lea rcx, [rip + 2f]\n",
            "push rcx\n",
            "mov [rdi], rsp\n",
        )
    };
}

/// The resume address of a context saved by `save_context!`: entered with
/// rax = its saved stack pointer and rsi = where to store the resumer's,
/// it does so, skips the address and pops rbx and rbp.
macro_rules! resume_point {
    () => {
        concat!(
            "2:\n",
            "mov [rsi], rsp\n",
            "lea rsp, [rax + 8]\n",
            "pop rbx\n",
            "pop rbp\n",
        )
    };
}

/// Runs the task whose saved stack pointer is `sp` until it, or a task it
/// [`switch`]ed to, suspends, keeping this context's stack pointer in
/// `*link` meanwhile.
///
/// # Safety
///
/// `sp` must be a task stack pointer stored by [`suspend`] or [`switch`]
/// (or built by [`init_stack`]) and not resumed since; its stack must stay
/// valid while the task runs. `link` must be valid for reads and writes
/// until a task suspends, and that task must suspend with the same `link`.
#[inline(always)]
pub unsafe fn resume(sp: usize, link: *mut usize) {
    // SAFETY: by the contract. The callee-saved registers the asm cannot
    // declare (rbx, rbp) are pushed and popped around the call; all others
    // are declared clobbered. No `nostack`: the compiler keeps rsp aligned
    // and nothing in the red zone below it.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            // To the task's resume address; it stores our sp in [rsi].
            "call [rax]",
            // The task suspended: its `ret` came back here.
            "pop rbx",
            "pop rbp",
            inout("rax") sp => _,
            inout("rsi") link => _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
}

/// Suspends the running task: stores its stack pointer in `*save` and
/// returns to the [`resume`] whose link is `link`. Returns when the task is
/// resumed.
///
/// # Safety
///
/// Must run on a task's stack, resumed by a `resume` with this `link` (or
/// switched to by a task that was), which is valid for reads and writes;
/// `save` must be valid for a write. The task must only be resumed again
/// with the same `link`, or switched to.
#[inline(always)]
pub unsafe fn suspend(save: *mut usize, link: *mut usize) {
    // SAFETY: by the contract; registers as in `resume`.
    unsafe {
        asm!(
            save_context!(),
            // Back to the scheduler, right after its `call`.
            "mov rsp, [rsi]",
            "ret",
            // Resumed: rax = our saved sp, rsi = the link.
            resume_point!(),
            inout("rdi") save => _,
            inout("rsi") link => _,
            out("rax") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
}

/// Switches from the running task straight to another suspended one,
/// without going through the scheduler: stores the running task's stack
/// pointer in `*save`, as [`suspend`] does, and resumes the task whose
/// saved stack pointer is `sp`, as [`resume`] does. Returns when the
/// running task is resumed again, by either.
///
/// The code at the resume address stores "the resumer's stack pointer" in
/// the word rsi points to: here that is `save`, which holds that value
/// already, so the link keeps the scheduler's stack pointer and the resumed
/// task later suspends to it as usual. It is entered with a `jmp`, not a
/// `call`: there is no scheduler frame to return to.
///
/// # Safety
///
/// Must run on a task's stack, resumed with a link; `sp` must be a task
/// stack pointer stored by [`suspend`] or [`switch`] and not resumed since,
/// of a task that was resumed with the same link before and whose stack
/// stays valid while it runs; `save` must be valid for a write.
#[inline(always)]
pub unsafe fn switch(save: *mut usize, sp: usize) {
    // SAFETY: by the contract; registers as in `resume`.
    unsafe {
        asm!(
            save_context!(),
            "mov rsi, rdi",
            "jmp [rax]",
            // Resumed: rax = our saved sp, rsi = the link or a `save`.
            resume_point!(),
            inout("rdi") save => _,
            inout("rax") sp => _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
}

/// Prepares the stack whose 16-byte aligned top is `top` so that the first
/// [`resume`] of the returned stack pointer calls `entry(arg)` there.
///
/// # Safety
///
/// The 40 bytes below `top` must be writable and not in use.
pub unsafe fn init_stack(top: usize, entry: unsafe extern "C" fn(usize) -> !, arg: usize) -> usize {
    debug_assert_eq!(top % 16, 0);
    let sp = top - 40;
    let frame: [usize; 5] = [
        task_start as *const () as usize, // resume address
        entry as *const () as usize,
        arg,
        0, // rsp = top - 16 at the call: 16-byte aligned
        0,
    ];
    // SAFETY: [sp, top) is writable and unused by the caller's contract;
    // `sp` is 8-byte aligned.
    unsafe { (sp as *mut [usize; 5]).write(frame) };
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
    ".pushsection .text.growstack_task_start_v0_1,\"ax\",@progbits",
    ".globl growstack_task_start_v0_1",
    ".hidden growstack_task_start_v0_1",
    ".type growstack_task_start_v0_1,@function",
    ".p2align 4",
    "growstack_task_start_v0_1:",
    ".cfi_startproc",
    // The outermost frame of a task: nothing to unwind into.
    ".cfi_undefined rip",
    // Entered by `resume`: rax = our sp (at this address), rsi = the link.
    "mov [rsi], rsp",
    "lea rsp, [rax + 8]",
    "pop rbx",
    "pop rdi",
    "call rbx",
    // entry never returns.
    "ud2",
    ".cfi_endproc",
    ".size growstack_task_start_v0_1, . - growstack_task_start_v0_1",
    ".popsection",
);
