#![deny(dead_code)]

// An unused instrumented function is still reported, in every form.
#[growstack::growable]
fn never_called(n: u32) -> u32 {
    n
}

struct S;

impl S {
    #[growstack::growable]
    fn never_called_either(&self, (a, _): (u32, u32)) -> u32 {
        a
    }
}

fn main() {
    let _ = S;
}
