//! Coupled mean-field-game solvers. Each returns a [`Solution`].

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::problem::Problem;
use ndarray::Array2;

pub mod characteristics;
pub mod dual;
pub mod eulerian;
pub mod monotone;
pub mod particles;
pub mod solution;
pub mod trace;

pub use dual::{DualOptions, DualSolver, InitialGuess};
pub use eulerian::{EulerianOptions, EulerianSolver, TerminalGuess};
pub use particles::{AgentGuess, ParticleOptions, ParticleSolver};
pub use solution::{Diagnostics, Snapshot, Solution, StopReason, ValueSeries};

/// State of one iteration, passed to observers.
#[derive(Debug, Clone, Copy)]
pub struct IterationState {
    /// Iteration (from 1).
    pub iteration: usize,
    /// Cost of the current soft plan (upper bound on J*).
    pub objective: f64,
    /// Dual value Phi (lower bound on J*).
    pub dual: f64,
    /// Current smoothing temperature (0 for methods without one).
    pub smoothing: f64,
    /// The method's convergence residual (duality gap, or change of the
    /// terminal density in fictitious play).
    pub residual: f64,
}

/// Watches the iterations (progress bars, logging).
pub trait Observer {
    /// Called after every iteration.
    fn observe(&mut self, state: &IterationState);
}

/// An observer that does nothing.
pub struct Silent;

impl Observer for Silent {
    fn observe(&mut self, _: &IterationState) {}
}

/// What every MFG method offers: a solve from a method-specific starting
/// guess (random guesses drive the uniqueness studies) and one from its
/// default start.
pub trait Solver {
    /// The method's starting guess.
    type Guess: Default;

    /// Solves `problem` on `grid` from `guess`.
    fn solve_from(
        &self,
        problem: &Problem,
        grid: &Grid,
        guess: &Self::Guess,
        observer: &mut dyn Observer,
    ) -> Result<Solution>;

    /// Solves `problem` on `grid` from the default start.
    fn solve(
        &self,
        problem: &Problem,
        grid: &Grid,
        observer: &mut dyn Observer,
    ) -> Result<Solution> {
        self.solve_from(problem, grid, &Self::Guess::default(), observer)
    }
}

/// Methods whose agents move with `v = -grad U / alpha` need `alpha > 0`.
pub(crate) fn require_kinetic_weight(problem: &Problem, method: &str) -> Result<()> {
    if problem.alpha > 0.0 {
        return Ok(());
    }
    Err(Error::invalid(
        "alpha",
        problem.alpha,
        &format!("method {method} needs alpha > 0 (the velocity is -grad U / alpha)"),
    ))
}

/// A starting field must live on the grid.
pub(crate) fn check_guess_shape(what: &str, field: &Array2<f64>, grid: &Grid) -> Result<()> {
    if field.dim() == grid.shape() {
        return Ok(());
    }
    Err(Error::invalid(
        what,
        format!("{:?}", field.dim()),
        &format!("must have the grid's shape {:?}", grid.shape()),
    ))
}

/// The discriminator of a problem's `D_f^L(. || Q)` with PDHG in `metric`.
pub(crate) fn critic_for(
    grid: &Grid,
    problem: &Problem,
    q: &Array2<f64>,
    parallelism: crate::par::Parallelism,
    metric: crate::divergence::PdhgMetric,
) -> crate::divergence::Discriminator {
    let pdhg = crate::divergence::PdhgOptions {
        parallelism,
        metric,
        ..Default::default()
    };
    crate::divergence::Discriminator::new(
        grid,
        problem.divergence,
        problem.lipschitz,
        q.clone(),
        pdhg,
    )
}
