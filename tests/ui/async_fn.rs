#[growstack::growable]
async fn fetch(n: u32) -> u32 {
    n
}

fn main() {}
