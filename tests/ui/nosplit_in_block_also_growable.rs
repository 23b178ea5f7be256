struct Walker;

#[growstack::growable]
impl Walker {
    #[nosplit]
    #[growable]
    fn step(&self) -> u32 {
        1
    }
}

fn main() {}
