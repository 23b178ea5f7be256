use growstack::nosplit as leaf;

#[growstack::growable]
mod walk {
    pub fn count(n: u64) -> u64 {
        if n == 0 { 0 } else { step() + count(n - 1) }
    }

    #[super::leaf]
    fn step() -> u64 {
        1
    }
}

fn main() {
    walk::count(3);
}
