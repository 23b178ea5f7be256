#[growstack::main(workers = 1_000_000)]
fn main() {}
