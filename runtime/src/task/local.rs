//! Task-local values: `task_local!` keys whose values are set for the
//! duration of a closure ([`LocalKey::scope`]) and private to the task (or
//! plain thread) that set them, shaped like tokio's `task_local!`.
//!
//! A `thread_local!` in a task is shared by every task of its worker: two
//! tasks that interleave at a blocking call see each other's writes, and
//! one that blocks inside a lazy initialiser can break std's rules (see
//! `Builder::preempt`). A task-local cannot: its value lives in the frame
//! of the `scope` call, on the task's own stack, and the task's context
//! keeps a list of the scopes it has entered, innermost last.

use core::any::TypeId;
use core::cell::Cell;
use core::marker::PhantomData;

use super::worker;

/// One entered scope, in the frame of its `scope` call: the key (its
/// address and its value's type: keys made outside the macro could share
/// an address), the value's address, and the scope entered before it in
/// the same context. A context's scopes form a list through these frames,
/// innermost first; the context keeps only its head, a pointer (a task's
/// cell grows by one word, and nothing to drop).
pub(crate) struct Scope {
    key: usize,
    ty: TypeId,
    value: *const (),
    outer: *const Scope,
}

thread_local! {
    /// The innermost scope of code that runs outside any task on this
    /// thread.
    static THREAD_SCOPES: Cell<*const Scope> = const { Cell::new(core::ptr::null()) };
}

/// Runs `f` on the head of the scope list of the calling context: the
/// running task's, or else the thread's. `f` must not run user code. `Err`
/// in a context that has no list of its own: another library's coroutine
/// (the scopes of one context must open and close in order, and a
/// coroutine's interleave with those of the context that resumes it), or
/// a thread whose list is already destroyed (it is exiting).
fn with_head<R>(f: impl FnOnce(&Cell<*const Scope>) -> R) -> Result<R, AccessError> {
    if crate::thread::in_foreign_context() {
        return Err(AccessError);
    }
    match worker::task_scopes() {
        // SAFETY: the running task's head, touched only by the task itself
        // (the caller, on this thread).
        Some(head) => Ok(f(unsafe { &*head })),
        None => THREAD_SCOPES.try_with(|h| f(h)).map_err(|_| AccessError),
    }
}

/// A key declared with [`task_local!`](crate::task_local): its value is set
/// by [`scope`](Self::scope) for the duration of a closure, and read with
/// [`with`](Self::with) by that closure and whatever it calls, in the same
/// task (or plain thread), across any blocking call. Other tasks, even of
/// the same worker, never see it.
///
/// ```
/// # use growstack_runtime as growstack;
/// growstack::task_local! {
///     static REQUEST_ID: u64;
/// }
///
/// fn log(msg: &str) -> String {
///     REQUEST_ID.with(|id| format!("[{id}] {msg}"))
/// }
///
/// let rt = growstack::Runtime::builder().workers(1).build()?;
/// let hs: Vec<_> = (0..3u64)
///     .map(|id| {
///         rt.spawn(move || {
///             REQUEST_ID.scope(id, || {
///                 growstack::yield_now(); // the other tasks run here
///                 log("done")
///             })
///         })
///     })
///     .collect();
/// let lines: Vec<String> = hs.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(lines, ["[0] done", "[1] done", "[2] done"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalKey<T: 'static> {
    /// Gives every key its own address (a zero-sized static might share).
    _unique: u8,
    _value: PhantomData<fn() -> T>,
}

/// The error of [`LocalKey::try_with`]: no scope of the key is entered in
/// the calling task or thread (or it runs in another library's coroutine,
/// where task-locals are not available, or its thread is exiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessError;

impl core::fmt::Display for AccessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("task-local value not set: read it inside KEY.scope(value, ...)")
    }
}

impl std::error::Error for AccessError {}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new() -> LocalKey<T> {
        LocalKey {
            _unique: 0,
            _value: PhantomData,
        }
    }

    fn id(&'static self) -> (usize, TypeId) {
        (core::ptr::from_ref(self).addr(), TypeId::of::<T>())
    }

    /// Sets the key to `value` while `f` runs, in the calling task (or
    /// thread), and drops the value when `f` returns or unwinds. Scopes
    /// nest: an inner one hides an outer one of the same key.
    ///
    /// # Panics
    ///
    /// In another library's coroutine (a stack growstack does not know),
    /// and on a thread that is exiting: they have no scopes of their own.
    #[track_caller]
    pub fn scope<F, R>(&'static self, value: T, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        struct Leave<'a>(&'a Scope);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                // The same context that linked it: its scopes close in
                // order, so this one is the head.
                let _ = with_head(|h| h.set(self.0.outer));
            }
        }
        let (key, ty) = self.id();
        let mut entry = Scope {
            key,
            ty,
            value: core::ptr::from_ref(&value).cast::<()>(),
            outer: core::ptr::null(),
        };
        let linked = with_head(|h| {
            entry.outer = h.get();
            h.set(&raw const entry);
        });
        if linked.is_err() {
            panic!(
                "growstack: task-local scopes are not available here (another library's \
                 coroutine, or a thread that is exiting)"
            );
        }
        let leave = Leave(&entry);
        let r = f();
        drop(leave);
        drop(value);
        r
    }

    /// Runs `f` with the value of the innermost scope of this key entered
    /// by the calling task (or thread).
    ///
    /// # Panics
    ///
    /// If no scope of the key is entered there (see [`try_with`](Self::try_with)).
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`with`](Self::with), or `Err` if no scope of the key is
    /// entered in the calling task or thread.
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let (key, ty) = self.id();
        let found = with_head(|h| {
            let mut p = h.get();
            // SAFETY: every entry of the list lives in the frame of a
            // `scope` call of this context that has not returned (scopes
            // unlink themselves when they end, in order).
            while let Some(e) = unsafe { p.as_ref() } {
                if e.key == key && e.ty == ty {
                    return Some(e.value);
                }
                p = e.outer;
            }
            None
        })?;
        let value = found.ok_or(AccessError)?;
        // SAFETY: the pointer was pushed by `scope` for a key of this
        // address and value type, so it points to a `T` in the frame of a
        // `scope` call of this context that has not returned: scopes are
        // popped when they end, in order, and the list is the calling
        // context's own (foreign coroutines, whose scopes would interleave
        // with their host's, have none), and a task's value never leaves
        // its stack, which stays where it is while the task lives.
        Ok(f(unsafe { &*value.cast::<T>() }))
    }

    /// A copy of the value (see [`with`](Self::with)).
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(|v| *v)
    }
}

impl<T: 'static> core::fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Declares task-local keys ([`LocalKey`]): values private to each task,
/// set with [`LocalKey::scope`], like tokio's `task_local!`.
///
/// ```
/// # use growstack_runtime as growstack;
/// growstack::task_local! {
///     /// The user a request runs for.
///     pub static USER: String;
///     static DEPTH: u32;
/// }
/// let who = USER.scope("ada".to_string(), || USER.with(|u| u.clone()));
/// assert_eq!(who, "ada");
/// assert!(DEPTH.try_with(|d| *d).is_err());
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = $crate::task::LocalKey::__new();
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::task_local!($(#[$attr])* $vis static $name: $t;);
    };
}
