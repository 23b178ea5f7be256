#[growstack::growable]
mod parity {
    pub fn check(n: u32) -> bool {
        even(n)
    }

    #[nosplit]
    fn even(n: u32) -> bool {
        n == 0 || odd(n - 1)
    }

    #[nosplit]
    fn odd(n: u32) -> bool {
        n != 0 && even(n - 1)
    }
}

struct Walker;

#[growstack::growable]
impl Walker {
    #[nosplit]
    fn a(&self, n: u32) -> u32 {
        if n == 0 { 0 } else { self.b(n - 1) }
    }

    #[nosplit]
    fn b(&self, n: u32) -> u32 {
        self.c(n)
    }

    #[track_caller]
    fn c(&self, n: u32) -> u32 {
        Self::a(self, n)
    }
}

fn main() {
    parity::check(3);
    Walker.a(3);
}
