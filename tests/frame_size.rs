//! An annotated function uses the same stack per level as the plain one
//! (within 16 bytes): the slow path must not add to the frame. Frame sizes
//! are only meaningful optimised, so this file exists in release builds
//! only; `.ci/run` runs it with `cargo test --release --test frame_size`.
#![cfg(not(debug_assertions))]

use std::hint::black_box;

use growstack::remaining_stack;

/// Bytes of stack between consecutive levels: the difference of
/// `remaining_stack()` seen by a caller and its callee.
fn per_level(deltas: &[usize]) -> usize {
    // Every level is the same function, so every delta is the same.
    assert!(deltas.windows(2).all(|w| w[0] == w[1]), "{deltas:?}");
    deltas[0]
}

/// Defines one recursive function, with the attributes given, that records
/// its per-level stack use: the plain and the annotated one have the same
/// body by construction.
macro_rules! recorder {
    ($(#[$attr:meta])* fn $name:ident) => {
        $(#[$attr])*
        #[inline(never)]
        fn $name(n: u32, above: usize, arg: [u64; 4], out: &mut Vec<usize>) -> u64 {
            let here = remaining_stack();
            if above != 0 {
                out.push(above - here);
            }
            let mut local = arg;
            local[(n % 4) as usize] ^= u64::from(n);
            black_box(&mut local);
            if n == 0 {
                local[0]
            } else {
                $name(n - 1, here, local, out).wrapping_add(local[1])
            }
        }
    };
}

recorder!(fn plain);
recorder!(#[growstack::growable] fn annotated);

const CHILD: &str = "GROWSTACK_FRAME_SIZE_CHILD";

#[test]
fn annotated_frames_are_as_small_as_plain_ones() {
    // Stress mode would send every annotated call through the runtime on
    // purpose: measure in a child process that runs without it.
    if std::env::var_os(CHILD).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "annotated_frames_are_as_small_as_plain_ones",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env_remove("GROWSTACK_STRESS")
            .status()
            .unwrap();
        assert!(status.success(), "the measuring child failed: {status}");
        return;
    }
    // Shallow enough never to grow, so every delta is one frame.
    let (mut a, mut b) = (Vec::with_capacity(64), Vec::with_capacity(64));
    let x = plain(50, 0, [1, 2, 3, 4], &mut a);
    let y = annotated(50, 0, [1, 2, 3, 4], &mut b);
    assert_eq!(x, y);
    let (plain_bytes, annotated_bytes) = (per_level(&a), per_level(&b));
    println!("bytes per level: plain {plain_bytes}, annotated {annotated_bytes}");
    assert!(
        annotated_bytes <= plain_bytes + 16,
        "annotated {annotated_bytes} bytes per level, plain {plain_bytes}"
    );
}
