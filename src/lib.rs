pub use growstack_macros::{growable, nosplit};
pub use growstack_runtime::{Stats, max_stack, maybe_grow, remaining_stack, set_max_stack, stats};
#[doc(hidden)]
pub use growstack_runtime::__private;
