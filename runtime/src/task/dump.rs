//! [`dump`]: every task of every runtime, where it is and what it waits
//! for, like Go's goroutine dump (`SIGQUIT`) and tokio's `Handle::dump`.
//!
//! Each worker describes its own tasks at its scheduler, where none of
//! them runs (`worker::dump`): their stacks hold still, and the record of
//! what each parked task waits for (`parked::Meta`) points into a live
//! frame. For the backtrace, the worker resumes each suspended task in its
//! `switch_out`, where it captures its own stack and suspends again at
//! once: no code of the task runs, and nothing it waits for is touched.
//! A worker busy in a task that never switches out cannot answer; once
//! that task has held it for a second since the request, `dump` reports
//! that task as running, without a backtrace, and leaves out the worker's
//! other tasks.

use core::fmt::{self, Write as _};
use core::panic::Location;
use std::backtrace::Backtrace;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::parked::ParkedOn;
use super::raw::TaskRef;
use super::runtime::{self, Shared};
use super::worker;
use crate::chan::{self, Sender};

/// How long [`dump`] waits for a worker to reach its scheduler.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// One task, as [`dump`] saw it.
#[derive(Debug)]
#[non_exhaustive]
pub struct TaskDump {
    /// The task's id ([`current_id`](crate::task::current_id)).
    pub id: u64,
    /// Its name ([`task::Builder::name`](crate::task::Builder::name)).
    pub name: Option<String>,
    /// Running, ready or parked (on what).
    pub state: TaskState,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// Its runtime's [`id`](crate::Runtime::id). Task ids are unique
    /// within a runtime.
    pub runtime: u64,
    /// The worker it is pinned to (tasks that never ran have none).
    pub worker: Option<usize>,
    /// Bytes of its stacks resident in memory (the runtime's estimate, as
    /// in [`stats`](crate::stats)).
    pub stack_resident: usize,
    /// Segments its stack has grown onto and holds frames on now.
    pub segments: usize,
    /// Times its stack grew onto a segment, over its life.
    pub growths: u64,
    /// Its stack, captured on the task's own stack (`None` for a task that
    /// never ran, or that was running).
    pub backtrace: Option<Backtrace>,
}

/// Where a task was at the [`dump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Running: the task that called `dump`, or one that held its worker
    /// for the whole dump (its worker's other tasks are then missing).
    Running,
    /// Runnable, waiting for its worker (woken, or yielded).
    Ready,
    /// Spawned, never run yet.
    NotStarted,
    /// Parked, waiting for `on`, until `until` at the latest.
    Parked {
        /// What it waits for.
        on: ParkedOn,
        /// Its deadline, if the wait has one.
        until: Option<Instant>,
    },
}

/// A `dump` call's request to one worker.
pub(crate) struct DumpRequest {
    /// The calling task's runtime and id, reported running.
    pub(crate) caller: Option<(u64, u64)>,
    pub(crate) runtime: u64,
    pub(crate) done: Sender<(u64, usize, Vec<TaskDump>)>,
}

impl DumpRequest {
    /// Whether the caller stopped waiting for the answer.
    pub(crate) fn abandoned(&self) -> bool {
        self.done.is_disconnected()
    }

    /// Sends a worker's answer.
    pub(crate) fn answer(self, worker: usize, tasks: Vec<TaskDump>) {
        let _ = self.done.send((self.runtime, worker, tasks));
    }
}

/// Every task of every runtime: its id, name, state (what it is parked
/// on), where it was spawned, its stack use and a backtrace captured on its
/// own stack. Sorted by runtime and id. Parks the calling task (or blocks the thread)
/// until every worker has answered, for up to a second each: the workers
/// answer at their scheduler, between two tasks. (Called from code a
/// worker runs on its scheduler, such as a destructor of a task's result
/// dropped there, it leaves out the workers that have not answered within
/// a second: it holds its own worker meanwhile.)
///
/// Taking the dump does not disturb the tasks: a parked task is resumed
/// only inside the runtime, to capture its backtrace, and parks again.
/// Workers steal no new task from each other meanwhile, so that each task
/// is listed once (unless the caller is held up for more than 3 s between
/// two looks at the answers: the pause then lapses). A backtrace holds
/// every frame of the task: a task hundreds of thousands of frames deep
/// takes a while to capture, and its backtrace as much memory.
///
/// ```
/// # use growstack_runtime as growstack;
/// use growstack::task::{ParkedOn, TaskState};
///
/// let rt = growstack::Runtime::new()?;
/// let (tx, rx) = growstack::chan::bounded::<u32>(0);
/// let waiting = rt.spawn(move || rx.recv().unwrap());
/// # std::thread::sleep(std::time::Duration::from_millis(50));
/// let tasks = growstack::task::dump();
/// let task = tasks.iter().find(|t| (t.runtime, t.id) == (rt.id(), waiting.id())).unwrap();
/// assert!(matches!(task.state, TaskState::Parked { on: ParkedOn::Recv { elem: "u32", .. }, .. }));
/// tx.send(7).unwrap();
/// assert_eq!(waiting.join().unwrap(), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump() -> Vec<TaskDump> {
    let caller = worker::current()
        .zip(super::current_id())
        .map(|(w, id)| (w.runtime_id(), id));
    let runtimes = runtime::live_runtimes();
    // No steals until every worker answered (`Worker::steal`).
    let pauses = runtimes.iter().map(StealPause::new).collect::<Vec<_>>();
    let renew = || pauses.iter().for_each(StealPause::renew);
    // On a worker's scheduler (a destructor it runs), that worker answers
    // here: it cannot wait for itself.
    let here = worker::current().filter(|_| worker::current_task().is_none());
    let (done, answers) = chan::unbounded();
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for (r, shared) in runtimes.iter().enumerate() {
        out.extend(unstarted(shared.id, lock_injector_tasks(shared)));
        for (i, remote) in shared.workers.iter().enumerate() {
            let request = DumpRequest {
                caller,
                runtime: shared.id,
                done: done.clone(),
            };
            match here.filter(|w| core::ptr::eq(w.remote(), remote)) {
                Some(w) => {
                    request.answer(i, w.dump_tasks(caller, shared.id));
                    renew();
                }
                None => {
                    let resumes = remote.resumes();
                    remote.request_dump(request);
                    waiting.push((r, i, resumes));
                }
            }
        }
    }
    drop(done);
    // Wait for every worker that answers, however long its answer takes;
    // give up on one still in the task it ran when asked, after a while.
    let mut deadline = Instant::now() + ANSWER_WITHIN;
    let mut stuck = Vec::new();
    loop {
        renew();
        match answers.recv_deadline(deadline) {
            Ok((id, i, tasks)) => {
                waiting.retain(|&(r, wi, _)| (runtimes[r].id, wi) != (id, i));
                out.extend(tasks);
            }
            Err(chan::RecvTimeoutError::Disconnected) => break,
            // Called on a worker's scheduler, we hold up that worker: two
            // such calls on workers of two runtimes would wait for each
            // other. Give up on the workers that did not answer in time.
            Err(chan::RecvTimeoutError::Timeout) if here.is_some() => break,
            Err(chan::RecvTimeoutError::Timeout) => {
                waiting.retain(|&(r, i, resumes)| {
                    let remote = &runtimes[r].workers[i];
                    let held = remote.running_now().is_some() && remote.resumes() == resumes;
                    if held {
                        stuck.push((r, i));
                    }
                    !held
                });
                if waiting.is_empty() {
                    break;
                }
                deadline = Instant::now() + ANSWER_WITHIN;
            }
        }
    }
    // Workers held by one task since the request: that task.
    for (r, i) in stuck {
        if let Some(task) = runtimes[r].workers[i].running_now() {
            out.push(TaskDump {
                state: TaskState::Running,
                runtime: runtimes[r].id,
                worker: Some(i),
                ..task
            });
        }
    }
    // A task that never ran may be seen twice: in the injector, then by
    // the worker that took it from there, or by two workers when one
    // stole it just before answering. Keep its latest view.
    out.sort_by_key(|t| (t.runtime, t.id, t.state == TaskState::NotStarted));
    out.dedup_by_key(|t| (t.runtime, t.id));
    out
}

/// Holds off the steals of one runtime's workers while it lives (and its
/// lease is renewed).
struct StealPause<'a>(&'a Shared, u64);

impl<'a> StealPause<'a> {
    fn new(shared: &'a Arc<Shared>) -> StealPause<'a> {
        // A worker that takes our request (under its lock, after this)
        // and then looks to steal sees the pause.
        StealPause(shared, shared.pause_steals())
    }

    fn renew(&self) {
        self.0.renew_steal_pause(self.1);
    }
}

impl Drop for StealPause<'_> {
    fn drop(&mut self) {
        self.0.resume_steals(self.1);
    }
}

/// [`dump`], formatted like Go's goroutine dump: one block per task, with
/// its backtrace, tasks with the same state, spawn site and backtrace
/// grouped into one block with a count. A backtrace starts at the frame
/// where the task parked or yielded, and keeps the first 100 and last 20
/// frames of a deeper one.
pub fn dump_report() -> String {
    report(&dump())
}

/// Formats `tasks` (see [`dump_report`]).
pub(crate) fn report(tasks: &[TaskDump]) -> String {
    // Group by everything but the id, name and stack figures.
    // (The backtrace is formatted once: that resolves its symbols.)
    let mut groups: Vec<(String, Vec<&TaskDump>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for t in tasks {
        let backtrace = t.backtrace.as_ref().map_or(String::new(), backtrace_text);
        let key = format!("{}|{}|{backtrace}", Describe(&t.state), t.spawned_at);
        match index.get(&key) {
            Some(&g) => groups[g].1.push(t),
            None => {
                index.insert(key, groups.len());
                groups.push((backtrace, vec![t]));
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "growstack: {} tasks", tasks.len());
    for (backtrace, group) in &groups {
        let t = group[0];
        let _ = write!(out, "\ntask #{}", t.id);
        if let Some(name) = &t.name {
            let _ = write!(out, " '{name}'");
        }
        let _ = write!(out, " [{}]", Describe(&t.state));
        if group.len() > 1 {
            let _ = write!(out, " and {} more like it", group.len() - 1);
        }
        let _ = writeln!(out, ":");
        let worker = t.worker.map_or("-".to_string(), |w| w.to_string());
        let _ = writeln!(
            out,
            "  runtime {}, worker {worker}, spawned at {}, stack {} KiB resident, {} segments, {} growths",
            t.runtime,
            t.spawned_at,
            t.stack_resident / 1024,
            t.segments,
            t.growths
        );
        for line in backtrace.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// Frames kept at each end of a longer backtrace in a report.
const REPORT_FRAMES: (usize, usize) = (100, 20);

/// A task's backtrace for a report: without the frames of the capture
/// itself (the runtime's, above where the task parked or yielded), and
/// with the middle of a deep one left out.
fn backtrace_text(bt: &Backtrace) -> String {
    let text = bt.to_string();
    // Frames start with their number: `  12: symbol`, then `at` lines.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        let numbered = line
            .trim_start()
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !numbered => frame.push(line),
            _ => frames.push(vec![line]),
        }
    }
    // The capture's frames end with the worker's `switch_out` (and, for
    // a capture on a segment, the growth's frames come before that).
    let capture = |frame: &Vec<&str>| {
        frame[0].contains("growstack_runtime::task::worker::")
            && (frame[0].contains("switch_out") || frame[0].contains("answer_probe"))
    };
    let skip = frames
        .iter()
        .take(64)
        .rposition(capture)
        .map_or(0, |last| last + 1);
    let frames = &frames[skip..];
    let (head, tail) = REPORT_FRAMES;
    let put = |out: &mut String, frames: &[Vec<&str>]| {
        for line in frames.iter().flatten() {
            out.push_str(line);
            out.push('\n');
        }
    };
    let mut out = String::new();
    if frames.len() > head + tail + 1 {
        put(&mut out, &frames[..head]);
        let left_out = frames.len() - head - tail;
        let _ = writeln!(out, "      ... {left_out} frames left out ...");
        put(&mut out, &frames[frames.len() - tail..]);
    } else {
        put(&mut out, frames);
    }
    out
}

/// A task state in words.
struct Describe<'a>(&'a TaskState);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (on, until) = match self.0 {
            TaskState::Running => return f.write_str("running"),
            TaskState::Ready => return f.write_str("ready"),
            TaskState::NotStarted => return f.write_str("not started"),
            TaskState::Parked { on, until } => (on, until),
        };
        match on {
            ParkedOn::Recv { elem, chan } => write!(f, "chan receive ({elem}, {chan:#x})")?,
            ParkedOn::Send { elem, chan } => write!(f, "chan send ({elem}, {chan:#x})")?,
            ParkedOn::Select { arms } => write!(f, "select ({arms} arms)")?,
            ParkedOn::Join { task } => write!(f, "join of task #{task}")?,
            ParkedOn::Lock { kind, addr } => write!(f, "{kind} ({addr:#x})")?,
            ParkedOn::Sleep => f.write_str("sleep")?,
            ParkedOn::Io { fd, write: true } => write!(f, "I/O write (fd {fd})")?,
            ParkedOn::Io { fd, write: false } => write!(f, "I/O read (fd {fd})")?,
            ParkedOn::Dump => f.write_str("dump")?,
        }
        if let Some(until) = until {
            let left = until.saturating_duration_since(Instant::now());
            write!(f, ", {:.3} s left", left.as_secs_f64())?;
        }
        Ok(())
    }
}

/// The stall report's view of a runtime's progress (`Builder::stall_report`).
pub(crate) struct Progress {
    resumes: u64,
    since: Instant,
    reported: bool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            resumes: 0,
            since: Instant::now(),
            reported: false,
        }
    }

    /// With the workers' resume count now: true once per stall of at
    /// least `after` (the count did not move for that long).
    pub(crate) fn stalled(&mut self, resumes: u64, now: Instant, after: Duration) -> bool {
        if resumes != self.resumes {
            *self = Progress {
                resumes,
                since: now,
                reported: false,
            };
            return false;
        }
        if self.reported || now - self.since < after {
            return false;
        }
        self.reported = true;
        true
    }
}

/// Prints the dump of runtime `id` if it is stalled: a task is running
/// (holding its worker), ready or not started, or else no task waits on a
/// timer, a socket or a blocking job, the only wakes that can come from
/// outside its tasks (as far as the runtime can see: not from plain
/// threads).
pub(crate) fn report_stall(id: u64, after: Duration) {
    let tasks: Vec<TaskDump> = dump().into_iter().filter(|t| t.runtime == id).collect();
    let pending = tasks
        .iter()
        .any(|t| !matches!(t.state, TaskState::Parked { .. }));
    let wakeable = tasks.iter().any(|t| match t.state {
        TaskState::Parked { on, until } => {
            until.is_some()
                || match on {
                    ParkedOn::Io { .. } => true,
                    // A blocking job runs on a thread of its own.
                    ParkedOn::Join { task } => super::blocking::is_job(task),
                    _ => false,
                }
        }
        _ => false,
    });
    if tasks.is_empty() || !pending && wakeable {
        return;
    }
    // Not `eprintln!`: a stuck task may hold std's stderr lock.
    runtime::write_stderr(
        format!(
            "growstack: runtime {id} has resumed no task for {:.1} s (Builder::stall_report); \
             its tasks:\n{}\n",
            after.as_secs_f64(),
            report(&tasks)
        )
        .as_bytes(),
    );
}

/// Dumps of tasks that never ran.
pub(crate) fn unstarted(runtime: u64, tasks: Vec<TaskRef>) -> Vec<TaskDump> {
    tasks
        .iter()
        .map(|task| {
            let info = &task.header().info;
            TaskDump {
                id: info.id,
                name: info.name.as_deref().map(str::to_string),
                state: TaskState::NotStarted,
                spawned_at: info.spawned_at,
                runtime,
                worker: None,
                stack_resident: 0,
                segments: 0,
                growths: 0,
                backtrace: None,
            }
        })
        .collect()
}

/// References to the tasks waiting in `shared`'s injector.
fn lock_injector_tasks(shared: &Arc<Shared>) -> Vec<TaskRef> {
    shared.injected_tasks()
}
