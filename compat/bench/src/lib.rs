//! See benches/stacker.rs.
