struct List(Option<Box<List>>);

#[growstack::growable]
impl List {
    #[nosplit]
    fn len(&self) -> usize {
        match &self.0 {
            Some(next) => 1 + next.len() + self.len(),
            None => 0,
        }
    }
}

fn main() {}
