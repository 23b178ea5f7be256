//! Faults, seen from outside: each test runs itself again as a child
//! process that crashes, and checks how it died and what it printed.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;

const SIGABRT: i32 = 6;
const SIGSEGV: i32 = 11;

mod common;
use common::{CHILD, child};

/// Unannotated, unbounded recursion: the point of these children.
#[inline(never)]
#[allow(unconditional_recursion)]
fn plain(n: u64) -> u64 {
    let pad = [n; 16];
    black_box(&pad);
    plain(n + 1).wrapping_add(pad[3])
}

#[growstack::growable]
fn down_then_plain(n: u32) -> u64 {
    if n == 0 {
        plain(0)
    } else {
        down_then_plain(n - 1) + 1
    }
}

#[growstack::growable]
fn annotated(n: u32) -> u32 {
    if n == 0 { 0 } else { annotated(n - 1) + 1 }
}

fn named_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(64 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn guard_hit_on_a_segment_names_the_thread_and_aborts() {
    let Some(out) = child("guard_hit_on_a_segment_names_the_thread_and_aborts", || {
        // 10k annotated levels leave the 64 KiB native stack behind; the
        // unannotated recursion then runs off the end of a segment.
        named_thread("deep-worker", || {
            black_box(down_then_plain(10_000));
        });
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
    assert!(stderr.contains("thread 'deep-worker' ("), "{stderr}");
    assert!(
        stderr.contains("has overflowed its stack in code without a growth check"),
        "{stderr}"
    );
    assert!(
        stderr.contains("-byte growstack segment it had grown onto"),
        "{stderr}"
    );
    assert!(!stderr.contains("stack_size"), "{stderr}");
    assert!(
        stderr.contains("annotate the recursive function with #[growstack::growable]"),
        "{stderr}"
    );
    assert!(stderr.contains("growstack::maybe_grow"), "{stderr}");
}

#[test]
fn native_stack_overflow_still_reported_by_std() {
    let Some(out) = child("native_stack_overflow_still_reported_by_std", || {
        named_thread("plain-worker", || {
            // Sets up growstack on this thread (and its signal handler)...
            assert_eq!(annotated(1000), 1000);
            // ...then overflows the native stack in unannotated code.
            black_box(plain(0));
        });
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
    assert!(stderr.contains("thread 'plain-worker' ("), "{stderr}");
    assert!(stderr.contains("has overflowed its stack\n"), "{stderr}");
    assert!(
        !stderr.contains("growstack"),
        "not a growstack guard: {stderr}"
    );
}

#[test]
fn other_faults_go_to_the_previous_handler() {
    let Some(out) = child("other_faults_go_to_the_previous_handler", || {
        assert_eq!(annotated(1000), 1000);
        // SAFETY: none; this child is meant to fault on an unmapped address.
        black_box(unsafe { std::ptr::read_volatile(black_box(0x10usize) as *const u8) });
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGSEGV), "{stderr}");
    assert!(!stderr.contains("overflowed"), "{stderr}");
}

#[test]
fn guard_hit_in_a_task_names_the_task_and_its_stack_size() {
    let Some(out) = child(
        "guard_hit_in_a_task_names_the_task_and_its_stack_size",
        || {
            let rt = growstack::Runtime::new().unwrap();
            let h = rt.block_on(|| {
                growstack::task::Builder::new()
                    .name("runaway")
                    .spawn(|| black_box(plain(0)))
            });
            let _ = h.join();
        },
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
    assert!(
        stderr.contains("'runaway' (on thread 'growstack-worker-"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "guard region of its own 262144-byte task stack (the runtime's Builder::stack_size)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("\ntask #"), "{stderr}");
    assert!(
        stderr.contains("has overflowed its stack in code without a growth check"),
        "{stderr}"
    );
    assert!(
        stderr.contains("give tasks a larger Builder::stack_size"),
        "{stderr}"
    );
}

#[test]
fn guard_hit_on_a_segment_a_task_grew_onto_blames_the_segment_not_stack_size() {
    // Fixed: a task that overflowed in unannotated code on a segment was
    // told to raise Builder::stack_size, which would not have helped.
    let Some(out) = child(
        "guard_hit_on_a_segment_a_task_grew_onto_blames_the_segment_not_stack_size",
        || {
            let rt = growstack::Runtime::new().unwrap();
            let h = rt.block_on(|| {
                growstack::task::Builder::new()
                    .name("deep")
                    .spawn(|| black_box(down_then_plain(10_000)))
            });
            let _ = h.join();
        },
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
    assert!(stderr.contains("task #"), "{stderr}");
    assert!(
        stderr.contains("'deep' (on thread 'growstack-worker-"),
        "{stderr}"
    );
    assert!(
        stderr.contains("growstack segment it had grown onto"),
        "{stderr}"
    );
    assert!(!stderr.contains("stack_size"), "{stderr}");
}

struct Node {
    next: Option<Box<Node>>,
}

#[growstack::growable]
impl Drop for Node {
    fn drop(&mut self) {
        drop(self.next.take());
    }
}

#[test]
fn a_drop_chain_past_the_limit_panics_once_then_aborts_while_unwinding() {
    const NAME: &str = "a_drop_chain_past_the_limit_panics_once_then_aborts_while_unwinding";
    if std::env::var(CHILD).as_deref() == Ok(NAME) {
        growstack::set_max_stack(4 << 20);
        let mut list = Node { next: None };
        for _ in 0..1_000_000 {
            list = Node {
                next: Some(Box::new(list)),
            };
        }
        // The check of some Node::drop fails at the limit before its body
        // took `next`, so unwinding from that panic drops the rest of the
        // list and reaches the limit again.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(list)));
        unreachable!("the second refusal aborts");
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, NAME)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Without the abort, nested panics cascade for minutes: fail instead.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut bytes).unwrap();
        bytes
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child was still unwinding after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: reader.join().unwrap(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
    assert_eq!(stderr.matches("panicked at").count(), 1, "{stderr}");
    assert!(stderr.contains("exceeds 4194304-byte limit"), "{stderr}");
    assert!(
        stderr.contains("reached again while unwinding from an earlier panic"),
        "{stderr}"
    );
    // One message each, not a backtrace per nested panic.
    assert!(stderr.len() < 4096, "{} bytes of stderr", stderr.len());
}
