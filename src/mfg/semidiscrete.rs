//! Semi-discrete Newton ascent of the dual, the `dual` method's first
//! algorithm. The problem is split at rho_T (math.md section 1, static form):
//!
//! ```text
//! J* = min_rho_T  alpha / (2T) W2^2(rho0, rho_T) + D_f^L(rho_T || Q)
//!    = max_{psi L-Lipschitz}  Phi(psi) = int u_psi rho0 dx - Lambda_f(psi; Q),
//!      u_psi(x) = min_j psi_j + |x - y_j|^2 / (2 tau),   tau = T / alpha,
//! ```
//!
//! with rho0 spread uniformly over the pixel of each node and psi on the
//! nodes. The minimum's cells are Laguerre cells
//! ([`crate::transport::laguerre`]), so Phi, its gradient `mass - grad
//! Lambda` and its Hessian (a graph Laplacian weighted by the cells' shared
//! boundaries, plus the curvature of Lambda) are exact, and damped Newton
//! steps from a coarse-to-fine start converge in a number of iterations on
//! the finest grid that does not grow with it.
//!
//! The ascent runs without the Lipschitz constraint (psi on the support of
//! Q). Its plan (each cell to its node, exact cost) bounds J* from above.
//! Without a Lipschitz bound `Phi(psi)` bounds it from below; with one, the
//! lower bound is Phi at the largest L-Lipschitz potential below psi, which
//! equals psi wherever the constraint does not bind. Both bounds belong to
//! one discrete problem (semi-discrete W2; W1 between nodes), so their gap
//! has no discretisation bias, and it closes exactly when the W1 proximal
//! does not bind. Where it binds the `dual` method goes on with the ladder.

use super::{IterationState, Observer, conjugate_gradient};
use crate::divergence::FDivergence;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::hj::{HopfLaxWorkspace, lipschitz_envelope};
use crate::par::Parallelism;
use crate::problem::Problem;
use crate::transport::{LaguerreCells, LaguerreWorkspace, laguerre_cells};
use ndarray::Array2;

/// The result of a Newton ascent.
pub(crate) struct NewtonOutcome {
    /// The last potential (`+inf` off the support).
    pub psi: Array2<f64>,
    /// Its cells (the plan).
    pub cells: LaguerreCells,
    /// `J(plan)`, the upper bound.
    pub objective: f64,
    /// The lower bound: `Phi(psi)`, or with a finite L (on the finest level of
    /// [`multilevel`]) Phi at the nearest L-Lipschitz potential.
    pub dual: f64,
    /// Newton iterations taken.
    pub iterations: usize,
    /// Whether the relative gap reached the tolerance.
    pub converged: bool,
}

/// Phi and its derivatives at one psi (shared with the interior point).
pub(crate) struct Evaluation {
    pub cells: LaguerreCells,
    /// `q f*'(psi - nu)`, the Gibbs measure (grad Lambda).
    pub gibbs: Vec<f64>,
    /// `q f*''(psi - nu)`, the curvature of Lambda.
    pub curvature: Vec<f64>,
    /// `mass - q f*'(psi - nu)` (mass minus grad Lambda), the gradient of Phi.
    pub gradient: Vec<f64>,
    /// `Phi(psi)`.
    pub dual: f64,
    /// The cost of the plan "each cell to its node" (L = inf).
    pub objective: f64,
}

/// Fixed data of one ascent.
pub(crate) struct Newton<'a> {
    pub grid: &'a Grid,
    pub rho0: &'a Array2<f64>,
    pub q: &'a Array2<f64>,
    pub divergence: FDivergence,
    pub tau: f64,
    pub parallelism: Parallelism,
}

impl Newton<'_> {
    pub(crate) fn evaluate(&self, psi: &Array2<f64>, ws: &mut LaguerreWorkspace) -> Evaluation {
        let cells = laguerre_cells(self.grid, self.rho0, psi, self.tau, ws, self.parallelism);
        let (ps, qs) = (
            psi.as_slice().expect("standard layout"),
            self.q.as_slice().expect("standard layout"),
        );
        let f = self.divergence;
        let (lambda, gibbs, curvature) = f.lambda_derivatives(ps, qs);
        let masses = cells.mass.as_slice().expect("standard layout");
        let gradient = masses.iter().zip(&gibbs).map(|(m, g)| m - g).collect();
        Evaluation {
            dual: cells.dual_integral - lambda,
            objective: cells.cost + f.divergence(masses, qs),
            cells,
            gibbs,
            curvature,
            gradient,
        }
    }

    /// The Newton direction: `(W + diag(curvature) + floor L_grid) delta =
    /// mass - gibbs` on the support, `W` the Laplacian of the cells'
    /// couplings. The floor couples every node to its grid neighbours with
    /// weight `floor * max W` (Levenberg–Marquardt: it keeps the steps smooth
    /// where cells are empty and is lowered as the steps are accepted).
    fn direction(&self, e: &Evaluation, support: &[bool], floor: f64) -> Vec<f64> {
        let n = support.len();
        let mut diag: Vec<f64> = e
            .curvature
            .iter()
            .zip(support)
            .map(|(c, on)| if *on { *c } else { 0.0 })
            .collect();
        let mut neighbours: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut couple = |j: usize, k: usize, w: f64| {
            if support[j] && support[k] && w > 0.0 {
                neighbours[j].push((k, w));
                neighbours[k].push((j, w));
                diag[j] += w;
                diag[k] += w;
            }
        };
        let largest = e.cells.coupling.iter().fold(0.0f64, |a, c| a.max(c.2));
        for &(j, k, w) in &e.cells.coupling {
            couple(j, k, w);
        }
        if floor > 0.0 {
            for (k, m) in self.grid.neighbour_pairs() {
                couple(k, m, floor * largest);
            }
        }
        let top = diag.iter().fold(0.0f64, |a, b| a.max(*b));
        for d in diag.iter_mut() {
            *d += 1e-14 * top.max(1e-300);
        }
        let apply = |v: &[f64], out: &mut [f64]| {
            for k in 0..n {
                out[k] = if support[k] {
                    diag[k] * v[k] - neighbours[k].iter().map(|&(m, w)| w * v[m]).sum::<f64>()
                } else {
                    0.0
                };
            }
        };
        // an inexact Newton step: 1e-6 of the residual is plenty
        conjugate_gradient(&apply, &diag, &e.gradient, support, 1e-6, 4 * n.max(100)).to_vec()
    }

    /// Damped Newton ascent from `psi` until `J - Phi <= tolerance max(|J|, 0.01)`.
    pub fn run(
        &self,
        mut psi: Array2<f64>,
        max_iterations: usize,
        tolerance: f64,
        observer: &mut dyn Observer,
    ) -> Result<NewtonOutcome> {
        let mut ws = LaguerreWorkspace::new(self.grid);
        let support: Vec<bool> = self.q.iter().map(|m| *m > 0.0).collect();
        let mut e = self.evaluate(&psi, &mut ws);
        let mut floor = 1e-3;
        let mut iterations = 0;
        let mut converged = false;
        loop {
            if !(e.objective.is_finite() && e.dual.is_finite()) {
                return Err(Error::Diverged {
                    method: "dual (semi-discrete Newton)".into(),
                    iteration: iterations,
                    quantity: "objective".into(),
                    value: e.objective,
                });
            }
            if e.objective - e.dual <= super::allowed_gap(tolerance, e.objective) {
                converged = true;
                break;
            }
            if iterations >= max_iterations {
                break;
            }
            iterations += 1;
            let delta = self.direction(&e, &support, floor);
            let slope: f64 = delta.iter().zip(&e.gradient).map(|(d, g)| d * g).sum();
            let mut step = 1.0;
            let mut accepted = None;
            for _ in 0..30 {
                let mut trial = psi.clone();
                for ((t, d), on) in trial.iter_mut().zip(&delta).zip(&support) {
                    if *on {
                        *t += step * d;
                    }
                }
                let next = self.evaluate(&trial, &mut ws);
                if next.dual >= e.dual + 1e-4 * step * slope {
                    accepted = Some((trial, next));
                    break;
                }
                step *= 0.5;
            }
            floor = super::next_floor(floor, step == 1.0);
            let Some((trial, next)) = accepted else {
                // no ascent left at working precision
                break;
            };
            psi = trial;
            e = next;
            observer.observe(&IterationState {
                iteration: iterations,
                objective: e.objective,
                dual: e.dual,
                smoothing: 0.0,
                residual: e.objective - e.dual,
            });
        }
        Ok(NewtonOutcome {
            psi,
            objective: e.objective,
            dual: e.dual,
            cells: e.cells,
            iterations,
            converged,
        })
    }

    /// Phi at the largest L-Lipschitz potential below psi: a lower bound on
    /// the problem with Lipschitz bound L (`D_f^L(rho_T || Q)` is the maximum
    /// of `<rho_T, phi> - Lambda(phi)` over L-Lipschitz phi on the nodes, so
    /// any such phi bounds the dual from below). The ladder envelope for
    /// `L / sqrt(r)` is used: its cone lies between `l |z|` and branch slopes
    /// `l sqrt(r)`, so it is L-Lipschitz between any two nodes, and it equals
    /// psi wherever psi is `l`-Lipschitz already.
    fn lipschitz_dual(&self, psi: &Array2<f64>, lipschitz: f64) -> f64 {
        const RATIO: f64 = 1.05;
        let mut hl = HopfLaxWorkspace::new(self.grid);
        // defined on every node: rho_T may sit off the support of Q
        let feasible = lipschitz_envelope(
            self.grid,
            psi,
            lipschitz / RATIO.sqrt(),
            RATIO,
            &mut hl,
            self.parallelism,
        );
        let mut ws = LaguerreWorkspace::new(self.grid);
        self.evaluate(&feasible, &mut ws).dual
    }
}

/// One level of a coarse-to-fine solve.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Level {
    /// Nodes per axis.
    pub nodes: [usize; 2],
    /// Newton iterations on this level.
    pub iterations: usize,
    /// Duality gap at the end of the level.
    pub gap: f64,
    /// Wall time of the level (s).
    pub seconds: f64,
}

/// The grid of spacing `2h` over the same box (the coarse level).
fn coarser(grid: &Grid) -> Grid {
    let mut n = [1usize; 2];
    for (a, count) in n.iter_mut().enumerate().take(grid.dim) {
        *count = (grid.n[a] - 1).div_ceil(2) + 1;
    }
    Grid {
        dim: grid.dim,
        lo: grid.lo,
        h: 2.0 * grid.h,
        n,
    }
}

/// The grids of a coarse-to-fine solve, coarsest first: `grid` and, when
/// `coarsen`, its coarser levels down to the first with fewer than 32 cells
/// a side.
fn level_grids(grid: &Grid, coarsen: bool) -> Vec<Grid> {
    let mut grids = vec![grid.clone()];
    loop {
        let last = grids.last().expect("non-empty");
        let cells = (0..last.dim).map(|a| last.n[a] - 1).min().unwrap_or(0);
        if !coarsen || cells < 32 {
            break;
        }
        grids.push(coarser(last));
    }
    grids.reverse();
    grids
}

/// What a coarse-to-fine ascent solves: the problem's masses on `grid`, to
/// a relative gap `tolerance` within `max_iterations` over all levels.
#[derive(Clone, Copy)]
pub(crate) struct Task<'a> {
    pub problem: &'a Problem,
    pub grid: &'a Grid,
    pub rho0: &'a Array2<f64>,
    pub q: &'a Array2<f64>,
    pub parallelism: Parallelism,
    pub max_iterations: usize,
    pub tolerance: f64,
}

/// One level of a coarse-to-fine solve, as [`coarse_to_fine`] hands it over.
pub(crate) struct LevelInput<'a> {
    pub grid: &'a Grid,
    pub rho0: &'a Array2<f64>,
    pub q: &'a Array2<f64>,
    pub finest: bool,
    /// Iterations the levels below have taken.
    pub spent: usize,
}

/// What a level reports back: its outcome, iterations and final gap.
pub(crate) struct LevelOutput<T> {
    pub outcome: T,
    pub iterations: usize,
    pub gap: f64,
}

/// Runs `solve_level` on the levels of [`level_grids`] (all of them, or the
/// task's grid alone when `coarsen` is false), coarsest first, each with the
/// problem's masses on it (the task's on the finest) and the previous
/// level's grid and outcome; returns the finest outcome and every level's
/// report.
pub(crate) fn coarse_to_fine<T>(
    task: &Task,
    coarsen: bool,
    mut solve_level: impl FnMut(LevelInput<'_>, Option<(Grid, T)>) -> Result<LevelOutput<T>>,
) -> Result<(T, Vec<Level>)> {
    let Task {
        problem,
        grid,
        rho0,
        q,
        ..
    } = *task;
    let grids = level_grids(grid, coarsen);
    let mut levels = Vec::new();
    let mut previous: Option<(Grid, T)> = None;
    let mut spent = 0;
    for (k, level) in grids.iter().enumerate() {
        let clock = std::time::Instant::now();
        let finest = k + 1 == grids.len();
        let owned = if finest {
            None
        } else {
            Some(problem.masses(level)?)
        };
        let (r0, qq) = owned.as_ref().map_or((rho0, q), |(r, m)| (r, m));
        let input = LevelInput {
            grid: level,
            rho0: r0,
            q: qq,
            finest,
            spent,
        };
        let out = solve_level(input, previous.take())?;
        spent += out.iterations;
        levels.push(Level {
            nodes: level.n,
            iterations: out.iterations,
            gap: out.gap,
            seconds: clock.elapsed().as_secs_f64(),
        });
        if finest {
            return Ok((out.outcome, levels));
        }
        previous = Some((level.clone(), out.outcome));
    }
    unreachable!("the finest level returns")
}

/// Bilinear interpolation of a coarse potential onto the fine support;
/// nodes whose stencil leaves the coarse support get the largest value (the
/// least attractive).
fn prolong(coarse: &Grid, psi: &Array2<f64>, fine: &Grid, q: &Array2<f64>) -> Array2<f64> {
    let top = psi
        .iter()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    Array2::from_shape_fn(fine.shape(), |(i, j)| {
        if q[[i, j]] <= 0.0 {
            return f64::INFINITY;
        }
        let v = coarse.interpolate(psi, fine.node(i, j));
        if v.is_finite() { v } else { top }
    })
}

/// Coarse-to-fine Newton: each level starts from the prolonged solution of
/// the one below, the coarsest (at least 16 cells a side) from zero; with a
/// `start`, the finest level alone from it. Every level is solved to the
/// tolerance: a well-converged coarse potential leaves the finer levels one
/// or two Newton steps.
pub(crate) fn multilevel(
    task: &Task,
    start: Option<Array2<f64>>,
    observer: &mut dyn Observer,
) -> Result<(NewtonOutcome, Vec<Level>)> {
    let problem = task.problem;
    let tau = problem.horizon / problem.alpha;
    let mut start = start;
    coarse_to_fine(
        task,
        start.is_none(),
        |level, previous: Option<(Grid, NewtonOutcome)>| {
            let mut psi = match (previous, start.take()) {
                (Some((g, p)), _) => prolong(&g, &p.psi, level.grid, level.q),
                (None, Some(p)) => p,
                (None, None) => Array2::zeros(level.grid.shape()),
            };
            ndarray::Zip::from(&mut psi).and(level.q).for_each(|v, m| {
                if *m <= 0.0 {
                    *v = f64::INFINITY;
                }
            });
            let newton = Newton {
                grid: level.grid,
                rho0: level.rho0,
                q: level.q,
                divergence: problem.divergence,
                tau,
                parallelism: task.parallelism,
            };
            let mut out = newton.run(
                psi,
                task.max_iterations.saturating_sub(level.spent),
                task.tolerance,
                observer,
            )?;
            if level.finest
                && let Some(l) = problem.lipschitz
            {
                // with a finite L the lower bound is taken at the nearest
                // L-Lipschitz potential; the gap stays closed where L does not bind
                out.dual = newton.lipschitz_dual(&out.psi, l);
                out.converged &=
                    out.objective - out.dual <= super::allowed_gap(task.tolerance, out.objective);
            }
            Ok(LevelOutput {
                iterations: out.iterations,
                gap: out.objective - out.dual,
                outcome: out,
            })
        },
    )
}
