//! The SIGSEGV/SIGBUS handler that names guard-region hits.
//!
//! Annotated functions never reach a guard region: their check moves them to
//! a segment first. Unannotated code can (a deep recursion in a library
//! called from a segment, a huge local array): it runs through the red zone
//! and faults in the guard region below it. The handler then says which
//! thread overflowed and what to do, and aborts, as std does for its own
//! guard pages. Faults anywhere else go to the handler that was installed
//! before ours (std's, which reports overflows of native stacks), unchanged.
//!
//! The handler runs on an alternate signal stack, since the faulting stack
//! has no room left; threads that have none get one of ours.

use core::cell::{Cell, UnsafeCell};
use core::fmt::Write;
use core::mem::MaybeUninit;
use std::sync::Once;

use crate::stack::{self, Slot, arena};
use crate::task::TaskInfo;

/// Size of the alternate signal stack we give threads that have none
/// (a 64 KiB guard region below it).
const ALTSTACK_SLOT: usize = 128 << 10;

/// The actions that were installed before ours, for SIGSEGV and SIGBUS.
/// Written once, before our handler is installed; read-only afterwards.
struct Previous(UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);
// SAFETY: written only inside `INSTALL.call_once`, before the handler that
// reads it is installed; never written again.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new([MaybeUninit::uninit(); 2]));
static INSTALL: Once = Once::new();
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Installs the handler for the whole process, once.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: `PREVIOUS` is not read before the handler is installed
            // below, and this closure runs once. sigaction only reads our
            // `action` and writes the previous one.
            unsafe {
                let previous = (*PREVIOUS.0.get())[i].as_mut_ptr();
                libc::sigaction(sig, core::ptr::null(), previous);
                let mut action: libc::sigaction = core::mem::zeroed();
                action.sa_sigaction = handler as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, core::ptr::null_mut());
            }
        }
    });
}

/// Gives the calling thread an alternate signal stack if it has none;
/// returns the slot to free when the thread exits.
pub(crate) fn ensure_altstack() -> std::io::Result<Option<Slot>> {
    // SAFETY: stack_t is plain data, valid when zeroed.
    let mut current: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: with a null new stack, sigaltstack only reports the current one.
    unsafe { libc::sigaltstack(core::ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(None);
    }
    let slot = arena::alloc(ALTSTACK_SLOT)?;
    let stack = libc::stack_t {
        ss_sp: slot.usable_lo() as *mut libc::c_void,
        ss_flags: 0,
        ss_size: slot.top() - slot.usable_lo(),
    };
    // SAFETY: the slot is ours until `drop_altstack` disables it again.
    unsafe { libc::sigaltstack(&stack, core::ptr::null_mut()) };
    Ok(Some(slot))
}

/// Disables the alternate signal stack set by `ensure_altstack` and frees it.
pub(crate) fn drop_altstack(slot: Slot) {
    let disable = libc::stack_t {
        ss_sp: core::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: we are not running on the alternate stack (no signal handler
    // frees thread state), so it may be disabled.
    unsafe { libc::sigaltstack(&disable, core::ptr::null_mut()) };
    stack::arena::free(slot);
}

const NAME_MAX: usize = 64;

thread_local! {
    // Read by the handler: `const` and without destructors, so reading them
    // is a plain load, safe in a signal handler.
    static NAME: UnsafeCell<[u8; NAME_MAX]> = const { UnsafeCell::new([0; NAME_MAX]) };
    static NAME_LEN: Cell<usize> = const { Cell::new(0) };
    /// The task this thread runs now, if any (set by its worker).
    static TASK: Cell<*const TaskInfo> = const { Cell::new(core::ptr::null()) };
}

/// Tells the handler which task runs on this thread from now on (null:
/// none). `info` must stay valid until the next call.
pub(crate) fn set_task(info: *const TaskInfo) {
    TASK.with(|t| t.set(info));
}

/// Copies the calling thread's name where the handler can read it.
pub(crate) fn remember_thread_name() {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>").as_bytes();
    let len = name.len().min(NAME_MAX);
    // SAFETY: the handler reads NAME only on a fault of this same thread,
    // which cannot interrupt this copy in a way that matters (at worst it
    // prints a partial name).
    NAME.with(|n| unsafe { (&mut *n.get())[..len].copy_from_slice(&name[..len]) });
    NAME_LEN.with(|l| l.set(len));
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(hit) = arena::guard_hit(addr) {
        report_overflow(addr, hit);
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
    }
    let i = SIGNALS.iter().position(|&s| s == sig).unwrap_or(0);
    // SAFETY: written before this handler was installed (see `Previous`).
    let previous = unsafe { (*PREVIOUS.0.get())[i].assume_init_ref() };
    let action = previous.sa_sigaction;
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and the kernel applies it (kills the process).
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action.
        unsafe {
            let mut dfl: libc::sigaction = core::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, core::ptr::null_mut());
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature; we pass on exactly what the kernel gave us.
        unsafe {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                core::mem::transmute(action);
            f(sig, info, ctx);
        }
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal.
        unsafe {
            let f: extern "C" fn(libc::c_int) = core::mem::transmute(action);
            f(sig);
        }
    }
}

/// Writes the overflow message to stderr without allocating or locking.
fn report_overflow(addr: usize, hit: arena::GuardHit) {
    let slot_size = hit.slot_size;
    let mut msg = Buffer {
        bytes: [0; 1024],
        len: 0,
    };
    let len = NAME_LEN.with(Cell::get);
    // SAFETY: see `remember_thread_name`.
    let name = NAME.with(|n| unsafe { *n.get() });
    let name = core::str::from_utf8(&name[..len]).unwrap_or("<unnamed>");
    let name = if len == 0 { "<unnamed>" } else { name };
    // SAFETY: gettid(2) has no preconditions and is async-signal-safe.
    let tid = unsafe { libc::gettid() };
    let task = TASK.with(Cell::get);
    // Whose stack ran out: a task's own slot (Builder::stack_size), or a
    // segment that a thread or a task had grown onto.
    let mut own_slot = false;
    if task.is_null() {
        let _ = write!(msg, "\nthread '{name}' ({tid})");
    } else {
        // SAFETY: the worker keeps the info valid while the task runs
        // (set_task), and the task is what faulted.
        let info = unsafe { &*task };
        let _ = write!(msg, "\ntask #{}", info.id);
        if let Some(task_name) = &info.name {
            let _ = write!(msg, " '{task_name}'");
        }
        let _ = write!(msg, " (on thread '{name}' ({tid}))");
        own_slot = info.slot_top.load(core::sync::atomic::Ordering::Relaxed) == hit.slot_top;
    }
    let _ = write!(
        msg,
        " has overflowed its stack in code without a growth check: it ran through the red \
         zone into the guard region of "
    );
    if own_slot {
        let _ = write!(
            msg,
            "its own {slot_size}-byte task stack (the runtime's Builder::stack_size)"
        );
    } else {
        let _ = write!(
            msg,
            "a {slot_size}-byte growstack segment it had grown onto"
        );
    }
    let _ = write!(
        msg,
        ", at {addr:#x}\n\
         help: annotate the recursive function with #[growstack::growable], \
         or wrap the deep call in growstack::maybe_grow"
    );
    if own_slot {
        let _ = write!(
            msg,
            "; if no deep recursion is involved (a large local array in code you cannot \
             annotate), give tasks a larger Builder::stack_size"
        );
    }
    let _ = write!(msg, "\nfatal runtime error: stack overflow, aborting\n");
    // SAFETY: write(2) on fd 2 with a buffer we own; async-signal-safe.
    unsafe { libc::write(2, msg.bytes.as_ptr().cast(), msg.len) };
}

/// A fixed buffer that formatting can write into from a signal handler.
struct Buffer {
    bytes: [u8; 1024],
    len: usize,
}

impl Write for Buffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
