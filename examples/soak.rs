//! A soak: for a given number of seconds, runtimes are built, worked with a
//! random mix of everything a program does with tasks, and dropped.
//!
//! ```text
//! cargo run --release --example soak [SECONDS] [SEED]
//! GROWSTACK_STRESS=1 cargo run --release --example soak 600
//! ```
//!
//! Each round builds a runtime (1 to 3 workers, small or default slots,
//! compacting parked stacks after at most 2 ms or not) and
//! runs a few `block_on` rounds whose root task does a random mix of:
//! spawn and join (values and panic payloads checked), detached tasks,
//! producer/consumer pairs through bounded and unbounded channels with
//! `recv`, `recv_timeout` and `try_recv` (every message received exactly
//! once, in order per producer), sleeps, yields inside `task_local!`
//! scopes, deep `#[growable]` recursion and `shrink_now`, and
//! `spawn_blocking`. Everything sent or
//! moved into a task is drop-counted. At the end of each runtime: drop
//! counts balance and `stats().tasks_live` is back to 0.
//!
//! A watchdog thread aborts with every worker's state if no operation
//! completes for 10 s (with `SOAK_HOLD=1` it keeps the process for a
//! debugger instead). The last line is the totals.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use growstack::{Runtime, chan, growable};

growstack::task_local! {
    static TAG: u64;
}

/// Operations completed, for the watchdog.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Drop-counted values: made, and dropped.
static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Counted(u64);

impl Counted {
    fn new(v: u64) -> Counted {
        MADE.fetch_add(1, Ordering::Relaxed);
        Counted(v)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Totals {
    runtimes: u64,
    block_ons: u64,
    joins: u64,
    panics: u64,
    detached: u64,
    messages: u64,
    timeouts: u64,
    deep: u64,
    blocking: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.runtimes += o.runtimes;
        self.block_ons += o.block_ons;
        self.joins += o.joins;
        self.panics += o.panics;
        self.detached += o.detached;
        self.messages += o.messages;
        self.timeouts += o.timeouts;
        self.deep += o.deep;
        self.blocking += o.blocking;
    }
}

/// xorshift64*: enough randomness for a mix, and reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[growable]
fn deep(n: u64) -> u64 {
    let pad = [n; 16];
    black_box(&pad);
    if n == 0 {
        0
    } else {
        deep(n - 1) + pad[3] % 2 + 1 - n % 2
    }
}

/// `deep(n)` computed without recursion.
fn deep_expected(n: u64) -> u64 {
    (1..=n).map(|k| k % 2 + 1 - k % 2).sum()
}

fn tick() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// One root task's mix of operations.
fn mix(seed: u64, ops: u32) -> Totals {
    let mut rng = Rng(seed | 1);
    let mut t = Totals::default();
    let (detached_tx, detached_rx) = chan::unbounded::<u64>();
    for _ in 0..ops {
        match rng.below(9) {
            0 => {
                let n = 1 + rng.below(64);
                let hs: Vec<_> = (0..n)
                    .map(|i| {
                        let c = Counted::new(i);
                        growstack::spawn(move || c.0 * 3)
                    })
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), i as u64 * 3);
                    t.joins += 1;
                }
            }
            1 => {
                let c = Counted::new(7);
                let h = growstack::spawn(move || -> u64 {
                    let _c = c;
                    std::panic::panic_any(format!("soak panic {seed}"))
                });
                let payload = h.join().unwrap_err();
                assert_eq!(
                    payload.downcast_ref::<String>().map(String::as_str),
                    Some(format!("soak panic {seed}").as_str())
                );
                t.panics += 1;
            }
            2 => {
                let tx = detached_tx.clone();
                let c = Counted::new(1);
                drop(growstack::spawn(move || {
                    growstack::yield_now();
                    tx.send(c.0).unwrap();
                }));
                t.detached += 1;
            }
            3 | 4 => t.messages += pipe(&mut rng, &mut t.timeouts),
            5 => growstack::sleep(Duration::from_micros(rng.below(200))),
            6 => {
                // Yields inside a task-local scope: the other tasks of the
                // worker run in between, each with its own value.
                let mine = rng.next();
                let yields = rng.below(8);
                TAG.scope(mine, || {
                    for _ in 0..yields {
                        growstack::yield_now();
                        assert_eq!(TAG.get(), mine, "a task-local changed under a yield");
                    }
                });
            }
            7 => {
                let n = 1000 + rng.below(60_000);
                let h = growstack::spawn(move || deep(n));
                assert_eq!(h.join().unwrap(), deep_expected(n));
                if rng.below(4) == 0 {
                    growstack::shrink_now();
                }
                t.deep += 1;
            }
            _ => {
                let c = Counted::new(5);
                let v = growstack::spawn_blocking(move || c.0 + 1).join().unwrap();
                assert_eq!(v, 6);
                t.blocking += 1;
            }
        }
        tick();
    }
    drop(detached_tx);
    let got: u64 = detached_rx.iter().sum();
    assert_eq!(got, t.detached, "a detached task's message was lost");
    t
}

/// Producers and consumers through one channel; every message is received
/// exactly once, in order per producer. Returns the messages passed.
fn pipe(rng: &mut Rng, timeouts: &mut u64) -> u64 {
    let producers = 1 + rng.below(3);
    let per = 1 + rng.below(200);
    let (tx, rx) = match rng.below(4) {
        0 => chan::unbounded::<(u64, u64, Counted)>(),
        1 => chan::bounded(1),
        2 => chan::bounded(4),
        _ => chan::bounded(64),
    };
    let style = rng.below(3);
    let consumers = 1 + rng.below(2);
    let hs: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            growstack::spawn(move || {
                for i in 0..per {
                    tx.send((p, i, Counted::new(i))).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let cs: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = rx.clone();
            growstack::spawn(move || {
                let mut got = Vec::new();
                let mut timeouts = 0;
                loop {
                    let msg = match style {
                        0 => rx.recv().ok(),
                        1 => match rx.recv_timeout(Duration::from_micros(50)) {
                            Ok(m) => Some(m),
                            Err(chan::RecvTimeoutError::Timeout) => {
                                timeouts += 1;
                                continue;
                            }
                            Err(chan::RecvTimeoutError::Disconnected) => None,
                        },
                        _ => match rx.try_recv() {
                            Ok(m) => Some(m),
                            Err(chan::TryRecvError::Empty) => {
                                growstack::yield_now();
                                continue;
                            }
                            Err(chan::TryRecvError::Disconnected) => None,
                        },
                    };
                    match msg {
                        Some((p, i, c)) => {
                            assert_eq!(c.0, i);
                            got.push((p, i));
                        }
                        None => return (got, timeouts),
                    }
                }
            })
        })
        .collect();
    drop(rx);
    hs.into_iter().for_each(|h| h.join().unwrap());
    let mut all = Vec::new();
    for c in cs {
        let (got, t) = c.join().unwrap();
        *timeouts += t;
        // In order per producer, within one consumer.
        for p in 0..producers {
            let seq: Vec<u64> = got.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
            assert!(seq.windows(2).all(|w| w[0] < w[1]), "out of order");
        }
        all.extend(got);
    }
    all.sort_unstable();
    let want: Vec<(u64, u64)> = (0..producers)
        .flat_map(|p| (0..per).map(move |i| (p, i)))
        .collect();
    assert_eq!(all, want, "a message was lost or received twice");
    producers * per
}

fn watchdog() {
    std::thread::spawn(|| {
        let mut last = PROGRESS.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "soak: no progress for 10 s; the runtimes:\n{}",
                    growstack::__private::dump_runtimes()
                );
                if std::env::var_os("SOAK_HOLD").is_some() {
                    // Keep the process for a debugger.
                    loop {
                        std::thread::park();
                    }
                }
                std::process::abort();
            }
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map_or(60, |a| a.parse().expect("SECONDS"));
    let seed: u64 = args.next().map_or_else(
        || {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(1, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
        },
        |a| a.parse().expect("SEED"),
    );
    println!("soak: {secs} s, seed {seed}");
    // The panics the mix makes on purpose are counted, not printed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let ours = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|s| s.starts_with("soak panic"));
        if !ours {
            default_hook(info);
        }
    }));
    watchdog();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = Rng(seed | 1);
    let mut totals = Totals::default();
    while Instant::now() < deadline {
        let workers = 1 + rng.below(3) as usize;
        // The panics it makes on purpose are silenced by its own hook.
        let mut builder = Runtime::builder().workers(workers).panic_note(false);
        if rng.below(2) == 0 {
            builder = builder.stack_size(128 << 10);
        }
        if rng.below(2) == 0 {
            // A threshold of at most 2 ms: tasks parked in sleeps,
            // receives, joins and timeouts are compacted and restored
            // while the mix runs.
            // SAFETY: no task of the mix lends its locals to another
            // thread or task while it parks.
            builder = unsafe { builder.compact_after(Duration::from_micros(rng.below(2000))) };
        }
        let rt = builder.build().expect("runtime");
        for _ in 0..1 + rng.below(4) {
            let s = rng.next();
            let ops = 20 + rng.below(200) as u32;
            let t = rt.block_on(move || mix(s, ops));
            totals.add(&t);
            totals.block_ons += 1;
        }
        drop(rt);
        totals.runtimes += 1;
        assert_eq!(
            growstack::stats().tasks_live,
            0,
            "tasks left alive after their runtime was dropped"
        );
        assert_eq!(
            MADE.load(Ordering::Relaxed),
            DROPPED.load(Ordering::Relaxed),
            "drop counts do not balance"
        );
        tick();
    }
    let Totals {
        runtimes,
        block_ons,
        joins,
        panics,
        detached,
        messages,
        timeouts,
        deep,
        blocking,
    } = totals;
    println!(
        "soak ok: {runtimes} runtimes, {block_ons} block_on rounds, {joins} joins, {panics} panics \
         caught, {detached} detached tasks, {messages} messages ({timeouts} receive timeouts), \
         {deep} deep recursions, {blocking} blocking jobs, {} values dropped of {} made, \
         stats {:?}",
        DROPPED.load(Ordering::Relaxed),
        MADE.load(Ordering::Relaxed),
        growstack::stats()
    );
}
