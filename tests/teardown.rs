//! Teardown paths: a thread or a process that ends while growstack still
//! has frames, stacks or tasks in flight. Each test that ends a process
//! runs itself again as a child and checks how the child ended.

use std::cell::Cell;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;

use growstack::growable;

mod common;
use common::child;

/// Recurses `n` levels and calls `std::process::exit(code)` at the bottom.
#[growable]
fn exit_at_depth(n: u32, code: i32) -> u32 {
    let pad = [n; 8];
    black_box(&pad);
    if n == 0 {
        std::process::exit(code);
    }
    exit_at_depth(n - 1, code) + pad[1]
}

struct SaysBye;

impl Drop for SaysBye {
    fn drop(&mut self) {
        // An annotated call among the TLS destructors `exit` runs.
        let depth = shallow(10);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "bye from a TLS destructor after {depth} levels");
        let _ = out.flush();
    }
}

thread_local! {
    static BYE: Cell<Option<SaysBye>> = const { Cell::new(None) };
}

#[growable]
fn shallow(n: u32) -> u32 {
    if n == 0 { 0 } else { shallow(n - 1) + 1 }
}

/// `exit` runs the calling thread's TLS destructors on the stack it was
/// called on: the thread's stack state must not release that stack (it
/// released every segment, the running one included, and the destructor
/// returned into zeroed pages).
#[test]
fn process_exit_deep_in_a_recursion_runs_tls_destructors_and_exits_with_its_code() {
    let name = "process_exit_deep_in_a_recursion_runs_tls_destructors_and_exits_with_its_code";
    let Some(out) = child(name, || {
        let t = std::thread::Builder::new().stack_size(64 << 10).spawn(|| {
            BYE.with(|b| b.set(Some(SaysBye)));
            // 100k levels of 100+ bytes: far past 64 KiB, on segments.
            exit_at_depth(100_000, 7);
        });
        t.unwrap().join().unwrap();
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.signal(), None, "{stderr}");
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stdout.contains("bye from a TLS destructor after 10 levels"),
        "{stdout}"
    );
}

/// The same from a task, deep on its segments.
#[test]
fn process_exit_deep_in_a_task_exits_with_its_code() {
    let name = "process_exit_deep_in_a_task_exits_with_its_code";
    let Some(out) = child(name, || {
        let rt = growstack::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            BYE.with(|b| b.set(Some(SaysBye)));
            exit_at_depth(100_000, 9)
        });
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{stderr}");
    assert_eq!(out.status.code(), Some(9), "{stderr}");
}
