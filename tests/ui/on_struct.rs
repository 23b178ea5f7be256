#[growstack::growable]
struct Tree {
    children: Vec<Tree>,
}

fn main() {}
