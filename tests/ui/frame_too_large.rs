#[growstack::growable(frame = 2_000_000_000_000)]
fn huge(n: u32) -> u32 {
    n
}

fn main() {}
