//! Shutdown orderings that user code can make: destructors of cancelled
//! closures that join other tasks or panic with payloads that panic in
//! turn, a worker that cannot start, and what `join` and `is_finished`
//! promise after a runtime was dropped. (Found by an adversarial review of
//! the shutdown path; each hung or freed memory before its fix.)

use std::panic::AssertUnwindSafe;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::CHILD;
use growstack::JoinHandle;
use growstack::task::Cancelled;

mod common;

/// Starts a task that blocks the only worker's thread, so that tasks
/// spawned next stay queued, unstarted; it lets go 200 ms after
/// `release` is called (by then the caller is dropping the runtime).
fn occupy_worker(rt: &growstack::Runtime) -> (JoinHandle<()>, impl FnOnce()) {
    let (started_tx, started) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let busy = rt.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = go.recv();
    });
    started.recv().unwrap();
    let release = move || {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(go_tx);
        });
    };
    (busy, release)
}

fn is_cancelled<T>(r: &std::thread::Result<T>) -> bool {
    r.as_ref()
        .err()
        .is_some_and(|p| p.downcast_ref::<Cancelled>().is_some())
}

/// Joins the handle in the slot when dropped, and reports whether that
/// join returned `Cancelled`.
struct JoinOnDrop {
    slot: Arc<Mutex<Option<JoinHandle<u32>>>>,
    report: mpsc::Sender<bool>,
}

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.slot.lock().unwrap().take() {
            let r = h.join();
            let _ = self.report.send(is_cancelled(&r));
        }
    }
}

#[test]
fn a_cancelled_closure_whose_drop_joins_a_later_queued_task_does_not_hang_the_drop() {
    let (x_cancelled, y_cancelled) = common::within(Duration::from_secs(20), "drop(rt)", || {
        let rt = growstack::Runtime::builder().workers(1).build().unwrap();
        let (busy, release) = occupy_worker(&rt);
        let slot = Arc::new(Mutex::new(None));
        let (report_tx, report) = mpsc::channel();
        let guard = JoinOnDrop {
            slot: slot.clone(),
            report: report_tx,
        };
        // Injector: X first, then Y.
        let x = rt.spawn(move || {
            drop(guard);
            0u32
        });
        let y = rt.spawn(|| 1u32);
        *slot.lock().unwrap() = Some(y);
        release();
        drop(rt); // hung here
        drop(busy);
        let x_cancelled = is_cancelled(&x.join());
        let y_cancelled = report.recv_timeout(Duration::from_secs(5)).unwrap_or(false);
        (x_cancelled, y_cancelled)
    });
    assert!(x_cancelled, "X should join with Cancelled");
    assert!(
        y_cancelled,
        "Y, joined from X's destructor, should join with Cancelled"
    );
}

struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("adversary: a panic payload whose destructor panics");
    }
}

/// Dropped (only if its task never runs), panics with a `Bomb` payload.
struct PanicsWithBomb;

impl Drop for PanicsWithBomb {
    fn drop(&mut self) {
        std::panic::panic_any(Bomb);
    }
}

static TLS_DROPPED: AtomicBool = AtomicBool::new(false);

struct FlagOnDrop;

impl Drop for FlagOnDrop {
    fn drop(&mut self) {
        TLS_DROPPED.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static WORKER_TLS: FlagOnDrop = const { FlagOnDrop };
}

fn wait_finished(t: &std::thread::JoinHandle<()>, limit: Duration) -> bool {
    let t0 = Instant::now();
    while !t.is_finished() && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    t.is_finished()
}

#[test]
fn a_payload_whose_drop_panics_in_drain_neither_hangs_the_drop_nor_frees_borrowed_tls() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let (parked_tx, parked) = growstack::chan::bounded(1);
    let (never_tx, never) = growstack::chan::bounded::<()>(1);
    let t = rt.spawn(move || {
        WORKER_TLS.with(|v| {
            parked_tx.send(()).unwrap();
            let _ = never.recv();
            std::hint::black_box(v);
        })
    });
    parked.recv().unwrap();
    let (spawned_tx, spawned) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let p = rt.spawn(move || {
        let bomb = PanicsWithBomb;
        // B: queued on this worker's `new`; if it ever ran it would just
        // forget the bomb.
        let b = growstack::spawn(move || std::mem::forget(bomb));
        spawned_tx.send(()).unwrap();
        let _ = go.recv(); // blocks the worker's thread: B never starts
        drop(b);
    });
    spawned.recv().unwrap();
    let dropper = std::thread::spawn(move || drop(rt));
    std::thread::sleep(Duration::from_millis(200));
    drop(go_tx);
    let drop_returned = wait_finished(&dropper, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(100));
    let tls_dropped = TLS_DROPPED.load(Ordering::SeqCst);
    // T stays parked for good: keep everything it could touch.
    std::mem::forget((t, p, never_tx, dropper));
    assert!(
        drop_returned && !tls_dropped,
        "drop(rt) returned: {drop_returned} (expected true); the worker's thread-local was \
         destroyed under a task still borrowing it: {tls_dropped} (expected false)"
    );
}

#[test]
fn a_payload_whose_drop_panics_in_left_loop_still_cancels_the_rest_of_the_injector() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let (busy, release) = occupy_worker(&rt);
    // Injector: X (bomb) first, then Y.
    let bomb = PanicsWithBomb;
    let x = rt.spawn(move || std::mem::forget(bomb));
    let y = rt.spawn(|| 7u32);
    release();
    // May panic: the worker re-raises the Bomb payload and Runtime::drop
    // drops it (`let _ = t.join()`).
    let drop_panicked = std::panic::catch_unwind(AssertUnwindSafe(move || drop(rt))).is_err();
    drop((busy, x));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = y.join();
        let _ = tx.send(
            r.err()
                .is_some_and(|p| p.downcast_ref::<Cancelled>().is_some()),
        );
    });
    let y_joined = rx.recv_timeout(Duration::from_secs(5));
    assert_eq!(
        y_joined,
        Ok(true),
        "Y (queued after the bomb) should join with Cancelled; drop(rt) panicked: {drop_panicked}"
    );
}

#[test]
fn a_worker_that_cannot_set_up_its_stacks_does_not_hang_runtime_drop() {
    let name = "a_worker_that_cannot_set_up_its_stacks_does_not_hang_runtime_drop";
    if std::env::var(CHILD).as_deref() == Ok(name) {
        let rt = growstack::Runtime::builder().workers(1).build().unwrap();
        // Let the worker reach (and die in) its stack set-up.
        std::thread::sleep(Duration::from_millis(300));
        drop(rt);
        println!("dropped");
        std::process::exit(0);
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 786432 && exec \"$0\" \"$@\"")
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Sanity: the worker did die the way described.
    assert!(
        stderr.contains("cannot set up the stacks"),
        "the child's worker was meant to fail its stack set-up:\n{stderr}"
    );
    assert!(
        !killed && stdout.contains("dropped"),
        "drop(rt) hung (child killed after 20 s: {killed}):\n{stdout}\n{stderr}"
    );
}

struct SlowDrop {
    joined: mpsc::Receiver<()>,
    saw_join_first: Arc<AtomicBool>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        if self.joined.recv_timeout(Duration::from_millis(100)).is_ok() {
            self.saw_join_first.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_cancelled_join_returns_only_after_the_closure_was_dropped() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let (busy, release) = occupy_worker(&rt);
    let (joined_tx, joined_rx) = mpsc::channel();
    let saw_join_first = Arc::new(AtomicBool::new(false));
    let guard = SlowDrop {
        joined: joined_rx,
        saw_join_first: saw_join_first.clone(),
    };
    let x = rt.spawn(move || std::mem::forget(guard));
    let joiner = std::thread::spawn(move || {
        let r = x.join();
        let _ = joined_tx.send(());
        r.err()
            .is_some_and(|p| p.downcast_ref::<Cancelled>().is_some())
    });
    release();
    drop(rt);
    drop(busy);
    assert!(joiner.join().unwrap(), "X should join with Cancelled");
    assert!(
        !saw_join_first.load(Ordering::SeqCst),
        "join returned Cancelled while the task's closure was still alive"
    );
}

#[test]
fn is_finished_agrees_with_join_after_the_runtime_is_dropped() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let (started_tx, started) = growstack::chan::bounded(1);
    let (never_tx, never) = growstack::chan::bounded::<()>(1);
    let h = rt.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = never.recv();
    });
    started.recv().unwrap();
    drop(rt);
    let finished = h.is_finished();
    let cancelled = h.join().is_err();
    std::mem::forget(never_tx);
    assert!(cancelled);
    assert!(
        finished,
        "is_finished() was false, yet join returned at once"
    );
}

mod panicking_outcome_drop {
    // A detached task's (or blocking job's) value whose Drop panics was
    // dropped outside any catch_unwind: on a pool thread the thread died
    // without being counted out (after 512 of them no job ever ran again);
    // on a worker the panic unwound into task_main and aborted the process.
    // Found by review; such outcomes are dropped quietly now.

    use std::sync::mpsc;
    use std::time::Duration;

    use super::common;

    struct PanicOnDrop;

    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("PanicOnDrop");
        }
    }

    #[test]
    fn a_detached_job_whose_value_panics_on_drop_does_not_use_up_the_pool() {
        std::panic::set_hook(Box::new(|_| {}));
        common::within(
            Duration::from_secs(60),
            "spawn_blocking after 512 panicking drops",
            || {
                for _ in 0..520 {
                    let (tx, rx) = mpsc::channel::<()>();
                    let h = growstack::spawn_blocking(move || {
                        rx.recv().unwrap();
                        PanicOnDrop
                    });
                    drop(h); // detached before the job returns
                    tx.send(()).unwrap();
                    // Give the job time to finish (and its thread to die).
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(growstack::spawn_blocking(|| 7).join().unwrap(), 7);
            },
        );
    }

    #[test]
    fn a_detached_task_whose_value_panics_on_drop_does_not_abort_the_process() {
        let name = "a_detached_task_whose_value_panics_on_drop_does_not_abort_the_process";
        let out = common::child(name, || {
            let rt = growstack::Runtime::builder().workers(1).build().unwrap();
            let (tx, rx) = growstack::chan::bounded::<()>(1);
            let h = rt.spawn(move || {
                rx.recv().unwrap();
                PanicOnDrop
            });
            drop(h);
            tx.send(()).unwrap();
            // The worker goes on running tasks.
            assert_eq!(rt.block_on(|| 5), 5);
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}
