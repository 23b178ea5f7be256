//! `#[growable]` means exactly the plain function, on both of its paths.
//!
//! Each shape here once behaved differently from the plain function, or
//! failed to compile where the plain function compiles (issue 14). Every
//! behaviour is checked three ways: as the first annotated call of a new
//! thread (whose guard starts poisoned, so the call takes the slow path),
//! as a later call (the fast path), and from just below the guard (a
//! growth). The whole suite also runs with `GROWSTACK_STRESS=1`, where
//! every call takes the slow path.

mod common;

use std::cell::RefCell;
use std::panic::Location;

use common::{always, child, three_ways};
use growstack::growable;

// --- 1. The re-call calls this very function ---------------------------

struct Twin;

impl Twin {
    /// An inherent method with the trait method's name.
    #[allow(dead_code)]
    fn depth(&self, _n: u32) -> u32 {
        u32::MAX
    }
}

trait Depth {
    fn depth(&self, n: u32) -> u32;
}

impl Depth for Twin {
    #[growable]
    fn depth(&self, n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            1 + Depth::depth(self, n - 1)
        }
    }
}

#[test]
fn a_trait_method_annotated_alone_never_calls_the_inherent_method_of_its_name() {
    // Fixed: the re-call was `Self::depth`, which is the inherent method.
    always(1000, || Depth::depth(&Twin, 1000));
}

/// A free function with an associated function's name.
fn count(_n: u32) -> u32 {
    u32::MAX
}

struct Counter;

impl Counter {
    #[growable]
    fn count(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + Self::count(n - 1) }
    }
}

#[test]
fn an_associated_fn_annotated_alone_never_calls_a_free_fn_of_its_name() {
    // Fixed: its signature does not mention `Self`, so the re-call was the
    // free `count`.
    always(1000, || Counter::count(1000));
    assert_eq!(count(0), u32::MAX);
}

#[growable]
fn doubled(n: u32) -> u32 {
    // A nested function with the function's own name.
    #[allow(dead_code)]
    fn doubled(n: u32) -> u32 {
        n + 1_000_000
    }
    n * 2
}

#[test]
fn a_nested_fn_of_the_same_name_is_not_the_re_call() {
    // Fixed: the nested fn was in scope of the re-call.
    always(42, || doubled(21));
}

// --- 2. #[track_caller] --------------------------------------------------

struct Caller;

#[growable]
impl Caller {
    #[track_caller]
    fn location(&self) -> &'static Location<'static> {
        Location::caller()
    }

    #[track_caller]
    fn must(&self, x: Option<u32>) -> u32 {
        x.expect("must")
    }
}

#[growable(frame = 64)]
impl Caller {
    #[track_caller]
    fn location_out_of_line(&self) -> &'static Location<'static> {
        Location::caller()
    }
}

#[test]
fn track_caller_names_the_caller() {
    // Fixed: after a growth (and always when out of line) the location
    // was the #[growable] line.
    always((1, 2), || {
        let line = line!();
        let a = Caller.location().line();
        let b = Caller.location_out_of_line().line();
        (a - line, b - line)
    });
}

/// The line of the call in `must_none`.
const MUST_LINE: u32 = line!() + 2;
fn must_none() -> u32 {
    Caller.must(None)
}

#[test]
fn a_track_caller_panic_points_at_the_caller() {
    let Some(out) = child("a_track_caller_panic_points_at_the_caller", || {
        std::thread::spawn(must_none).join().ok();
        std::process::exit(0);
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = MUST_LINE;
    assert!(
        stderr.contains(&format!("panicked at tests/exact.rs:{line}:")),
        "want line {line}: {stderr}"
    );
}

// --- 3. Parameter patterns drop in the plain order ------------------------

thread_local! {
    static LOG: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

struct D(u8);

impl Drop for D {
    fn drop(&mut self) {
        LOG.with(|l| l.borrow_mut().push(self.0));
    }
}

fn take_log() -> Vec<u8> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

fn two_pairs_plain((_a, _): (D, D), (_, _b): (D, D)) {
    let _local = D(9);
}

#[growable]
fn two_pairs((_a, _): (D, D), (_, _b): (D, D)) {
    let _local = D(9);
}

fn middle_pair_plain(_a: D, (_b, _): (D, D), _c: D) {
    let _local = D(9);
}

#[growable]
fn middle_pair(_a: D, (_b, _): (D, D), _c: D) {
    let _local = D(9);
}

#[growable]
fn middle_pair_panics(_a: D, (_b, _): (D, D), _c: D) {
    let _local = D(9);
    panic!("unwinds through the parameters");
}

fn middle_pair_panics_plain(_a: D, (_b, _): (D, D), _c: D) {
    let _local = D(9);
    panic!("unwinds through the parameters");
}

#[test]
fn parameter_patterns_drop_in_the_plain_order() {
    // Fixed: `let pat = arg;` made the pattern's bindings body locals.
    two_pairs_plain((D(1), D(2)), (D(3), D(4)));
    let want = take_log();
    assert_eq!(want, [9, 4, 3, 1, 2]);
    always(want, || {
        two_pairs((D(1), D(2)), (D(3), D(4)));
        take_log()
    });

    middle_pair_plain(D(1), (D(2), D(3)), D(4));
    let want = take_log();
    assert_eq!(want, [9, 4, 2, 3, 1]);
    always(want, || {
        middle_pair(D(1), (D(2), D(3)), D(4));
        take_log()
    });
}

#[test]
fn parameter_patterns_unwind_in_the_plain_order() {
    let _ = std::panic::catch_unwind(|| middle_pair_panics_plain(D(1), (D(2), D(3)), D(4)));
    let want = take_log();
    assert_eq!(want, [9, 4, 2, 3, 1]);
    always(want, || {
        let _ = std::panic::catch_unwind(|| middle_pair_panics(D(1), (D(2), D(3)), D(4)));
        take_log()
    });
}

// --- 4. Instrumented once ------------------------------------------------

#[growable]
mod twice {
    pub struct Node(pub u32);

    #[growstack::growable]
    impl Node {
        pub fn depth(&self, n: u32) -> u32 {
            if n == 0 {
                self.0
            } else {
                1 + self.depth(n - 1)
            }
        }
    }

    #[growstack::growable]
    pub mod inner {
        #[growstack::growable]
        pub trait Down {
            fn down(&self, n: u32) -> u32 {
                if n == 0 { 0 } else { 1 + self.down(n - 1) }
            }
        }

        impl Down for u8 {}

        pub fn count(n: u32) -> u32 {
            if n == 0 { 0 } else { 1 + count(n - 1) }
        }
    }
}

use growstack::growable as grow;

#[growable]
#[grow]
fn under_two_names(n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        1 + under_two_names(n - 1)
    }
}

#[test]
fn nested_and_repeated_attributes_instrument_once() {
    // Fixed: each attribute added a check; under stress the re-call's
    // bypass let only the first one through, so the stack grew until the
    // limit.
    use twice::inner::Down;
    always(1000, || twice::Node(0).depth(1000));
    always(1000, || 0u8.down(1000));
    always(1000, || twice::inner::count(1000));
    always(1000, || under_two_names(1000));
}

#[test]
fn nested_attributes_instrument_once_under_stress() {
    // The same, forced into stress mode in a child.
    if std::env::var(common::CHILD).is_err() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "nested_attributes_instrument_once_under_stress",
                "--exact",
                "--test-threads=1",
            ])
            .env(common::CHILD, "1")
            .env("GROWSTACK_STRESS", "1")
            .output()
            .unwrap();
        common::assert_exited_ok(&out);
        return;
    }
    growstack::set_max_stack(64 << 20);
    use twice::inner::Down;
    assert_eq!(twice::Node(0).depth(1000), 1000);
    assert_eq!(0u8.down(1000), 1000);
    assert_eq!(under_two_names(1000), 1000);
}

// --- 5. A growable Drop body exists once -----------------------------------

static DROPS_SEEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

struct Once;

#[growable]
impl Drop for Once {
    fn drop(&mut self) {
        static FIRST: std::sync::Once = std::sync::Once::new();
        FIRST.call_once(|| {
            DROPS_SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

#[test]
fn a_growable_drop_body_exists_once() {
    // Fixed: the body was written twice, once per path, with a `static`
    // in each.
    three_ways(|| drop(Once));
    three_ways(|| drop(Once));
    assert_eq!(DROPS_SEEN.load(std::sync::atomic::Ordering::SeqCst), 1);
}

// --- Diagnostics -------------------------------------------------------------

const REFUSED_LINE: u32 = line!() + 2;
#[growable]
fn refused(n: u32) -> u32 {
    let pad = [n; 64];
    if n == 0 {
        0
    } else {
        refused(n - 1) + std::hint::black_box(pad)[1]
    }
}

#[test]
fn a_refused_growth_names_the_function_and_its_line() {
    // Fixed: the panic pointed into growstack's runtime.
    let Some(out) = child("a_refused_growth_names_the_function_and_its_line", || {
        growstack::set_max_stack(1 << 20);
        refused(1_000_000);
        std::process::exit(0);
    }) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = REFUSED_LINE;
    assert!(
        stderr.contains(&format!("panicked at tests/exact.rs:{line}:")),
        "want line {line}: {stderr}"
    );
    assert!(
        stderr.contains("growing for a call to `refused`"),
        "{stderr}"
    );
    assert!(stderr.contains("exceeds 1048576-byte limit"), "{stderr}");
}

#[growable]
mod leaves {
    pub fn run(n: u32) -> u32 {
        if n == 0 { 0 } else { leaf(n) + run(n - 1) }
    }

    #[nosplit]
    fn leaf(n: u32) -> u32 {
        n % 2
    }
}

#[test]
fn nosplit_leaves_stay_plain() {
    always(500, || leaves::run(1000));
}
