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
