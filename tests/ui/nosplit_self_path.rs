#[growstack::growable]
mod walk {
    #[nosplit]
    pub fn count(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + self::count(n - 1) }
    }
}

fn main() {
    walk::count(3);
}
