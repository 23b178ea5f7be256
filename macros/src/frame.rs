//! An estimate of the stack a body needs for its large local arrays.
//!
//! The compiler allocates a function's whole frame before its first
//! statement, so the check at the top of a body runs after the frame
//! exists. A body with large locals is therefore moved out of line and the
//! check asks for room for them first. The estimate counts arrays whose
//! length is an integer literal, in `let` types and `[x; N]` expressions;
//! `#[growable(frame = N)]` states the size where it cannot see it.

use syn::visit::{self, Visit};
use syn::{Expr, Lit, Type};

/// Bodies needing more than this run out of line. Smaller frames fit in the
/// red zone together with the slow path.
pub const OUT_OF_LINE: usize = 16 << 10;

/// Bytes of large local arrays in `block`, by the rules above.
pub fn estimate(block: &syn::Block) -> usize {
    let mut v = Arrays { bytes: 0 };
    v.visit_block(block);
    v.bytes
}

struct Arrays {
    bytes: usize,
}

impl<'ast> Visit<'ast> for Arrays {
    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let syn::Pat::Type(pt) = &local.pat
            && let Some(n) = type_size(&pt.ty)
        {
            self.bytes = self.bytes.saturating_add(n);
            // The initialiser is the same array; do not count it twice.
            return;
        }
        visit::visit_local(self, local);
    }

    fn visit_expr_repeat(&mut self, e: &'ast syn::ExprRepeat) {
        if let Some(len) = int_lit(&e.len) {
            let elem = lit_size(&e.expr).unwrap_or(8);
            self.bytes = self.bytes.saturating_add(len.saturating_mul(elem));
        }
        visit::visit_expr_repeat(self, e);
    }

    // Closures and nested items have frames of their own.
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn int_lit(e: &Expr) -> Option<usize> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(n), ..
        }) => n.base10_parse().ok(),
        _ => None,
    }
}

fn lit_size(e: &Expr) -> Option<usize> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(n), ..
        }) => prim_size(n.suffix()),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(n), ..
        }) => prim_size(n.suffix()),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(_), ..
        }) => Some(1),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Byte(_), ..
        }) => Some(1),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Char(_), ..
        }) => Some(4),
        _ => None,
    }
}

fn type_size(ty: &Type) -> Option<usize> {
    match ty {
        Type::Array(a) => {
            let elem = type_size(&a.elem).unwrap_or(8);
            Some(int_lit(&a.len)?.saturating_mul(elem))
        }
        Type::Path(p) => prim_size(&p.path.get_ident()?.to_string()),
        _ => None,
    }
}

fn prim_size(name: &str) -> Option<usize> {
    Some(match name {
        "u8" | "i8" | "bool" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" | "f32" | "char" => 4,
        "u64" | "i64" | "f64" | "usize" | "isize" => 8,
        "u128" | "i128" => 16,
        _ => return None,
    })
}
