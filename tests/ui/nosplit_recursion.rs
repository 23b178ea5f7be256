#[growstack::nosplit]
fn count(n: u32) -> u32 {
    if n == 0 { 0 } else { 1 + count(n - 1) }
}

fn main() {}
