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
    let workers = workers(name, args)?;
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
    if let ReturnType::Type(_, ty) = &sig.output
        && let Some(object) = not_send_object(ty)
    {
        return Err(Error::new_spanned(
            object,
            format!(
                "the value a #[growstack::{name}] function returns comes back from a task, so \
                 it must be `Send`: write `dyn Error + Send + Sync` (for `?` on any error \
                 type, `Box<dyn std::error::Error + Send + Sync>`)"
            ),
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
    let workers = workers.map(|n| quote!(.workers(#n)));
    let start = quote_spanned! {sig.span()=>
        ::growstack::Runtime::builder() #workers .build()
            .expect("growstack: cannot start the runtime")
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

/// `workers = N`, the only argument (a trailing comma allowed): the number
/// of worker threads (the default is one per CPU, as `Runtime::new` has
/// it), checked here against the runtime's bounds.
fn workers(name: &str, args: TokenStream) -> syn::Result<Option<syn::LitInt>> {
    if args.is_empty() {
        return Ok(None);
    }
    let usage = || format!("#[growstack::{name}] takes only `workers = <number of threads>`");
    let parsed = syn::parse::Parser::parse2(
        |input: syn::parse::ParseStream| {
            let key: syn::Ident = input.parse()?;
            input.parse::<syn::Token![=]>()?;
            let value: syn::LitInt = input.parse()?;
            if !input.is_empty() {
                input.parse::<syn::Token![,]>()?;
            }
            Ok((key, value))
        },
        args.clone(),
    );
    let value = match parsed {
        Ok((key, value)) if key == "workers" => value,
        _ => return Err(Error::new_spanned(args, usage())),
    };
    let n: usize = value
        .base10_parse()
        .map_err(|_| Error::new_spanned(&value, usage()))?;
    if n == 0 || n > MAX_WORKERS {
        return Err(Error::new_spanned(
            value,
            format!("a runtime has 1 to {MAX_WORKERS} workers"),
        ));
    }
    // Unsuffixed: `2u8` is a number of workers too.
    Ok(Some(syn::LitInt::new(&n.to_string(), value.span())))
}

/// The runtime's own bound (`Builder::build`).
const MAX_WORKERS: usize = 4096;

/// An owned trait object without `Send` in `ty` (`Box<dyn Error>`, also in
/// `Arc` or `Rc`), which a task cannot return. A reference to one may be
/// `Send` (`&(dyn Error + Sync)`), and other shapes are left to the type
/// check.
fn not_send_object(ty: &syn::Type) -> Option<&syn::TypeTraitObject> {
    struct Finder<'a>(Option<&'a syn::TypeTraitObject>);
    impl<'a> syn::visit::Visit<'a> for Finder<'a> {
        fn visit_path_segment(&mut self, seg: &'a syn::PathSegment) {
            let owner = seg.ident == "Box" || seg.ident == "Arc" || seg.ident == "Rc";
            if owner
                && self.0.is_none()
                && let syn::PathArguments::AngleBracketed(args) = &seg.arguments
                && let Some(syn::GenericArgument::Type(syn::Type::TraitObject(t))) =
                    args.args.first()
            {
                let send = t.bounds.iter().any(|b| {
                    matches!(b, syn::TypeParamBound::Trait(tr)
                        if tr.path.segments.last().is_some_and(|s| s.ident == "Send"))
                });
                if !send {
                    self.0 = Some(t);
                }
            }
            syn::visit::visit_path_segment(self, seg);
        }
    }
    let mut f = Finder(None);
    syn::visit::Visit::visit_type(&mut f, ty);
    f.0
}
