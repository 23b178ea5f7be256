//! Code generation: the check and the re-call (DESIGN.md, "The macro").
//!
//! An instrumented function keeps its body as written; in front of it goes
//!
//! ```text
//! if !::growstack::__private::has_room() && !::growstack::__private::take_bypass() {
//!     static __GROWSTACK_FRAME: FrameDesc = FrameDesc::new("f", module_path!(), file!(), line!(), 0);
//!     return ::growstack::__private::morestack(&__GROWSTACK_FRAME, move || f(a, b));
//! }
//! ```
//!
//! so the fast path is the check and the original body (no closure, no
//! extra frame), and the slow path calls the function again on more stack.
//! (`take_bypass` is true only in stress mode, for the re-call's own check.)
//! Arguments bound by patterns are renamed to plain identifiers and bound
//! again after the check.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{
    Attribute, Block, FnArg, ImplItem, Item, Pat, ReturnType, Signature, TraitItem, Type,
    parse_quote,
};

use crate::args::Args;
use crate::check;
use crate::frame;

/// `#[growable]` on any item.
pub fn growable(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = match syn::parse2::<Args>(args) {
        Ok(args) => args,
        Err(err) => return with_errors(input, vec![err]),
    };
    let mut item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(err) => return with_errors(input, vec![err]),
    };
    let mut errors = Vec::new();
    match &mut item {
        Item::Fn(f) => {
            if let Some(attr) = f.attrs.iter().find(|a| check::is_nosplit(a)) {
                errors.push(both_attributes(attr));
            } else {
                let ctx = if mentions_self(&f.sig) {
                    Ctx::SelfPath
                } else {
                    Ctx::Free
                };
                let result = instrument(&mut f.sig, &mut f.block, &ctx, args);
                errors.extend(result.err());
            }
        }
        item => instrument_item(item, args, &mut errors, true),
    }
    with_errors(item.into_token_stream(), errors)
}

/// `#[nosplit]` outside a `#[growable]` block: checks the function and
/// leaves it as it is.
pub fn nosplit(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(
            args,
            "#[nosplit] takes no arguments",
        ));
    }
    match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Fn(f)) => {
            if let Some(attr) = f.attrs.iter().find(|a| check::is_growable(a)) {
                errors.push(both_attributes(attr));
            }
            errors.extend(check::nosplit_recursion(&f.sig.ident, &f.block));
        }
        Ok(item) => errors.push(syn::Error::new_spanned(
            item_head(&item),
            "#[nosplit] applies to functions only",
        )),
        Err(err) => errors.push(err),
    }
    with_errors(input, errors)
}

/// How an instrumented function names itself for the re-call, and how the
/// profile names it.
enum Ctx {
    /// A free function: `f(...)`.
    Free,
    /// A method annotated on its own: `Self::f(...)`.
    SelfPath,
    /// In an inherent impl: `Self::f(...)`, named `Type::f`.
    Inherent { self_ty: String },
    /// In a trait impl: `<Self as Trait>::f(...)`, named `Type::f`.
    TraitImpl {
        self_ty: String,
        trait_path: TokenStream,
        is_drop: bool,
    },
    /// A default body in a trait: `<Self as Trait<..>>::f(...)`, named `Trait::f`.
    TraitDef {
        name: String,
        trait_path: TokenStream,
    },
}

impl Ctx {
    fn path(&self, f: &syn::Ident) -> TokenStream {
        match self {
            Ctx::Free => quote!(#f),
            Ctx::SelfPath | Ctx::Inherent { .. } => quote!(Self::#f),
            Ctx::TraitImpl { trait_path, .. } | Ctx::TraitDef { trait_path, .. } => {
                quote!(<Self as #trait_path>::#f)
            }
        }
    }

    fn display_name(&self, f: &syn::Ident) -> String {
        match self {
            Ctx::Free | Ctx::SelfPath => f.to_string(),
            Ctx::Inherent { self_ty } | Ctx::TraitImpl { self_ty, .. } => format!("{self_ty}::{f}"),
            Ctx::TraitDef { name, .. } => format!("{name}::{f}"),
        }
    }
}

/// Instruments the functions inside an impl, trait or inline mod; rejects
/// every other item. `top` is the item the attribute was written on.
fn instrument_item(item: &mut Item, args: Args, errors: &mut Vec<syn::Error>, top: bool) {
    match item {
        Item::Fn(f) => {
            let ctx = if mentions_self(&f.sig) {
                Ctx::SelfPath
            } else {
                Ctx::Free
            };
            member(&mut f.attrs, &mut f.sig, &mut f.block, &ctx, args, errors);
        }
        Item::Impl(imp) => {
            let self_ty = type_name(&imp.self_ty);
            let ctx = match &imp.trait_ {
                Some((_, path, _)) => Ctx::TraitImpl {
                    self_ty,
                    trait_path: path.to_token_stream(),
                    is_drop: path.segments.last().is_some_and(|s| s.ident == "Drop"),
                },
                None => Ctx::Inherent { self_ty },
            };
            for it in &mut imp.items {
                if let ImplItem::Fn(f) = it {
                    member(&mut f.attrs, &mut f.sig, &mut f.block, &ctx, args, errors);
                }
            }
        }
        Item::Trait(tr) => {
            let ident = &tr.ident;
            let (_, ty_generics, _) = tr.generics.split_for_impl();
            let ctx = Ctx::TraitDef {
                name: ident.to_string(),
                trait_path: quote!(#ident #ty_generics),
            };
            for it in &mut tr.items {
                if let TraitItem::Fn(f) = it
                    && let Some(block) = &mut f.default
                {
                    member(&mut f.attrs, &mut f.sig, block, &ctx, args, errors);
                }
            }
        }
        Item::Mod(m) => match &mut m.content {
            Some((_, items)) => {
                for it in items {
                    if matches!(
                        it,
                        Item::Fn(_) | Item::Impl(_) | Item::Trait(_) | Item::Mod(_)
                    ) {
                        instrument_item(it, args, errors, false);
                    }
                }
            }
            None => errors.push(syn::Error::new_spanned(
                item_head(item),
                "#[growable] cannot see into a module in another file: put #[growable] on \
                 the items inside it",
            )),
        },
        Item::Verbatim(tokens) if looks_like_fn(tokens) => errors.push(syn::Error::new_spanned(
            &*tokens,
            "#[growable] needs a function with a body: there is nothing to instrument in a \
             declaration",
        )),
        other if top => errors.push(syn::Error::new_spanned(
            item_head(other),
            "#[growable] applies to a fn, an impl block, a trait, or an inline mod",
        )),
        _ => {}
    }
}

/// A function inside an annotated block: honours `#[nosplit]` and an inner
/// `#[growable(...)]`, then instruments it.
fn member(
    attrs: &mut Vec<Attribute>,
    sig: &mut Signature,
    block: &mut Block,
    ctx: &Ctx,
    mut args: Args,
    errors: &mut Vec<syn::Error>,
) {
    let nosplit = attrs.iter().position(check::is_nosplit);
    let growable = attrs.iter().position(check::is_growable);
    match (nosplit, growable) {
        (Some(n), Some(_)) => {
            errors.push(both_attributes(&attrs[n]));
            // Neither attribute resolves on its own inside the block.
            attrs.retain(|a| !check::is_nosplit(a) && !check::is_growable(a));
            return;
        }
        (Some(n), None) => {
            let attr = attrs.remove(n);
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                errors.push(syn::Error::new_spanned(
                    &attr,
                    "#[nosplit] takes no arguments",
                ));
            }
            return errors.extend(check::nosplit_recursion(&sig.ident, block));
        }
        (None, Some(g)) => {
            // Already instrumented by the enclosing attribute; its own
            // arguments apply to this function.
            let attr = attrs.remove(g);
            if let syn::Meta::List(list) = &attr.meta {
                match list.parse_args::<Args>() {
                    Ok(own) => args = own,
                    Err(err) => return errors.push(err),
                }
            }
        }
        (None, None) => {}
    }
    if let Err(err) = instrument(sig, block, ctx, args) {
        errors.push(err);
    }
}

/// Puts the check and the slow path in front of `block`.
fn instrument(sig: &mut Signature, block: &mut Block, ctx: &Ctx, args: Args) -> syn::Result<()> {
    check::signature(sig)?;
    let frame = args.frame.unwrap_or_else(|| frame::estimate(block));
    let out_of_line = args.frame.is_some() || frame > frame::OUT_OF_LINE;
    // Unoptimised builds may keep a second copy of a large local (a
    // temporary moved into place), so ask for twice the locals.
    let frame = if out_of_line {
        frame.saturating_mul(2)
    } else {
        0
    };

    // Plain identifiers for every argument, bound again after the check.
    let mut rebind = Vec::new();
    let mut call_args = Vec::new();
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(_) => call_args.push(quote!(self)),
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    call_args.push(p.ident.to_token_stream());
                }
                _ => {
                    let id = format_ident!("__growstack_arg{}", i);
                    let pat = core::mem::replace(&mut *pt.pat, parse_quote!(#id));
                    rebind.push(quote!(let #pat = #id;));
                    call_args.push(quote!(#id));
                }
            },
        }
    }

    let f = &sig.ident;
    let generic_args: Vec<_> = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(&t.ident),
            syn::GenericParam::Const(c) => Some(&c.ident),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    let turbofish = if generic_args.is_empty() {
        quote!()
    } else {
        quote!(::<#(#generic_args),*>)
    };
    let path = ctx.path(f);
    let mut recall = quote!(#path #turbofish (#(#call_args),*));
    if sig.unsafety.is_some() {
        recall = quote!(unsafe { #recall });
    }

    let name = ctx.display_name(f);
    let span = f.span();
    let file = quote_spanned!(span=> ::core::file!());
    let line = quote_spanned!(span=> ::core::line!());
    let desc = quote! {
        static __GROWSTACK_FRAME: ::growstack::__private::FrameDesc =
            ::growstack::__private::FrameDesc::new(#name, ::core::module_path!(), #file, #line, #frame);
    };
    let check = if out_of_line {
        quote!(::growstack::__private::has_room_for(#frame))
    } else {
        quote!(::growstack::__private::has_room())
    };

    let diverges = matches!(&sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));
    let is_drop = matches!(ctx, Ctx::TraitImpl { is_drop: true, .. }) && f == "drop";
    let slow = if is_drop {
        // `Drop::drop` cannot be called explicitly: run the body itself on
        // the new stack (`self` is the captured `&mut Self`).
        // A large frame stays out of line here too: inlined into
        // `morestack_body`, it would be allocated on the stack that has
        // no room, before the switch.
        let body = if out_of_line {
            quote!(::growstack::__private::out_of_line(move || #block))
        } else {
            quote!(#block)
        };
        quote!(return ::growstack::__private::morestack_body(&__GROWSTACK_FRAME, move || #body);)
    } else if diverges {
        quote! {
            ::growstack::__private::morestack(&__GROWSTACK_FRAME, move || { #recall; });
            ::core::unreachable!()
        }
    } else {
        quote!(return ::growstack::__private::morestack(&__GROWSTACK_FRAME, move || #recall);)
    };
    let body = if out_of_line {
        let call = quote!(::growstack::__private::out_of_line(move || #block));
        if diverges {
            quote!(#call; ::core::unreachable!())
        } else {
            call
        }
    } else {
        let stmts = &block.stmts;
        quote!(#(#stmts)*)
    };
    *block = parse_quote! {{
        if !#check && !::growstack::__private::take_bypass::<()>() {
            #desc
            #slow
        }
        #(#rebind)*
        #body
    }};
    Ok(())
}

fn both_attributes(attr: &Attribute) -> syn::Error {
    syn::Error::new_spanned(
        attr,
        "a function cannot be both #[nosplit] and #[growable]: #[nosplit] removes the check \
         that #[growable] adds",
    )
}

/// Whether the signature names `Self` (a receiver or `Self` in a type): the
/// function is then a method and calls itself through `Self::`.
fn mentions_self(sig: &Signature) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "Self" || i == "self",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(sig.inputs.to_token_stream()) || walk(sig.output.to_token_stream())
}

/// `Type` as written, without spaces: `Tree<T>`.
fn type_name(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

fn looks_like_fn(tokens: &TokenStream) -> bool {
    tokens
        .clone()
        .into_iter()
        .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "fn"))
}

/// The keyword and name of an item, to point errors at.
fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => {
            let (kw, id) = (&s.struct_token, &s.ident);
            quote!(#kw #id)
        }
        Item::Enum(e) => {
            let (kw, id) = (&e.enum_token, &e.ident);
            quote!(#kw #id)
        }
        Item::Union(u) => {
            let (kw, id) = (&u.union_token, &u.ident);
            quote!(#kw #id)
        }
        Item::ForeignMod(f) => f.abi.to_token_stream(),
        Item::Mod(m) => {
            let (kw, id) = (&m.mod_token, &m.ident);
            quote!(#kw #id)
        }
        Item::Const(c) => {
            let (kw, id) = (&c.const_token, &c.ident);
            quote!(#kw #id)
        }
        Item::Static(s) => {
            let (kw, id) = (&s.static_token, &s.ident);
            quote!(#kw #id)
        }
        Item::Type(t) => {
            let (kw, id) = (&t.type_token, &t.ident);
            quote!(#kw #id)
        }
        Item::Use(u) => u.use_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// The item as it is, followed by one `compile_error!` per error.
fn with_errors(mut tokens: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    for err in errors {
        tokens.extend(err.to_compile_error());
    }
    tokens
}
