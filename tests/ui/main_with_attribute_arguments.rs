#[growstack::main(threads = 2)]
fn main() {}
