//! The test beds on their own: each starts real components and checks
//! that they behave as the tests built on them assume.
//!
//! Run one area with `cargo test -p belay-testbed --test integration slurm::`.

mod slurm;
