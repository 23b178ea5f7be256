//! A deeply nested structure drops without overflowing, when its `Drop`
//! impl is `#[growable]`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Node {
    value: u64,
    next: Option<Box<Node>>,
}

#[growstack::growable]
impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        // Dropping the tail here keeps the recursion inside `drop`, where
        // the check is.
        drop(self.next.take());
    }
}

#[test]
fn million_long_list_drops() {
    growstack::set_max_stack(32 << 30);
    let n = 1_000_000;
    let (sum, dropped) = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            let mut list = Node {
                value: 0,
                next: None,
            };
            for i in 1..n {
                list = Node {
                    value: i,
                    next: Some(Box::new(list)),
                };
            }
            let mut sum = 0;
            let mut cur = Some(&list);
            while let Some(node) = cur {
                sum += node.value;
                cur = node.next.as_deref();
            }
            drop(list);
            (sum, DROPPED.load(Ordering::Relaxed))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(dropped, n as usize);
}

/// A `#[growable] Drop` whose body has a 100 KB local, dropped about 8 KiB
/// above the stack's limit: its check (room for the frame) fails while an
/// ordinary check would pass. (Found by review; both tests crashed in a
/// guard region before their fixes.)
mod large_frame_drop {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use super::common::{self, near_the_limit};

    struct Big;

    #[growstack::growable]
    impl Drop for Big {
        fn drop(&mut self) {
            let buf = [1u8; 100_000];
            black_box(&buf);
        }
    }

    /// The slow path ran the body inlined into `morestack_body`, whose
    /// prologue allocated the 100 KB frame on the stack that had no room,
    /// before the switch. Debug builds do not inline, so this test is for
    /// optimised builds.
    #[test]
    #[cfg(not(debug_assertions))]
    fn a_drop_with_a_large_frame_gets_its_room_in_release_builds() {
        let name = "a_drop_with_a_large_frame_gets_its_room_in_release_builds";
        let out = common::child(name, || {
            common::on_thread(256 << 10, || near_the_limit(&mut || drop(black_box(Big))));
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }

    /// A preempted check let the body run in place once the task resumed,
    /// with room for an ordinary frame only.
    #[test]
    fn a_preempted_drop_with_a_large_frame_still_gets_room() {
        let name = "a_preempted_drop_with_a_large_frame_still_gets_room";
        let out = common::child(name, || {
            // SAFETY: no task here initialises a thread-local.
            let rt = unsafe { growstack::Runtime::builder().preempt(Duration::from_millis(1)) }
                .workers(1)
                .build()
                .unwrap();
            let before = growstack::stats().preemptions;
            let drops = rt.block_on(|| {
                let mut drops = 0u64;
                near_the_limit(&mut || {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(300) {
                        drop(black_box(Big));
                        drops += 1;
                    }
                });
                drops
            });
            assert!(drops > 0);
            assert!(
                growstack::stats().preemptions > before,
                "precondition: preempted"
            );
            std::process::exit(0);
        });
        if let Some(out) = out {
            common::assert_exited_ok(&out);
        }
    }
}

/// A tree whose recursive fields are `DeepBox`es, counting its drops.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Num(u64, common::CountDropEq),
    Add(growstack::DeepBox<Expr>, growstack::DeepBox<Expr>),
}

#[growstack::growable]
fn eval(e: &Expr) -> u64 {
    match e {
        Expr::Num(n, _) => *n,
        Expr::Add(a, b) => eval(a) + eval(b),
    }
}

#[test]
fn a_million_level_enum_tree_in_deep_boxes_clones_compares_and_drops() {
    growstack::set_max_stack(32 << 30);
    let drops = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&drops);
    let (sum, equal) = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            growstack::set_max_stack(32 << 30);
            let leaf = |n| Expr::Num(n, common::CountDropEq(std::sync::Arc::clone(&counter)));
            let mut e = leaf(1);
            for i in 0..1_000_000 {
                e = Expr::Add(e.into(), leaf(i % 3).into());
            }
            let sum = eval(&e);
            let copy = e.clone();
            let equal = copy == e;
            drop(copy);
            drop(e);
            (sum, equal)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, 1 + (0..1_000_000u64).map(|i| i % 3).sum::<u64>());
    assert!(equal);
    // Two trees of 1_000_001 leaves each: every leaf dropped.
    assert_eq!(drops.load(Ordering::SeqCst), 2 * 1_000_001);
}
