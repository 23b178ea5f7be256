// An associated function whose signature and body never mention `Self`
// looks like a free function to an attribute on it alone.
struct Parser;

impl Parser {
    #[growstack::growable]
    fn depth(n: u32) -> u32 {
        if n == 0 { 0 } else { 1 + Parser::depth(n - 1) }
    }
}

fn main() {
    Parser::depth(3);
}
