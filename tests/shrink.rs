//! Giving stack memory back: RSS before and after `shrink_now`, for a task
//! and for a plain thread; hysteresis for a call on a segment boundary.
//!
//! RSS is process-wide, so the tests of this file take turns.

mod common;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use growstack::{Runtime, chan};

static TURN: Mutex<()> = Mutex::new(());

fn rss() -> usize {
    common::status_bytes("VmRSS") as usize
}

/// 4 KiB of stack per level, every page written: `levels` levels touch
/// `levels * 4 KiB` of stack.
#[growstack::growable]
fn deep(levels: u32) -> u64 {
    let mut page = [0u8; 4096];
    page[0] = levels as u8;
    black_box(&mut page);
    if levels == 0 {
        0
    } else {
        deep(levels - 1) + u64::from(black_box(&page)[0] == levels as u8)
    }
}

/// 256 MiB of stack.
const LEVELS: u32 = 65_536;

fn assert_gave_back(base: usize, grown: usize, after: usize) {
    let added = grown.saturating_sub(base);
    assert!(added >= 200 << 20, "the growth added only {added} bytes");
    let freed = grown.saturating_sub(after);
    println!(
        "RSS: {} MiB before, {} MiB grown, {} MiB after shrink_now ({:.1}% of the growth given back)",
        base >> 20,
        grown >> 20,
        after >> 20,
        freed as f64 * 100.0 / added as f64
    );
    assert!(
        freed * 10 >= added * 9,
        "shrink_now gave back {} MiB of the {} MiB the growth added",
        freed >> 20,
        added >> 20
    );
}

#[test]
fn a_parked_task_gives_back_what_it_grew() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // Room for stress mode, where every level also pays the slow path.
    let rt = Runtime::builder().max_stack(8 << 30).build().unwrap();
    rt.block_on(|| ());
    let base = rss();
    let (grown_tx, grown_rx) = chan::bounded(1);
    let (again_tx, again_rx) = chan::bounded(1);
    let task = rt.spawn(move || {
        let first = deep(LEVELS);
        grown_tx.send(()).unwrap();
        again_rx.recv().unwrap(); // parked, back at the top of its stack
        (first, deep(LEVELS))
    });
    grown_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // let it park
    let grown = rss();
    let shrinks = growstack::stats().shrinks;
    growstack::shrink_now();
    let after = rss();
    assert_gave_back(base, grown, after);
    assert!(growstack::stats().shrinks > shrinks);
    again_tx.send(()).unwrap();
    let levels = u64::from(LEVELS);
    assert_eq!(task.join().unwrap(), (levels, levels));
}

#[test]
fn a_thread_gives_back_what_it_grew() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    growstack::set_max_stack(8 << 30);
    let base = rss();
    let (first, grown, after, second) = common::on_thread(64 << 10, || {
        let first = deep(LEVELS);
        let grown = rss();
        growstack::shrink_now();
        let after = rss();
        (first, grown, after, deep(LEVELS))
    });
    assert_gave_back(base, grown, after);
    assert_eq!((first, second), (u64::from(LEVELS), u64::from(LEVELS)));
}

#[growstack::growable]
fn leaf(n: u32) -> u32 {
    if n == 0 { 0 } else { leaf(n - 1) + 1 }
}

#[test]
fn a_call_on_a_segment_boundary_keeps_its_segment_across_passes() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Runtime::builder().workers(1).build().unwrap();
    let before = growstack::stats();
    let sum = rt.block_on(|| {
        let mut sum = 0;
        for _ in 0..100 {
            for _ in 0..100 {
                sum += common::at_the_edge(|| leaf(2));
            }
            // The worker goes idle and runs a maintenance pass meanwhile.
            growstack::sleep(Duration::from_millis(1));
        }
        sum
    });
    assert_eq!(sum, 100 * 100 * 2);
    let after = growstack::stats();
    // 10 000 growths at the same boundary, 100 passes in between: the
    // segment stays cached (a pass keeps what was entered since the
    // previous one), so at most a couple are ever allocated.
    assert!(after.growths - before.growths >= 10_000);
    let fresh = after.segments_allocated - before.segments_allocated;
    assert!(fresh <= 2, "{fresh} segments allocated");
}
