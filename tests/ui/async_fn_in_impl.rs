struct Client;

#[growstack::growable]
impl Client {
    fn depth(&self, n: u32) -> u32 {
        n
    }

    async fn fetch(&self) -> u32 {
        1
    }
}

fn main() {}
