#[growstack::growable]
#[growstack::nosplit]
fn leaf(n: u32) -> u32 {
    n + 1
}

fn main() {}
