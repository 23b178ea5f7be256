//! Calls through the `stacker` API, built once against the published
//! stacker and once against growstack's (`compat/bench/run` builds and runs
//! both, and prints the ratios). `#[growable]` and plain recursion run in
//! both builds, as the yardstick.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use serde_json::Value;

const FIB_N: u32 = 25;

#[recursive::recursive]
fn fib_recursive(n: u32) -> u64 {
    if n < 2 { n as u64 } else { fib_recursive(n - 1) + fib_recursive(n - 2) }
}

#[growstack::growable]
fn fib_growable(n: u32) -> u64 {
    if n < 2 { n as u64 } else { fib_growable(n - 1) + fib_growable(n - 2) }
}

#[inline(never)]
fn fib_plain(n: u32) -> u64 {
    if n < 2 { n as u64 } else { fib_plain(n - 1) + fib_plain(n - 2) }
}

fn fib(c: &mut Criterion) {
    assert_eq!(fib_recursive(FIB_N), fib_plain(FIB_N));
    assert_eq!(fib_growable(FIB_N), fib_plain(FIB_N));
    let mut g = c.benchmark_group("fib");
    g.bench_function("recursive", |b| b.iter(|| fib_recursive(black_box(FIB_N))));
    g.bench_function("growable", |b| b.iter(|| fib_growable(black_box(FIB_N))));
    g.bench_function("plain", |b| b.iter(|| fib_plain(black_box(FIB_N))));
    g.finish();
}

/// Parses `[[[…]]]` nested `levels` deep through serde_stacker and takes
/// the value apart in a loop (its drop glue would recurse).
fn parse_and_drop(json: &str, levels: usize) {
    let mut de = serde_json::Deserializer::from_str(json);
    de.disable_recursion_limit();
    let value = Value::deserialize(serde_stacker::Deserializer::new(&mut de)).unwrap();
    let mut stack = vec![value];
    let mut seen = 0;
    while let Some(v) = stack.pop() {
        if let Value::Array(items) = v {
            seen += 1;
            stack.extend(items);
        }
    }
    assert_eq!(seen, levels);
}

fn serde_deep(c: &mut Criterion) {
    let levels = 1_000_000;
    let json = "[".repeat(levels) + &"]".repeat(levels);
    let mut g = c.benchmark_group("serde_deep");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("1m", |b| b.iter(|| parse_and_drop(&json, levels)));
    g.finish();
}

/// A call that sits on a boundary in a loop: its red zone is more than the
/// stack has left, so every call grows.
fn boundary(c: &mut Criterion) {
    let mut g = c.benchmark_group("boundary");
    g.bench_function("maybe_grow", |b| {
        let red_zone = stacker::remaining_stack().unwrap() + (64 << 10);
        b.iter(|| stacker::maybe_grow(red_zone, 1 << 20, || black_box(7u64)))
    });
    g.finish();
}

criterion_group!(benches, fib, serde_deep, boundary);
criterion_main!(benches);
