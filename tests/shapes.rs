//! Every shape of function `#[growable]` accepts, each driven deep enough to
//! grow: every test runs on a thread with a 64 KiB stack, where the same
//! recursion without growth would overflow many times over.

use std::pin::Pin;

use growstack::{growable, nosplit};

const DEPTH: u32 = 100_000;

/// Runs `f` on a thread whose native stack is only 64 KiB.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[growable]
fn sum_generic<T: Copy + Into<u64>, const K: usize>(xs: &[T; K], n: u32) -> u64
where
    [T; K]: std::fmt::Debug,
{
    if n == 0 {
        0
    } else {
        xs[n as usize % K].into() + sum_generic(xs, n - 1)
    }
}

#[test]
fn generic_fn_with_const_param() {
    let got = on_small_stack(|| sum_generic::<u8, 3>(&[1, 2, 3], DEPTH));
    let want: u64 = (1..=DEPTH as u64)
        .map(|i| [1, 2, 3][(i % 3) as usize])
        .sum();
    assert_eq!(got, want);
}

#[growable]
fn pick_longer<'a>(a: &'a str, b: &'a str, n: u32) -> &'a str {
    if n == 0 {
        if a.len() >= b.len() { a } else { b }
    } else {
        pick_longer(b, a, n - 1)
    }
}

#[test]
fn lifetimes_flow_through() {
    let got = on_small_stack(|| {
        let a = String::from("short");
        let b = String::from("much longer");
        pick_longer(&a, &b, DEPTH).to_owned()
    });
    assert_eq!(got, "much longer");
}

struct Wrapper(u64);

#[growable]
fn patterns((a, b): (u32, u32), mut acc: u64, Wrapper(w): Wrapper, _: ()) -> u64 {
    acc += u64::from(a) + w;
    if b == 0 {
        acc
    } else {
        patterns((a, b - 1), acc, Wrapper(w), ())
    }
}

#[test]
fn argument_patterns_are_rebound() {
    let got = on_small_stack(|| patterns((2, DEPTH), 0, Wrapper(1), ()));
    assert_eq!(got, 3 * (u64::from(DEPTH) + 1));
}

#[growable]
fn apply_all(n: u32, f: &impl Fn(u32) -> u64) -> u64 {
    if n == 0 {
        0
    } else {
        f(n) + apply_all(n - 1, f)
    }
}

#[growable]
fn digits(n: u64, pad: u32) -> impl Iterator<Item = u64> {
    if pad > 0 {
        return digits(n, pad - 1).collect::<Vec<_>>().into_iter();
    }
    let mut v: Vec<u64> = if n < 10 {
        Vec::new()
    } else {
        digits(n / 10, 0).collect()
    };
    v.push(n % 10);
    v.into_iter()
}

#[test]
fn impl_trait_in_argument_and_return_position() {
    let got = on_small_stack(|| apply_all(DEPTH, &|x| u64::from(x) * 2));
    assert_eq!(got, u64::from(DEPTH) * (u64::from(DEPTH) + 1));
    let got: Vec<u64> = on_small_stack(|| digits(9_081_726_354, DEPTH).collect());
    assert_eq!(got, [9, 0, 8, 1, 7, 2, 6, 3, 5, 4]);
}

/// # Safety
/// `p` must point to `n + 1` readable `u32`s.
#[growable]
unsafe fn sum_raw(p: *const u32, n: usize) -> u64 {
    // SAFETY: the caller guarantees n + 1 readable values from p.
    let v = u64::from(unsafe { *p.add(n) });
    // SAFETY: the same contract for n - 1.
    if n == 0 {
        v
    } else {
        v + unsafe { sum_raw(p, n - 1) }
    }
}

#[test]
fn unsafe_fn() {
    let got = on_small_stack(|| {
        let v: Vec<u32> = (0..=DEPTH).collect();
        // SAFETY: v holds DEPTH + 1 values.
        unsafe { sum_raw(v.as_ptr(), DEPTH as usize) }
    });
    assert_eq!(got, u64::from(DEPTH) * (u64::from(DEPTH) + 1) / 2);
}

#[growable]
fn sink(n: u32) -> ! {
    if n == 0 {
        std::panic::panic_any(n);
    }
    sink(n - 1)
}

#[test]
fn never_returning_fn() {
    let err = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(|| sink(DEPTH))
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.downcast_ref::<u32>(), Some(&0));
}

#[growable]
fn nesting(input: &[u8], depth: usize) -> Result<usize, String> {
    let Some((&first, rest)) = input.split_first() else {
        return Err(format!("unexpected end at depth {depth}"));
    };
    match first {
        b'(' => {
            let inner = nesting(rest, depth + 1)?;
            Ok(inner)
        }
        b'x' if depth > 0 => Ok(depth),
        other => Err(format!("unexpected {:?}", other as char)),
    }
}

#[test]
fn question_mark_and_early_return() {
    let (ok, err) = on_small_stack(|| {
        let mut text = vec![b'('; DEPTH as usize];
        text.push(b'x');
        let ok = nesting(&text, 0);
        text.pop();
        (ok, nesting(&text, 0))
    });
    assert_eq!(ok, Ok(DEPTH as usize));
    assert_eq!(err, Err(format!("unexpected end at depth {DEPTH}")));
}

#[derive(Clone)]
struct Counter {
    n: u32,
    total: u64,
}

#[growable]
impl Counter {
    fn new_chain(n: u32) -> Counter {
        if n == 0 {
            Counter { n: DEPTH, total: 0 }
        } else {
            Counter::new_chain(n - 1)
        }
    }
    fn by_ref(&self, n: u32) -> u64 {
        if n == 0 {
            u64::from(self.n)
        } else {
            1 + self.by_ref(n - 1)
        }
    }
    fn by_mut(&mut self, n: u32) {
        self.total += 1;
        if n > 0 {
            self.by_mut(n - 1);
        }
    }
    fn by_value(self, n: u32) -> Counter {
        if n == 0 {
            self
        } else {
            Counter {
                total: self.total + 1,
                ..self
            }
            .by_value(n - 1)
        }
    }
    fn boxed(self: Box<Self>, n: u32) -> u64 {
        if n == 0 {
            self.total
        } else {
            Box::new(Counter {
                total: self.total + 2,
                n: 0,
            })
            .boxed(n - 1)
        }
    }
    fn pinned(mut self: Pin<&mut Self>, n: u32) -> u64 {
        self.total += 3;
        if n == 0 {
            self.total
        } else {
            self.as_mut().pinned(n - 1)
        }
    }
    #[nosplit]
    fn peek(&self) -> u32 {
        self.n
    }
}

#[test]
fn every_receiver() {
    let got = on_small_stack(|| {
        let mut c = Counter::new_chain(DEPTH);
        let by_ref = c.by_ref(DEPTH);
        c.by_mut(DEPTH);
        let after_mut = c.total;
        let by_value = c.clone().by_value(DEPTH).total;
        let boxed = Box::new(Counter { n: 0, total: 0 }).boxed(DEPTH);
        let mut pinned = Counter { n: 0, total: 0 };
        let pinned = Pin::new(&mut pinned).pinned(DEPTH);
        (c.peek(), by_ref, after_mut, by_value, boxed, pinned)
    });
    let d = u64::from(DEPTH);
    assert_eq!(got, (DEPTH, 2 * d, d + 1, 2 * d + 1, 2 * d, 3 * (d + 1)));
}

trait Walk<T> {
    fn step(&self, n: u32) -> T;

    fn walk(&self, n: u32) -> Vec<T> {
        let mut v = if n == 0 { Vec::new() } else { self.walk(n - 1) };
        v.push(self.step(n));
        v
    }
}

#[growable]
trait Visit {
    fn visit(&self, n: u32) -> u64 {
        if n == 0 {
            self.leaf()
        } else {
            1 + self.visit(n - 1)
        }
    }
    fn leaf(&self) -> u64;
}

struct Stepper;

#[growable]
impl Walk<u8> for Stepper {
    fn step(&self, n: u32) -> u8 {
        (n % 251) as u8
    }
    fn walk(&self, n: u32) -> Vec<u8> {
        if n == 0 {
            vec![0]
        } else {
            [self.walk(n - 1), vec![self.step(n)]].concat()
        }
    }
}

impl Visit for Stepper {
    fn leaf(&self) -> u64 {
        7
    }
}

#[test]
fn trait_definition_and_trait_impl() {
    let (visited, walked_len, last) = on_small_stack(|| {
        let visited = Stepper.visit(DEPTH);
        let walked = Stepper.walk(20_000);
        (visited, walked.len(), walked[walked.len() - 1])
    });
    assert_eq!(visited, u64::from(DEPTH) + 7);
    assert_eq!(walked_len, 20_001);
    assert_eq!(last, (20_000 % 251) as u8);
}

struct Stack<T> {
    items: Vec<T>,
}

#[growable]
impl<T: Clone + PartialEq> Stack<T> {
    fn count_equal(&self, i: usize, x: &T) -> usize {
        if i == self.items.len() {
            0
        } else {
            usize::from(self.items[i] == *x) + self.count_equal(i + 1, x)
        }
    }
}

#[test]
fn generic_impl_block() {
    let got = on_small_stack(|| {
        let s = Stack {
            items: (0..DEPTH).map(|i| i % 4).collect(),
        };
        s.count_equal(0, &3)
    });
    assert_eq!(got, DEPTH as usize / 4);
}

#[growable]
mod tree {
    pub enum Expr {
        Num(i64),
        Add(Box<Expr>, Box<Expr>),
        Neg(Box<Expr>),
    }

    pub fn eval(e: &Expr) -> i64 {
        match e {
            Expr::Num(n) => *n,
            Expr::Add(a, b) => eval(a) + eval(b),
            Expr::Neg(a) => negate(eval(a)),
        }
    }

    #[nosplit]
    fn negate(x: i64) -> i64 {
        -x
    }

    pub mod nested {
        pub fn count(e: &super::Expr) -> usize {
            match e {
                super::Expr::Num(_) => 1,
                super::Expr::Add(a, b) => 1 + count(a) + count(b),
                super::Expr::Neg(a) => 1 + count(a),
            }
        }
    }

    impl Drop for Expr {
        fn drop(&mut self) {
            let placeholder = || Box::new(Expr::Num(0));
            match self {
                Expr::Num(_) => {}
                Expr::Add(a, b) => drop((
                    std::mem::replace(a, placeholder()),
                    std::mem::replace(b, placeholder()),
                )),
                Expr::Neg(a) => drop(std::mem::replace(a, placeholder())),
            }
        }
    }
}

#[test]
fn inline_module_recursively() {
    let got = on_small_stack(|| {
        use tree::Expr;
        let mut e = Expr::Num(1);
        for i in 0..DEPTH {
            e = if i % 2 == 0 {
                Expr::Add(Box::new(e), Box::new(Expr::Num(2)))
            } else {
                Expr::Neg(Box::new(e))
            };
        }
        (tree::eval(&e), tree::nested::count(&e))
    });
    // Each Add/Neg pair maps x to -(x + 2).
    let mut want = 1i64;
    for i in 0..DEPTH {
        want = if i % 2 == 0 { want + 2 } else { -want };
    }
    assert_eq!(
        got,
        (want, 1 + DEPTH as usize + (DEPTH as usize).div_ceil(2))
    );
}

struct Plain(u32);

impl Plain {
    #[growable]
    fn down(&self, n: u32) -> u32 {
        if n == 0 { self.0 } else { self.down(n - 1) + 1 }
    }

    #[nosplit]
    fn get(&self) -> u32 {
        self.0
    }
}

#[test]
fn method_annotated_alone() {
    let got = on_small_stack(|| Plain(5).down(DEPTH) + Plain(1).get());
    assert_eq!(got, DEPTH + 6);
}

#[growable]
fn labels_and_closures(n: u32) -> u32 {
    let mut found = 0;
    'outer: for i in 0..3 {
        for j in 0..3 {
            if i * j == 2 {
                found = i + j;
                break 'outer;
            }
        }
    }
    let add = |x: u32| x + found - 3;
    if n == 0 {
        0
    } else {
        add(labels_and_closures(n - 1)) + 1
    }
}

#[test]
fn labels_and_closures_in_body() {
    assert_eq!(on_small_stack(|| labels_and_closures(DEPTH)), DEPTH);
}

// --- Shapes that failed to compile before (issue 14) ----------------------
//
// Each is checked as a new thread's first call (the slow path), a later
// call and a growth: see `common::always`.

mod common;

use common::{always, three_ways};

trait Descend {
    #[growable]
    fn walk(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + Self::walk(n - 1) }
    }
}

struct Walker;

impl Descend for Walker {}

#[test]
fn a_trait_default_annotated_alone_calls_itself() {
    // Fixed: E0425, the re-call was a free `walk`.
    always(1000, || <Walker as Descend>::walk(1000));
}

#[growable]
fn echo(echo: u32) -> u32 {
    echo
}

#[test]
fn a_parameter_may_have_the_function_s_name() {
    // Fixed: E0618, the re-call called the parameter.
    always(7, || echo(7));
}

#[growable]
fn cfg_param(#[cfg(windows)] gone: u32, #[cfg(unix)] kept: u32, last: u32) -> u32 {
    kept * 10 + last
}

struct Meter;

#[growable]
impl Meter {
    fn cfg_method(&self, #[cfg(not(windows))] a: u32, #[cfg(windows)] b: String) -> u32 {
        a
    }
}

#[test]
fn cfg_on_parameters() {
    always(12, || cfg_param(1, 2));
    always(3, || Meter.cfg_method(3));
}

mod paths {
    pub struct Type(pub u32);

    #[growstack::growable]
    pub fn unwrap(t: self::Type) -> u32 {
        t.0
    }
}

#[test]
fn a_self_path_in_a_free_fn_is_not_self() {
    // Fixed: `self::Type` made the function a method (`Self::unwrap`).
    always(5, || paths::unwrap(paths::Type(5)));
}

#[growable]
fn ref_mut_param(ref mut x: u32, (ref a, ref mut b): (u32, u32)) -> u32 {
    *x += 1;
    *b += *a;
    *x + *b
}

#[test]
fn ref_and_ref_mut_patterns() {
    always(2 + 5, || ref_mut_param(1, (2, 3)));
}

static ALONE_DROPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

struct AloneDrop;

impl Drop for AloneDrop {
    #[growable]
    fn drop(&mut self) {
        ALONE_DROPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

use std::ops::Drop as Destroy;

struct AliasDrop(u32);

#[growable]
impl Destroy for AliasDrop {
    fn drop(&mut self) {
        ALONE_DROPS.fetch_add(self.0, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn drop_annotated_alone_or_through_an_alias() {
    three_ways(|| drop(AloneDrop));
    three_ways(|| drop(AliasDrop(100)));
    assert_eq!(ALONE_DROPS.load(std::sync::atomic::Ordering::SeqCst), 303);
}

trait Convert<T> {
    fn convert(&self, n: u32) -> T;
}

struct Conv;

impl Convert<u64> for Conv {
    #[growable]
    fn convert(&self, n: u32) -> u64 {
        if n == 0 {
            0
        } else {
            1 + Convert::<u64>::convert(self, n - 1)
        }
    }
}

impl Convert<u8> for Conv {
    fn convert(&self, n: u32) -> u8 {
        n as u8
    }
}

#[test]
fn one_of_two_impls_of_a_generic_trait() {
    // Fixed: E0283, `Self::convert` was ambiguous.
    always(1000u64, || Convert::<u64>::convert(&Conv, 1000));
}

trait Base {
    fn name(&self) -> &'static str {
        "base"
    }
}

trait Derived: Base {
    #[growable]
    fn name(&self) -> &'static str {
        "derived"
    }
}

impl Base for Conv {}
impl Derived for Conv {}

#[test]
fn a_default_method_sharing_a_supertrait_method_s_name() {
    // Fixed: E0034.
    always("derived", || Derived::name(&Conv));
    assert_eq!(Base::name(&Conv), "base");
}

#[growable(frame = 64)]
fn boxed(n: u32) -> Box<dyn std::fmt::Debug> {
    if n == 0 {
        return Box::new(0u8);
    }
    Box::new("many")
}

#[test]
fn returns_coerce_to_the_declared_type_out_of_line() {
    // Fixed: the out-of-line closure took its type from the first return.
    always("0".to_string(), || format!("{:?}", boxed(0)));
    always("\"many\"".to_string(), || format!("{:?}", boxed(1)));
}

#[growable]
trait Evens {
    fn evens(&self, n: u32) -> impl Iterator<Item = u32> {
        (0..n).filter(|x| x % 2 == 0)
    }
}

impl Evens for Conv {}

#[test]
fn a_default_method_returning_impl_trait() {
    // Fixed: E0792, the re-call's closure returned the opaque type.
    always(vec![0, 2, 4], || Conv.evens(6).collect::<Vec<_>>());
}

#[allow(non_camel_case_types)]
struct __GROWSTACK_FRAME;

#[growable]
#[allow(non_snake_case)]
fn clashing_names(__growstack_arg0: u32, (__growstack_body, _): (u32, u32)) -> u32 {
    #[allow(non_upper_case_globals, dead_code)]
    static __GROWSTACK_FRAME: u32 = 7;
    let _ = super_frame();
    __growstack_arg0 + __growstack_body + __GROWSTACK_FRAME
}

fn super_frame() -> __GROWSTACK_FRAME {
    __GROWSTACK_FRAME
}

#[test]
fn user_names_never_clash_with_the_expansion_s() {
    always(1 + 2 + 7, || clashing_names(1, (2, 3)));
}

struct Twice;

#[growable]
impl Drop for Twice {
    fn drop(&mut self) {
        // An impl in the body conflicted with its own copy (E0119).
        struct Local;
        impl Clone for Local {
            fn clone(&self) -> Local {
                Local
            }
        }
        let _ = Local.clone();
    }
}

#[test]
fn an_impl_inside_a_growable_drop() {
    three_ways(|| drop(Twice));
}

// --- Shapes from the adversarial review of the new expansion ---------------

#[growable]
fn longer_than(n: usize) -> impl Fn(&str) -> bool {
    // A closure returned as `impl Fn(&str)`: its parameter type comes from
    // the opaque type's bound, which the re-call form keeps.
    move |s| s.len() > n
}

#[growable]
fn raw_names(r#gen: u32, (r#type, _): (u32, u32), kind: u32) -> u32 {
    r#gen + r#type + r#kind
}

#[growable]
fn hidden_name_clash(arg1: u32, (a, b): (u32, u32)) -> u32 {
    arg1 + a + b
}

#[growable]
fn cfg_attr_cfg(#[cfg_attr(unix, cfg(windows))] gone: u32, kept: u32) -> u32 {
    kept
}

trait Describe {
    fn describe(&self) -> &'static str;
}

impl Describe for u8 {
    fn describe(&self) -> &'static str {
        "u8"
    }
}

#[growable]
impl dyn Describe {
    // Compiles: `Self::describe` would be ambiguous with the trait's.
    #[allow(dead_code)]
    fn describe(&self) -> &'static str {
        "inherent on dyn"
    }

    fn kind(&self) -> &'static str {
        "dyn"
    }
}

trait Stroll {
    fn stroll<Stroll: Copy>(&self, x: Stroll, n: u32) -> u32;
}

#[growable]
impl Stroll for u8 {
    fn stroll<Stroll: Copy>(&self, x: Stroll, n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + self.stroll(x, n - 1) }
    }
}

mod helpers {
    pub mod __private {
        pub fn noop() {}
    }
}

#[growable]
fn starts_with_private(n: u32) -> u32 {
    helpers::__private::noop();
    if n == 0 {
        0
    } else {
        1 + starts_with_private(n - 1)
    }
}

#[test]
fn adversarial_shapes() {
    always((true, false), || {
        (longer_than(2)("abc"), longer_than(3)("abc"))
    });
    always(1 + 2 + 4, || raw_names(1, (2, 3), 4));
    always(1 + 2 + 3, || hidden_name_clash(1, (2, 3)));
    always(5, || cfg_attr_cfg(5));
    always(("dyn", "u8"), || {
        let d: &dyn Describe = &7u8;
        (d.kind(), Describe::describe(&7u8))
    });
    always(1000, || 0u8.stroll((), 1000));
}

#[test]
fn a_body_starting_with_a_private_module_is_instrumented() {
    // Fixed: a first statement naming any `__private` made the function
    // look already instrumented, and it was left without a check.
    assert_eq!(on_small_stack(|| starts_with_private(DEPTH)), DEPTH);
}

// --- Shapes from the second review ------------------------------------------

struct Items {
    items: Vec<u32>,
}

impl<'a> IntoIterator for &'a mut Items {
    type Item = &'a mut u32;
    type IntoIter = std::slice::IterMut<'a, u32>;

    // A by-value receiver holding a `&'a mut`, reborrowed for `'a`.
    #[growable]
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter_mut()
    }
}

struct Holder<'a> {
    r: &'a mut (u32, u32),
}

impl<'a> Holder<'a> {
    #[growable]
    fn into_x(self) -> &'a mut u32 {
        &mut self.r.0
    }
}

trait Greet {
    fn greet(&self, who: &'static str) -> usize;
}

impl Greet for Items {
    // More general than the trait's signature: annotated alone (the
    // closure form), not through the trait.
    #[growable]
    fn greet(&self, who: &str) -> usize {
        who.len() + self.items.len()
    }
}

static TOKENS_DROPPED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

struct Token;

impl Drop for Token {
    fn drop(&mut self) {
        TOKENS_DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[growable]
#[allow(non_snake_case)]
fn needs_token(Token: Token, n: u32) -> u32 {
    n + 1
}

macro_rules! numbers {
    () => { impl Iterator<Item = u32> };
}

impl Items {
    #[growable]
    fn numbers(&self, n: u32) -> numbers!() {
        0..n + self.items.len() as u32
    }
}

trait Shape {
    fn area(&self) -> u32;
}

impl Shape for u8 {
    fn area(&self) -> u32 {
        u32::from(*self)
    }
}

#[growable]
#[allow(unused_parens)]
impl (dyn Shape) {
    #[allow(dead_code)]
    fn area(&self) -> u32 {
        0
    }

    fn doubled(&self) -> u32 {
        Shape::area(self) * 2
    }
}

#[growable]
fn body_named_param(__growstack_body: u32, (a, _): (u32, u32)) -> u32 {
    __growstack_body + a
}

struct Nested;

#[growable]
impl Nested {
    #[cfg_attr(all(unix), cfg_attr(unix, track_caller))]
    fn location(&self) -> u32 {
        std::panic::Location::caller().line()
    }

    #[cfg_attr(unix, cfg_attr(unix, nosplit))]
    fn leaf(&self, #[cfg_attr(unix, cfg_attr(unix, cfg(windows)))] gone: u32) -> u32 {
        7
    }
}

#[test]
fn second_review_shapes() {
    always(vec![2, 3], || {
        let mut items = Items { items: vec![1, 2] };
        for x in &mut items {
            *x += 1;
        }
        items.items
    });
    always(5, || {
        let mut pair = (4, 0);
        *Holder { r: &mut pair }.into_x() += 1;
        pair.0
    });
    always(3 + 1, || Items { items: vec![1] }.greet("abc"));
    always((8, 1), || {
        let before = TOKENS_DROPPED.load(std::sync::atomic::Ordering::SeqCst);
        let n = needs_token(Token, 7);
        (
            n,
            TOKENS_DROPPED.load(std::sync::atomic::Ordering::SeqCst) - before,
        )
    });
    always(vec![0, 1, 2], || {
        Items { items: vec![1] }.numbers(2).collect::<Vec<_>>()
    });
    always(6, || {
        let s: &dyn Shape = &3u8;
        s.doubled()
    });
    always(3, || body_named_param(1, (2, 9)));
    always((1, 7), || {
        let line = line!();
        (Nested.location() - line, Nested.leaf())
    });
}
