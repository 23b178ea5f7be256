//! Checks that need the process's main thread (libtest runs tests on other
//! threads), so this binary has its own `main`: deep recursion on the main
//! thread, and a backtrace taken on a segment that reaches back to `main`.

use std::backtrace::Backtrace;

use growstack::growable;

#[growable]
fn mix(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        mix(n - 1).rotate_left(5) ^ n
    }
}

fn deep_recursion_on_the_main_thread() {
    let n = 3_000_000;
    let want = (1..=n).fold(0u64, |acc, i| acc.rotate_left(5) ^ i);
    assert_eq!(mix(n), want);
    assert!(
        growstack::stats().growths > 0,
        "3M levels do not fit in 8 MiB"
    );
}

#[growable]
fn capture_at(n: u32) -> (String, u64) {
    if n == 0 {
        return (
            Backtrace::force_capture().to_string(),
            growstack::stats().growths,
        );
    }
    // black_box: in release builds a plain tail call becomes a loop.
    std::hint::black_box(capture_at(n - 1))
}

#[inline(never)] // its frame is looked for in the backtrace
fn backtrace_on_a_segment_reaches_main() {
    let before = growstack::stats().growths;
    let (bt, growths) = capture_at(200_000);
    assert!(growths > before, "the capture ran on a segment");
    let trampoline = bt
        .find("growstack_morestack_v0_1")
        .expect("a trampoline frame");
    let below = &bt[trampoline..];
    assert!(
        below.contains("main_thread::backtrace_on_a_segment_reaches_main"),
        "{bt}"
    );
    assert!(below.contains("main_thread::main"), "{bt}");
}

fn main() {
    growstack::set_max_stack(32 << 30);
    let checks: [(&str, fn()); 2] = [
        (
            "deep_recursion_on_the_main_thread",
            deep_recursion_on_the_main_thread,
        ),
        (
            "backtrace_on_a_segment_reaches_main",
            backtrace_on_a_segment_reaches_main,
        ),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    // Any failed check panicked above, which fails this test binary.
    println!("\n{} passed, 0 failed", checks.len());
}
