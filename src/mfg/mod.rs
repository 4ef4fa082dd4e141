//! Coupled mean-field-game solvers. Each solves the optimality system of
//! math.md section 2,
//!
//! ```text
//! -U_t + |grad U|^2 / (2 alpha) = 0,        U(., T) = phi* = argmax_phi D_f^L(rho_T || Q),
//!  rho_t - div(rho grad U / alpha) = 0,     rho(., 0) = rho0,
//! ```
//!
//! by its own route (exact characteristics and the dual ascent, Eulerian
//! finite differences and volumes, particles), and returns a [`Solution`].

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::problem::Problem;
use ndarray::Array2;

pub mod characteristics;
pub mod dual;
pub mod eulerian;
mod interior_point;
pub mod method;
pub mod monotone;
pub mod particles;
mod semidiscrete;
pub mod solution;
pub mod trace;

pub use dual::{DualAlgorithm, DualOptions, DualSolver, InitialGuess};
pub use eulerian::{EulerianOptions, EulerianSolver, TerminalGuess};
pub use method::{Method, MethodKind};
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

/// What every method's solve begins with: the problem checked (and
/// `alpha > 0`, since agents move with `v = -grad U / alpha`), the clock
/// started, the masses of rho0 and Q on the grid.
pub(crate) fn begin(
    problem: &Problem,
    grid: &Grid,
    method: MethodKind,
) -> Result<(std::time::Instant, Array2<f64>, Array2<f64>)> {
    problem.validate()?;
    if problem.alpha <= 0.0 {
        return Err(Error::invalid(
            "alpha",
            problem.alpha,
            &format!("method {method} needs alpha > 0 (the velocity is -grad U / alpha)"),
        ));
    }
    let clock = std::time::Instant::now();
    let (rho0, q) = problem.masses(grid)?;
    Ok((clock, rho0, q))
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

/// The next Levenberg–Marquardt floor of a damped Newton ascent: a quarter
/// (down to nothing) after a full step, four times more (within [1e-6, 1])
/// after a cut one.
pub(crate) fn next_floor(floor: f64, full_step: bool) -> f64 {
    if full_step {
        if floor < 1e-8 { 0.0 } else { floor / 4.0 }
    } else {
        (floor * 4.0).clamp(1e-6, 1.0)
    }
}

/// The duality gap a dual algorithm may leave at objective `objective`:
/// `tolerance * max(|J|, 0.01)`, relative to J except where J is nearly 0.
pub(crate) fn allowed_gap(tolerance: f64, objective: f64) -> f64 {
    tolerance * objective.abs().max(1e-2)
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

/// The sparse Cholesky factor of a symmetric positive definite matrix,
/// by faer with a fill-reducing ordering.
pub(crate) struct SparseCholesky {
    factor: faer::sparse::linalg::solvers::Llt<usize, f64>,
    n: usize,
}

impl SparseCholesky {
    /// Factors the `n x n` matrix given by its lower-triangle entries
    /// `(row, col, value)`, `row >= col` (repeated positions are summed);
    /// `None` when it is not numerically positive definite.
    pub(crate) fn new(n: usize, mut entries: Vec<(usize, usize, f64)>) -> Option<Self> {
        use faer::sparse::linalg::solvers::{Llt, SymbolicLlt};
        use faer::sparse::{SparseColMat, Triplet};
        entries.sort_unstable_by_key(|&(r, c, _)| (c, r));
        let mut merged: Vec<Triplet<usize, usize, f64>> = Vec::with_capacity(entries.len());
        for (r, c, v) in entries {
            match merged.last_mut() {
                Some(t) if t.row == r && t.col == c => t.val += v,
                _ => merged.push(Triplet::new(r, c, v)),
            }
        }
        let matrix = SparseColMat::<usize, f64>::try_new_from_triplets(n, n, &merged).ok()?;
        let symbolic = SymbolicLlt::try_new(matrix.symbolic(), faer::Side::Lower).ok()?;
        let factor =
            Llt::try_new_with_symbolic(symbolic, matrix.as_ref(), faer::Side::Lower).ok()?;
        Some(SparseCholesky { factor, n })
    }

    /// `A^{-1} rhs`; `None` if it is not finite.
    pub(crate) fn solve(&self, rhs: &[f64]) -> Option<Vec<f64>> {
        use faer::linalg::solvers::Solve;
        let mut x = faer::Mat::from_fn(self.n, 1, |i, _| rhs[i]);
        self.factor.solve_in_place(x.as_mut());
        let out: Vec<f64> = (0..self.n).map(|i| x[(i, 0)]).collect();
        out.iter().all(|v| v.is_finite()).then_some(out)
    }
}
