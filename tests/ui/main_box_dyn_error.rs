#[growstack::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = "5".parse()?;
    println!("{n}");
    Ok(())
}
