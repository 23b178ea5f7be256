//! A `grow` from another library's coroutine runs on a slot of its own;
//! when it returns, the slot's pages go back (stacker unmaps its stacks),
//! since no chain holds it for a shrink to find. Its own binary: it
//! measures the process's RSS.

use corosensei::{Coroutine, Yielder};

fn rss_mib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        / 1024
}

/// Writes 200 MiB of stack.
#[inline(never)]
fn touch() -> u8 {
    let buf = [1u8; 200 << 20];
    std::hint::black_box(&buf)[12345]
}

#[test]
fn the_pages_of_a_coroutines_own_slot_go_back_when_grow_returns() {
    let before = rss_mib();
    let mut co = Coroutine::new(|_: &Yielder<(), ()>, ()| stacker::grow(256 << 20, touch));
    assert!(matches!(
        co.resume(()),
        corosensei::CoroutineResult::Return(1)
    ));
    drop(co);
    let after = rss_mib();
    assert!(
        after < before + 50,
        "RSS {before} MiB before, {after} MiB after"
    );
}
