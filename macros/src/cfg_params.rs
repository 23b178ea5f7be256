//! `#[cfg]` on parameters. rustc evaluates it after the attribute has run,
//! so the macro cannot know which parameters exist, and the calls it
//! writes must list exactly those. It therefore writes one copy of the
//! function per combination of the conditions, each copy with its own
//! parameters and under the `#[cfg]` that selects it; one copy survives.

use proc_macro2::TokenStream;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::{Attribute, FnArg, Meta, Signature, Token, parse_quote};

/// At most this many parameters may carry `#[cfg]` (2^N copies).
const MAX_CFG_PARAMS: u32 = 4;

/// The copies of a function: its attributes and signature for each
/// combination, or the function itself when no parameter has `#[cfg]`.
pub fn variants(
    attrs: &[Attribute],
    sig: &Signature,
) -> syn::Result<Vec<(Vec<Attribute>, Signature)>> {
    if let Some(g) = sig.generics.params.iter().find(|g| {
        let attrs = match g {
            syn::GenericParam::Type(t) => &t.attrs,
            syn::GenericParam::Const(c) => &c.attrs,
            syn::GenericParam::Lifetime(l) => &l.attrs,
        };
        attrs
            .iter()
            .any(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
    }) {
        return Err(syn::Error::new_spanned(
            g,
            "#[growable] does not support #[cfg] or #[cfg_attr] on a generic parameter (the \
             re-call names every generic parameter)",
        ));
    }
    let sig = &normalize(sig);
    let conditions: Vec<(usize, Vec<proc_macro2::TokenStream>)> = sig
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| {
            let preds: Vec<_> = param_attrs(input)
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .filter_map(|a| a.meta.require_list().ok().map(|l| l.tokens.clone()))
                .collect();
            (!preds.is_empty()).then_some((i, preds))
        })
        .collect();
    if conditions.is_empty() {
        return Ok(vec![(attrs.to_vec(), sig.clone())]);
    }
    if conditions.len() > MAX_CFG_PARAMS as usize {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "#[growable] supports #[cfg] on at most {MAX_CFG_PARAMS} parameters of one \
                 function (it writes a copy of the function per combination)"
            ),
        ));
    }
    let mut out = Vec::new();
    for mask in 0..1u32 << conditions.len() {
        let mut sig = sig.clone();
        let mut terms = Vec::new();
        let mut dropped = Vec::new();
        for (bit, (i, preds)) in conditions.iter().enumerate() {
            let all = quote!(all(#(#preds),*));
            if mask & (1 << bit) != 0 {
                terms.push(all);
            } else {
                terms.push(quote!(not(#all)));
                dropped.push(*i);
            }
        }
        sig.inputs = sig
            .inputs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, mut input)| {
                param_attrs_mut(&mut input).retain(|a| !a.path().is_ident("cfg"));
                input
            })
            .collect();
        let mut attrs = attrs.to_vec();
        attrs.push(parse_quote!(#[cfg(all(#(#terms),*))]));
        out.push((attrs, sig));
    }
    Ok(out)
}

/// A `#[cfg_attr(..)]` as the attributes it applies, each with the whole
/// condition it needs: `cfg_attr(a, x, cfg_attr(b, y))` is `[(a, x),
/// (all(a, b), y)]`. `None` for any other attribute.
fn flatten(attr: &Attribute) -> Option<Vec<(TokenStream, Meta)>> {
    fn walk(pred: TokenStream, meta: Meta, out: &mut Vec<(TokenStream, Meta)>) {
        let nested = meta.path().is_ident("cfg_attr").then(|| {
            meta.require_list()
                .ok()?
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        });
        match nested.flatten() {
            Some(list) => {
                let mut metas = list.into_iter();
                let Some(inner) = metas.next() else { return };
                let pred = quote!(all(#pred, #inner));
                for m in metas {
                    walk(pred.clone(), m, out);
                }
            }
            None => out.push((pred, meta)),
        }
    }
    if !attr.path().is_ident("cfg_attr") {
        return None;
    }
    let mut out = Vec::new();
    walk(quote!(all()), attr.meta.clone(), &mut out);
    Some(out)
}

/// `sig` with each parameter's `#[cfg_attr(p, cfg(q))]` (nested ones too)
/// written as `#[cfg(any(not(p), q))]`: the parameter exists unless `p`
/// holds and `q` does not. The other attributes a `cfg_attr` applies stay
/// under their condition.
fn normalize(sig: &Signature) -> Signature {
    let mut sig = sig.clone();
    for input in sig.inputs.iter_mut() {
        let attrs = param_attrs_mut(input);
        let mut out = Vec::new();
        for attr in attrs.drain(..) {
            let Some(applied) = flatten(&attr) else {
                out.push(attr);
                continue;
            };
            for (pred, meta) in applied {
                match &meta {
                    Meta::List(list) if list.path.is_ident("cfg") => {
                        let q = &list.tokens;
                        out.push(parse_quote!(#[cfg(any(not(#pred), #q))]));
                    }
                    _ => out.push(parse_quote!(#[cfg_attr(#pred, #meta)])),
                }
            }
        }
        *attrs = out;
    }
    sig
}

/// For the first attribute the enclosing `#[growable]` reads (`nosplit`,
/// `growable`, `track_caller`) that a `#[cfg_attr(p, ..)]` applies (nested
/// ones too), which rustc expands only after it: the function's attributes
/// when `p` holds (with `#[cfg(p)]` and the attribute written out) and
/// when it does not (with `#[cfg(not(p))]`). The other attributes of that
/// `cfg_attr` stay under their own conditions in both.
pub fn split_cfg_attr(attrs: &[Attribute]) -> Option<(Vec<Attribute>, Vec<Attribute>)> {
    for (i, attr) in attrs.iter().enumerate() {
        let Some(applied) = flatten(attr) else {
            continue;
        };
        let ours = |m: &Meta| {
            m.path().segments.last().is_some_and(|s| {
                s.ident == "nosplit" || s.ident == "growable" || s.ident == "track_caller"
            })
        };
        let Some(k) = applied.iter().position(|(_, m)| ours(m)) else {
            continue;
        };
        let (pred, meta) = &applied[k];
        let rest: Vec<Attribute> = applied
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, (p, m))| parse_quote!(#[cfg_attr(#p, #m)]))
            .collect();
        let mut on = attrs.to_vec();
        on.splice(i..=i, rest.iter().cloned().chain([parse_quote!(#[#meta])]));
        on.push(parse_quote!(#[cfg(#pred)]));
        let mut off = attrs.to_vec();
        off.splice(i..=i, rest);
        off.push(parse_quote!(#[cfg(not(#pred))]));
        return Some((on, off));
    }
    None
}

fn param_attrs(input: &FnArg) -> &[Attribute] {
    match input {
        FnArg::Receiver(r) => &r.attrs,
        FnArg::Typed(t) => &t.attrs,
    }
}

fn param_attrs_mut(input: &mut FnArg) -> &mut Vec<Attribute> {
    match input {
        FnArg::Receiver(r) => &mut r.attrs,
        FnArg::Typed(t) => &mut t.attrs,
    }
}
