#[growstack::growable]
static DEPTH: usize = 10;

fn main() {}
