#[growstack::growable(red_zone = 4096)]
fn walk(n: u32) -> u32 {
    n
}

fn main() {}
