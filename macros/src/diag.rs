//! Compile errors that resolve in every edition.
//!
//! `syn::Error::to_compile_error` writes `::core::compile_error!`, and in
//! edition 2015 `::core` is a path from the crate root, where `core` is
//! not: every message would become "cannot find `core` in the crate root".
//! These go through `::growstack::__private`, which 2015 code reaches
//! through its `extern crate growstack`.

use proc_macro2::{Ident, Punct, Spacing, TokenStream, TokenTree};

/// `err` as `::growstack::__private::compile_error! { "..." }`, once per
/// message, with syn's spans.
pub fn to_compile_error(err: syn::Error) -> TokenStream {
    let mut out = Vec::new();
    let tokens = err.to_compile_error();
    for t in tokens {
        match &t {
            TokenTree::Ident(i) if i == "core" => {
                out.push(TokenTree::Ident(Ident::new("growstack", i.span())));
                let mut colon = Punct::new(':', Spacing::Joint);
                colon.set_span(i.span());
                out.push(TokenTree::Punct(colon));
                let mut colon = Punct::new(':', Spacing::Alone);
                colon.set_span(i.span());
                out.push(TokenTree::Punct(colon));
                out.push(TokenTree::Ident(Ident::new("__private", i.span())));
            }
            _ => out.push(t),
        }
    }
    out.into_iter().collect()
}
