#[growstack::growable]
#[track_caller]
fn expect_positive(n: i64) -> i64 {
    assert!(n > 0);
    n
}

fn main() {
    expect_positive(1);
}
