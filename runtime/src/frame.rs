//! [`FrameDesc`]: the static descriptor each annotated function gets.

use core::sync::atomic::{AtomicU64, Ordering};

/// Describes one annotated function: where it is and how much stack its
/// body needs beyond the red zone. `#[growable]` makes one `static` per
/// function and hands it to the runtime on the slow path only, so it costs
/// nothing while the stack has room.
#[derive(Debug)]
pub struct FrameDesc {
    /// The function's name, `Type::method` for methods.
    pub name: &'static str,
    /// `module_path!()` at the function.
    pub module_path: &'static str,
    /// `file!()` at the function.
    pub file: &'static str,
    /// `line!()` at the function.
    pub line: u32,
    /// Bytes the body needs on top of the red zone (0 for ordinary frames;
    /// set for bodies with large locals, which then run out of line).
    pub frame: usize,
    growths: AtomicU64,
}

impl FrameDesc {
    /// A descriptor with no growth counted yet.
    pub const fn new(
        name: &'static str,
        module_path: &'static str,
        file: &'static str,
        line: u32,
        frame: usize,
    ) -> FrameDesc {
        FrameDesc {
            name,
            module_path,
            file,
            line,
            frame,
            growths: AtomicU64::new(0),
        }
    }

    /// How many times a call of this function continued on a segment.
    pub fn growths(&self) -> u64 {
        self.growths.load(Ordering::Relaxed)
    }

    pub(crate) fn count_growth(&self) {
        self.growths.fetch_add(1, Ordering::Relaxed);
    }
}
