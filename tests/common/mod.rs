//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Adds one to its counter when dropped.
pub struct CountDrop(pub Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A field of this process's `/proc/self/status` given in kB (`VmRSS`,
/// `VmPTE`, `VmSize`), in bytes.
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
        .parse()
        .unwrap();
    kib << 10
}

/// Runs `f` on a new thread with a native stack of `stack` bytes.
pub fn on_thread<T: Send + 'static>(stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Calls `f` from just below the current guard: unannotated frames eat the
/// stack down to it, so the next annotated call `f` makes has to grow.
pub fn at_the_edge<R>(f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    burn(&mut || out = Some((f.take().unwrap())()));
    out.unwrap()
}

#[inline(never)]
fn burn(f: &mut dyn FnMut()) {
    let pad = [0u8; 512];
    black_box(&pad);
    if growstack::remaining_stack() == 0 {
        // remaining_stack read the stack pointer in a frame below this one:
        // the 512 bytes above put `f`'s frames below the guard for sure.
        f();
        black_box(&pad);
        return;
    }
    burn(f);
    black_box(&pad);
}

/// Runs `f` on a thread of its own and waits at most `limit` for it: a test
/// of something that used to hang fails with a message instead of hanging
/// the suite. The stuck thread is left behind (the process ends with the
/// test run). A panic in `f` is resumed here.
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("{what}: no progress within {limit:?} (hung)"),
    }
}

/// The variable that tells a test binary run by [`child`] which test it
/// runs as the child.
pub const CHILD: &str = "GROWSTACK_TEST_CHILD";

/// In the child, runs `body`, which must end the process (exit or crash);
/// in the parent, runs this test binary again as a child running only the
/// test `name`, and returns its output (`None` in the child).
pub fn child(name: &str, body: impl FnOnce()) -> Option<std::process::Output> {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        unreachable!("the child was meant to end the process");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .unwrap();
    Some(out)
}

/// Calls `f` with about 8 KiB of stack left above the current guard: a
/// check for an ordinary frame still passes there, one for a large frame
/// does not.
#[inline(never)]
pub fn near_the_limit(f: &mut dyn FnMut()) {
    let pad = [0u8; 512];
    black_box(&pad);
    if growstack::remaining_stack() < 8192 {
        f();
    } else {
        near_the_limit(f);
    }
    black_box(&pad);
}

/// Asserts that a child process (see [`child`]) exited with 0.
pub fn assert_exited_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` as a new thread's first annotated call, again as a later call,
/// and from just below the guard; returns the three results.
pub fn three_ways<T: Send + 'static>(f: fn() -> T) -> [T; 3] {
    std::thread::spawn(move || [f(), f(), at_the_edge(f)])
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Asserts that every way of calling `f` gives `want`.
#[track_caller]
pub fn always<T: Send + PartialEq + std::fmt::Debug + 'static>(want: T, f: fn() -> T) {
    for (got, way) in three_ways(f)
        .into_iter()
        .zip(["first call", "later call", "at the edge"])
    {
        assert_eq!(got, want, "{way}");
    }
}

/// Like [`CountDrop`], comparing equal to any other and cloning its
/// counter, for derived impls.
#[derive(Clone, Debug)]
pub struct CountDropEq(pub Arc<AtomicUsize>);

impl PartialEq for CountDropEq {
    fn eq(&self, _: &CountDropEq) -> bool {
        true
    }
}

impl Drop for CountDropEq {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
