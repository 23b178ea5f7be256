//! A memory barrier run on every thread of the process at once:
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`.
//!
//! When one side of a handshake is hot and the other rare, the hot side
//! can order its store before its load with a compiler fence alone, and
//! the rare side calls [`run`]: membarrier(2) guarantees that when it
//! returns, every running thread of the process has passed a point where
//! its memory accesses before the point (in program order) are visible to
//! the caller and its accesses after it see everything the caller wrote
//! before the call (a thread not running is at such a point already). This
//! is the asymmetric fence of liburcu's `urcu-memb` flavour and of C++
//! proposal P1202; the channel lock uses it to let one thread lock without
//! a read-modify-write (`spin`).
//!
//! A barrier costs a system call and an interrupt per CPU running the
//! process's threads: 93 ns with one thread here, 130 ns with a second one
//! spinning on the other core (10,000 calls each, measured). The kernel
//! needs the process registered first ([`register`]), which costs 2 µs
//! while it has one thread and 8-16 ms once it has several (it waits for
//! an RCU grace period): the first `Runtime` registers before it starts
//! its threads.

use core::sync::atomic::{AtomicU8, Ordering, fence};

const UNREGISTERED: u8 = 0;
const AVAILABLE: u8 = 1;
const MISSING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNREGISTERED);

// The commands, from the kernel's uapi/linux/membarrier.h.
const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// Registers the process for expedited barriers, the first time (module
/// docs for the cost); later calls cost a load.
pub(crate) fn register() {
    if STATE.load(Ordering::Acquire) == UNREGISTERED {
        register_now();
    }
}

#[cold]
fn register_now() {
    // Under Miri, which has no such call, barriers are never available.
    let ok = !cfg!(miri) && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    // Two threads registering at once both succeed; either store is right.
    STATE.store(if ok { AVAILABLE } else { MISSING }, Ordering::Release);
}

/// Whether [`run`] works: the process registered, and the kernel (or a
/// seccomp filter) did not refuse.
pub(crate) fn available() -> bool {
    STATE.load(Ordering::Acquire) == AVAILABLE
}

/// Runs a full memory barrier on every running thread of the process
/// (module docs), the caller included.
///
/// # Panics
///
/// If the process is not registered ([`available`]): the kernel refuses
/// the barrier then.
pub(crate) fn run() {
    assert_eq!(
        STATE.load(Ordering::Acquire),
        AVAILABLE,
        "growstack: membarrier used before it was registered"
    );
    // The kernel orders the caller's own accesses around the call too;
    // this fence says so to the compiler and costs nothing next to it.
    fence(Ordering::SeqCst);
    let rc = membarrier(CMD_PRIVATE_EXPEDITED);
    if rc != 0 {
        // A registered process cannot be refused, and going on would
        // break the exclusion that relies on the barrier.
        let err = std::io::Error::last_os_error();
        eprintln!("growstack: membarrier failed after registering: {err}");
        std::process::abort();
    }
    fence(Ordering::SeqCst);
}

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integer arguments and touches no memory
    // of ours; an unknown command fails with EINVAL.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) }
}
