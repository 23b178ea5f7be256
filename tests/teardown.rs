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

/// A task whose `recv_timeout` timed out waits in its worker's ready queue
/// with its waiter still linked in the channel. Dropping the runtime then
/// must not free its cell: the next send claims through it. (The drain
/// dropped the queue's reference; the handle's was the last, and freeing
/// the cell counted the task out of `tasks_live`.)
#[test]
fn dropping_a_runtime_never_frees_a_started_task_still_linked_in_a_channel() {
    let name = "dropping_a_runtime_never_frees_a_started_task_still_linked_in_a_channel";
    let Some(out) = child(name, || {
        use std::time::{Duration, Instant};
        let rt = growstack::Runtime::builder().workers(1).build().unwrap();
        let t0 = Instant::now();
        let at = move |ms| Duration::from_millis(ms).saturating_sub(t0.elapsed());
        let (tx, rx) = growstack::chan::bounded::<u32>(1);
        let (spinning_tx, spinning) = std::sync::mpsc::channel();
        let c = rt.spawn(move || {
            growstack::sleep(at(20));
            spinning_tx.send(()).unwrap();
            // Long enough for the drop below to begin; then each yield
            // hands the worker to the next of B1..B8, and within eight
            // such rounds one looks around, sees the runtime shutting
            // down and stops: A never runs again.
            std::thread::sleep(Duration::from_millis(100));
            loop {
                growstack::yield_now();
            }
        });
        let bs: Vec<_> = (0..8)
            .map(|_| {
                rt.spawn(move || {
                    growstack::sleep(at(21));
                    loop {
                        growstack::yield_now();
                    }
                })
            })
            .collect();
        // A parks in the receive, its waiter linked in the channel.
        let a = rt.spawn(move || rx.recv_timeout(at(22)).is_err());
        // C, B1..B8 and A park on their timers (started in that order, from
        // the injector); D then keeps the worker busy past every deadline.
        // When it finishes, one round fires the timers of C, then B1..B8,
        // then A, and queues them in that order: A is tenth.
        let d = rt.spawn(move || {
            while t0.elapsed() < Duration::from_millis(80) {
                std::hint::spin_loop();
            }
        });
        spinning.recv().unwrap();
        let live = growstack::stats().tasks_live;
        drop(rt);
        drop((a, bs, c, d));
        let live_after = growstack::stats().tasks_live;
        // The send completes A's waiter and claims A through its cell.
        let sent = tx.send(7).is_ok();
        println!("live {live} -> {live_after}; sent {sent}");
        std::process::exit(0);
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("live ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from the child:\n{stdout}\n{stderr}"));
    // A, B1..B8 and C started and never finish: their cells are never
    // freed, so they stay counted. D finished before.
    assert_eq!(line, "10 -> 10; sent true", "{stdout}\n{stderr}");
}

struct FlagOnDrop(&'static std::sync::atomic::AtomicBool);

impl Drop for FlagOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

static WORKER_TLS_DROPPED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static WORKER_TLS: FlagOnDrop = const { FlagOnDrop(&WORKER_TLS_DROPPED) };
}

/// A task parked inside `with` on a worker's thread-local (here, a scoped
/// thread it started could be reading it meanwhile) borrows that
/// thread-local for good once its runtime is dropped: the worker's thread
/// must never run its TLS destructors.
#[test]
fn a_worker_with_tasks_in_flight_keeps_its_thread_locals_alive_after_the_runtime_is_dropped() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let (parked_tx, parked) = growstack::chan::bounded(1);
    let (_never_tx, never) = growstack::chan::bounded::<()>(1);
    let h = rt.spawn(move || {
        WORKER_TLS.with(|v| {
            parked_tx.send(()).unwrap();
            let _ = never.recv();
            black_box(v);
        })
    });
    parked.recv().unwrap();
    drop(rt);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !WORKER_TLS_DROPPED.load(std::sync::atomic::Ordering::SeqCst),
        "the worker's thread-local was destroyed under a parked task"
    );
    drop(h);
}

/// Joining a task that will never run again (its runtime was dropped)
/// returns `Cancelled` instead of blocking forever: joined before the
/// drop (the joiner is woken), after it, and for a task that never started.
#[test]
fn joins_of_tasks_a_dropped_runtime_will_never_finish_return_cancelled() {
    use growstack::task::Cancelled;
    let (blocked_before, blocked_after, never_started) = common::within(
        std::time::Duration::from_secs(60),
        "joins after drop",
        || {
            let rt = growstack::Runtime::builder().workers(1).build().unwrap();
            let (started_tx, started) = growstack::chan::bounded(2);
            let (_never_tx, never) = growstack::chan::bounded::<()>(1);
            let never2 = never.clone();
            let s2 = started_tx.clone();
            let a = rt.spawn(move || {
                started_tx.send(()).unwrap();
                let _ = never.recv();
            });
            let b = rt.spawn(move || {
                s2.send(()).unwrap();
                let _ = never2.recv();
            });
            started.recv().unwrap();
            started.recv().unwrap();
            // Joined from another thread while the runtime drops.
            let joiner = std::thread::spawn(move || a.join());
            std::thread::sleep(std::time::Duration::from_millis(20));
            // One that never starts: the worker is busy until the drop.
            let (go_tx, go) = std::sync::mpsc::channel::<()>();
            let busy = rt.spawn(move || {
                let _ = go.recv();
            });
            let c = rt.spawn(|| 1);
            // Let `busy` end only once the drop has begun.
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(go_tx);
            });
            drop(rt);
            drop(busy);
            (joiner.join().unwrap(), b.join(), c.join())
        },
    );
    for (what, r) in [
        ("joined before the drop", blocked_before.map(|_| 0)),
        ("joined after the drop", blocked_after.map(|_| 0)),
        ("never started", never_started),
    ] {
        let payload = r.expect_err(what);
        assert_eq!(
            payload.downcast_ref::<Cancelled>(),
            Some(&Cancelled),
            "{what}"
        );
    }
}

/// `fork` from deep on a segment: the child has only the forking thread,
/// with its stack chain as it was; it keeps recursing (growing onto more
/// segments) and returns through all of them.
#[test]
fn a_child_forked_deep_on_a_segment_keeps_growing_and_returns() {
    let name = "a_child_forked_deep_on_a_segment_keeps_growing_and_returns";
    let Some(out) = child(name, || {
        let t = std::thread::Builder::new().stack_size(64 << 10).spawn(|| {
            let status = fork_at_depth(20_000);
            // The forked child exited with its depth check's verdict.
            std::process::exit(status);
        });
        t.unwrap().join().unwrap();
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// Recurses `n` levels, forks at the bottom; the forked child recurses
/// 200k levels more and `_exit`s with 0 if every level came back right;
/// the parent returns the child's exit status.
#[growable]
fn fork_at_depth(n: u32) -> i32 {
    let pad = [n; 8];
    black_box(&pad);
    if n == 0 {
        // SAFETY: the child calls only growstack code (no locks another
        // thread of the parent could hold: the parent has no other thread
        // running growstack code) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = shallow(200_000) == 200_000;
            // SAFETY: ends the forked child without running the parent's
            // atexit handlers or TLS destructors.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child, with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            100
        };
    }
    let status = fork_at_depth(n - 1);
    assert_eq!(pad[7], n);
    status
}
