#[growstack::growable(frame = "big")]
fn walk(n: u32) -> u32 {
    n
}

fn main() {}
