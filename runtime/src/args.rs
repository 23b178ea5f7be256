//! Helpers for the closure form of `#[growable]` (see the macro crate's
//! `expand` module): `argsN(&a, &b, |pat_a, pat_b| body)` returns the
//! closure unchanged, after telling the compiler its parameter types (those
//! of the arguments) and that it is `FnOnce`. The closure's parameters are
//! then exactly the function's own, patterns included, without writing a
//! type the macro cannot name (`impl Trait` arguments) or a signature that
//! closure lifetime elision would read differently (`&str` arguments).

macro_rules! args_helpers {
    ($($name:ident($($a:ident)*);)*) => {$(
        #[doc(hidden)]
        #[inline(always)]
        #[allow(clippy::too_many_arguments)] // one per parameter of the function
        pub fn $name<$($a,)* R, F: FnOnce($($a),*) -> R>($(_: &$a,)* f: F) -> F {
            f
        }
    )*};
}

args_helpers! {
    args0();
    args1(A0);
    args2(A0 A1);
    args3(A0 A1 A2);
    args4(A0 A1 A2 A3);
    args5(A0 A1 A2 A3 A4);
    args6(A0 A1 A2 A3 A4 A5);
    args7(A0 A1 A2 A3 A4 A5 A6);
    args8(A0 A1 A2 A3 A4 A5 A6 A7);
    args9(A0 A1 A2 A3 A4 A5 A6 A7 A8);
    args10(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9);
    args11(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10);
    args12(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11);
    args13(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12);
    args14(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13);
    args15(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14);
    args16(A0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14 A15);
}
