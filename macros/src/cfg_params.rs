//! `#[cfg]` on parameters. rustc evaluates it after the attribute has run,
//! so the macro cannot know which parameters exist, and the calls it
//! writes must list exactly those. It therefore writes one copy of the
//! function per combination of the conditions, each copy with its own
//! parameters and under the `#[cfg]` that selects it; one copy survives.

use quote::quote;
use syn::{Attribute, FnArg, Signature, parse_quote};

/// At most this many parameters may carry `#[cfg]` (2^N copies).
const MAX_CFG_PARAMS: u32 = 4;

/// The copies of a function: its attributes and signature for each
/// combination, or the function itself when no parameter has `#[cfg]`.
pub fn variants(
    attrs: &[Attribute],
    sig: &Signature,
) -> syn::Result<Vec<(Vec<Attribute>, Signature)>> {
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
