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
mod semidiscrete;
pub mod solution;
pub mod trace;

pub use dual::{DualAlgorithm, DualOptions, DualSolver, InitialGuess};
pub use eulerian::{EulerianOptions, EulerianSolver, TerminalGuess};
pub use particles::{AgentGuess, ParticleOptions, ParticleSolver};
pub use semidiscrete::Level;
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

/// Preconditioned CG for a symmetric positive definite operator on the masked entries.
pub(crate) fn conjugate_gradient(
    apply: &dyn Fn(&[f64], &mut [f64]),
    diag: &[f64],
    rhs: &[f64],
    mask: &[bool],
    tolerance: f64,
    max_iterations: usize,
) -> ndarray::Array1<f64> {
    let n = rhs.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut x = vec![0.0; n];
    let mut r: Vec<f64> = rhs
        .iter()
        .zip(mask)
        .map(|(v, m)| if *m { *v } else { 0.0 })
        .collect();
    let mut z: Vec<f64> = r.iter().zip(diag).map(|(a, d)| a / d).collect();
    let mut p = z.clone();
    let mut ap = vec![0.0; n];
    let mut rz = dot(&r, &z);
    let stop = tolerance * dot(&r, &r).sqrt();
    for _ in 0..max_iterations {
        if dot(&r, &r).sqrt() <= stop {
            break;
        }
        apply(&p, &mut ap);
        let alpha = rz / dot(&p, &ap);
        for k in 0..n {
            x[k] += alpha * p[k];
            r[k] -= alpha * ap[k];
        }
        for k in 0..n {
            z[k] = r[k] / diag[k];
        }
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        for k in 0..n {
            p[k] = z[k] + beta * p[k];
        }
    }
    ndarray::Array1::from(x)
}
