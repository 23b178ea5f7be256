//! Compile errors of `#[growable]` and `#[nosplit]`, each pointing at the
//! culprit (tests/ui/*.rs with the expected .stderr next to it).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
