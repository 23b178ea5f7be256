//! A thread exits while another library's coroutines, kept in a
//! thread-local, are suspended inside `stacker::grow`. Thread-locals are
//! destroyed in reverse order of registration: growstack's own state (made
//! at the thread's first growth, inside a coroutine) goes first, then the
//! coroutines, whose drops unwind them through the growth call, which
//! returns through the thread's g0 and must find it still there (it once
//! ran on a freed g0, and through the dropped state).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use corosensei::{Coroutine, Yielder};

static UNWOUND: AtomicU32 = AtomicU32::new(0);

struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        UNWOUND.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static COROUTINES: RefCell<Vec<Coroutine<(), (), ()>>> = const { RefCell::new(Vec::new()) };
}

#[test]
fn coroutines_suspended_in_grow_are_unwound_after_the_threads_state_is_gone() {
    std::thread::spawn(|| {
        COROUTINES.with(|_| {}); // registered before growstack's: destroyed after it
        for _ in 0..4 {
            let mut co = Coroutine::new(|y: &Yielder<(), ()>, ()| {
                let _outer = Counted;
                stacker::grow(64 << 10, || {
                    let _inner = Counted;
                    y.suspend(());
                });
            });
            co.resume(());
            COROUTINES.with(|c| c.borrow_mut().push(co));
        }
    })
    .join()
    .unwrap();
    // Both values of each coroutine, one on the grown stack, dropped by the
    // unwinding that passed back through the growth call.
    assert_eq!(UNWOUND.load(Ordering::SeqCst), 8);
}
