//! Procedural macros of [growstack](https://docs.rs/growstack). Use them
//! through the `growstack` crate: `#[growstack::growable]`,
//! `#[growstack::nosplit]`, `#[growstack::main]`, `#[growstack::test]`.
//!
//! Each entry point parses its input and hands it to `expand`, whose module
//! docs state what an instrumented function is; parsing of arguments is in
//! `args`, the checks that reject inputs in `check`, the copies for
//! `#[cfg]` parameters in `cfg_params`, and the estimate of large frames in
//! `frame`; `entry` expands `main` and `test`.

mod args;
mod cfg_params;
mod check;
mod diag;
mod entry;
mod expand;
mod frame;

use proc_macro::TokenStream;

// Documented where `growstack` re-exports it (`growstack::growable`): doc
// comments here would be appended to that page.
#[proc_macro_attribute]
pub fn growable(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::growable(args.into(), input.into()).into()
}

// Documented where `growstack` re-exports it (`growstack::nosplit`): doc
// comments here would be appended to that page.
#[proc_macro_attribute]
pub fn nosplit(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::nosplit(args.into(), input.into()).into()
}

// Documented where `growstack` re-exports it (`growstack::main`): doc
// comments here would be appended to that page.
#[proc_macro_attribute]
pub fn main(args: TokenStream, input: TokenStream) -> TokenStream {
    entry::expand(entry::Entry::Main, args.into(), input.into()).into()
}

// Documented where `growstack` re-exports it (`growstack::test`): doc
// comments here would be appended to that page.
#[proc_macro_attribute]
pub fn test(args: TokenStream, input: TokenStream) -> TokenStream {
    entry::expand(entry::Entry::Test, args.into(), input.into()).into()
}
