//! [`DeepBox`]: a `Box` for the recursive fields of a type, whose drop,
//! clone, comparison and formatting grow the stack instead of overflowing.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

use crate::grow::maybe_grow;

/// A `Box` whose destructor runs with a stack check, so that a recursive
/// type holding its children in `DeepBox`es drops at any depth.
///
/// A recursive type's drop is recursion too: the compiler's drop glue for
/// `enum Expr { Add(Box<Expr>, Box<Expr>), .. }` calls itself once per
/// level, with no check, and a million-level tree that `#[growable]` code
/// built and walked overflows the stack when it is dropped. With the
/// recursive fields in `DeepBox`es, every level of the drop goes through
/// [`maybe_grow`]'s check. `Clone`, `PartialEq`, `Ord`, `Hash` and
/// `Debug` recurse the same way (derived on the parent type, they call the
/// child's through the box) and are checked too.
///
/// It costs a check (a few instructions) per level of those operations;
/// [`Deref`] and [`DerefMut`] cost nothing.
///
/// ```
/// # use growstack_runtime as growstack;
/// use growstack::DeepBox;
///
/// #[derive(Clone, Debug, PartialEq)]
/// enum Expr {
///     Num(u64),
///     Add(DeepBox<Expr>, DeepBox<Expr>),
///     Neg(DeepBox<Expr>),
/// }
///
/// // Or `#[growstack::growable] fn eval`.
/// fn eval(e: &Expr) -> i128 {
///     growstack::maybe_grow(|| match e {
///         Expr::Num(n) => i128::from(*n),
///         Expr::Add(a, b) => eval(a) + eval(b),
///         Expr::Neg(a) => -eval(a),
///     })
/// }
///
/// # growstack::set_max_stack(16 << 30); // room for stress mode (GROWSTACK_STRESS=1)
/// let mut e = Expr::Num(1);
/// for i in 0..1_000_000 {
///     e = Expr::Add(DeepBox::new(e), DeepBox::new(Expr::Num(i % 3)));
/// }
/// assert_eq!(eval(&e), 1 + 999_999);
/// let copy = e.clone();
/// assert_eq!(copy, e);
/// drop(copy);
/// drop(e); // a million levels of drop, no overflow
/// ```
pub struct DeepBox<T>(ManuallyDrop<Box<T>>);

impl<T> DeepBox<T> {
    /// Puts `value` on the heap.
    pub fn new(value: T) -> DeepBox<T> {
        DeepBox(ManuallyDrop::new(Box::new(value)))
    }

    /// The value, moved out of the box (the box itself is freed).
    pub fn into_inner(self) -> T {
        *self.into_box()
    }

    /// The value's `Box`, for code that wants one.
    pub fn into_box(self) -> Box<T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the box is
        // taken out exactly once.
        unsafe { ManuallyDrop::take(&mut this.0) }
    }
}

impl<T> Drop for DeepBox<T> {
    fn drop(&mut self) {
        maybe_grow(|| {
            // SAFETY: this is the box's only drop (`into_box` forgets the
            // `DeepBox` it takes it from), and the field is not used after.
            unsafe { ManuallyDrop::drop(&mut self.0) }
        });
    }
}

impl<T> From<T> for DeepBox<T> {
    fn from(value: T) -> DeepBox<T> {
        DeepBox::new(value)
    }
}

impl<T> From<Box<T>> for DeepBox<T> {
    fn from(b: Box<T>) -> DeepBox<T> {
        DeepBox(ManuallyDrop::new(b))
    }
}

impl<T> Deref for DeepBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for DeepBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> AsRef<T> for DeepBox<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T> AsMut<T> for DeepBox<T> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}

impl<T: Clone> Clone for DeepBox<T> {
    fn clone(&self) -> DeepBox<T> {
        maybe_grow(|| DeepBox::new(T::clone(self)))
    }
}

impl<T: Default> Default for DeepBox<T> {
    fn default() -> DeepBox<T> {
        DeepBox::new(T::default())
    }
}

impl<T: PartialEq> PartialEq for DeepBox<T> {
    fn eq(&self, other: &DeepBox<T>) -> bool {
        maybe_grow(|| T::eq(self, other))
    }
}

impl<T: Eq> Eq for DeepBox<T> {}

impl<T: PartialOrd> PartialOrd for DeepBox<T> {
    fn partial_cmp(&self, other: &DeepBox<T>) -> Option<Ordering> {
        maybe_grow(|| T::partial_cmp(self, other))
    }
}

impl<T: Ord> Ord for DeepBox<T> {
    fn cmp(&self, other: &DeepBox<T>) -> Ordering {
        maybe_grow(|| T::cmp(self, other))
    }
}

impl<T: Hash> Hash for DeepBox<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        maybe_grow(|| T::hash(self, state));
    }
}

impl<T: fmt::Debug> fmt::Debug for DeepBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        maybe_grow(|| T::fmt(self, f))
    }
}

impl<T: fmt::Display> fmt::Display for DeepBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        maybe_grow(|| T::fmt(self, f))
    }
}
