//! `growstack::set_max_stack` bounds stacker's growths too. Its own test
//! binary: the limit is process-wide.

use std::panic::catch_unwind;

#[test]
fn a_growth_past_the_limit_panics_at_the_call_and_the_thread_goes_on() {
    growstack::set_max_stack(64 << 20);
    std::thread::spawn(|| {
        let err = catch_unwind(|| {
            stacker::grow(128 << 20, || ());
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("exceeds 67108864-byte limit"), "{msg}");
        assert!(msg.contains("stacker::grow"), "{msg}");
        // A stack_size no stack can have is refused the same way.
        let err = catch_unwind(|| stacker::grow(usize::MAX, || ())).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("exceeds"), "{msg}");
        // Recursion without end through maybe_grow stops at the limit.
        fn forever(pad: [u8; 64]) -> u8 {
            stacker::maybe_grow(64 * 1024, 1 << 20, || forever(std::hint::black_box(pad)))
        }
        let err = catch_unwind(|| forever([1; 64])).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("exceeds 67108864-byte limit"), "{msg}");
        // And the thread carries on.
        assert_eq!(stacker::grow(1 << 20, || 5), 5);
    })
    .join()
    .unwrap();
}
