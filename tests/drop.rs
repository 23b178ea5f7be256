//! A deeply nested structure drops without overflowing, when its `Drop`
//! impl is `#[growable]`.

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
