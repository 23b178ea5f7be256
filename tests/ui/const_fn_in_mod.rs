#[growstack::growable]
mod math {
    pub fn walk(n: u32) -> u32 {
        n
    }

    pub const fn double(n: u32) -> u32 {
        2 * n
    }
}

fn main() {}
