//! What `#[growable]` and `#[nosplit]` reject, with the span to blame.

use syn::visit::{self, Visit};
use syn::{Attribute, Signature};

/// Whether `attr` is `#[nosplit]` / `#[growstack::nosplit]`.
pub fn is_nosplit(attr: &Attribute) -> bool {
    is_ours(attr, "nosplit")
}

/// Whether `attr` is `#[growable]` / `#[growstack::growable]` (any arguments).
pub fn is_growable(attr: &Attribute) -> bool {
    is_ours(attr, "growable")
}

fn is_ours(attr: &Attribute, name: &str) -> bool {
    let path = attr.path();
    let last = path.segments.last().is_some_and(|s| s.ident == name);
    let prefix_ok = match path.segments.len() {
        1 => true,
        2 => path.segments[0].ident == "growstack",
        _ => false,
    };
    last && prefix_ok
}

/// Signatures that cannot carry a stack check.
pub fn signature(sig: &Signature) -> syn::Result<()> {
    if let Some(t) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            t,
            "#[growable] cannot instrument an async fn: its body runs in a future's poll, \
             not in this frame; annotate the recursive sync functions it calls instead",
        ));
    }
    if let Some(t) = &sig.constness {
        return Err(syn::Error::new_spanned(
            t,
            "#[growable] cannot instrument a const fn: the stack check reads the stack \
             pointer at run time",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            v,
            "#[growable] cannot instrument a variadic fn",
        ));
    }
    Ok(())
}

/// Errors for each call of `name` to itself inside `block`: a `#[nosplit]`
/// function has no check, so recursion in it could overflow.
pub fn nosplit_recursion(name: &syn::Ident, block: &syn::Block) -> Vec<syn::Error> {
    let mut v = SelfCalls {
        name,
        errors: Vec::new(),
    };
    v.visit_block(block);
    v.errors
}

struct SelfCalls<'a> {
    name: &'a syn::Ident,
    errors: Vec<syn::Error>,
}

impl SelfCalls<'_> {
    fn found(&mut self, span: &dyn quote::ToTokens) {
        self.errors.push(syn::Error::new_spanned(
            span,
            format!(
                "#[nosplit] function `{}` calls itself: without a stack check the recursion \
                 can overflow; remove #[nosplit]",
                self.name
            ),
        ));
    }
}

impl<'ast> Visit<'ast> for SelfCalls<'_> {
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func {
            let segs = &p.path.segments;
            let direct = segs.len() == 1 && p.qself.is_none();
            let via_self = segs.len() == 2 && segs[0].ident == "Self";
            let qualified = p.qself.is_some() && !segs.is_empty();
            if (direct || via_self || qualified)
                && segs.last().is_some_and(|s| s.ident == *self.name)
            {
                self.found(call);
            }
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let on_self = matches!(&*call.receiver, syn::Expr::Path(p) if p.path.is_ident("self"));
        if on_self && call.method == *self.name {
            self.found(call);
        }
        visit::visit_expr_method_call(self, call);
    }

    // Nested items are other functions.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
