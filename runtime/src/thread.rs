//! A thread's stacks: its native stack's chain, its g0, and which chain is
//! running (the native one, or that of the task the thread runs now).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::stack::{self, Chain, Slot};
use crate::{guard, signal};

pub(crate) struct ThreadStack {
    /// The chain of the thread's native stack.
    native: Chain,
    /// The chain growth works on: `&mut native`, or the running task's.
    running: *mut Chain,
    /// The top of `g0`, where `newstack` and `lessstack` run.
    g0_top: usize,
    /// Owned until the thread exits.
    g0: Option<Slot>,
    /// Our alternate signal stack, if the thread had none.
    altstack: Option<Slot>,
    /// This thread's guard (`guard::cell`): a switch writes it without
    /// looking up the thread-local, a call the compiler does not inline.
    guard: *const AtomicUsize,
    /// This thread's `guard::top_cell`, written with the guard.
    top: *const core::cell::Cell<usize>,
    /// Growth calls made from stacks growstack does not know (another
    /// library's coroutines) that have not returned: a coroutine suspended
    /// in one may be resumed, or unwound, after this state is gone, and its
    /// return passes through g0, which must then still be there.
    pub(crate) foreign_calls: usize,
}

thread_local! {
    static THREAD: UnsafeCell<Option<ThreadStack>> = const { UnsafeCell::new(None) };
}

/// This thread's stack state, set up on first use. `None` once the thread
/// is exiting and its state is gone; calls then stay on the stack they are on.
pub(crate) fn current() -> Option<*mut ThreadStack> {
    THREAD
        .try_with(|cell| {
            // SAFETY: only this thread reaches its THREAD, and no reference
            // into it outlives a runtime call: the growth protocol works
            // through the raw pointer returned here, one step at a time.
            let state = unsafe { &mut *cell.get() };
            if state.is_none() {
                let new = ThreadStack::new().unwrap_or_else(|err| {
                    panic!("growstack: cannot set up the stacks of this thread: {err}")
                });
                let t = state.insert(new);
                t.running = &raw mut t.native;
                t.native.set_guard();
            }
            let t = state.as_mut().expect("set above");
            t as *mut ThreadStack
        })
        .ok()
}

/// Whether the caller runs in a context growstack does not know: on a
/// stack that is not the running chain's current one (another library's
/// coroutine). False on a thread whose stack state is gone.
pub(crate) fn in_foreign_context() -> bool {
    current().is_some_and(|t| {
        // SAFETY: this thread's live state, and its running chain (valid
        // while it runs); read only.
        !unsafe { (*(*t).running()).runs_on(crate::arch::stack_pointer()) }
    })
}

impl ThreadStack {
    fn new() -> std::io::Result<ThreadStack> {
        let (lo, hi) = native_bounds();
        signal::install();
        signal::remember_thread_name();
        let g0 = stack::arena::alloc(stack::G0_SIZE)?;
        Ok(ThreadStack {
            native: Chain::new(lo, hi, None, false),
            running: core::ptr::null_mut(),
            g0_top: g0.top(),
            g0: Some(g0),
            altstack: signal::ensure_altstack()?,
            guard: guard::cell(),
            top: guard::top_cell(),
            foreign_calls: 0,
        })
    }

    /// The 16-byte aligned top of g0.
    pub(crate) fn g0_top(&self) -> usize {
        self.g0_top
    }

    /// The chain of the context running on this thread now.
    pub(crate) fn running(&self) -> *mut Chain {
        self.running
    }

    /// Makes `chain` (a task's, owned by the caller) the running one and
    /// its limit the guard, until [`ThreadStack::run_native`] or the next
    /// `run_chain`.
    ///
    /// # Safety
    ///
    /// `chain` must stay valid and be used by nothing else until then; the
    /// caller switches to the stack it describes before anything checks
    /// the guard.
    pub(crate) unsafe fn run_chain(&mut self, chain: *mut Chain) {
        self.running = chain;
        // SAFETY: valid by the caller's contract.
        let (guard, top) = unsafe { ((*chain).guard(), (*chain).running_stack().1) };
        self.set_guard(guard, top);
    }

    /// Makes the native chain the running one again.
    pub(crate) fn run_native(&mut self) {
        self.running = &raw mut self.native;
        self.set_guard(self.native.guard(), self.native.running_stack().1);
    }

    fn set_guard(&self, value: usize, top: usize) {
        // SAFETY: `guard` and `top` are this thread's, which live as long
        // as the thread, and this state is used on this thread only.
        unsafe {
            (*self.guard).store(value, Ordering::Relaxed);
            (*self.top).set(top);
        }
    }

    /// The running context's limit (see `Chain`).
    pub(crate) fn limit(&self) -> usize {
        // SAFETY: `running` is the native chain or a task's chain that the
        // worker keeps valid while it runs (run_chain's contract).
        unsafe { (*self.running).limit() }
    }
}

impl Drop for ThreadStack {
    /// Runs among the thread's TLS destructors: when its main function
    /// returned, but also inside `std::process::exit` (glibc runs the
    /// calling thread's TLS destructors there), which may be called from
    /// deep in a recursion, on a segment, or from a task. So it never
    /// gives back a stack that still holds frames: only the native chain's
    /// cached segments are released; the segments in use, and g0 while
    /// any are (or while a coroutine of another library is suspended in a
    /// growth call, which returns through g0), are leaked (the thread is
    /// exiting). A task's stacks are its worker's, not the thread's.
    fn drop(&mut self) {
        // Later checks on this thread (other thread-locals' destructors)
        // pass and stay on the stack they run on.
        guard::set(0);
        let has_frames_on_segments = self.native.depth() > 0;
        self.native.drop_cached();
        self.native.leak();
        if let Some(slot) = self.altstack.take() {
            signal::drop_altstack(slot);
        }
        if let Some(slot) = self.g0.take()
            && !has_frames_on_segments
            && self.foreign_calls == 0
        {
            stack::arena::free(slot);
        }
    }
}

/// `[lo, hi)` of the calling thread's native stack.
fn native_bounds() -> (usize, usize) {
    // SAFETY: pthread_getattr_np fills `attr`, which we read with
    // pthread_attr_getstack and destroy exactly once; all pointers are to
    // locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        assert_eq!(
            libc::pthread_getattr_np(libc::pthread_self(), &mut attr),
            0,
            "growstack: pthread_getattr_np failed"
        );
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size: libc::size_t = 0;
        libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (addr as usize, addr as usize + size)
    }
}
