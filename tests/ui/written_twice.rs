#[growstack::growable]
#[growstack::growable(frame = 100)]
fn f(n: u32) -> u32 {
    n
}

fn main() {
    f(1);
}
