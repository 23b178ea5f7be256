//! The growth protocol: morestack, newstack, lessstack.
//!
//! An annotated function whose check fails calls [`morestack`] with its
//! frame descriptor and a closure that calls the function again. The call
//! then goes (see `arch` for the switches):
//!
//! 1. `morestack` (generic, on the caller's stack) keeps the closure and
//!    a slot for its outcome in its own frame and enters the trampoline;
//! 2. the trampoline switches to g0 and calls [`newstack`], which picks the
//!    stack to continue on (`Chain::grow`): right below the caller if
//!    the check failed only because the guard was poisoned, otherwise the
//!    running context's (thread's or task's) next segment, cached or new;
//! 3. the closure runs there under `catch_unwind`;
//! 4. the trampoline switches to g0 and calls [`lessstack`], which makes the
//!    caller's stack the running one again; the segment stays cached;
//! 5. back on the caller's stack, `morestack` returns the value or resumes
//!    the panic with its payload.
//!
//! A refusal (the thread would exceed [`set_max_stack`], or no memory) is
//! decided on g0 but raised as an ordinary panic on the caller's stack.

use core::any::Any;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::arch::{self, SwitchRecord};
use crate::frame::FrameDesc;
use crate::guard;
use crate::stack::{Chain, Need, Saved, Slot, arena, segment_for};
use crate::thread::{self, ThreadStack};

/// Go's default maximum stack (runtime/proc.go: 1 GB on 64-bit systems).
const DEFAULT_MAX_STACK: usize = 1 << 30;

static MAX_STACK: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_STACK);

/// Whether the program called [`set_max_stack`]: growths through the
/// stacker compat crate are bounded only then (stacker has no limit, and
/// recursions it allows need more than the default: `recursive`'s own test
/// suite takes 3.3 GB of stack in a debug build).
static MAX_STACK_SET: AtomicBool = AtomicBool::new(false);

/// Sets the process-wide limit on the stack of one thread: its native stack
/// plus all the segments it uses at once. The default is 1 GiB, as in Go.
///
/// The limit counts whole segments, and each segment is twice the size of
/// the one before (1, 2, 4, .. MiB), so the deepest recursion that fits
/// uses between half the limit and all of it. With the default, on the
/// main thread (8 MiB native stack), segments of up to 256 MiB fit (511
/// MiB in all) and the next one, 512 MiB, would pass 1 GiB: about 519 MiB
/// of stack is the real ceiling. A program that needs more raises the
/// limit; address space is reserved, not committed, so a high limit costs
/// nothing until it is used.
///
/// A call that would grow a thread's stack past the limit panics, on the
/// stack it was called on, with a message that contains
/// `exceeds <limit>-byte limit`. The panic is an ordinary one:
/// `catch_unwind` catches it and destructors run. If one of those
/// destructors needs to grow past the limit again (the rest of a deep drop
/// chain), the process aborts with a message, as Rust does when a
/// destructor panics during unwinding.
///
/// ```
/// # use growstack_runtime as growstack;
/// growstack::set_max_stack(4 << 30); // allow 4 GiB per thread
/// assert_eq!(growstack::max_stack(), 4 << 30);
/// # growstack::set_max_stack(1 << 30);
/// ```
pub fn set_max_stack(bytes: usize) {
    MAX_STACK.store(bytes, Relaxed);
    MAX_STACK_SET.store(true, Relaxed);
}

/// The limit on a growth through the stacker compat crate on a thread:
/// [`max_stack`] once the program has set one, else none (as stacker).
pub(crate) fn stacker_max_stack() -> usize {
    if MAX_STACK_SET.load(Relaxed) {
        max_stack()
    } else {
        usize::MAX
    }
}

/// The limit set by [`set_max_stack`].
pub fn max_stack() -> usize {
    MAX_STACK.load(Relaxed)
}

/// Whether stress mode is on: `GROWSTACK_STRESS=1` in the environment when
/// the first thread set up its stacks. Every check then fails, so every
/// annotated call takes the whole morestack path.
pub(crate) fn stress() -> bool {
    /// On a cache line of its own: read at every task's first run, it must
    /// not share a line with counters that other cores write.
    #[repr(align(128))]
    struct Flag(AtomicU8);
    // 0: not read yet, 1: off, 2: on.
    static STRESS: Flag = Flag(AtomicU8::new(0));
    match STRESS.0.load(Relaxed) {
        0 => {
            let on = std::env::var_os("GROWSTACK_STRESS").is_some_and(|v| v == "1");
            STRESS.0.store(if on { 2 } else { 1 }, Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Why a call could not continue on another stack.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The thread's stack would exceed [`max_stack`].
    Limit { total: usize, limit: usize },
    /// The arena could not provide a segment.
    Memory(std::io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = crate::task::describe_current();
        match self {
            Refusal::Limit { total, limit } => write!(
                f,
                "growstack: the stack of {who} would grow to {total} bytes, which \
                 exceeds {limit}-byte limit (see growstack::set_max_stack, or \
                 Builder::max_stack for tasks)"
            ),
            Refusal::Memory(err) => {
                write!(
                    f,
                    "growstack: no memory for a stack segment of {who}: {err}"
                )
            }
        }
    }
}

/// The closure of a re-call and, after it ran, its outcome.
enum Call<F, R> {
    Pending(F),
    Returned(R),
    Panicked(Box<dyn Any + Send>),
    Running,
}

/// Everything one growth needs, in the frame of [`run_elsewhere`].
/// `#[repr(C)]` with the switch record first: the trampoline hands a pointer
/// to it to `newstack` and `lessstack`, which see the whole record.
#[repr(C)]
struct Growth {
    switch: SwitchRecord,
    thread: *mut ThreadStack,
    /// The chain that grew, set by newstack: the one lessstack restores.
    chain: *mut Chain,
    site: Site,
    kind: Entry,
    saved: Saved,
    /// A slot of the call's own, for an [`Entry::Segment`] call from a
    /// stack growstack does not know; lessstack frees it.
    own: Option<Slot>,
    refusal: Option<Refusal>,
}

/// Who grows: an annotated function (or [`maybe_grow`]), with its static
/// descriptor, or a call of the stacker compat API, whose descriptor is
/// made for its location at its first growth (on g0, which has room).
#[derive(Clone, Copy)]
pub(crate) enum Site {
    Desc(&'static FrameDesc),
    Call {
        name: &'static str,
        at: &'static core::panic::Location<'static>,
    },
}

impl Site {
    fn name(self) -> &'static str {
        match self {
            Site::Desc(desc) => desc.name,
            Site::Call { name, .. } => name,
        }
    }

    /// Bytes the body needs beyond the red zone.
    fn frame(self, kind: Entry) -> usize {
        match (self, kind) {
            (_, Entry::Segment { room }) => room,
            (Site::Desc(desc), _) => desc.frame,
            (Site::Call { .. }, _) => 0,
        }
    }

    /// The descriptor growths are counted on. Allocates on first use of a
    /// call site: call on g0.
    fn desc(self) -> &'static FrameDesc {
        match self {
            Site::Desc(desc) => desc,
            Site::Call { name, at } => crate::frame::site(name, at),
        }
    }
}

/// The slow path of an annotated function: runs `f`, which calls the
/// function again, on a stack with room, and returns its value or resumes
/// its panic here.
///
/// `#[track_caller]`: a refusal's panic points at the annotated function.
#[cold]
#[inline(never)]
#[track_caller]
pub fn morestack<R, F: FnOnce() -> R>(desc: &'static FrameDesc, f: F) -> R {
    run_with_room(Site::Desc(desc), Entry::Recall, f)
}

/// Like [`morestack`] for a closure that is not a re-call (a `Drop` body,
/// [`maybe_grow`]): it has no check of its own to let through.
#[cold]
#[inline(never)]
#[track_caller]
pub fn morestack_body<R, F: FnOnce() -> R>(desc: &'static FrameDesc, f: F) -> R {
    run_with_room(Site::Desc(desc), Entry::Body, f)
}

/// What the closure given to the runtime is, and the stack it needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// It calls the annotated function again, whose first act is its check.
    Recall,
    /// Anything else, which needs the red zone (and its frame) from here.
    Body,
    /// Anything else, which must run on a segment with `room` bytes
    /// beyond the red zone, even if this stack has them (stacker's `grow`).
    Segment { room: usize },
}

#[inline(always)]
#[track_caller]
pub(crate) fn run_with_room<R, F: FnOnce() -> R>(site: Site, entry: Entry, f: F) -> R {
    if !matches!(entry, Entry::Segment { .. })
        && crate::task::preempt_point()
        && guard::has_room_for(site.frame(entry))
    {
        // The check failed because the monitor preempted this task, which
        // has now yielded and been resumed: there was room all along.
        return f();
    }
    let mut call = Call::<F, R>::Pending(f);
    let data = (&raw mut call).cast::<u8>();
    match run_elsewhere(site, entry, data, trampoline::<F, R>) {
        Ok(()) => {}
        Err(None) => {
            // The thread is exiting and its stacks are gone: stay here.
            let Call::Pending(f) = call else {
                unreachable!()
            };
            return f();
        }
        Err(Some(refusal)) => {
            drop(call);
            if std::thread::panicking() {
                refused_while_unwinding(&refusal, site.name());
            }
            panic!("{refusal} (growing for a call to `{}`)", site.name());
        }
    }
    match call {
        Call::Returned(value) => value,
        Call::Panicked(payload) => resume_unwind(payload),
        Call::Pending(_) | Call::Running => unreachable!("growstack: re-call did not run"),
    }
}

/// Runs `f` on a segment with `room` bytes, or returns `None` if the
/// growth is refused (the stack limit, memory) or the thread's stacks are
/// gone: for the runtime's own calls, which must not raise a panic the
/// program's hook would see (`task::dump`'s capture in a task's red zone).
pub(crate) fn try_on_segment<R, F: FnOnce() -> R>(site: Site, room: usize, f: F) -> Option<R> {
    let mut call = Call::<F, R>::Pending(f);
    let data = (&raw mut call).cast::<u8>();
    run_elsewhere(site, Entry::Segment { room }, data, trampoline::<F, R>).ok()?;
    match call {
        Call::Returned(value) => Some(value),
        Call::Panicked(payload) => resume_unwind(payload),
        Call::Pending(_) | Call::Running => unreachable!("growstack: re-call did not run"),
    }
}

/// A growth refused while the thread unwinds from an earlier panic: a
/// destructor needs more stack than the limit allows. Panicking again would
/// be caught at the next segment boundary and re-raised there, so a deep
/// drop chain (a `#[growable] impl Drop` whose check failed before its body
/// could take the rest of the chain) would panic over and over, std printing
/// a full backtrace for each nested panic. Like a panic that escapes a
/// destructor during unwinding, this aborts, at once and with a message.
#[cold]
fn refused_while_unwinding(refusal: &Refusal, name: &str) -> ! {
    eprintln!(
        "{refusal} (growing for a call to `{name}`)\n\
         growstack: the stack limit was reached again while unwinding from an earlier panic \
         (a destructor needed more stack); aborting"
    );
    std::process::abort();
}

/// Runs on the chosen stack; never unwinds.
///
/// # Safety
///
/// `data` points to a `Call::<F, R>::Pending` that nothing else uses until
/// this returns.
unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut u8) {
    // SAFETY: by this function's contract.
    let call = unsafe { &mut *data.cast::<Call<F, R>>() };
    let Call::Pending(f) = core::mem::replace(call, Call::Running) else {
        // Unreachable by the contract; aborts (extern "C" cannot unwind).
        panic!("growstack: trampoline entered twice");
    };
    *call = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Call::Returned(value),
        Err(payload) => Call::Panicked(payload),
    };
}

/// The part of [`morestack`] that does not depend on the closure's type.
/// `Err(None)` when this thread has no stack state (it is exiting).
#[inline(never)]
fn run_elsewhere(
    site: Site,
    kind: Entry,
    data: *mut u8,
    entry: unsafe extern "C" fn(*mut u8),
) -> Result<(), Option<Refusal>> {
    let thread = thread::current().ok_or(None)?;
    // SAFETY: `thread` is this thread's live state (thread::current); read only.
    let g0_top = unsafe { (*thread).g0_top() };
    let mut growth = Growth {
        switch: SwitchRecord {
            saved_sp: 0,
            g0_top,
            data,
            entry,
        },
        thread,
        chain: core::ptr::null_mut(),
        site,
        kind,
        saved: Saved::default(),
        own: None,
        refusal: None,
    };
    // SAFETY: g0_top is the top of this thread's g0, which is idle: it is
    // only used by newstack and lessstack, which never suspend, so the
    // trampolines of one thread never overlap on it, even when several
    // tasks of a worker are suspended mid-growth on their own segments
    // (user code never runs on g0). newstack returns 0 or the top of free
    // stack (Chain::grow). `entry` is `trampoline`, which
    // never unwinds, for the `Call` that `data` points to.
    unsafe { arch::morestack((&raw mut growth).cast::<SwitchRecord>()) };
    growth.refusal.map_or(Ok(()), |r| Err(Some(r)))
}

/// Step 2, on g0: choose the stack, or refuse with 0.
///
/// # Safety
///
/// `rec` is the `switch` field of a live [`Growth`], passed by the trampoline.
pub(crate) unsafe extern "C" fn newstack(rec: *mut SwitchRecord) -> usize {
    // SAFETY: `rec` points to a `Growth` (run_elsewhere casts it from one),
    // whose owner is suspended in the trampoline until we return; its
    // `thread` is this thread's state and no other reference to it is live.
    let growth = unsafe { &mut *rec.cast::<Growth>() };
    // SAFETY: as above; the running chain is this context's, and the
    // thread that runs the context is the only one that touches it.
    let chain = unsafe { &mut *(*growth.thread).running() };
    let sp = growth.switch.saved_sp;
    let frame = growth.site.frame(growth.kind);
    if !chain.runs_on(sp) && matches!(growth.kind, Entry::Segment { .. }) {
        // stacker's `grow` from a stack growstack does not know: like
        // stacker, give the call a stack of its own, outside every chain,
        // freed when it returns (the chain's segments must not be used:
        // see below). Bounded by the limit on its own.
        let size = segment_for(frame).max(crate::stack::MIN_SEGMENT);
        let limit = stacker_max_stack();
        if size > limit {
            growth.refusal = Some(Refusal::Limit { total: size, limit });
            return 0;
        }
        return match arena::alloc(size) {
            Ok(slot) => {
                let top = slot.top();
                growth.own = Some(slot);
                // SAFETY: this thread's live state (as above).
                unsafe { (*growth.thread).foreign_calls += 1 };
                growth.site.desc().count_growth(size);
                crate::stats::GROWTHS.fetch_add(1, Relaxed);
                top
            }
            Err(err) => {
                growth.refusal = Some(Refusal::Memory(err));
                0
            }
        };
    }
    if !chain.runs_on(sp) {
        // A context growstack does not know: another coroutine library's
        // stack on this thread (or a signal handler's). It must not grow
        // onto this chain's segments, nor save and restore the chain's
        // state around its call: its calls and returns do not nest with
        // the chain's (it may be resumed later, at another depth), and a
        // live segment could be taken for a cached one. It carries on
        // right below the caller, on its own stack, as if it had no growth
        // check; `lessstack` then only re-sets the guard.
        growth.chain = core::ptr::null_mut();
        // SAFETY: this thread's live state (as above).
        unsafe { (*growth.thread).foreign_calls += 1 };
        let top = (sp - 16) & !15;
        // The re-call's own check must let it through, once: if that
        // check would pass anyway, no bypass is left behind for a later,
        // unrelated check to take.
        let passes = top.checked_sub(frame).is_some_and(|low| low > guard::get());
        if growth.kind == Entry::Recall && !passes {
            guard::set_bypass();
        }
        return top;
    }
    growth.chain = chain;
    growth.saved = chain.save();
    let need = match growth.kind {
        Entry::Segment { .. } => Need::Segment,
        Entry::Recall | Entry::Body => Need::Room,
    };
    match chain.grow(sp, growth.site.desc(), frame, need) {
        Ok(top) => {
            if stress() && growth.kind == Entry::Recall {
                // The guard stays poisoned: let the re-call's own check through.
                guard::set_bypass();
            }
            top
        }
        Err(refusal) => {
            growth.refusal = Some(refusal);
            0
        }
    }
}

/// Step 4, on g0: the caller's stack is the running one again.
///
/// # Safety
///
/// As for [`newstack`], after it returned a stack.
pub(crate) unsafe extern "C" fn lessstack(rec: *mut SwitchRecord) {
    // SAFETY: as in newstack; the re-call has returned, so nothing else
    // refers to the chain. A task runs on one thread only, so the chain set
    // by newstack is still running here, even if the task was suspended
    // in between.
    let growth = unsafe { &mut *rec.cast::<Growth>() };
    if let Some(slot) = growth.own.take() {
        // The call has returned: nothing lives on its own slot any more.
        // Its pages go back now, as stacker unmaps its stacks: no chain
        // holds the slot, so no shrink would find them.
        slot.release_below(slot.top());
        arena::free(slot);
    }
    if growth.chain.is_null() {
        // A foreign context's call (newstack): nothing of the chain was
        // saved; the guard is the one of whatever chain runs now. The
        // coroutine may return after this thread's state is gone (dropped
        // in a thread-local's destructor): look it up again rather than
        // trust `growth.thread`. (g0 is still there: ThreadStack::drop
        // keeps it while `foreign_calls` is not 0.)
        if let Some(t) = thread::current() {
            // SAFETY: this thread's live state; its running chain is valid
            // while it runs (run_chain's contract), and nothing else uses
            // it during this call.
            unsafe {
                (*t).foreign_calls = (*t).foreign_calls.saturating_sub(1);
                (*(*t).running()).set_guard();
            }
        }
        return;
    }
    // SAFETY: as above.
    unsafe { (*growth.chain).restore(growth.saved) };
}

/// Runs `f` with the same guarantee as a `#[growable]` function: if the
/// stack has less than the red zone left, `f` runs on a segment.
///
/// For recursion written with closures, and for code you cannot annotate
/// that calls back into yours at every level (a visitor, a fold with a
/// callback): each level that passes through `maybe_grow` is checked. It
/// cannot help code that recurses on its own inside another crate (a
/// serde `Deserializer` descending into nested values never calls back
/// between levels): only a check in that crate's recursion can.
///
/// ```
/// # use growstack_runtime as growstack;
/// enum Value {
///     List(Vec<Value>),
///     Leaf,
/// }
///
/// // A recursive closure-based walk: each level goes through maybe_grow.
/// fn depth(v: &Value) -> usize {
///     growstack::maybe_grow(|| match v {
///         Value::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
///         Value::Leaf => 0,
///     })
/// }
///
/// let mut v = Value::Leaf;
/// for _ in 0..100_000 {
///     v = Value::List(vec![v]);
/// }
/// assert_eq!(depth(&v), 100_000);
/// // Value's drop glue recurses too: take it apart in a loop.
/// while let Value::List(mut items) = v {
///     v = items.pop().unwrap();
/// }
/// ```
#[inline]
#[track_caller]
pub fn maybe_grow<R>(f: impl FnOnce() -> R) -> R {
    static DESC: FrameDesc = FrameDesc::new("maybe_grow", module_path!(), file!(), line!(), 0);
    if guard::has_room() {
        f()
    } else {
        morestack_body(&DESC, f)
    }
}

/// Bytes of stack left below the stack pointer before the current guard,
/// on whatever stack (native or segment) the caller runs. 0 once past it.
///
/// ```
/// # use growstack_runtime as growstack;
/// assert!(growstack::remaining_stack() > 0);
/// ```
pub fn remaining_stack() -> usize {
    match thread::current() {
        // SAFETY: this thread's live state; read only.
        Some(t) => arch::stack_pointer().saturating_sub(unsafe { (*t).limit() }),
        None => 0,
    }
}

/// Calls `f` in a frame of its own, so that a body with large locals gets
/// its frame only after the check that made room for it.
#[inline(never)]
pub fn out_of_line<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Returns the calling thread's cached segments to the arena (benchmarks
/// use it to measure growth onto a segment that is not cached).
pub fn drop_cached_segments() {
    if let Some(t) = thread::current() {
        // SAFETY: this thread's live state and the running chain; no other
        // reference to it is live during this call, and the segments in
        // use are kept.
        unsafe { (*(*t).running()).drop_cached() };
    }
}
