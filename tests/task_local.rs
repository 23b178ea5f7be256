//! `task_local!`: values private to each task, across blocking calls and
//! interleavings with the other tasks of the same worker.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::CountDrop;

mod common;

growstack::task_local! {
    static ID: u64;
    static OWNED: CountDrop;
}

#[test]
fn tasks_of_one_worker_interleaving_at_every_yield_each_see_their_own_value() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    let hs: Vec<_> = (0..8u64)
        .map(|id| {
            rt.spawn(move || {
                ID.scope(id, || {
                    let mut seen = Vec::new();
                    for round in 0..50u64 {
                        growstack::yield_now();
                        // An inner scope hides the outer one, then ends.
                        let inner = ID.scope(id * 1000 + round, || ID.get());
                        assert_eq!(inner, id * 1000 + round);
                        seen.push(ID.get());
                    }
                    seen
                })
            })
        })
        .collect();
    for (id, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), vec![id as u64; 50]);
    }
}

#[test]
fn a_scope_drops_its_value_once_when_it_ends_or_unwinds_and_is_gone_after() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(move || {
        OWNED.scope(CountDrop(d.clone()), || {
            growstack::yield_now();
            assert!(OWNED.try_with(|_| ()).is_ok());
        });
        assert_eq!(d.load(Ordering::SeqCst), 1);
        assert!(OWNED.try_with(|_| ()).is_err());
        let r = catch_unwind(AssertUnwindSafe(|| {
            OWNED.scope(CountDrop(d.clone()), || panic!("inside a scope"))
        }));
        assert!(r.is_err());
        assert_eq!(d.load(Ordering::SeqCst), 2);
        assert!(OWNED.try_with(|_| ()).is_err());
    });
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn a_plain_thread_has_scopes_of_its_own_and_tasks_do_not_see_them() {
    let rt = growstack::Runtime::builder().workers(1).build().unwrap();
    ID.scope(7, || {
        assert_eq!(ID.get(), 7);
        let in_task = rt.block_on(|| ID.try_with(|v| *v));
        assert!(in_task.is_err());
        assert_eq!(ID.get(), 7);
    });
    let msg = catch_unwind(|| ID.get()).unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("task-local value not set"), "{msg}");
}

mod tls_teardown {
    // A thread-local destructor that ran after the thread's task-local
    // list was destroyed, and called `try_with`, panicked (and a panic in a
    // TLS destructor aborts) instead of getting `Err`. Found by review.

    use super::common;

    growstack::task_local! {
        static K: u64;
    }

    struct AtExit;

    impl Drop for AtExit {
        fn drop(&mut self) {
            // Expected: Err (no scope), not a panic.
            assert!(K.try_with(|v| *v).is_err());
        }
    }

    thread_local! {
        static X: AtExit = const { AtExit };
    }

    #[test]
    fn try_with_in_a_tls_destructor_returns_err() {
        let out = common::child("try_with_in_a_tls_destructor_returns_err", || {
            std::thread::spawn(|| {
                X.with(|_| ());
                K.scope(1, || assert_eq!(K.get(), 1));
            })
            .join()
            .unwrap();
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}

mod key_identity {
    // Keys built outside the macro as `const`s may be promoted to one
    // address; a key was identified by its address alone, so `B.with` read
    // A's value as B's type. Found by review; the value's type is part of a
    // key's identity now. (`__new` is hidden, but safe to call.)

    use growstack::task::LocalKey;

    const A: LocalKey<String> = LocalKey::__new();
    const B: LocalKey<[usize; 3]> = LocalKey::__new();

    #[test]
    fn keys_of_different_types_never_read_each_others_values() {
        let a: &'static LocalKey<String> = &A;
        let b: &'static LocalKey<[usize; 3]> = &B;
        // Promoted consts may share an address: the value's type is part of
        // a key's identity, so this never reads an array as a String.
        let r = b.scope([1, 0x10, 16], || a.try_with(|s| s.len()));
        assert!(r.is_err());
    }
}

/// Another library's coroutine has no task-local scopes of its own (its
/// scopes would interleave with those of whoever resumes it, and a scope
/// it ends could pop its host's entry): reads are `Err` there, a scope
/// panics, and the host's scopes are untouched.
#[test]
fn task_locals_are_refused_inside_another_librarys_coroutine() {
    use corosensei::stack::DefaultStack;
    use corosensei::{Coroutine, CoroutineResult};
    ID.scope(222, || {
        let stack = DefaultStack::new(1 << 20).unwrap();
        let mut c: Coroutine<(), (), (bool, bool), DefaultStack> =
            Coroutine::with_stack(stack, |_, ()| {
                let read_refused = ID.try_with(|v| *v).is_err();
                let scope_refused = catch_unwind(|| ID.scope(111, || ())).is_err();
                (read_refused, scope_refused)
            });
        let CoroutineResult::Return(refused) = c.resume(()) else {
            panic!("the coroutine did not finish")
        };
        assert_eq!(refused, (true, true));
        assert_eq!(ID.get(), 222);
    });
}
