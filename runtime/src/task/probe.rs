//! The bare context switch, measured without a scheduler: the benchmark
//! against corosensei's `resume`/`suspend` calls [`switch_round_trips`].

use crate::arch;
use crate::stack::{TASK_STACK, arena};

/// The two stack pointers of a caller and a context that bounce control.
struct Pair {
    caller_sp: usize,
    context_sp: usize,
}

/// The context's body: suspend back to the caller, forever. Left suspended
/// in this loop, with nothing to drop, when the round trips are done.
///
/// # Safety
///
/// `pair` is the address of a live `Pair` whose `caller_sp` was saved by
/// the resume that entered this context.
unsafe extern "C" fn bounce(pair: usize) -> ! {
    let pair = pair as *mut Pair;
    loop {
        // SAFETY: by the contract, `pair` stays live while the caller
        // resumes us with the link `caller_sp`.
        unsafe { arch::suspend(&raw mut (*pair).context_sp, &raw mut (*pair).caller_sp) };
    }
}

/// Makes `n` round trips (two switches each) between the caller and a
/// context on a fresh task slot.
pub fn switch_round_trips(n: u64) {
    let slot = arena::alloc(TASK_STACK).expect("growstack: no memory for a probe stack");
    let mut pair = Pair {
        caller_sp: 0,
        context_sp: 0,
    };
    // Only reached through this pointer from here on, by both contexts.
    let p = &raw mut pair;
    // SAFETY: the slot is ours and unused; `p` outlives every switch into
    // the context, all of which happen below.
    unsafe { (*p).context_sp = arch::init_stack(slot.top(), bounce, p as usize) };
    for _ in 0..n {
        // SAFETY: `context_sp` was built by init_stack or saved by the
        // context's last suspend; `p` is live and the link is always
        // `caller_sp`.
        unsafe { arch::resume((*p).context_sp, &raw mut (*p).caller_sp) };
    }
    // The context is suspended in `bounce`'s loop with nothing to drop; its
    // stack is not referenced any more.
    arena::free(slot);
}
