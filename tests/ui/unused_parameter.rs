#![deny(unused_variables, unused_mut)]

// The re-call passes every parameter; rustc must still see the unused one.
#[growstack::growable]
fn scale(x: u32, factor: u32, mut unused_mut: u32) -> u32 {
    x * 2 + unused_mut
}

// The closure form keeps the parameter itself.
#[growstack::growable]
fn pair((a, b): (u32, u32)) -> u32 {
    a
}

// A field or a method named like a parameter is not a use of it.
#[growstack::growable]
fn count(v: &[u8], len: usize) -> usize {
    v.len()
}

fn main() {
    scale(1, 2, 3);
    pair((1, 2));
    count(&[1], 2);
}
