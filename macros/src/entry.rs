//! `#[growstack::main]` and `#[growstack::test]`: run a function's body as
//! a task on a fresh runtime.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, ItemFn, ReturnType};

/// Which attribute is expanded.
#[derive(Clone, Copy)]
pub enum Entry {
    Main,
    Test,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Main => "main",
            Entry::Test => "test",
        }
    }
}

pub fn expand(entry: Entry, args: TokenStream, input: TokenStream) -> TokenStream {
    let is_main = syn::parse2::<ItemFn>(input.clone()).is_ok_and(|f| f.sig.ident == "main");
    match try_expand(entry, args, input) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = crate::diag::to_compile_error(err);
            if is_main {
                // A rejected `main` is gone: without a stand-in, rustc would
                // add "`main` function not found" to the one error that
                // matters.
                tokens.extend(quote!(
                    fn main() {}
                ));
            }
            tokens
        }
    }
}

fn try_expand(entry: Entry, args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let name = entry.name();
    if !args.is_empty() {
        return Err(Error::new_spanned(
            args,
            format!("#[growstack::{name}] takes no arguments"),
        ));
    }
    let f: ItemFn = syn::parse2(input)?;
    let sig = &f.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(Error::new_spanned(
            asyncness,
            format!("#[growstack::{name}] runs plain blocking code as a task; remove `async`"),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new_spanned(
            &sig.inputs,
            format!("a #[growstack::{name}] function takes no arguments"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            format!("a #[growstack::{name}] function cannot be generic"),
        ));
    }
    let attrs = &f.attrs;
    let vis = &f.vis;
    let block = &f.block;
    let output = &sig.output;
    let closure_ret = match output {
        ReturnType::Default => quote!(),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let start = quote_spanned! {sig.span()=>
        ::growstack::Runtime::new().expect("growstack: cannot start the runtime")
    };
    // Hygienic: the body cannot see these, nor they its names.
    let runtime = syn::Ident::new("runtime", proc_macro2::Span::mixed_site());
    let result = syn::Ident::new("result", proc_macro2::Span::mixed_site());
    Ok(match entry {
        // Like Go: when main returns the process exits, whatever other
        // tasks still do, so the runtime is not shut down and joined.
        Entry::Main => quote! {
            #(#attrs)*
            #vis #sig {
                let #runtime = #start;
                let #result = #runtime.block_on(move || #closure_ret #block);
                ::growstack::__private::forget(#runtime);
                #result
            }
        },
        Entry::Test => quote! {
            #[::growstack::__private::test]
            #(#attrs)*
            #vis #sig {
                #start.block_on(move || #closure_ret #block)
            }
        },
    })
}
