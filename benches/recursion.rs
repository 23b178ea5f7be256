//! growstack side by side with plain recursion, `recursive` and `stacker`,
//! in one run (`cargo bench --bench recursion`). The workspace patches
//! `stacker` with growstack's (`compat/stacker`), so the `stacker` and
//! `recursive` rows here run on growstack; the published stacker is
//! measured against it by `compat/bench/run`.
//!
//! - `fib`: per-call cost of the check on a recursion that never grows;
//! - `deep_1m_128b`: a million levels with a 128-byte argument, ns per level;
//! - `hot_split`: a call sitting on a stack boundary, called in a loop;
//! - `growth`: one growth onto a segment that is not cached.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use growstack::growable;

const FIB_N: u32 = 25;

fn fib_plain(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

#[growable]
fn fib_growable(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib_growable(n - 1) + fib_growable(n - 2)
    }
}

#[recursive::recursive]
fn fib_recursive(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib_recursive(n - 1) + fib_recursive(n - 2)
    }
}

fn fib_stacker(n: u32) -> u64 {
    stacker::maybe_grow(64 << 10, 1 << 20, || {
        if n < 2 {
            u64::from(n)
        } else {
            fib_stacker(n - 1) + fib_stacker(n - 2)
        }
    })
}

fn fib(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib");
    let calls = {
        fn count(n: u32) -> u64 {
            if n < 2 {
                1
            } else {
                1 + count(n - 1) + count(n - 2)
            }
        }
        count(FIB_N)
    };
    g.throughput(criterion::Throughput::Elements(calls));
    g.bench_function("plain", |b| b.iter(|| fib_plain(black_box(FIB_N))));
    g.bench_function("growable", |b| b.iter(|| fib_growable(black_box(FIB_N))));
    g.bench_function("recursive", |b| b.iter(|| fib_recursive(black_box(FIB_N))));
    g.bench_function("stacker", |b| b.iter(|| fib_stacker(black_box(FIB_N))));
    g.finish();
}

const LEVELS: u32 = 1_000_000;

#[derive(Clone, Copy)]
struct Arg([u64; 16]);

#[growable]
fn deep_growable(arg: Arg, n: u32) -> u64 {
    if n == 0 {
        return arg.0[0];
    }
    let mut next = arg;
    next.0[(n % 16) as usize] ^= u64::from(n);
    deep_growable(next, n - 1).wrapping_add(arg.0[(n % 7) as usize])
}

fn deep_stacker(arg: Arg, n: u32) -> u64 {
    stacker::maybe_grow(64 << 10, 1 << 20, || {
        if n == 0 {
            return arg.0[0];
        }
        let mut next = arg;
        next.0[(n % 16) as usize] ^= u64::from(n);
        deep_stacker(next, n - 1).wrapping_add(arg.0[(n % 7) as usize])
    })
}

fn deep(c: &mut Criterion) {
    let mut g = c.benchmark_group("deep_1m_128b");
    g.sample_size(10);
    g.throughput(criterion::Throughput::Elements(u64::from(LEVELS)));
    let arg = Arg([3; 16]);
    assert_eq!(deep_growable(arg, LEVELS), deep_stacker(arg, LEVELS));
    g.bench_function("growable", |b| {
        b.iter(|| deep_growable(black_box(arg), LEVELS))
    });
    g.bench_function("stacker", |b| {
        b.iter(|| deep_stacker(black_box(arg), LEVELS))
    });
    g.finish();
}

#[growable]
fn leaf_growable(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7
}

fn leaf_stacker(x: u64) -> u64 {
    stacker::maybe_grow(64 << 10, 1 << 20, || {
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7
    })
}

/// Runs `f` in a frame whose stack pointer is just below the point where
/// `room(sp)` says there is no room left: every guarded call made from
/// there has to switch stacks.
fn at_the_edge(room: &dyn Fn() -> bool, f: &mut dyn FnMut()) {
    #[inline(never)]
    fn burn(room: &dyn Fn() -> bool, f: &mut dyn FnMut()) {
        let pad = [0u8; 512];
        black_box(&pad);
        if !room() {
            // `room` read the stack pointer in a frame below this one: the
            // 512 bytes above put `f`'s frames below the edge for sure.
            f();
            black_box(&pad);
            return;
        }
        black_box(&pad);
        burn(room, f);
        black_box(&pad);
    }
    burn(room, f);
}

fn hot_split(c: &mut Criterion) {
    let mut g = c.benchmark_group("hot_split");
    g.bench_function("growable", |b| {
        at_the_edge(&|| growstack::remaining_stack() > 0, &mut || {
            b.iter(|| leaf_growable(black_box(7)));
        });
    });
    g.bench_function("stacker", |b| {
        at_the_edge(
            &|| stacker::remaining_stack().is_some_and(|r| r > 64 << 10),
            &mut || {
                b.iter(|| leaf_stacker(black_box(7)));
            },
        );
    });
    g.finish();
}

fn growth(c: &mut Criterion) {
    let mut g = c.benchmark_group("growth");
    // Each iteration grows onto a segment that is not cached: growstack
    // takes one from the arena (its pages were released) and gives it back;
    // stacker maps a new stack and unmaps it.
    g.bench_function(BenchmarkId::new("new_segment", "growable"), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            at_the_edge(&|| growstack::remaining_stack() > 0, &mut || {
                growstack::__private::drop_cached_segments();
                let before = growstack::stats().segments_allocated;
                let start = Instant::now();
                for i in 0..iters {
                    black_box(leaf_growable(black_box(i)));
                    growstack::__private::drop_cached_segments();
                }
                elapsed = start.elapsed();
                // Measured what it says: one fresh segment per iteration.
                assert_eq!(growstack::stats().segments_allocated - before, iters);
            });
            elapsed
        });
    });
    g.bench_function(BenchmarkId::new("new_segment", "stacker"), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            at_the_edge(
                &|| stacker::remaining_stack().is_some_and(|r| r > 64 << 10),
                &mut || {
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(leaf_stacker(black_box(i)));
                    }
                    elapsed = start.elapsed();
                },
            );
            elapsed
        });
    });
    g.finish();
}

criterion_group!(benches, fib, deep, hot_split, growth);
criterion_main!(benches);
