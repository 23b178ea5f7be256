#[growstack::main(workers = 0)]
fn main() {}
