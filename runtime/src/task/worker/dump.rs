//! A worker's side of `task::dump`: it describes its own tasks at its
//! scheduler, and resumes each suspended one briefly to capture its
//! backtrace on its own stack.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use std::backtrace::Backtrace;

use super::{AbortOnUnwind, Worker};
use crate::arch;
use crate::frame::FrameDesc;
use crate::grow::{Site, try_on_segment};
use crate::guard;
use crate::task::dump::{TaskDump, TaskState, unstarted};
use crate::task::parked::Meta;
use crate::task::raw::{Header, PARKED, TaskRef};

/// Stack a backtrace capture needs (it measured 5-6 KiB), with margin.
const CAPTURE_ROOM: usize = 32 << 10;

/// What the scheduler asks of a task it resumes for a backtrace.
pub(super) struct Probe {
    /// Where the task saves its stack pointer when it suspends again.
    save: *mut usize,
    /// The captured backtrace.
    backtrace: Option<Backtrace>,
}

impl Worker {
    /// Every task of this worker (the started ones, and its own that never
    /// ran); `caller`, the task that called `dump`, is reported running.
    /// Runs on the worker's scheduler: none of its tasks runs.
    pub(crate) fn dump_tasks(&self, caller: Option<(u64, u64)>, runtime: u64) -> Vec<TaskDump> {
        let started: Vec<NonNull<Header>> = self.tasks.borrow().clone();
        let mut out = Vec::with_capacity(started.len());
        for task in started {
            // SAFETY: a task in the list is alive (it has not finished) and
            // suspended (we run the scheduler): its context and record are
            // ours to read, and its record points into a live frame.
            out.push(unsafe { self.dump_task(task, caller, runtime) });
        }
        let mut never_ran: Vec<TaskRef> = self.new.borrow().clone();
        never_ran.extend(self.remote().fresh_tasks());
        out.extend(unstarted(runtime, never_ran));
        out
    }

    /// # Safety
    ///
    /// `task` is in this worker's list, and we run its scheduler.
    unsafe fn dump_task(
        &self,
        task: NonNull<Header>,
        caller: Option<(u64, u64)>,
        runtime: u64,
    ) -> TaskDump {
        // A compacted task gets its bytes back to be read and captured,
        // and is compacted again after.
        // SAFETY: by the contract: listed here, and not running.
        let compacted = unsafe { self.restore_for_dump(task) };
        // SAFETY: by the contract, and restored.
        let (h, meta) = unsafe { (task.as_ref(), Meta::of(task)) };
        let on = meta.on.get();
        let state = if Some((runtime, h.info.id)) == caller {
            TaskState::Running
        } else if h.state.load(Ordering::Acquire) == PARKED && !on.is_null() {
            TaskState::Parked {
                // SAFETY: set by the park it is in, to a value in that
                // park's frame, which holds still while it is suspended.
                on: unsafe { *on },
                until: meta.until.get(),
            }
        } else {
            TaskState::Ready
        };
        // SAFETY: the context of a suspended task is its worker's.
        let ctx = unsafe { &*h.ctx.get() };
        let (stack_resident, segments, growths) =
            ctx.chain.as_ref().map_or((0, 0, 0), |chain| chain.usage());
        let dump = TaskDump {
            id: h.info.id,
            name: h.info.name.as_deref().map(str::to_string),
            state,
            spawned_at: h.info.spawned_at,
            runtime,
            worker: Some(self.index),
            stack_resident,
            segments,
            growths: u64::from(growths),
            // SAFETY: forwarded.
            backtrace: unsafe { self.backtrace_of(task) },
        };
        if compacted {
            // SAFETY: as above; it is suspended again.
            unsafe { self.compact_after_dump(task) };
        }
        dump
    }

    /// Resumes the suspended `task` in its `switch_out`, where it captures
    /// its backtrace and suspends again (`answer_probe`).
    ///
    /// # Safety
    ///
    /// As for `dump_task`.
    unsafe fn backtrace_of(&self, task: NonNull<Header>) -> Option<Backtrace> {
        // SAFETY: the context of a suspended task is its worker's.
        let ctx = unsafe { &mut *task.as_ref().ctx.get() };
        let chain: *mut crate::stack::Chain = ctx.chain.as_mut()?;
        let mut probe = Probe {
            save: &raw mut ctx.sp,
            backtrace: None,
        };
        self.probe.set(&raw mut probe);
        // SAFETY: `thread` is this thread's stack state; the task's chain
        // stays valid and untouched by anything else until it suspends
        // again (its stack may grow while it captures).
        unsafe { (*self.thread).run_chain(chain) };
        // SAFETY: `sp` was saved by the task's last switch out (it is
        // suspended); its stacks stay valid; it suspends to this link
        // (`answer_probe`) without running any of its own code.
        unsafe { arch::resume(ctx.sp, self.sched_sp.as_ptr()) };
        // SAFETY: as above.
        unsafe { (*self.thread).run_native() };
        self.probe.set(core::ptr::null_mut());
        probe.backtrace
    }

    /// Called by a task resumed in `switch_out`: if the scheduler resumed
    /// it only for a backtrace, captures it and suspends again, until it is
    /// resumed for real.
    #[inline]
    pub(super) fn answer_probes(&self) {
        while !self.probe.get().is_null() {
            self.answer_probe();
        }
    }

    #[cold]
    #[inline(never)]
    fn answer_probe(&self) {
        let abort = AbortOnUnwind;
        let probe = self.probe.replace(core::ptr::null_mut());
        // The backtrace is captured here, on the task's stack, inside
        // the runtime: the task's own code does not run. Above the stack's
        // limit the red zone below it is room enough; a task may have
        // parked inside the red zone itself (unannotated code runs there),
        // and then the capture runs on a segment.
        let backtrace = if guard::has_room() {
            Some(Backtrace::force_capture())
        } else {
            static DESC: FrameDesc =
                FrameDesc::new("growstack::dump", module_path!(), file!(), line!(), 0);
            // No backtrace if the segment is refused (the task's
            // `max_stack`). A segment, not a growth that could take a
            // pending preemption: nothing may switch here.
            try_on_segment(Site::Desc(&DESC), CAPTURE_ROOM, Backtrace::force_capture)
        };
        // SAFETY: the scheduler's probe lives in its frame until we suspend
        // back to it, below.
        let save = unsafe {
            (*probe).backtrace = backtrace;
            (*probe).save
        };
        // SAFETY: we run on the task's stack, resumed by `backtrace_of`
        // with this link; the task's cell stays alive (it is in the
        // worker's list), so `save` does.
        unsafe { arch::suspend(save, self.sched_sp.as_ptr()) };
        core::mem::forget(abort);
    }
}
