//! `Builder::dump_on_sigquit`: the task dump on `SIGQUIT`, as Go prints
//! its goroutines, without exiting.
//!
//! A signal handler can do almost nothing safely, certainly not take a
//! dump: ours writes one byte into a pipe, and a thread of ours that
//! reads the pipe prints `dump_report()`.

use core::sync::atomic::{AtomicI32, Ordering};
use std::io;
use std::sync::Mutex;

/// The pipe's write end, for the handler; -1 before it is installed.
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

/// Installs the handler and starts the thread, once per process.
pub(crate) fn install() -> io::Result<()> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return Ok(());
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // The handler must never block: a full pipe drops the signal (a dump
    // is on its way anyway).
    // SAFETY: a descriptor we own; F_SETFL with a valid flag.
    unsafe { libc::fcntl(write_end, libc::F_SETFL, libc::O_NONBLOCK) };
    std::thread::Builder::new()
        .name("growstack-sigquit".into())
        .spawn(move || printer(read_end))?;
    WRITE_END.store(write_end, Ordering::Release);
    // SAFETY: sigaction only reads our action; the handler does only
    // async-signal-safe work (an atomic load and `write`).
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = handler as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGQUIT, &action, core::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    *installed = true;
    Ok(())
}

extern "C" fn handler(_: libc::c_int) {
    // SAFETY: `__errno_location` is the calling thread's errno, which we
    // restore: the interrupted code may be about to read it.
    let errno = unsafe { *libc::__errno_location() };
    let fd = WRITE_END.load(Ordering::Acquire);
    let byte = 1u8;
    // SAFETY: write is async-signal-safe; the buffer is one live byte.
    unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Prints a dump for every read of the bytes the handler writes: signals
/// that come while a dump is taken are answered by one more dump, not one
/// each.
fn printer(read_end: libc::c_int) {
    let mut bytes = [0u8; 256];
    loop {
        // SAFETY: a descriptor we own; the buffer is live and that long.
        let n = unsafe { libc::read(read_end, bytes.as_mut_ptr().cast(), bytes.len()) };
        if n > 0 {
            // Not `eprintln!`: a stuck task may hold std's stderr lock.
            let report = format!("growstack: SIGQUIT: {}\n", super::dump_report());
            super::runtime::write_stderr(report.as_bytes());
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}
