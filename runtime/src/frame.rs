//! [`FrameDesc`]: the static descriptor each annotated function gets, and
//! the growth profile built from them.

use core::cell::Cell;
use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::collections::BTreeMap;
use std::sync::Mutex;

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
    bytes: AtomicU64,
    /// Set once the descriptor is on the profile list.
    listed: AtomicBool,
    /// The next descriptor on the profile list.
    next: AtomicPtr<FrameDesc>,
}

/// Descriptors whose function has grown a stack at least once: a lock-free
/// list, pushed to at a descriptor's first growth and never shrunk.
static PROFILE: AtomicPtr<FrameDesc> = AtomicPtr::new(core::ptr::null_mut());

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
            bytes: AtomicU64::new(0),
            listed: AtomicBool::new(false),
            next: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// How many times a call of this function continued on a segment.
    pub fn growths(&self) -> u64 {
        self.growths.load(Ordering::Relaxed)
    }

    /// Counts a growth onto a segment of `bytes`.
    pub(crate) fn count_growth(&'static self, bytes: usize) {
        self.growths.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if !self.listed.load(Ordering::Relaxed) && !self.listed.swap(true, Ordering::Relaxed) {
            let me = (self as *const FrameDesc).cast_mut();
            let mut head = PROFILE.load(Ordering::Relaxed);
            loop {
                self.next.store(head, Ordering::Relaxed);
                match PROFILE.compare_exchange_weak(head, me, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(actual) => head = actual,
                }
            }
        }
    }
}

/// The descriptor of a call site that is not an annotated function (a call
/// of the stacker compat API): `name` (a path, `stacker::grow`) at `at`,
/// made at the site's first growth and kept for the life of the process,
/// like an annotated function's `static`. Growths only: runs on g0, which has room for the
/// lock and the map.
pub(crate) fn site(name: &'static str, at: &'static Location<'static>) -> &'static FrameDesc {
    type Key = (&'static str, &'static str, u32, u32);
    type Last = (*const str, *const Location<'static>, &'static FrameDesc);
    thread_local! {
        /// The last site this thread grew at, by address: a call sitting
        /// on a boundary in a loop finds its descriptor without the lock
        /// (one location may have several addresses; the map decides).
        static LAST: Cell<Option<Last>> = const { Cell::new(None) };
    }
    static SITES: Mutex<BTreeMap<Key, &'static FrameDesc>> = Mutex::new(BTreeMap::new());
    if let Ok(Some((n, a, desc))) = LAST.try_with(Cell::get)
        && core::ptr::eq(n, name)
        && core::ptr::eq(a, at)
    {
        return desc;
    }
    let key = (name, at.file(), at.line(), at.column());
    let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
    let desc: &'static FrameDesc = sites.entry(key).or_insert_with(|| {
        let (module_path, name) = name.rsplit_once("::").unwrap_or(("", name));
        Box::leak(Box::new(FrameDesc::new(
            name,
            module_path,
            at.file(),
            at.line(),
            0,
        )))
    });
    let _ = LAST.try_with(|last| last.set(Some((name as *const str, at as *const _, desc))));
    desc
}

/// One annotated function in the growth profile (see [`profile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrowthSite {
    /// The function's name, `Type::method` for methods.
    pub name: &'static str,
    /// The module it is defined in.
    pub module_path: &'static str,
    /// Its source file.
    pub file: &'static str,
    /// The line of its signature.
    pub line: u32,
    /// How many times a call of it continued on a segment.
    pub growths: u64,
    /// The sizes of the segments those calls continued on, added up.
    pub bytes: u64,
}

/// Every annotated function whose check has made a stack grow, in this
/// process so far, most growths first.
///
/// A function that shows up at the top with many growths and few bytes sits
/// on a segment boundary in a loop (cached segments make that cheap, but
/// each call still switches stacks twice); one with many bytes is where
/// stacks get deep.
///
/// ```
/// # use growstack_runtime as growstack;
/// for site in growstack::profile() {
///     println!("{} grew {} times ({}:{})", site.name, site.growths, site.file, site.line);
/// }
/// ```
pub fn profile() -> Vec<GrowthSite> {
    let mut sites = Vec::new();
    let mut p = PROFILE.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: only `&'static FrameDesc`s are pushed, never removed.
        let d: &'static FrameDesc = unsafe { &*p };
        sites.push(GrowthSite {
            name: d.name,
            module_path: d.module_path,
            file: d.file,
            line: d.line,
            growths: d.growths(),
            bytes: d.bytes.load(Ordering::Relaxed),
        });
        p = d.next.load(Ordering::Acquire);
    }
    sites.sort_by(|a, b| b.growths.cmp(&a.growths).then(b.bytes.cmp(&a.bytes)));
    sites
}

/// [`profile`] as a plain-text table, one function per line.
///
/// ```
/// # use growstack_runtime as growstack;
/// let report = growstack::profile_report();
/// assert!(report.lines().next().unwrap().contains("growths"));
/// ```
pub fn profile_report() -> String {
    use core::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{:>10} {:>12}  function (location)", "growths", "MiB");
    for s in profile() {
        let _ = writeln!(
            out,
            "{:>10} {:>12.1}  {}::{} ({}:{})",
            s.growths,
            s.bytes as f64 / (1 << 20) as f64,
            s.module_path,
            s.name,
            s.file,
            s.line
        );
    }
    out
}
