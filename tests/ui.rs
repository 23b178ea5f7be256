//! Compile errors of `#[growable]`, `#[nosplit]`, `#[growstack::main]` and
//! `#[growstack::test]`, each pointing at the culprit (tests/ui/*.rs with
//! the expected .stderr next to it).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
