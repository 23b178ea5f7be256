struct Walker;

#[growstack::growable]
impl Walker {
    // Left without a check by #[growable]: recursion would overflow.
    #[track_caller]
    fn down(&self, n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + self.down(n - 1) }
    }
}

fn main() {
    Walker.down(3);
}
