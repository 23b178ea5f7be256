//! Go-style growable stacks for Rust.
//!
//! Annotate a recursive function with [`#[growable]`](growable) and it
//! grows its stack instead of overflowing it: a check of a few
//! instructions at its entry notices when the stack is nearly used up, and
//! the call continues on a new *segment* (twice the size of the previous
//! one) and comes back when it returns. Nothing is copied or moved, so
//! references into the stack stay valid. The limit is [`max_stack`] per
//! thread (1 GiB by default, as in Go), counted in whole segments.
//!
//! ```
//! use growstack::DeepBox;
//!
//! enum List {
//!     Cons(u32, DeepBox<List>),
//!     Nil,
//! }
//!
//! #[growstack::growable]
//! fn depth(list: &List) -> usize {
//!     match list {
//!         List::Cons(_, rest) => 1 + depth(rest),
//!         List::Nil => 0,
//!     }
//! }
//!
//! # growstack::set_max_stack(16 << 30); // room for stress mode (GROWSTACK_STRESS=1)
//! let mut list = List::Nil;
//! for i in 0..1_000_000 {
//!     list = List::Cons(i, DeepBox::new(list));
//! }
//! // A million levels: far beyond the 8 MiB main-thread stack.
//! assert_eq!(depth(&list), 1_000_000);
//! drop(list);
//! ```
//!
//! **Dropping a deep structure is recursion too.** The compiler's drop glue
//! for `enum List { Cons(u32, Box<List>), .. }` calls itself once per level
//! without any check, so the million-level list above would overflow when
//! dropped if its tail were a `Box`. [`DeepBox`] is a `Box` whose drop (and
//! clone, comparison, hashing and formatting) runs with the check: put
//! the recursive fields of a type in `DeepBox`es and it drops at any depth.
//! (Or write a `#[growable] impl Drop` that takes the children out and
//! drops them in its body, as in [`growable`]'s docs.)
//!
//! # A tour
//!
//! - [`#[growable]`](growable) goes on a `fn`, an `impl` block, a `trait`
//!   (its default bodies) or an inline `mod`, and instruments every function
//!   with a body inside. [`#[nosplit]`](nosplit) leaves one out.
//! - [`maybe_grow`] gives the same guarantee to a closure: for recursion
//!   written with closures, and for code you cannot annotate that calls
//!   back into yours at every level (a visitor, a fold with a callback).
//! - [`set_max_stack`] bounds the stack of one thread (1 GiB by default, as
//!   in Go); growing past it is an ordinary panic.
//! - [`remaining_stack`] and [`stats`] tell you where you are.
//!
//! # Where things are
//!
//! - The crate root has the attributes ([`growable`], [`nosplit`],
//!   [`main`], [`test`]) and what deep recursion needs ([`maybe_grow`],
//!   [`DeepBox`], [`set_max_stack`], [`remaining_stack`], [`profile`],
//!   [`stats`], [`shrink_now`]).
//! - [`runtime`]: the [`Runtime`], the [`runtime::Builder`] that
//!   configures it (workers, stack sizes, preemption), and the [`Handle`]
//!   that spawns on it from anywhere ([`Handle::current`] in a task); also
//!   at the root.
//! - [`task`]: one task. [`task::Builder`] names a task before it is
//!   spawned (not to be confused with the runtime's [`Builder`]);
//!   [`JoinHandle`], [`task::current_id`], [`task::Cancelled`],
//!   [`task_local!`]. The calls a task makes most, [`spawn`],
//!   [`spawn_blocking`], [`sleep`], [`yield_now`] and [`current_id`], are
//!   also at the root: the same functions, not copies.
//! - [`chan`]: channels that park a task and block a plain thread, and
//!   [`chan::select!`] over several of them.
//! - [`sync`]: `Mutex`, `RwLock`, `Condvar`, `Barrier`, `OnceLock`,
//!   `WaitGroup` and `Semaphore`, whose waits park a task.
//! - [`dump`] and [`dump_report`]: every task of every runtime, where it
//!   is parked and its backtrace, like Go's goroutine dump.
//! - [`net`]: `std::net` for tasks: [`net::TcpListener`],
//!   [`net::TcpStream`] and [`net::UdpSocket`], whose calls park a task
//!   on its socket (an epoll netpoller in the workers) and block a plain
//!   thread.
//!
//! # Tasks
//!
//! A [`Runtime`] runs *tasks*: green threads written as plain blocking code,
//! each starting on a small slot (256 KiB of address space, of which it
//! commits only what it touches) that `#[growable]` code grows past, like
//! goroutines. A million parked tasks take about 4.3 GiB of resident
//! memory.
//!
//! ```
//! #[growstack::growable]
//! fn count(n: u64) -> u64 {
//!     if n == 0 { 0 } else { 1 + count(n - 1) }
//! }
//!
//! let rt = growstack::Runtime::new()?;
//! let (tx, rx) = growstack::chan::unbounded();
//! for i in 0..100u64 {
//!     let tx = tx.clone();
//!     // Each task recurses 10k levels deep, far past its 256 KiB slot.
//!     rt.spawn(move || tx.send(count(10_000) + i).unwrap());
//! }
//! drop(tx);
//! assert_eq!(rx.iter().sum::<u64>(), 100 * 10_000 + 4950);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! - [`spawn`] / [`Runtime::spawn`] return a [`JoinHandle`]; [`chan`] has
//!   MPMC channels; [`yield_now`] and [`sleep`]; `#[growstack::main]` and
//!   `#[growstack::test]`. Blocking calls park a task and block a plain
//!   thread, so the same code works in both.
//! - A task stays on the worker thread that first ran it, and switches only
//!   where it blocks on growstack (preemption is opt-in:
//!   [`Builder::preempt`], an `unsafe fn`).
//! - [`spawn_blocking`] runs a call that blocks the OS thread (file I/O, a
//!   std lock, a long computation) on a pool of plain threads while the
//!   task waits parked: made directly in a task, such a call stalls every
//!   task of its worker, and the runtime says so on stderr after a second
//!   ([`Builder::stall_warning`]).
//! - [`task_local!`] declares per-task values: a `thread_local!` is shared
//!   by all the tasks of a worker.
//! - Dropping a [`Runtime`] stops it: joins of its tasks that will never
//!   finish return a [`task::Cancelled`] payload.
//!
//! # What is sound
//!
//! Nothing reachable from safe code causes undefined behaviour. Where that
//! depends on a rule std itself imposes, the rule is written here, in the
//! README's safety model (a table of every way to reach a task's stack or a
//! worker's state, each with the test that checks it) and on the API it
//! concerns:
//!
//! - **Do not block a task on growstack inside a `thread_local!` lazy
//!   initialiser.** The tasks of a worker share its thread-locals, and std
//!   lets another `with` of a key run during that key's initialiser only
//!   if no reference to its value is alive; a task switch there breaks
//!   that. Without [`Builder::preempt`] a task switches only where it
//!   blocks on growstack, so this needs a blocking call written inside the
//!   initialiser; `Builder::preempt` is `unsafe` because with it any
//!   annotated call there could switch.
//! - Thread-locals, `!Send` values and scoped threads are safe across
//!   blocking calls: a task never changes thread, and a worker whose tasks
//!   are still in flight when its runtime is dropped keeps its thread (and
//!   its thread-locals) alive for good.
//! - `std::process::exit` from deep on a segment exits cleanly; another
//!   library's coroutine on the same thread runs its `#[growable]` code on
//!   its own stack and never on the thread's segments.
//!
//! # What is protected
//!
//! Each thread's stack has a *guard*: the lowest point at which an
//! annotated function may start, a red zone (64 KiB) above the real end of
//! the stack. Annotated functions check it; code that is not annotated does
//! not. If such code recurses deeply on a segment, it runs through the red
//! zone into the segment's guard region and the process aborts with a
//! message naming the thread and what to do, just as std aborts when a
//! thread overflows its native stack. Nothing reachable from safe code
//! causes undefined behaviour.
//!
//! A function whose body has large local arrays (`[0u8; 50_000]`) gets its
//! frame out of line, after a check that asks for that much room; write
//! `#[growable(frame = 100_000)]` when the size is hidden from the macro
//! (a large local of a type it cannot see into).
//!
//! # Testing your code under growth
//!
//! With `GROWSTACK_STRESS=1` in the environment, every check fails, so every
//! annotated call goes through the whole growth path (the way Go tests its
//! runtime with a forced stack move at every call). Run your test suite
//! once that way.
//!
//! # Platform
//!
//! x86_64 Linux. Segments take their guard regions from
//! `MADV_GUARD_INSTALL` (Linux 6.13+) and fall back to `mprotect` on older
//! kernels.

#![warn(missing_docs)]

/// Makes functions grow their stack instead of overflowing it.
///
/// On a `fn`, every call checks the stack pointer against the thread's
/// guard first; when there is no room, the call continues on a segment and
/// returns through the runtime. On an `impl` block, a `trait` or an inline
/// `mod`, every function with a body inside is instrumented (recursively for
/// nested modules); mark one [`#[nosplit]`](nosplit) to leave it out.
///
/// ```
/// use growstack::growable;
///
/// enum Tree {
///     Leaf(u64),
///     Node(Box<Tree>, Box<Tree>),
/// }
///
/// #[growable]
/// impl Tree {
///     fn sum(&self) -> u64 {
///         match self {
///             Tree::Leaf(v) => *v,
///             Tree::Node(l, r) => l.sum() + r.sum(),
///         }
///     }
/// }
///
/// # growstack::set_max_stack(16 << 30); // room for stress mode (GROWSTACK_STRESS=1)
/// let mut tree = Tree::Leaf(1);
/// for i in 0..500_000 {
///     tree = Tree::Node(Box::new(tree), Box::new(Tree::Leaf(i)));
/// }
/// assert_eq!(tree.sum(), 1 + (0..500_000).sum::<u64>());
/// # std::mem::forget(tree); // this Tree's drop glue is not annotated
/// ```
///
/// # What the function becomes
///
/// Exactly the plain function plus a check: the same result, the same
/// drop order of parameters and locals (on return and on unwind), items in
/// the body once, the same warnings, whichever path a call takes. Generics,
/// lifetimes, every receiver (`self`, `&mut self`, `self: Box<Self>`,
/// `self: Pin<&mut Self>`), parameter patterns (`ref mut` included),
/// `#[cfg]` on parameters, `impl Trait`, `unsafe fn`, `extern "C" fn`,
/// `-> !`, `?` and early `return` work as written, in every edition. The
/// only differences: a growth costs time and shows in [`profile`], a
/// growth refused at the stack limit panics at the function's line, and
/// backtraces taken after a growth show the runtime's frames.
///
/// Where the function can name itself beyond doubt (a free function, or
/// anything inside an annotated `impl`, `trait` or `mod`), the body stays
/// in the function and a failed check calls the function again on the new
/// stack, so the fast path is the check and the plain body. Elsewhere the
/// body runs as a closure with the function's own parameters, which may
/// cost a copy of a large by-value argument; put `#[growable]` on the
/// `impl` block rather than on each method for the fastest code.
///
/// # Limits
///
/// - A `#[track_caller]` function cannot be instrumented: the caller's
///   location cannot cross a switch of stacks on stable Rust. Alone it is
///   a compile error; in an annotated block it is left as written, like a
///   [`#[nosplit]`](nosplit) one.
/// - An associated function whose signature and body never mention `Self`,
///   annotated alone, looks like a free function to the attribute; rustc
///   then reports "`use` import is not supported in `trait`s or `impl`s"
///   at the attribute. Annotate the `impl` block (or the `trait`) instead.
/// - At most four parameters with `#[cfg]` (the function is written once
///   per combination) and, when the body runs as a closure, at most 16
///   parameters.
/// - In an annotated trait impl, a method whose signature is more general
///   than the trait's (a longer lifetime, a weaker bound) does not compile:
///   annotate that method alone.
/// - The expansion names the crate `::growstack`: a renamed dependency
///   does not work.
///
/// # Arguments
///
/// `#[growable(frame = N)]`: the body has `N` bytes of large locals that
/// the macro cannot see (it counts arrays with literal lengths itself). The
/// body then runs out of line, after a check that asks for `2 * N` bytes
/// beyond the red zone: unoptimised builds may hold a second copy of a
/// large local while moving it into place.
///
/// # Rejected
///
/// `async fn` and `const fn` (a compile error points at the keyword), items
/// other than `fn`, `impl`, `trait` and inline `mod`, and unknown arguments.
///
/// # Drop
///
/// `Drop::drop` runs before the fields are dropped, so only recursion
/// *inside* `drop` is covered: move the children out (`Option::take`,
/// `mem::replace`) and drop them in the body.
///
/// ```
/// struct Node {
///     next: Option<Box<Node>>,
/// }
///
/// #[growstack::growable]
/// impl Drop for Node {
///     fn drop(&mut self) {
///         drop(self.next.take()); // the rest of the list drops in here
///     }
/// }
///
/// # growstack::set_max_stack(16 << 30); // room for stress mode (GROWSTACK_STRESS=1)
/// let mut list = Node { next: None };
/// for _ in 0..1_000_000 {
///     list = Node { next: Some(Box::new(list)) };
/// }
/// drop(list); // a million nested drops, no overflow
/// ```
#[doc(inline)]
pub use growstack_macros::growable;

/// Leaves one function inside a [`#[growable]`](growable) block without a
/// check.
///
/// For tiny leaf functions on hot paths. Whatever a `#[nosplit]` function
/// calls runs on the red zone until the next annotated call, so it must not
/// recurse. Compile errors catch what the attribute can see: a call to
/// itself (in a module `f(..)` or `self::f(..)` where no local is named
/// `f`; in an impl or a trait `Self::f(..)`, `<Self as Tr>::f(..)` or
/// `self.f(..)`, also when an inherent method of the same name is what
/// they call: write `Type::f(self)` there), and a cycle of such calls
/// among the unchecked functions of one annotated block (`#[nosplit]` and
/// `#[track_caller]` ones). Recursion through other paths or functions,
/// closures, function pointers or trait objects is not seen. Write it as
/// `#[nosplit]` or `#[growstack::nosplit]`: under another name the
/// enclosing `#[growable]` does not recognise it (a compile error says so).
/// Inside an annotated block the enclosing attribute reads and removes it,
/// so it needs no `use` (an import used only there is reported unused).
///
/// ```
/// #[growstack::growable]
/// mod walk {
///     pub fn count(n: u64) -> u64 {
///         if n == 0 { 0 } else { step() + count(n - 1) }
///     }
///
///     #[nosplit]
///     fn step() -> u64 {
///         1
///     }
/// }
/// # growstack::set_max_stack(16 << 30); // room for stress mode (GROWSTACK_STRESS=1)
/// assert_eq!(walk::count(1_000_000), 1_000_000);
/// ```
#[doc(inline)]
pub use growstack_macros::nosplit;

/// `#[growable]` in edition 2015, where `::core` is a path from the crate
/// root (the expansion once named it):
///
/// ```edition2015
/// extern crate growstack;
///
/// use growstack::growable;
///
/// #[growable]
/// fn depth(n: u32) -> u32 {
///     if n == 0 { 0 } else { 1 + depth(n - 1) }
/// }
///
/// #[growable]
/// mod shapes {
///     pub fn sum((a, b): (u32, u32), n: u32) -> u32 {
///         if n == 0 { a + b } else { sum((a, b), n - 1) }
///     }
/// }
///
/// fn main() {
///     assert_eq!(depth(10_000), 10_000);
///     assert_eq!(shapes::sum((1, 2), 10_000), 3);
/// }
/// ```
#[cfg(doctest)]
pub struct Edition2015;

/// `#[growstack::main]`'s own bindings are hygienic: the body's names are
/// its own.
///
/// ```
/// fn runtime() -> &'static str {
///     "the user's"
/// }
///
/// #[growstack::main]
/// fn main() {
///     let result = runtime();
///     assert_eq!(result, "the user's");
/// }
/// ```
///
/// `workers` takes any integer literal and a trailing comma, and a return
/// type that is `Send` through a reference is accepted:
///
/// ```
/// #[growstack::main(workers = 2u8,)]
/// fn main() -> Result<(), &'static (dyn std::error::Error + Sync)> {
///     Ok(())
/// }
/// ```
#[cfg(doctest)]
pub struct MainHygiene;

/// The README's examples compile and run.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct Readme;

/// Runs `main` as a task on a runtime with the default settings
/// ([`Runtime::new`]), so that `main` can spawn tasks and block on them.
/// `#[growstack::main(workers = N)]` starts `N` worker threads instead of
/// one per CPU.
///
/// As in Go, when `main` returns the process exits, whatever other tasks
/// are still doing. The return type must be `Send` (it comes back from the
/// task): return `Result<(), Box<dyn Error + Send + Sync>>`, into which `?`
/// converts any error type, rather than `Box<dyn Error>` (a compile error
/// says so).
///
/// ```
/// use std::error::Error;
///
/// #[growstack::main(workers = 2)]
/// fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
///     let n: u32 = "42".parse()?;
///     let h = growstack::spawn(move || n * 2);
///     assert_eq!(h.join().unwrap(), 84);
///     Ok(())
/// }
/// ```
///
/// ```
/// #[growstack::main]
/// fn main() {
///     let (tx, rx) = growstack::chan::unbounded();
///     growstack::spawn(move || tx.send("hi").unwrap());
///     assert_eq!(rx.recv().unwrap(), "hi");
/// }
/// ```
#[doc(inline)]
pub use growstack_macros::main;

/// Like `#[test]`, with the body run as a task on a fresh runtime (dropped
/// when the test ends). `#[growstack::test(workers = N)]` starts `N`
/// worker threads instead of one per CPU.
///
/// ```
/// #[growstack::test]
/// fn sends_one() {
///     let (tx, rx) = growstack::chan::bounded(1);
///     growstack::spawn(move || tx.send(1).unwrap());
///     assert_eq!(rx.recv(), Ok(1));
/// }
/// # fn main() {}
/// ```
#[doc(inline)]
pub use growstack_macros::test;

pub use growstack_runtime::task::current_id;
pub use growstack_runtime::{
    Builder, Handle, JoinHandle, Runtime, chan, net, sleep, spawn, spawn_blocking, sync, task,
    yield_now,
};

/// The runtime that runs tasks: [`Runtime`], its [`Builder`] and its
/// [`Handle`], the same items as at the crate root, grouped as
/// `tokio::runtime` groups them
/// (and apart from [`task::Builder`], which names
/// one task).
pub mod runtime {
    pub use growstack_runtime::{Builder, Handle, Runtime};
}
pub use growstack_runtime::{
    DeepBox, Stats, max_stack, maybe_grow, remaining_stack, set_max_stack, stats,
};
pub use growstack_runtime::{GrowthSite, dump, dump_report, profile, profile_report, shrink_now};

/// What the code generated by [`growable`] calls. Not a stable API.
#[doc(hidden)]
pub use growstack_runtime::__private;
pub use growstack_runtime::task_local;
