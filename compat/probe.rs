//! compat/check's probe: with the patch, the published crates really grow
//! on growstack (its profile names their call sites), not on stacks of
//! their own.

use serde::Deserialize;

#[recursive::recursive]
fn depth_recursive(n: u64) -> u64 {
    if n == 0 { 0 } else { 1 + depth_recursive(n - 1) }
}

#[stacksafe::stacksafe]
fn depth_stacksafe(n: u64) -> u64 {
    if n == 0 { 0 } else { 1 + depth_stacksafe(n - 1) }
}

/// The profile entries of stacker calls made from a file whose path
/// contains `file`.
fn growths_at(file: &str) -> u64 {
    growstack::profile()
        .iter()
        .filter(|s| s.module_path == "stacker" && s.file.contains(file))
        .map(|s| s.growths)
        .sum()
}

#[test]
fn recursive_and_stacksafe_grow_on_growstack() {
    assert_eq!(depth_recursive(1_000_000), 1_000_000);
    assert_eq!(depth_stacksafe(1_000_000), 1_000_000);
    // Both macros put the call at the function, in this file.
    assert!(growths_at("probe.rs") >= 2, "{}", growstack::profile_report());
}

#[test]
fn serde_stacker_grows_on_growstack() {
    let depth = 100_000;
    let json = "[".repeat(depth) + &"]".repeat(depth);
    let mut de = serde_json::Deserializer::from_str(&json);
    de.disable_recursion_limit();
    let value = serde_json::Value::deserialize(serde_stacker::Deserializer::new(&mut de)).unwrap();
    assert!(growths_at("serde_stacker") >= 1, "{}", growstack::profile_report());
    // Value's drop recurses: take it apart in a loop.
    let mut stack = vec![value];
    let mut levels = 0;
    while let Some(v) = stack.pop() {
        if let serde_json::Value::Array(items) = v {
            levels += 1;
            stack.extend(items);
        }
    }
    assert_eq!(levels, depth);
}
