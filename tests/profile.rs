//! The growth profile: which annotated functions made stacks grow.

mod common;

#[growstack::growable]
fn grows_often(n: u32) -> u32 {
    if n == 0 { 0 } else { grows_often(n - 1) + 1 }
}

#[growstack::growable]
fn grows_seldom(n: u32) -> u32 {
    if n == 0 { 0 } else { grows_seldom(n - 1) + 1 }
}

#[test]
fn sites_appear_with_their_counts_most_growths_first() {
    common::on_thread(64 << 10, || {
        // From just below the guard, each call grows exactly once: the
        // first level continues on a segment, the second fits there.
        for _ in 0..10 {
            assert_eq!(common::at_the_edge(|| grows_often(1)), 1);
        }
        for _ in 0..3 {
            assert_eq!(common::at_the_edge(|| grows_seldom(1)), 1);
        }
    });
    let sites = growstack::profile();
    let pos = |name: &str| sites.iter().position(|s| s.name == name).unwrap();
    let (often, seldom) = (pos("grows_often"), pos("grows_seldom"));
    assert!(often < seldom, "{sites:#?}");
    let (often, seldom) = (&sites[often], &sites[seldom]);
    assert_eq!((often.growths, seldom.growths), (10, 3));
    assert_eq!(often.module_path, "profile");
    assert!(
        often.file.ends_with("profile.rs") && often.line == 6,
        "{often:?}"
    );
    // Each growth continued on a segment of at least 256 KiB.
    assert!(often.bytes >= 10 * (256 << 10) && seldom.bytes >= 3 * (256 << 10));
    let report = growstack::profile_report();
    assert!(report.contains("profile::grows_often"), "{report}");
    assert!(
        report.find("grows_often") < report.find("grows_seldom"),
        "{report}"
    );
}
