#[growstack::main]
async fn main() {}
