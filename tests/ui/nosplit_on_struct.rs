#[growstack::nosplit]
struct Leaf;

fn main() {}
