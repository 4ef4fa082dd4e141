//! Coupled mean-field-game solvers. Each returns a [`Solution`].

pub mod dual;
pub mod monotone;
pub mod solution;
pub mod trace;

pub use dual::{DualOptions, DualSolver, InitialGuess, IterationState, Observer, Silent};
pub use solution::{Diagnostics, Snapshot, Solution, StopReason};
