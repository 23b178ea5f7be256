//! What `#[growable]` and `#[nosplit]` reject, with the span to blame.

use std::collections::{HashMap, HashSet};

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

/// Whether `attr` is `#[track_caller]`.
pub fn is_track_caller(attr: &Attribute) -> bool {
    attr.path().is_ident("track_caller")
}

/// Whether `block` is already the output of `#[growable]`: its first
/// statement is the check (`::growstack::__private::has_room..`) or the
/// closure form's `::growstack::__private::argsN(..)`. A second
/// `#[growable]` under a name the first did not know, or a `#[nosplit]`
/// the enclosing block did not recognise, then sees it.
pub fn is_instrumented(block: &syn::Block) -> bool {
    let Some(first) = block.stmts.first() else {
        return false;
    };
    let mut idents = Vec::new();
    walk_idents(quote::ToTokens::to_token_stream(first), &mut |i| {
        idents.push(i.to_string())
    });
    idents.windows(3).any(|w| {
        w[0] == "growstack"
            && w[1] == "__private"
            && (w[2].starts_with("has_room")
                || w[2]
                    .strip_prefix("args")
                    .is_some_and(|n| n.parse::<u8>().is_ok()))
    })
}

/// Calls `f` on every identifier in `tokens`, inside groups too.
pub fn walk_idents(tokens: proc_macro2::TokenStream, f: &mut dyn FnMut(&proc_macro2::Ident)) {
    for t in tokens {
        match t {
            proc_macro2::TokenTree::Ident(i) => f(&i),
            proc_macro2::TokenTree::Group(g) => walk_idents(g.stream(), f),
            _ => {}
        }
    }
}

/// The names `block` may read a local by: single-segment paths (`x`,
/// `x.len()`, `S { x }`), every identifier in a macro's input, and every
/// word of its literals (`format!("{x:>width$}")`). A field or method
/// named like a parameter (`v.len`) does not count.
pub fn named_in(block: &syn::Block) -> HashSet<String> {
    struct Names(HashSet<String>);
    impl<'ast> Visit<'ast> for Names {
        fn visit_expr_path(&mut self, e: &'ast syn::ExprPath) {
            if e.qself.is_none() && e.path.segments.len() == 1 {
                let id = &e.path.segments[0].ident;
                self.0.insert(syn::ext::IdentExt::unraw(id).to_string());
            }
            visit::visit_expr_path(self, e);
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            macro_names(m.tokens.clone(), &mut self.0);
            visit::visit_macro(self, m);
        }
    }
    fn macro_names(tokens: proc_macro2::TokenStream, names: &mut HashSet<String>) {
        for t in tokens {
            match t {
                proc_macro2::TokenTree::Ident(i) => {
                    names.insert(syn::ext::IdentExt::unraw(&i).to_string());
                }
                proc_macro2::TokenTree::Group(g) => macro_names(g.stream(), names),
                // Every word: a format string names arguments as `{x}`,
                // `{:>width$}`, `{x:.prec$}`.
                proc_macro2::TokenTree::Literal(l) => {
                    let text = l.to_string();
                    for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                        names.insert(word.to_string());
                    }
                }
                proc_macro2::TokenTree::Punct(_) => {}
            }
        }
    }
    let mut v = Names(HashSet::new());
    v.visit_block(block);
    v.0
}

/// Whether every macro `block` invokes is one of std's that cannot name a
/// local variable its input does not name.
pub fn only_std_macros(block: &syn::Block) -> bool {
    const STD: &[&str] = &[
        "assert",
        "assert_eq",
        "assert_ne",
        "debug_assert",
        "debug_assert_eq",
        "debug_assert_ne",
        "panic",
        "unreachable",
        "todo",
        "unimplemented",
        "format",
        "format_args",
        "print",
        "println",
        "eprint",
        "eprintln",
        "write",
        "writeln",
        "vec",
        "matches",
        "dbg",
        "concat",
        "stringify",
        "line",
        "column",
        "file",
        "module_path",
        "cfg",
        "env",
        "option_env",
        "include_str",
        "include_bytes",
    ];
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            let known = m
                .path
                .segments
                .last()
                .is_some_and(|s| STD.iter().any(|name| s.ident == name));
            self.0 &= known;
            visit::visit_macro(self, m);
        }
    }
    let mut v = Finder(true);
    v.visit_block(block);
    v.0
}

/// Whether `block` mentions `Self` outside its nested items (macro
/// arguments included): only an associated function can.
pub fn body_mentions_self(block: &syn::Block) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_ident(&mut self, i: &'ast proc_macro2::Ident) {
            self.0 |= i == "Self";
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            visit::visit_macro(self, m);
            walk_idents(m.tokens.clone(), &mut |i| self.0 |= i == "Self");
        }
        // `Self` in a nested impl or trait is that item's.
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut v = Finder(false);
    v.visit_block(block);
    v.0
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
/// function has no check, so recursion in it could overflow. `assoc`: the
/// function is in an impl or a trait (see [`Calls`]).
pub fn nosplit_recursion(
    sig: &syn::Signature,
    block: &syn::Block,
    assoc: bool,
    why: Unchecked,
) -> Vec<syn::Error> {
    let name = &sig.ident;
    calls(sig, block, assoc)
        .into_iter()
        .filter(|(callee, _)| callee == name)
        .map(|(_, at)| {
            let msg = match why {
                Unchecked::Nosplit => format!(
                    "#[nosplit] function `{name}` calls itself: without a stack check the \
                     recursion can overflow; remove #[nosplit]"
                ),
                Unchecked::TrackCaller => format!(
                    "#[track_caller] function `{name}` calls itself: #[growable] leaves it \
                     without a stack check (the caller's location cannot cross a switch of \
                     stacks), so the recursion can overflow; remove #[track_caller]"
                ),
            };
            syn::Error::new_spanned(at, msg)
        })
        .collect()
}

/// Why a function in an annotated block has no check.
#[derive(Clone, Copy)]
pub enum Unchecked {
    Nosplit,
    TrackCaller,
}

/// Errors for each cycle of calls among the functions of one annotated
/// block that have no check (`#[nosplit]` and `#[track_caller]` ones):
/// such a cycle is recursion without a check, as a self-call is. Calls are
/// found as [`Calls`] finds them.
pub fn nosplit_cycles(leaves: &[(syn::Signature, syn::Block)], assoc: bool) -> Vec<syn::Error> {
    let index: HashMap<String, usize> = leaves
        .iter()
        .enumerate()
        .map(|(i, (sig, _))| (sig.ident.to_string(), i))
        .collect();
    // Edges, with the call expression to point at.
    let edges: Vec<Vec<(usize, proc_macro2::TokenStream)>> = leaves
        .iter()
        .map(|(sig, block)| {
            let name = &sig.ident;
            calls(sig, block, assoc)
                .into_iter()
                .filter_map(|(callee, at)| {
                    let j = *index.get(&callee.to_string())?;
                    (leaves[j].0.ident != *name).then_some((j, at))
                })
                .collect()
        })
        .collect();
    // Depth-first search for a path back to the start, from each function
    // in turn; each cycle is reported once, from its smallest index.
    let mut errors = Vec::new();
    for start in 0..leaves.len() {
        let mut path = vec![(start, None::<proc_macro2::TokenStream>)];
        let mut next = vec![0usize];
        let mut on_path = vec![false; leaves.len()];
        on_path[start] = true;
        while let Some(&(node, _)) = path.last() {
            let k = next.last_mut().expect("as deep as path");
            if let Some((to, at)) = edges[node].get(*k) {
                *k += 1;
                if *to == start {
                    let names: Vec<String> = path
                        .iter()
                        .map(|(i, _)| format!("`{}`", leaves[*i].0.ident))
                        .collect();
                    errors.push(syn::Error::new_spanned(
                        at,
                        format!(
                            "functions without a stack check call each other in a cycle \
                             ({} -> `{}`): the recursion can overflow; remove #[nosplit] \
                             (or #[track_caller], which also leaves a function unchecked) \
                             from one of them",
                            names.join(" -> "),
                            leaves[start].0.ident
                        ),
                    ));
                } else if *to > start && !on_path[*to] {
                    on_path[*to] = true;
                    path.push((*to, Some(at.clone())));
                    next.push(0);
                }
            } else {
                on_path[node] = false;
                path.pop();
                next.pop();
            }
        }
    }
    errors
}

/// The calls by name in a body, outside nested items, that may be calls
/// of a function of the same block: in an impl or a trait (`assoc`),
/// `Self::g(..)`, `<Self as Tr>::g(..)` and `self.g(..)`; in a module, `g(..)`
/// and `self::g(..)`. Other paths (`crate::m::g`, `<T as Tr>::g`) and calls
/// through closures, function pointers or trait objects are not seen.
struct Calls {
    assoc: bool,
    /// Names a parameter or a binding in the body takes: a bare call of
    /// one of them is a closure or a function pointer, not the function.
    locals: HashSet<String>,
    calls: Vec<(syn::Ident, proc_macro2::TokenStream)>,
}

/// The calls [`Calls`] sees in `block`, the body of `sig`.
fn calls(
    sig: &syn::Signature,
    block: &syn::Block,
    assoc: bool,
) -> Vec<(syn::Ident, proc_macro2::TokenStream)> {
    struct Bindings(HashSet<String>);
    impl<'ast> Visit<'ast> for Bindings {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.insert(p.ident.to_string());
            visit::visit_pat_ident(self, p);
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut b = Bindings(HashSet::new());
    for input in &sig.inputs {
        b.visit_fn_arg(input);
    }
    b.visit_block(block);
    let mut v = Calls {
        assoc,
        locals: b.0,
        calls: Vec::new(),
    };
    v.visit_block(block);
    v.calls
}

impl<'ast> Visit<'ast> for Calls {
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func {
            let segs = &p.path.segments;
            let qself_is_self = p
                .qself
                .as_ref()
                .is_some_and(|q| matches!(&*q.ty, syn::Type::Path(t) if t.path.is_ident("Self")));
            let ours = if self.assoc {
                (p.qself.is_none() && segs.len() == 2 && segs[0].ident == "Self") || qself_is_self
            } else {
                p.qself.is_none()
                    && ((segs.len() == 1 && !self.locals.contains(&segs[0].ident.to_string()))
                        || (segs.len() == 2 && segs[0].ident == "self"))
            };
            if ours && let Some(last) = segs.last() {
                self.calls
                    .push((last.ident.clone(), quote::ToTokens::to_token_stream(call)));
            }
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if self.assoc && matches!(&*call.receiver, syn::Expr::Path(p) if p.path.is_ident("self")) {
            self.calls
                .push((call.method.clone(), quote::ToTokens::to_token_stream(call)));
        }
        visit::visit_expr_method_call(self, call);
    }

    // Nested items are other functions.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
