//! `#[growable]` and `#[nosplit]`: which functions get a check, and how
//! each names itself (DESIGN.md, "The macro").
//!
//! # The contract
//!
//! An instrumented function is the plain function plus a check in front of
//! its body. When the check finds no room, the call continues on a stack
//! segment and returns through the runtime. Everything else is as written:
//! the function runs the body it was given once per call, with its own
//! parameters, patterns included. Parameters and locals drop in the plain
//! order, on return and on unwind. `return`, `?`, labels, `impl Trait`,
//! lifetimes and the user's lint attributes behave as in the plain
//! function; so do `dead_code`, `unused_variables` and `unused_mut`. Items
//! in the body exist once. Nothing in the expansion can resolve to a
//! user's name, or the other way round.
//!
//! The only observable differences:
//!
//! - a growth costs time and shows in [`profile`], and a growth the
//!   runtime refuses (the stack limit) panics at the function's own line;
//! - frames between the caller and the body in a backtrace taken after a
//!   growth (the runtime's trampolines);
//! - `#[track_caller]` functions are never instrumented: the caller's
//!   location cannot cross a switch of stacks on stable Rust. In a block
//!   one is left as written (it runs in the red zone like any callee);
//!   `#[growable]` on one alone is a compile error;
//! - lints the re-call's use of every parameter hides: "value passed to
//!   `k` is never read" for a parameter overwritten before it is read, and
//!   "unused variable" when the body also invokes a macro std does not
//!   define (see `unused_parameters`);
//! - compile errors where the plain function compiles, each for a reason
//!   the attribute cannot see past: an associated function annotated alone
//!   that never mentions `Self` (below); in the closure form, a closure
//!   returned as `impl Fn(&T)` needs its parameter types written (the
//!   closure's return type is `_`); `#[cfg]` on more than four parameters
//!   or on a generic parameter; edition 2015 parameters or locals named
//!   `async`, `await`, `dyn` or `try` (syn parses edition 2018 and later);
//!   in an annotated trait impl, a method whose signature is more general
//!   than the trait's (a longer lifetime, a weaker bound) is re-called
//!   through the trait and checked against the trait's (annotate it alone
//!   instead); in an inherent impl on a trait object written through an
//!   alias or without `dyn` (edition 2015), a method named like one of the
//!   trait's (`Self::f` is ambiguous there);
//! - a parameter's `#[expect(lint)]` acts as `#[allow(lint)]` in the
//!   re-call form (the re-call would leave it unfulfilled).
//!
//! # Two forms, one contract
//!
//! **Re-call**, where the function can name itself beyond doubt: the body
//! stays in the function, and the slow path calls the function again on the
//! new stack. The fast path is the check and the plain body, no closure and
//! no copy:
//!
//! ```text
//! fn f(a: A, b: B) -> R {
//!     if !has_room() && !take_bypass() {
//!         static FRAME: FrameDesc = FrameDesc::new("f", …);
//!         return morestack(&FRAME, move || PATH(a, b));
//!     }
//!     { body }
//! }
//! ```
//!
//! `PATH` is `self::f` in an annotated `mod`, `Self::f` in an inherent
//! impl, `<Self as Trait<..>>::f` in a trait impl or a trait's default
//! method, and plain `f` on a free function annotated alone. Nested
//! items of the body sit in the inner block, out of the check's sight.
//! (`take_bypass` is true only in stress mode, for the re-call's own check.)
//!
//! **Closure**, everywhere else: the body becomes a `move` closure with the
//! function's own parameters and return type, built once, called on this
//! stack or on a new one. It is used for a method or an associated
//! function annotated alone (the attribute cannot see whether it is in an
//! inherent impl, in a trait impl of a type that also has an inherent
//! method of that name, or in a trait), for `drop`, for parameter patterns
//! (a rebinding `let` would change their drop order; a capitalised name
//! may be a unit struct), for bodies with large locals, where a parameter
//! or a generic parameter hides the path (a parameter named `f`, a method
//! generic named like the trait), on `impl dyn Trait`, and for `impl
//! Trait` returned from a trait method (the re-call would return the
//! trait's opaque type):
//!
//! ```text
//! fn f(a: A, arg1: (B, C)) -> R {
//!     let body = args2(&a, &arg1, move |a, (b, c)| -> R { body });
//!     if !has_room() {
//!         static FRAME: FrameDesc = …;
//!         return morestack_body(&FRAME, move || out_of_line(move || body(a, arg1)));
//!     }
//!     body(a, arg1)
//! }
//! ```
//!
//! The closure's parameters are the function's, so they bind and drop as
//! the function's would; `argsN` gives them their types without writing
//! them. The cost against the re-call is a copy of large by-value arguments
//! when the optimiser keeps one.
//!
//! A free function annotated alone cannot tell the attribute whether it is
//! really free: an associated function whose signature and body never
//! mention `Self` looks the same. Its expansion is followed by `use
//! ::growstack as _;`, which compiles in a module or a block and not in an
//! impl or a trait ("`use` import is not supported in `trait`s or
//! `impl`s", at the attribute), so that this case is a compile error and
//! never a call to some other `f`.
//!
//! Identifiers the expansion introduces for values are `mixed_site`
//! (hygienic); the frame descriptor lives in a block of its own.
//!
//! `#[cfg]` on parameters: one copy of the function per combination (at
//! most four such parameters), each under the `#[cfg]` of its combination,
//! so that the argument lists of the calls above are always the real ones.
//!
//! [`profile`]: https://docs.rs/growstack/latest/growstack/fn.profile.html

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{
    Attribute, Block, FnArg, Ident, ImplItem, Item, Pat, ReturnType, Signature, TraitItem, Type,
    parse_quote,
};

use crate::args::Args;
use crate::cfg_params;
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
    let tokens = match &mut item {
        Item::Fn(f) if check::is_instrumented(&f.block) => {
            // A second #[growable] under a name the first did not know.
            return input;
        }
        Item::Fn(f) => {
            if let Some(attr) = f.attrs.iter().find(|a| check::is_nosplit(a)) {
                errors.push(both_attributes(attr));
            } else if let Some(attr) = f.attrs.iter().find(|a| check::is_growable(a)) {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "#[growable] is written twice on this function",
                ));
            } else if let Some(attr) = f.attrs.iter().find(|a| check::is_track_caller(a)) {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "#[growable] cannot keep #[track_caller]: after a growth the body runs on \
                     another stack, called by growstack's runtime, and stable Rust cannot pass \
                     the caller's location across that switch; remove one of the two (a \
                     #[track_caller] function called from #[growable] code runs in the red \
                     zone like any other callee)",
                ));
            }
            if !errors.is_empty() {
                return with_errors(item.into_token_stream(), errors);
            }
            let free = !is_associated(&f.sig, &f.block);
            let ctx = Ctx::Alone { free };
            let mut out = TokenStream::new();
            match cfg_params::variants(&f.attrs, &f.sig) {
                Ok(variants) => {
                    for (attrs, sig) in variants {
                        let mut f = f.clone();
                        f.attrs = attrs;
                        f.sig = sig;
                        if let Err(err) =
                            instrument(&mut f.attrs, &mut f.sig, &mut f.block, &ctx, args)
                        {
                            errors.push(err);
                        }
                        f.to_tokens(&mut out);
                    }
                }
                Err(err) => {
                    errors.push(err);
                    f.to_tokens(&mut out);
                }
            }
            if free {
                // Compiles in a module or a block, not in an impl or a trait
                // ("`use` import is not supported in `trait`s or `impl`s").
                out.extend(quote!(
                    #[allow(unused_imports)]
                    use ::growstack as _;
                ));
            }
            out
        }
        item => {
            instrument_item(item, args, &mut errors, true);
            item.into_token_stream()
        }
    };
    with_errors(tokens, errors)
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
        Ok(Item::Fn(f)) if check::is_instrumented(&f.block) => {
            errors.push(syn::Error::new_spanned(
                &f.sig.ident,
                "this function was instrumented by an enclosing #[growable], which did not \
                 recognise its #[nosplit] (imported under another name?): inside a \
                 #[growable] block write `#[nosplit]` or `#[growstack::nosplit]`",
            ));
        }
        Ok(Item::Fn(f)) => {
            if let Some(attr) = f.attrs.iter().find(|a| check::is_growable(a)) {
                errors.push(both_attributes(attr));
            }
            let assoc = is_associated(&f.sig, &f.block);
            errors.extend(check::nosplit_recursion(
                &f.sig,
                &f.block,
                assoc,
                check::Unchecked::Nosplit,
            ));
        }
        Ok(item) => errors.push(syn::Error::new_spanned(
            item_head(&item),
            "#[nosplit] applies to functions only",
        )),
        Err(err) => errors.push(err),
    }
    with_errors(input, errors)
}

/// Where an instrumented function is, which decides how it names itself
/// for the re-call and how the profile names it.
enum Ctx {
    /// The attribute is on the function itself. `free` when neither its
    /// signature nor its body mentions `Self`.
    Alone { free: bool },
    /// In an annotated inline `mod`: `self::f`.
    Mod,
    /// In an inherent impl: `Self::f`, named `Type::f`.
    Inherent { self_ty: String, is_dyn: bool },
    /// In a trait impl: `<Self as Trait>::f`, named `Type::f`.
    TraitImpl {
        self_ty: String,
        trait_path: TokenStream,
    },
    /// A default body in a trait: `<Self as Trait<..>>::f`, named `Trait::f`.
    TraitDef {
        name: String,
        trait_path: TokenStream,
    },
}

impl Ctx {
    /// The path that names this very function beyond doubt, if there is
    /// one, and the re-call through it would return the same type.
    fn recall_path(&self, sig: &Signature) -> Option<TokenStream> {
        let f = &sig.ident;
        // Names a parameter, or a generic parameter, of this function hides.
        let hidden_by_params = |names: &[&Ident]| {
            sig.inputs.iter().any(|input| {
                matches!(input, FnArg::Typed(pt)
                    if matches!(&*pt.pat, Pat::Ident(p) if names.iter().any(|n| p.ident == **n)))
            }) || sig.generics.params.iter().any(|g| {
                let id = match g {
                    syn::GenericParam::Type(t) => &t.ident,
                    syn::GenericParam::Const(c) => &c.ident,
                    syn::GenericParam::Lifetime(_) => return false,
                };
                names.contains(&id)
            })
        };
        match self {
            Ctx::Alone { free: true } => (!hidden_by_params(&[f])).then(|| quote!(#f)),
            Ctx::Alone { free: false } => None,
            Ctx::Mod => Some(quote!(self::#f)),
            // `Self::f` on `dyn Trait` may also be the trait's method.
            Ctx::Inherent { is_dyn: true, .. } => None,
            Ctx::Inherent { .. } => Some(quote!(Self::#f)),
            // `Drop::drop` cannot be called; the trait may be renamed.
            Ctx::TraitImpl { .. } if f == "drop" => None,
            Ctx::TraitImpl { trait_path, .. } | Ctx::TraitDef { trait_path, .. } => {
                // A re-call through the trait returns the trait's opaque
                // type, which the method's own body may not (E0792).
                if returns_impl(&sig.output) {
                    return None;
                }
                let mut names = Vec::new();
                check::walk_idents(trait_path.clone(), &mut |i| names.push(i.clone()));
                let names: Vec<&Ident> = names.iter().collect();
                (!hidden_by_params(&names)).then(|| quote!(<Self as #trait_path>::#f))
            }
        }
    }

    /// Whether functions here are associated (in an impl or a trait).
    fn is_assoc(&self) -> bool {
        match self {
            Ctx::Alone { free } => !free,
            Ctx::Mod => false,
            Ctx::Inherent { .. } | Ctx::TraitImpl { .. } | Ctx::TraitDef { .. } => true,
        }
    }

    fn display_name(&self, f: &Ident) -> String {
        match self {
            Ctx::Alone { .. } | Ctx::Mod => f.to_string(),
            Ctx::Inherent { self_ty, .. } | Ctx::TraitImpl { self_ty, .. } => {
                format!("{self_ty}::{f}")
            }
            Ctx::TraitDef { name, .. } => format!("{name}::{f}"),
        }
    }
}

/// Instruments the functions inside an impl, trait or inline mod; rejects
/// every other item. `top` is the item the attribute was written on.
fn instrument_item(item: &mut Item, args: Args, errors: &mut Vec<syn::Error>, top: bool) {
    match item {
        Item::Impl(imp) => {
            let self_ty = type_name(&imp.self_ty);
            let ctx = match &imp.trait_ {
                Some((_, path, _)) => Ctx::TraitImpl {
                    self_ty,
                    trait_path: path.to_token_stream(),
                },
                None => Ctx::Inherent {
                    self_ty,
                    is_dyn: is_trait_object(&imp.self_ty),
                },
            };
            let mut leaves = Vec::new();
            let mut items = Vec::new();
            for it in imp.items.drain(..) {
                match it {
                    ImplItem::Fn(f) => items.extend(
                        members(f, &ctx, args, errors, &mut leaves)
                            .into_iter()
                            .map(ImplItem::Fn),
                    ),
                    other => items.push(other),
                }
            }
            imp.items = items;
            errors.extend(check::nosplit_cycles(&leaves, true));
        }
        Item::Trait(tr) => {
            let ident = &tr.ident;
            let (_, ty_generics, _) = tr.generics.split_for_impl();
            let ctx = Ctx::TraitDef {
                name: ident.to_string(),
                trait_path: quote!(#ident #ty_generics),
            };
            let mut leaves = Vec::new();
            let mut items = Vec::new();
            for it in tr.items.drain(..) {
                match it {
                    TraitItem::Fn(f) if f.default.is_some() => items.extend(
                        members(f, &ctx, args, errors, &mut leaves)
                            .into_iter()
                            .map(TraitItem::Fn),
                    ),
                    other => items.push(other),
                }
            }
            tr.items = items;
            errors.extend(check::nosplit_cycles(&leaves, true));
        }
        Item::Mod(m) => {
            let Some((_, content)) = &mut m.content else {
                return errors.push(syn::Error::new_spanned(
                    item_head(item),
                    "#[growable] cannot see into a module in another file: put #[growable] on \
                     the items inside it",
                ));
            };
            let mut leaves = Vec::new();
            let mut items = Vec::new();
            for it in content.drain(..) {
                match it {
                    Item::Fn(f) => items.extend(
                        members(f, &Ctx::Mod, args, errors, &mut leaves)
                            .into_iter()
                            .map(Item::Fn),
                    ),
                    mut block @ (Item::Impl(_) | Item::Trait(_) | Item::Mod(_)) => {
                        let attrs = match &mut block {
                            Item::Impl(i) => &mut i.attrs,
                            Item::Trait(t) => &mut t.attrs,
                            Item::Mod(m) => &mut m.attrs,
                            _ => unreachable!("matched above"),
                        };
                        let own = own_args(attrs, args, errors);
                        instrument_item(&mut block, own, errors, false);
                        items.push(block);
                    }
                    other => items.push(other),
                }
            }
            *content = items;
            errors.extend(check::nosplit_cycles(&leaves, false));
        }
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

/// The arguments for a block nested in an annotated one: its own
/// `#[growable(...)]`, which is removed (the enclosing attribute already
/// instruments it), or the enclosing block's.
fn own_args(attrs: &mut Vec<Attribute>, outer: Args, errors: &mut Vec<syn::Error>) -> Args {
    let mut args = outer;
    attrs.retain(|attr| {
        if !check::is_growable(attr) {
            return true;
        }
        if let syn::Meta::List(list) = &attr.meta {
            match list.parse_args::<Args>() {
                Ok(own) => args = own,
                Err(err) => errors.push(err),
            }
        }
        false
    });
    args
}

/// A function that is instrumented, or left alone, with its body; what
/// `member` returns for each copy of it (see `cfg_params`).
type Member = (Vec<Attribute>, Signature, Block);

/// A function with a body inside an annotated block.
trait FnItem: Clone {
    fn parts(&mut self) -> (&mut Vec<Attribute>, &mut Signature, &mut Block);
}

impl FnItem for syn::ItemFn {
    fn parts(&mut self) -> (&mut Vec<Attribute>, &mut Signature, &mut Block) {
        (&mut self.attrs, &mut self.sig, &mut self.block)
    }
}

impl FnItem for syn::ImplItemFn {
    fn parts(&mut self) -> (&mut Vec<Attribute>, &mut Signature, &mut Block) {
        (&mut self.attrs, &mut self.sig, &mut self.block)
    }
}

impl FnItem for syn::TraitItemFn {
    /// Only for a method with a default body.
    fn parts(&mut self) -> (&mut Vec<Attribute>, &mut Signature, &mut Block) {
        let block = self.default.as_mut().expect("a default body");
        (&mut self.attrs, &mut self.sig, block)
    }
}

/// `f` as `member` leaves it: one item per copy.
fn members<T: FnItem>(
    mut f: T,
    ctx: &Ctx,
    args: Args,
    errors: &mut Vec<syn::Error>,
    leaves: &mut Vec<(Signature, Block)>,
) -> Vec<T> {
    let (attrs, sig, block) = f.parts();
    let copies = member(attrs, sig, block, ctx, args, errors, leaves);
    copies
        .into_iter()
        .map(|(attrs, sig, block)| {
            let mut f = f.clone();
            let parts = f.parts();
            (*parts.0, *parts.1, *parts.2) = (attrs, sig, block);
            f
        })
        .collect()
}

/// A function inside an annotated block: honours `#[nosplit]`,
/// `#[track_caller]` and an inner `#[growable(...)]`, then instruments it.
/// Functions left without a check are added to `leaves` for the cycle
/// check.
fn member(
    attrs: &mut Vec<Attribute>,
    sig: &mut Signature,
    block: &mut Block,
    ctx: &Ctx,
    args: Args,
    errors: &mut Vec<syn::Error>,
    leaves: &mut Vec<(Signature, Block)>,
) -> Vec<Member> {
    let unchanged = |attrs: &Vec<Attribute>, sig: &Signature, block: &Block| {
        vec![(attrs.clone(), sig.clone(), block.clone())]
    };
    if check::is_instrumented(block) {
        return unchanged(attrs, sig, block);
    }
    if let Some((on, off)) = cfg_params::split_cfg_attr(attrs) {
        // `#[cfg_attr(p, nosplit)]` and the like: one copy per case.
        let mut out = Vec::new();
        for mut attrs in [on, off] {
            let (mut sig, mut block) = (sig.clone(), block.clone());
            out.extend(member(
                &mut attrs, &mut sig, &mut block, ctx, args, errors, leaves,
            ));
        }
        return out;
    }
    let nosplit = attrs.iter().position(check::is_nosplit);
    let growable = attrs.iter().any(check::is_growable);
    if let Some(n) = nosplit {
        if growable {
            errors.push(both_attributes(&attrs[n]));
            // Neither attribute resolves on its own inside the block.
            attrs.retain(|a| !check::is_nosplit(a) && !check::is_growable(a));
            return unchanged(attrs, sig, block);
        }
        let attr = attrs.remove(n);
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.push(syn::Error::new_spanned(
                &attr,
                "#[nosplit] takes no arguments",
            ));
        }
        errors.extend(check::nosplit_recursion(
            sig,
            block,
            ctx.is_assoc(),
            check::Unchecked::Nosplit,
        ));
        leaves.push((sig.clone(), block.clone()));
        return unchanged(attrs, sig, block);
    }
    let args = own_args(attrs, args, errors);
    if attrs.iter().any(check::is_track_caller) {
        // Left as written (see the module docs).
        errors.extend(check::nosplit_recursion(
            sig,
            block,
            ctx.is_assoc(),
            check::Unchecked::TrackCaller,
        ));
        leaves.push((sig.clone(), block.clone()));
        return unchanged(attrs, sig, block);
    }
    let variants = match cfg_params::variants(attrs, sig) {
        Ok(variants) => variants,
        Err(err) => {
            errors.push(err);
            return unchanged(attrs, sig, block);
        }
    };
    variants
        .into_iter()
        .map(|(mut attrs, mut sig)| {
            let mut block = block.clone();
            if let Err(err) = instrument(&mut attrs, &mut sig, &mut block, ctx, args) {
                errors.push(err);
            }
            (attrs, sig, block)
        })
        .collect()
}

/// Puts the check and the slow path in front of `block`, in the form the
/// module docs describe.
fn instrument(
    attrs: &mut Vec<Attribute>,
    sig: &mut Signature,
    block: &mut Block,
    ctx: &Ctx,
    args: Args,
) -> syn::Result<()> {
    check::signature(sig)?;
    let estimate = args.frame.unwrap_or_else(|| frame::estimate(block));
    let out_of_line = args.frame.is_some() || estimate > frame::OUT_OF_LINE;
    // Unoptimised builds may keep a second copy of a large local (a
    // temporary moved into place), so ask for twice the locals.
    let frame = if out_of_line {
        estimate.saturating_mul(2)
    } else {
        0
    };

    let f = sig.ident.clone();
    let span = f.span();
    let name = ctx.display_name(&f);
    let file = quote_spanned!(span=> ::growstack::__private::file!());
    let line = quote_spanned!(span=> ::growstack::__private::line!());
    let desc = quote! {
        static __GROWSTACK_FRAME: ::growstack::__private::FrameDesc =
            ::growstack::__private::FrameDesc::new(
                #name, ::growstack::__private::module_path!(), #file, #line, #frame,
            );
    };
    let check = if out_of_line {
        quote!(::growstack::__private::has_room_for(#frame))
    } else {
        quote!(::growstack::__private::has_room())
    };
    let diverges = matches!(&sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));

    let plain_params = sig.inputs.iter().all(|input| match input {
        FnArg::Receiver(_) => true,
        FnArg::Typed(pt) => matches!(&*pt.pat, Pat::Ident(p) if is_binding(p)),
    });
    let recall = ctx
        .recall_path(sig)
        .filter(|_| plain_params && !out_of_line);

    *block = match recall {
        Some(path) => {
            expect_to_allow(sig);
            let unused = unused_parameters(sig, block);
            if unused.needs_allow {
                // Where clippy reads it: the function, not the parameter.
                attrs.push(parse_quote!(#[allow(clippy::only_used_in_recursion)]));
            }
            recall_form(sig, block, path, desc, check, diverges, unused.bindings)
        }
        None => closure_form(sig, block, desc, check, diverges, out_of_line)?,
    };
    Ok(())
}

/// The re-call form: the body in place, the function called again on the
/// new stack.
fn recall_form(
    sig: &Signature,
    block: &Block,
    path: TokenStream,
    desc: TokenStream,
    check: TokenStream,
    diverges: bool,
    unused: Vec<TokenStream>,
) -> Block {
    let span = sig.ident.span();
    // The arguments carry the expansion's span: lints that look at where a
    // parameter is used (clippy's `only_used_in_recursion`) then see the
    // re-call as the macro's, not the user's.
    let call_args = sig.inputs.iter().map(|input| match input {
        FnArg::Receiver(r) => r.self_token.to_token_stream(),
        FnArg::Typed(pt) => match &*pt.pat {
            Pat::Ident(p) => {
                let mut id = p.ident.clone();
                id.set_span(Span::call_site());
                id.to_token_stream()
            }
            _ => unreachable!("the re-call form takes plain parameters only"),
        },
    });
    let turbofish = turbofish(sig);
    let mut recall = quote!(#path #turbofish (#(#call_args),*));
    if sig.unsafety.is_some() {
        recall = quote!(unsafe { #recall });
    }
    // The call carries the function's span: a refused growth panics there
    // (`morestack` is `#[track_caller]`).
    let slow = if diverges {
        let grown = quote_spanned! {span=>
            ::growstack::__private::morestack(&__GROWSTACK_FRAME, move || { #recall; })
        };
        quote!(#grown; ::growstack::__private::unreachable!())
    } else {
        let grown = quote_spanned! {span=>
            ::growstack::__private::morestack(&__GROWSTACK_FRAME, move || #recall)
        };
        quote!(return #grown;)
    };
    // The body in a block of its own, out of the check's sight (a nested
    // `fn f` would capture a bare re-call), with braces of the expansion's
    // span: braces of the user's span would read to rustc as unnecessary
    // braces around a single expression.
    let stmts = &block.stmts;
    let inner = quote!({ #(#stmts)* });
    with_braces_of(
        block,
        quote! {
            if !#check && !::growstack::__private::take_bypass::<()>() {
                #desc
                #slow
            }
            #(#unused)*
            #inner
        },
    )
}

/// A block of `stmts` with the braces of the user's `block`. rustc reads
/// them (a function whose body's braces come from an expansion gets no
/// `dead_code` warning).
fn with_braces_of(block: &Block, stmts: TokenStream) -> Block {
    Block {
        brace_token: block.brace_token,
        stmts: syn::parse::Parser::parse2(Block::parse_within, stmts)
            .expect("the expansion is a list of statements"),
    }
}

/// The closure form: the body in a closure with the function's own
/// parameters, called here or on the new stack.
fn closure_form(
    sig: &mut Signature,
    block: &Block,
    desc: TokenStream,
    check: TokenStream,
    diverges: bool,
    out_of_line: bool,
) -> syn::Result<Block> {
    let span = sig.ident.span();
    // Hidden names: a plain parameter keeps its name (rustdoc shows it),
    // a pattern gets `argN` (`argN_1`, .. while a parameter has that name).
    let names: Vec<String> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(p) => Some(p.ident.unraw().to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut hidden = Vec::new();
    let mut params = Vec::new();
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        let name = match &*pt.pat {
            Pat::Ident(p) if is_binding(p) => p.ident.unraw().to_string(),
            _ => {
                let mut name = format!("arg{i}");
                let mut k = 0;
                while names.contains(&name) {
                    k += 1;
                    name = format!("arg{i}_{k}");
                }
                name
            }
        };
        let id = hidden_ident(&name);
        let pat = core::mem::replace(&mut *pt.pat, parse_quote!(#id));
        let attrs = core::mem::take(&mut pt.attrs);
        params.push(quote!(#(#attrs)* #pat));
        hidden.push(id);
    }
    if hidden.len() > 16 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "#[growable] supports at most 16 parameters on this function (it needs the closure \
             form: a method annotated alone, patterns, `impl Trait` returned or large locals)",
        ));
    }
    let helper = format_ident!("args{}", hidden.len());
    let ret = match &sig.output {
        ReturnType::Default => quote!(),
        ReturnType::Type(arrow, ty) => {
            let ty = infer_impl_trait(ty);
            quote!(#arrow #ty)
        }
    };
    // The closure is `move`: the only outer variable the body can name is
    // `self` (the hidden parameters are hygienic), and a `self` holding a
    // `&'a mut` must move in for a reborrow of it to live for `'a`. A
    // receiver that owns its value is moreover captured whole: captured
    // field by field (the body moves `self.a` out), the fields left would
    // drop at the closure's end one by one, not with the rest of `self` in
    // their declared order.
    let closure_body = match sig.receiver() {
        Some(r) if owns_self(r) => {
            let stmts = &block.stmts;
            let self_token = &r.self_token;
            quote!({ let _ = &#self_token; #(#stmts)* })
        }
        _ => block.to_token_stream(),
    };
    let mut body_name = String::from("__growstack_body");
    while names.contains(&body_name) {
        body_name.push('_');
    }
    let body = Ident::new(&body_name, Span::mixed_site());
    let call = quote!(#body(#(#hidden),*));
    // Statement form of a call that diverges: its closure returns `()`.
    let call_stmt = if diverges {
        quote!({ #call; })
    } else {
        call.clone()
    };
    // Spanned as in the re-call form.
    let grown = quote_spanned! {span=>
        ::growstack::__private::morestack_body(&__GROWSTACK_FRAME, move || {
            ::growstack::__private::out_of_line(move || #call_stmt)
        })
    };
    let slow = if diverges {
        quote!(#grown; ::growstack::__private::unreachable!())
    } else {
        quote!(return #grown;)
    };
    let fast = match (out_of_line, diverges) {
        (false, _) => call,
        (true, false) => quote!(::growstack::__private::out_of_line(move || #call)),
        (true, true) => quote! {
            ::growstack::__private::out_of_line(move || #call_stmt);
            ::growstack::__private::unreachable!()
        },
    };
    Ok(with_braces_of(
        block,
        quote! {
            let #body = ::growstack::__private::#helper(#(&#hidden,)* move |#(#params),*| #ret #closure_body);
            if !#check {
                #desc
                #slow
            }
            #fast
        },
    ))
}

/// Whether a parameter pattern that syn reads as an identifier is a plain
/// binding: not `ref`, no `@` subpattern, and not capitalised (`Token` may
/// be a unit struct or a constant, a pattern that binds nothing).
fn is_binding(p: &syn::PatIdent) -> bool {
    p.by_ref.is_none()
        && p.subpat.is_none()
        && !p
            .ident
            .unraw()
            .to_string()
            .starts_with(|c: char| c.is_uppercase())
}

/// A hygienic identifier for a hidden parameter, raw if `name` is a
/// keyword in any edition (the span's edition is the macro crate's, 2024:
/// `gen` is a keyword there, not in the user's 2021 code).
fn hidden_ident(name: &str) -> Ident {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
        "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
        "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async",
        "await", "dyn", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
        "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&name) {
        Ident::new_raw(name, Span::mixed_site())
    } else {
        Ident::new(name, Span::mixed_site())
    }
}

/// Whether a receiver holds its value (`self`, `mut self`, `self: Box<Self>`,
/// `self: Wrapper`: no `&` in its type), so that the body may move fields
/// out of it.
fn owns_self(r: &syn::Receiver) -> bool {
    r.reference.is_none() && !r.ty.to_token_stream().to_string().contains('&')
}

/// `::<T, N>` for the function's own type and const parameters.
fn turbofish(sig: &Signature) -> TokenStream {
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
    if generic_args.is_empty() {
        quote!()
    } else {
        quote!(::<#(#generic_args),*>)
    }
}

/// `let a = Unused;` for each parameter of a re-call that the body never
/// names (see [`check::named_in`]). The re-call uses every parameter, which
/// would hide rustc's "unused variable" warning; this unused binding, with
/// the parameter's own span and lint attributes, brings it back. None when
/// the body invokes a macro that std does not define: a procedural macro
/// may name a local without it being in its input.
///
/// Such a parameter is used only by the re-call, which clippy's
/// `only_used_in_recursion` would report on top of rustc's warning; so
/// would it one whose unused warning is allowed. `needs_allow` then.
fn unused_parameters(sig: &mut Signature, block: &Block) -> Unused {
    let named = check::only_std_macros(block).then(|| check::named_in(block));
    let mut out = Unused {
        bindings: Vec::new(),
        needs_allow: false,
    };
    for input in sig.inputs.iter_mut() {
        let FnArg::Typed(pt) = input else { continue };
        let Pat::Ident(p) = &*pt.pat else { continue };
        let name = p.ident.unraw().to_string();
        let unused = is_binding(p)
            && !name.starts_with('_')
            && named.as_ref().is_some_and(|named| !named.contains(&name));
        if unused {
            let id = &p.ident;
            let attrs = &pt.attrs;
            out.bindings
                .push(quote!(#(#attrs)* let #id = ::growstack::__private::Unused;));
        }
        out.needs_allow |= unused || allows_unused(&pt.attrs);
    }
    out
}

/// What [`unused_parameters`] found.
struct Unused {
    bindings: Vec<TokenStream>,
    needs_allow: bool,
}

/// Whether `attrs` allow an unused variable (`allow(unused_variables)` or
/// `allow(unused)`).
fn allows_unused(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        let mut found = false;
        if a.path().is_ident("allow") {
            check::walk_idents(a.meta.to_token_stream(), &mut |i| {
                found |= i == "unused_variables" || i == "unused"
            });
        }
        found
    })
}

/// In the re-call form every parameter is read by the re-call, so a
/// parameter's `#[expect(..)]` of a lint that would have fired (an unused
/// variable, an assignment never read) would be unfulfilled, a new
/// warning: it becomes `#[allow(..)]`. Its unused binding, if any, carries
/// the same attributes.
fn expect_to_allow(sig: &mut Signature) {
    for input in sig.inputs.iter_mut() {
        let FnArg::Typed(pt) = input else { continue };
        for attr in pt.attrs.iter_mut() {
            if let syn::Meta::List(list) = &mut attr.meta
                && list.path.is_ident("expect")
            {
                list.path = parse_quote!(allow);
            }
        }
    }
}

/// `ty` with every `impl Trait` replaced by `_`, for a closure's return
/// type: the closure returns the concrete type.
fn infer_impl_trait(ty: &Type) -> Type {
    struct Infer;
    impl syn::visit_mut::VisitMut for Infer {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            // A type macro may expand to `impl Trait`.
            if matches!(ty, Type::ImplTrait(_) | Type::Macro(_)) {
                *ty = parse_quote!(_);
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut ty = ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut Infer, &mut ty);
    ty
}

/// Whether the return type has `impl Trait`, or a type macro that may
/// expand to one.
fn returns_impl(output: &ReturnType) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type(&mut self, ty: &'ast Type) {
            self.0 |= matches!(ty, Type::ImplTrait(_) | Type::Macro(_));
            syn::visit::visit_type(self, ty);
        }
    }
    match output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => {
            let mut v = Finder(false);
            syn::visit::Visit::visit_type(&mut v, ty);
            v.0
        }
    }
}

/// Whether the function is certainly associated: it has a receiver, or its
/// signature or body (outside nested items) mentions `Self`.
fn is_associated(sig: &Signature, block: &Block) -> bool {
    if sig.receiver().is_some() {
        return true;
    }
    let mut found = false;
    check::walk_idents(sig.to_token_stream(), &mut |i| found |= i == "Self");
    found || check::body_mentions_self(block)
}

fn both_attributes(attr: &Attribute) -> syn::Error {
    syn::Error::new_spanned(
        attr,
        "a function cannot be both #[nosplit] and #[growable]: #[nosplit] removes the check \
         that #[growable] adds",
    )
}

/// Whether `ty` is written as a trait object (`dyn Tr`, `(dyn Tr)`). An
/// alias of one, or a bare trait object of edition 2015, is not seen.
fn is_trait_object(ty: &Type) -> bool {
    match ty {
        Type::TraitObject(_) => true,
        Type::Paren(p) => is_trait_object(&p.elem),
        Type::Group(g) => is_trait_object(&g.elem),
        _ => false,
    }
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
        tokens.extend(crate::diag::to_compile_error(err));
    }
    tokens
}
