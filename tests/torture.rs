//! A torture suite for `#[growable]`: every position a function can take,
//! every receiver, parameter pattern and attribute we could think of, each
//! compared with what the plain function gives, on the slow path (a new
//! thread's first call), the fast path and a growth (see
//! `common::always`). `deny(warnings)` makes a warning the expansion adds,
//! or loses, an error here (and clippy runs on this file too).

#![deny(warnings)]

mod common;

use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;

use common::always;
use growstack::{growable, nosplit};

// --- Drop log ----------------------------------------------------------------

thread_local! {
    static LOG: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug)]
struct D(u8);

impl Drop for D {
    fn drop(&mut self) {
        LOG.with(|l| l.borrow_mut().push(self.0));
    }
}

fn log() -> Vec<u8> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

// --- Positions -----------------------------------------------------------------

#[growable]
fn at_module_level(n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        1 + at_module_level(n - 1)
    }
}

mod outer {
    pub mod inner {
        #[growstack::growable]
        pub fn in_nested_module(n: u32) -> u32 {
            if n == 0 {
                0
            } else {
                1 + in_nested_module(n - 1)
            }
        }
    }
}

#[test]
fn positions() {
    always(500, || at_module_level(500));
    always(500, || outer::inner::in_nested_module(500));
    always(500, || {
        #[growable]
        fn in_a_block(n: u32) -> u32 {
            if n == 0 { 0 } else { 1 + in_a_block(n - 1) }
        }
        in_a_block(500)
    });
    always(500, || {
        let f = |n| {
            #[growable]
            fn in_a_closure(n: u32) -> u32 {
                if n == 0 { 0 } else { 1 + in_a_closure(n - 1) }
            }
            in_a_closure(n)
        };
        f(500)
    });
}

// --- Receivers, alone and in a block ----------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct Chain(u32);

impl Chain {
    #[growable]
    fn by_ref(&self, n: u32) -> u32 {
        if n == 0 {
            self.0
        } else {
            self.by_ref(n - 1) + 1
        }
    }

    #[growable]
    fn by_mut(&mut self, n: u32) -> &mut u32 {
        if n == 0 {
            &mut self.0
        } else {
            self.by_mut(n - 1)
        }
    }

    #[growable]
    fn by_value(self, n: u32) -> Self {
        if n == 0 {
            self
        } else {
            Chain(self.0 + 1).by_value(n - 1)
        }
    }

    #[growable]
    fn by_mut_value(mut self, n: u32) -> Self {
        self.0 += 1;
        if n == 0 {
            self
        } else {
            self.by_mut_value(n - 1)
        }
    }

    #[growable]
    #[allow(clippy::boxed_local)]
    fn boxed(self: Box<Self>, n: u32) -> u32 {
        if n == 0 {
            self.0
        } else {
            Box::new(Chain(self.0 + 2)).boxed(n - 1)
        }
    }

    #[growable]
    fn shared(self: Rc<Self>, n: u32) -> usize {
        if n == 0 {
            Rc::strong_count(&self)
        } else {
            Rc::clone(&self).shared(n - 1)
        }
    }

    #[growable]
    fn pinned(mut self: Pin<&mut Self>, n: u32) -> u32 {
        self.0 += 1;
        if n == 0 { self.0 } else { self.pinned(n - 1) }
    }

    #[growable]
    fn make(n: u32) -> Self {
        if n == 0 {
            Chain(0)
        } else {
            Chain(Self::make(n - 1).0 + 1)
        }
    }
}

struct Chain2(u32);

#[growable]
impl Chain2 {
    fn by_ref(&self, n: u32) -> u32 {
        if n == 0 {
            self.0
        } else {
            self.by_ref(n - 1) + 1
        }
    }

    fn by_mut(&mut self, n: u32) -> &mut u32 {
        if n == 0 {
            &mut self.0
        } else {
            self.by_mut(n - 1)
        }
    }

    fn by_value(self, n: u32) -> Self {
        if n == 0 {
            self
        } else {
            Chain2(self.0 + 1).by_value(n - 1)
        }
    }

    fn pinned(mut self: Pin<&mut Self>, n: u32) -> u32 {
        self.0 += 1;
        if n == 0 { self.0 } else { self.pinned(n - 1) }
    }

    fn helper(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + Chain2::helper(n - 1) }
    }
}

#[test]
fn receivers() {
    always(107, || Chain(7).by_ref(100));
    always(9, || {
        let mut c = Chain(8);
        *c.by_mut(100) += 1;
        c.0
    });
    always(Chain(100), || Chain(0).by_value(100));
    always(Chain(101), || Chain(0).by_mut_value(100));
    always(200, || Box::new(Chain(0)).boxed(100));
    always(101, || Rc::new(Chain(0)).shared(100));
    always(101, || {
        let mut c = Chain(0);
        Pin::new(&mut c).pinned(100)
    });
    always(Chain(100), || Chain::make(100));

    always(107, || Chain2(7).by_ref(100));
    always(9, || {
        let mut c = Chain2(8);
        *c.by_mut(100) += 1;
        c.0
    });
    always(100, || Chain2(0).by_value(100).0);
    always(101, || {
        let mut c = Chain2(0);
        Pin::new(&mut c).pinned(100)
    });
    always(100, || Chain2::helper(100));
}

// --- Generics, lifetimes, impl Trait, where clauses ------------------------------

#[growable]
fn generic<T, const N: usize>(xs: [T; N], n: u32) -> usize
where
    T: Clone + fmt::Debug + PartialEq,
{
    if n == 0 { xs.len() } else { generic(xs, n - 1) }
}

#[growable]
fn elided(s: &str, n: u32) -> &str {
    if n == 0 { &s[1..] } else { elided(s, n - 1) }
}

#[growable]
fn hrtb<F>(f: &F, s: &str, n: u32) -> usize
where
    F: for<'a> Fn(&'a str) -> &'a str,
{
    if n == 0 {
        f(s).len()
    } else {
        hrtb(f, s, n - 1)
    }
}

#[growable]
fn impl_args(f: impl Fn(u32) -> u32 + Copy, it: impl IntoIterator<Item = u32>, n: u32) -> u32 {
    if n == 0 {
        it.into_iter().map(f).sum()
    } else {
        impl_args(f, it, n - 1)
    }
}

#[growable]
fn impl_return(n: u32) -> impl Iterator<Item = u32> + Clone {
    (0..n).map(|x| x * 2)
}

#[growable]
fn impl_in_result(ok: bool) -> Result<impl fmt::Display, String> {
    let v: u32 = if ok {
        "12".parse().map_err(|_| String::from("nope"))?
    } else {
        Err("no")?
    };
    Ok(v)
}

#[growable]
fn dyn_return(n: u32) -> Box<dyn Fn(u32) -> u32> {
    if n == 0 {
        return Box::new(|x| x + 1);
    }
    Box::new(move |x| x * n)
}

#[test]
fn generics_and_lifetimes() {
    always(3, || generic([1u8, 2, 3], 100));
    always("bc".to_string(), || {
        let s = String::from("abc");
        elided(&s, 100).to_string()
    });
    always(2, || hrtb(&|s: &str| &s[..2], "hello", 100));
    always(6, || impl_args(|x| x * 2, [1, 2], 100));
    always(vec![0, 2, 4], || impl_return(3).collect::<Vec<_>>());
    always(("12".to_string(), "no".to_string()), || {
        (
            impl_in_result(true).unwrap().to_string(),
            impl_in_result(false).err().unwrap(),
        )
    });
    always((4, 12), || (dyn_return(0)(3), dyn_return(4)(3)));
}

// --- Traits --------------------------------------------------------------------

enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

#[growable]
impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tree::Leaf(v) => write!(f, "{v}"),
            Tree::Node(children) => {
                write!(f, "(")?;
                for (i, c) in children.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{c}")?;
                }
                write!(f, ")")
            }
        }
    }
}

fn nested(depth: u32) -> Tree {
    let mut t = Tree::Leaf(0);
    for i in 1..=depth {
        t = Tree::Node(vec![Tree::Leaf(i), t]);
    }
    t
}

#[growable]
trait Fold<A> {
    fn step(&self, acc: A, n: u32) -> A;

    fn fold(&self, acc: A, n: u32) -> A
    where
        Self: Sized,
    {
        if n == 0 {
            acc
        } else {
            self.fold(self.step(acc, n), n - 1)
        }
    }
}

struct Summer;

impl Fold<u64> for Summer {
    fn step(&self, acc: u64, n: u32) -> u64 {
        acc + u64::from(n)
    }
}

impl Fold<String> for Summer {
    fn step(&self, mut acc: String, n: u32) -> String {
        if n.is_multiple_of(100) {
            acc.push('x');
        }
        acc
    }
}

trait Visit {
    fn visit(&self, depth: u32) -> u32;
}

#[growable]
impl<T: Visit> Visit for Vec<T> {
    fn visit(&self, depth: u32) -> u32 {
        self.iter()
            .map(|t| t.visit(depth + 1))
            .max()
            .unwrap_or(depth)
    }
}

impl Visit for u8 {
    fn visit(&self, depth: u32) -> u32 {
        depth + u32::from(*self)
    }
}

#[test]
fn traits() {
    always("(3 (2 (1 0)))".to_string(), || nested(3).to_string());
    always(true, || {
        let t = nested(2000);
        let s = t.to_string();
        let same =
            s.starts_with("(2000 (1999 ") && s.ends_with(&format!("(1 0{}", ")".repeat(2000)));
        std::mem::forget(t); // Tree's own drop is not annotated
        same
    });
    always(5050u64, || Summer.fold(0u64, 100));
    always("xxx".to_string(), || Summer.fold(String::new(), 300));
    always(4, || vec![vec![vec![1u8]]].visit(0));
}

// --- Qualifiers and attributes ----------------------------------------------------

#[growable]
mod qualified {
    /// Documented.
    #[inline]
    #[must_use]
    pub(crate) fn inlined(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + inlined(n - 1) }
    }

    /// # Safety
    ///
    /// `p` must be valid for reads.
    pub unsafe fn reads(p: *const u32, n: u32) -> u32 {
        // SAFETY: by this function's contract.
        if n == 0 {
            unsafe { *p }
        } else {
            unsafe { reads(p, n - 1) }
        }
    }

    pub extern "C" fn c_abi(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + c_abi(n - 1) }
    }

    #[cold]
    #[inline(never)]
    #[allow(clippy::needless_return)]
    pub fn cold(n: u32) -> u32 {
        return if n == 0 { 0 } else { 1 + cold(n - 1) };
    }

    pub fn r#match(r#type: u32) -> u32 {
        if r#type == 0 {
            0
        } else {
            1 + r#match(r#type - 1)
        }
    }

    pub fn diverges(n: u32) -> ! {
        if n == 0 {
            panic!("bottom");
        }
        diverges(n - 1)
    }

    #[growable(frame = 64)]
    pub fn diverges_out_of_line(n: u32) -> ! {
        if n == 0 {
            panic!("bottom");
        }
        diverges_out_of_line(n - 1)
    }

    #[nosplit]
    pub fn leaf() -> u32 {
        1
    }
}

#[test]
fn qualifiers_and_attributes() {
    always(100, || qualified::inlined(100));
    always(9, || {
        let x = 9;
        // SAFETY: `x` lives across the call.
        unsafe { qualified::reads(&x, 100) }
    });
    always(100, || qualified::c_abi(100));
    always(100, || qualified::cold(100));
    always(100, || qualified::r#match(100));
    always("bottom".to_string(), || {
        let e = std::panic::catch_unwind(|| qualified::diverges(100)).unwrap_err();
        e.downcast_ref::<&str>().unwrap().to_string()
    });
    always("bottom".to_string(), || {
        let e = std::panic::catch_unwind(|| qualified::diverges_out_of_line(100)).unwrap_err();
        e.downcast_ref::<&str>().unwrap().to_string()
    });
    always(1, qualified::leaf);
}

// --- Bodies --------------------------------------------------------------------

#[growable]
fn body_shapes(xs: &[u32], n: u32) -> Result<u32, std::num::ParseIntError> {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const BASE: u32 = 10;
    struct Local(u32);
    impl Local {
        fn get(&self) -> u32 {
            self.0
        }
    }
    fn helper(x: u32) -> u32 {
        x + BASE
    }
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(first) = xs.first() else {
        return Ok(0);
    };
    let found = 'outer: {
        for x in xs {
            if *x > 2 {
                break 'outer *x;
            }
        }
        0
    };
    let parsed: u32 = format!("{}", Local(*first).get()).parse()?;
    let closure = |y: u32| y + found;
    if n == 0 {
        Ok(helper(parsed) + closure(0) + const { 1 + 1 })
    } else {
        body_shapes(xs, n - 1)
    }
}

#[test]
fn bodies() {
    always(Ok(1 + 10 + 3 + 2), || body_shapes(&[1, 2, 3], 50));
    always(Ok(0), || body_shapes(&[], 50));
}

// --- Parameter patterns, and drop order ----------------------------------------------

struct Pair {
    a: u32,
    b: (u32, u32),
}

#[allow(dead_code)]
struct Wrap(u32, u32);

#[growable]
#[allow(clippy::too_many_arguments)]
fn patterns(
    (a, (b, _)): (u32, (u32, u32)),
    Pair { a: c, b: (d, ..) }: Pair,
    Wrap(e, _): Wrap,
    [f, g]: [u32; 2],
    &h: &u32,
    mut i: u32,
    ref j: u32,
    ref mut k: u32,
) -> u32 {
    i += 1;
    *k += 1;
    a + b + c + d + e + f + g + h + i + j + *k
}

fn pattern_sum() -> u32 {
    patterns(
        (1, (2, 100)),
        Pair { a: 3, b: (4, 100) },
        Wrap(5, 100),
        [6, 7],
        &8,
        9,
        10,
        11,
    )
}

#[growable]
fn conditional_move(a: D, b: D, c: D, keep: bool) -> Option<D> {
    let _ = (&b, &c);
    let _local = D(9);
    if keep { None } else { Some(a) }
}

fn conditional_move_plain(a: D, b: D, c: D, keep: bool) -> Option<D> {
    let _ = (&b, &c);
    let _local = D(9);
    if keep { None } else { Some(a) }
}

#[allow(dead_code)]
struct Owner(D);

impl Owner {
    #[growable]
    fn consume(self, a: D, keep: bool) -> Option<Self> {
        let _ = &a;
        if keep { Some(self) } else { None }
    }

    fn consume_plain(self, a: D, keep: bool) -> Option<Self> {
        let _ = &a;
        if keep { Some(self) } else { None }
    }
}

#[allow(dead_code)]
struct Owner2(D);

#[growable]
impl Owner2 {
    fn consume(self, a: D, (b, _): (D, D), keep: bool) -> Option<Self> {
        let _ = (&a, &b);
        if keep { Some(self) } else { None }
    }
}

impl Owner2 {
    fn consume_plain(self, a: D, (b, _): (D, D), keep: bool) -> Option<Self> {
        let _ = (&a, &b);
        if keep { Some(self) } else { None }
    }
}

#[test]
fn parameter_patterns() {
    always(1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 10 + 10 + 12, pattern_sum);
}

#[test]
fn drop_order_matches_the_plain_function() {
    for keep in [true, false] {
        drop(conditional_move_plain(D(1), D(2), D(3), keep));
        let want = log();
        let got = common::three_ways(if keep {
            || {
                drop(conditional_move(D(1), D(2), D(3), true));
                log()
            }
        } else {
            || {
                drop(conditional_move(D(1), D(2), D(3), false));
                log()
            }
        });
        for g in got {
            assert_eq!(g, want, "keep = {keep}");
        }

        drop(Owner(D(1)).consume_plain(D(2), keep));
        let want = log();
        let got = common::three_ways(if keep {
            || {
                drop(Owner(D(1)).consume(D(2), true));
                log()
            }
        } else {
            || {
                drop(Owner(D(1)).consume(D(2), false));
                log()
            }
        });
        for g in got {
            assert_eq!(g, want, "keep = {keep}");
        }

        drop(Owner2(D(1)).consume_plain(D(2), (D(3), D(4)), keep));
        let want = log();
        let got = common::three_ways(if keep {
            || {
                drop(Owner2(D(1)).consume(D(2), (D(3), D(4)), true));
                log()
            }
        } else {
            || {
                drop(Owner2(D(1)).consume(D(2), (D(3), D(4)), false));
                log()
            }
        });
        for g in got {
            assert_eq!(g, want, "keep = {keep}");
        }
    }
}

// --- Large locals: the out-of-line body -------------------------------------------

#[growable]
fn big_frame((seed, _): (u64, D), n: u32) -> u64 {
    let mut buf = [0u64; 4096];
    buf[(n % 4096) as usize] = seed;
    if n == 0 {
        buf.iter().sum()
    } else {
        big_frame((seed + 1, D(0)), n - 1) + std::hint::black_box(&buf)[(n % 4096) as usize]
    }
}

#[test]
fn large_locals() {
    always((0..=20u64).sum::<u64>(), || {
        let v = big_frame((0, D(0)), 20);
        log();
        v
    });
}

// --- Mutual recursion, and a nosplit leaf alone -------------------------------------

#[growable]
fn is_even(n: u32) -> bool {
    n == 0 || is_odd(n - 1)
}

#[growable]
fn is_odd(n: u32) -> bool {
    n != 0 && is_even(n - 1)
}

#[nosplit]
fn tiny(x: u32) -> u32 {
    x + 1
}

#[test]
fn mutual_recursion() {
    always((true, false), || (is_even(1000), is_even(1001)));
    always(2, || tiny(1));
}

// --- Sixteen parameters in the closure form ----------------------------------------

impl Chain {
    #[growable]
    #[allow(clippy::too_many_arguments)]
    fn sixteen(
        &self,
        a: u8,
        b: u8,
        c: u8,
        d: u8,
        e: u8,
        f: u8,
        g: u8,
        h: u8,
        i: u8,
        j: u8,
        k: u8,
        l: u8,
        m: u8,
        n: u8,
        o: u8,
        (p, _): (u8, u8),
    ) -> u32 {
        [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]
            .iter()
            .map(|&x| u32::from(x))
            .sum::<u32>()
            + self.0
    }
}

#[test]
fn sixteen_parameters() {
    always(16 + 1, || {
        Chain(1).sixteen(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, (1, 0))
    });
}

// --- Parameters named only inside a format string --------------------------------

#[growable]
fn only_in_a_format_string(x: u32, width: usize) -> String {
    format!("{x:>width$}")
}

#[test]
fn parameters_named_only_inside_format_strings() {
    always("   7".to_string(), || only_in_a_format_string(7, 4));
}

// --- Fields of `self` moved out on some paths -------------------------------------

#[allow(dead_code)]
struct Fields {
    first: D,
    second: D,
}

impl Fields {
    #[growable]
    fn second_unless(self, keep: bool) -> Option<D> {
        if keep { None } else { Some(self.second) }
    }

    fn second_unless_plain(self, keep: bool) -> Option<D> {
        if keep { None } else { Some(self.second) }
    }

    #[growable]
    fn named_second_unless(self: Fields, keep: bool) -> Option<D> {
        if keep { None } else { Some(self.second) }
    }

    #[growable]
    fn boxed_second_unless(self: Box<Self>, keep: bool) -> Option<D> {
        if keep { None } else { Some(self.second) }
    }
}

fn fields() -> Fields {
    Fields {
        first: D(1),
        second: D(2),
    }
}

#[test]
fn fields_of_self_drop_in_the_plain_order() {
    drop(fields().second_unless_plain(true));
    assert_eq!(log(), [1, 2]);
    always(vec![1, 2], || {
        drop(fields().second_unless(true));
        log()
    });
    always(vec![1, 2], || {
        drop(Box::new(fields()).boxed_second_unless(true));
        log()
    });
    always(vec![1, 2], || {
        drop(fields().named_second_unless(true));
        log()
    });
    always(vec![1, 2], || {
        drop(fields().second_unless(false));
        log()
    });
}

// --- #[nosplit] checks see only calls that can be the function itself ---------

trait Area {
    fn area(&self) -> u32;
}

struct Inner(u32);
struct Outer(Inner);

impl Area for Inner {
    fn area(&self) -> u32 {
        self.0
    }
}

fn len(x: &[u8]) -> usize {
    x.len()
}

#[growable]
impl Area for Outer {
    // Calls another type's `area` and a free `len`, not itself.
    #[nosplit]
    fn area(&self) -> u32 {
        <Inner as Area>::area(&self.0) + self.len() as u32
    }
}

#[growable]
impl Outer {
    #[nosplit]
    fn len(&self) -> usize {
        len(&[1, 2])
    }
}

// `#[cfg_attr(p, nosplit)]` and `#[cfg_attr(p, track_caller)]` in a block.
struct Conditional;

#[growable]
impl Conditional {
    #[cfg_attr(unix, nosplit)]
    fn leaf(&self) -> u32 {
        1
    }

    #[cfg_attr(unix, track_caller)]
    fn location(&self) -> u32 {
        std::panic::Location::caller().line()
    }
}

#[test]
fn nosplit_checks_and_conditional_attributes() {
    always(2 + 2, || Outer(Inner(2)).area());
    always(1, || Conditional.leaf());
    always(1, || {
        let line = line!();
        Conditional.location() - line
    });
}

// --- Lint expectations on parameters --------------------------------------------

#[growable]
fn expectations(
    #[expect(unused_variables)] unused: u32,
    #[expect(unused_mut)] mut never_mutated: u32,
    n: u32,
) -> u32 {
    never_mutated + n
}

#[test]
fn lint_expectations_on_parameters_hold() {
    always(3, || expectations(0, 1, 2));
}
