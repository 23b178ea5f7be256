trait Visit {
    #[growstack::growable]
    fn visit(&self, n: u32) -> u32;
}

fn main() {}
