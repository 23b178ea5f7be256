#[growstack::growable]
enum Expr {
    Num(i64),
    Neg(Box<Expr>),
}

fn main() {}
