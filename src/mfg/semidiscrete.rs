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
//! boundaries, plus the curvature of Lambda) are exact. Damped Newton steps
//! take a number of iterations on the finest grid that does not grow with
//! it, from one of two starts: where every cell of Q's support holds source
//! mass (compact targets), the grid's own Voronoi start with the safeguard of
//! Kitagawa, Merigot & Thibert (no cell of the support may empty, so the
//! Hessian stays regular); otherwise coarse to fine with a
//! Levenberg-Marquardt floor for the starved cells.
//!
//! The ascent runs without the Lipschitz constraint (psi on the support of
//! Q). Its plan (each cell to its node, exact cost) bounds J* from above.
//! Without a Lipschitz bound `Phi(psi)` bounds it from below. With one, both
//! bounds are taken at the largest L-Lipschitz potential below psi (equal to
//! psi wherever the constraint does not bind): Phi there from below, its
//! plan from above (its Laguerre cells, then a W1 leg along the grid's edges
//! to the Gibbs measure). All bounds belong to one discrete problem
//! (semi-discrete W2; W1 between nodes), so their gap has no discretisation
//! bias; it closes where the W1 proximal does not bind or barely binds.
//! Where it binds the `dual` method goes on with the interior point.

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
    /// With a finite L: the W1 image of rho_T and the cost of carrying
    /// rho_T to it (`None` where the plan ends at rho_T).
    pub w1_leg: Option<(Array2<f64>, f64)>,
}

/// The plan of an L-Lipschitz potential (see [`Newton::lipschitz_plan`]).
pub(crate) struct LipschitzPlan {
    /// The potential, L-Lipschitz between any two nodes.
    pub psi: Array2<f64>,
    /// Its Laguerre cells (agents move at most about `L / alpha`).
    pub cells: LaguerreCells,
    /// The normalised Gibbs measure, the W1 image of rho_T.
    pub gamma: Array2<f64>,
    /// `L` times the cost of the grid flux that carries rho_T to gamma.
    pub w1: f64,
    /// Transport cost + W1 leg + `D_f(gamma || Q)`: the upper bound.
    pub objective: f64,
    /// `Phi(psi)`: the lower bound.
    pub dual: f64,
}

/// Source mass below which a cell of Q's support counts as starved, per
/// unit of the uniform share `1 / support`: the guarded Newton needs every
/// cell above it.
const STARVED: f64 = 1e-6;

/// A guarded Newton step this short counts as blocked; after
/// [`SHORT_STEPS`] of them in a row the ascent takes the floor instead.
const SHORT_STEP: f64 = 1.0 / 64.0;
/// See [`SHORT_STEP`].
const SHORT_STEPS: usize = 8;

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
        // where every cell of the support holds source mass, the damped
        // Newton of Kitagawa, Merigot & Thibert (2019) keeps them all
        // non-empty and needs no floor: its Hessian stays regular; starved
        // cells call for the Levenberg-Marquardt floor instead
        let mut guarded = self.every_cell_fed(&e.cells, &support);
        let mut floor = if guarded { 0.0 } else { 1e-3 };
        let mut short_steps = 0;
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
                let fed = !guarded
                    || next
                        .cells
                        .mass
                        .iter()
                        .zip(&support)
                        .all(|(m, on)| !*on || *m > 0.0);
                if fed && next.dual >= e.dual + 1e-4 * step * slope {
                    accepted = Some((trial, next));
                    break;
                }
                step *= 0.5;
            }
            if guarded {
                short_steps = if step < SHORT_STEP {
                    short_steps + 1
                } else {
                    0
                };
                if short_steps >= SHORT_STEPS {
                    // the guard blocks the steps (cells close to starving):
                    // go on with the floor instead
                    guarded = false;
                    floor = 1e-3;
                }
            } else {
                floor = super::next_floor(floor, step == 1.0);
            }
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
            w1_leg: None,
        })
    }

    /// Whether every cell of Q's support holds at least [`STARVED`] times
    /// its uniform share of the source.
    fn every_cell_fed(&self, cells: &LaguerreCells, support: &[bool]) -> bool {
        let count = support.iter().filter(|on| **on).count().max(1);
        cells
            .mass
            .iter()
            .zip(support)
            .all(|(m, on)| !*on || *m >= STARVED / count as f64)
    }

    /// The largest L-Lipschitz potential below psi (defined on every node:
    /// rho_T may sit off the support of Q) and Phi with its derivatives
    /// there. The ladder envelope for `L / sqrt(r)` is used: its cone lies
    /// between `l |z|` and branch slopes `l sqrt(r)`, so it is L-Lipschitz
    /// between any two nodes.
    pub(crate) fn envelope(&self, psi: &Array2<f64>, lipschitz: f64) -> (Array2<f64>, Evaluation) {
        const RATIO: f64 = 1.05;
        let mut hl = HopfLaxWorkspace::new(self.grid);
        let feasible = lipschitz_envelope(
            self.grid,
            psi,
            lipschitz / RATIO.sqrt(),
            RATIO,
            &mut hl,
            self.parallelism,
        );
        let e = self.evaluate(&feasible, &mut LaguerreWorkspace::new(self.grid));
        (feasible, e)
    }

    /// The certificate and plan of the largest L-Lipschitz potential below
    /// psi (which equals psi wherever psi is L-Lipschitz already). From
    /// below, `Phi` at it: `D_f^L(rho_T || Q)` is the maximum of `<rho_T,
    /// phi> - Lambda(phi)` over phi L-Lipschitz between nodes, so any such
    /// phi bounds the dual. From above, its plan: the Laguerre cells (no
    /// agent faster than about `L / alpha`), then a flux on the grid's edges
    /// and diagonals carrying rho_T to the normalised Gibbs measure gamma
    /// ([`edge_flux_cost`]: a flux on a graph is a transport plan, so its
    /// cost bounds W1 between nodes from above), then `D_f(gamma || Q)`.
    /// `feasible` and `e` come from [`Newton::envelope`].
    pub(crate) fn lipschitz_plan(
        &self,
        feasible: Array2<f64>,
        e: Evaluation,
        lipschitz: f64,
    ) -> LipschitzPlan {
        let total: f64 = e.gibbs.iter().sum();
        let gamma = Array2::from_shape_fn(self.grid.shape(), |(i, j)| {
            e.gibbs[i * self.grid.shape().1 + j] / total
        });
        let residual = &e.cells.mass - &gamma;
        let w1 = lipschitz * edge_flux_cost(self.grid, &residual);
        let qs = self.q.as_slice().expect("standard layout");
        let gs = gamma.as_slice().expect("standard layout");
        LipschitzPlan {
            objective: e.cells.cost + w1 + self.divergence.divergence(gs, qs),
            dual: e.dual,
            psi: feasible,
            cells: e.cells,
            gamma,
            w1,
        }
    }
}

/// Newton steps at most of each tightening of the tolerance on the finest
/// level, where the Lipschitz plan's gap is near the tolerance.
const TIGHTENING: usize = 20;

/// Reweighting rounds of [`edge_flux_cost`].
const FLUX_ROUNDS: usize = 12;

/// An upper bound on `W1(a, b)` between node measures with `residual = a -
/// b` (zero total): the cost (mass times length) of a flux along the
/// edges of the grid and its diagonals whose net outflow at each node is
/// the residual. A flux on a graph is a transport plan (paths between the
/// nodes), so its cost bounds W1 from above. The flux of least cost is
/// approached by iteratively reweighted least squares (Beckmann's problem):
/// each round solves the graph Laplacian with conductances `|f_e| / len_e`
/// of the last round's flux (sparse Cholesky), and the cheapest flux
/// found counts. What a solve leaves over is charged at the box's diameter.
fn edge_flux_cost(grid: &Grid, residual: &Array2<f64>) -> f64 {
    let (n0, n1) = grid.shape();
    let n = n0 * n1;
    let at = |i: usize, j: usize| i * n1 + j;
    let diagonal = grid.h * std::f64::consts::SQRT_2;
    let mut edges: Vec<(usize, usize, f64)> = Vec::with_capacity(4 * n);
    for i in 0..n0 {
        for j in 0..n1 {
            if j + 1 < n1 {
                edges.push((at(i, j), at(i, j + 1), grid.h));
            }
            if i + 1 < n0 {
                edges.push((at(i, j), at(i + 1, j), grid.h));
                if j + 1 < n1 {
                    edges.push((at(i, j), at(i + 1, j + 1), diagonal));
                }
                if j > 0 {
                    edges.push((at(i, j), at(i + 1, j - 1), diagonal));
                }
            }
        }
    }
    let r = residual.as_slice().expect("standard layout");
    let hi = grid.hi();
    let diameter = (0..grid.dim)
        .map(|a| (hi[a] - grid.lo[a]).powi(2))
        .sum::<f64>()
        .sqrt();
    let mut conductance: Vec<f64> = edges.iter().map(|e| 1.0 / e.2).collect();
    let mut best = f64::INFINITY;
    for _ in 0..FLUX_ROUNDS {
        let mut diag = vec![0.0; n];
        let mut entries = Vec::with_capacity(n + edges.len());
        for (&(a, b, _), &c) in edges.iter().zip(&conductance) {
            diag[a] += c;
            diag[b] += c;
            entries.push((a.max(b), a.min(b), -c));
        }
        let top = diag.iter().fold(0.0f64, |m, v| m.max(*v));
        entries.extend(
            diag.iter()
                .enumerate()
                .map(|(k, d)| (k, k, d + 1e-12 * top)),
        );
        let Some(p) = super::SparseCholesky::new(n, entries).and_then(|f| f.solve(r)) else {
            break;
        };
        let mut outflow = vec![0.0; n];
        let mut cost = 0.0;
        let flux: Vec<f64> = edges
            .iter()
            .zip(&conductance)
            .map(|(&(a, b, len), &c)| {
                let f = c * (p[a] - p[b]);
                outflow[a] += f;
                outflow[b] -= f;
                cost += len * f.abs();
                f
            })
            .collect();
        let left: f64 = outflow.iter().zip(r).map(|(o, v)| (o - v).abs()).sum();
        best = best.min(cost + diameter * left);
        let largest = flux.iter().fold(0.0f64, |m, f| m.max(f.abs()));
        conductance = flux
            .iter()
            .zip(&edges)
            .map(|(f, e)| (f.abs() + 1e-9 * largest) / e.2)
            .collect();
    }
    best
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

/// `psi` (given on `fine`) sampled at the nodes of `coarse`: how a starting
/// potential reaches the coarsest level of a coarse-to-fine ascent. Values
/// off the fine support count as zero (the level puts its own support back).
pub(crate) fn restrict(fine: &Grid, psi: &Array2<f64>, coarse: &Grid) -> Array2<f64> {
    let finite = psi.mapv(|v| if v.is_finite() { v } else { 0.0 });
    Array2::from_shape_fn(coarse.shape(), |(i, j)| {
        fine.interpolate(&finite, coarse.node(i, j))
    })
}

/// Coarse-to-fine Newton: each level starts from the prolonged solution of
/// the one below, the coarsest (at least 16 cells a side) from zero or from
/// `start` sampled on it ([`restrict`]); compact targets are solved on the
/// finest level alone, from `start` or zero. Every level is solved to the
/// tolerance: a well-converged coarse potential leaves the finer levels one
/// or two Newton steps.
pub(crate) fn multilevel(
    task: &Task,
    start: Option<Array2<f64>>,
    observer: &mut dyn Observer,
) -> Result<(NewtonOutcome, Vec<Level>)> {
    let problem = task.problem;
    fn newton_on<'a>(
        task: &Task,
        grid: &'a Grid,
        rho0: &'a Array2<f64>,
        q: &'a Array2<f64>,
    ) -> Newton<'a> {
        Newton {
            grid,
            rho0,
            q,
            divergence: task.problem.divergence,
            tau: task.problem.horizon / task.problem.alpha,
            parallelism: task.parallelism,
        }
    }
    // a target whose support cells all hold source mass from the Voronoi
    // start (compact targets: points, histograms) is solved on its own grid
    // by the guarded Newton; prolonged coarse potentials would starve the
    // cells that the coarse support lacks
    let single = {
        let support: Vec<bool> = task.q.iter().map(|m| *m > 0.0).collect();
        let zero = Array2::zeros(task.grid.shape());
        let newton = newton_on(task, task.grid, task.rho0, task.q);
        let e = newton.evaluate(
            &on_support(zero, task.q),
            &mut LaguerreWorkspace::new(task.grid),
        );
        newton.every_cell_fed(&e.cells, &support)
    };
    let mut start = start;
    coarse_to_fine(
        task,
        !single,
        |level, previous: Option<(Grid, NewtonOutcome)>| {
            let psi = match (previous, start.take()) {
                (Some((g, p)), _) => prolong(&g, &p.psi, level.grid, level.q),
                (None, Some(p)) => restrict(task.grid, &p, level.grid),
                (None, None) => Array2::zeros(level.grid.shape()),
            };
            let newton = newton_on(task, level.grid, level.rho0, level.q);
            let budget = task.max_iterations.saturating_sub(level.spent);
            let mut out = newton.run(on_support(psi, level.q), budget, task.tolerance, observer)?;
            if level.finest
                && let Some(l) = problem.lipschitz
            {
                // with a finite L the certificate and the plan are those of the
                // nearest L-Lipschitz potential (the same as psi's where L does not
                // bind); where they leave a gap, Newton goes on to a tighter
                // tolerance, which moves psi and its envelope closer
                let allowed = |upper: f64| super::allowed_gap(task.tolerance, upper);
                let mut tolerance = task.tolerance;
                loop {
                    let spent = out.iterations;
                    let (psi_l, e) = newton.envelope(&out.psi, l);
                    // Newton's own plan bounds J from above for any L: where
                    // even it leaves ten times the allowed gap, L binds and the
                    // interior point takes over
                    if out.objective - e.dual > 10.0 * allowed(out.objective) {
                        out.dual = e.dual;
                        out.converged = false;
                        break;
                    }
                    let lower = e.dual;
                    let plan = newton.lipschitz_plan(psi_l, e, l);
                    let (plan_gap, newton_gap) =
                        (plan.objective - plan.dual, out.objective - lower);
                    if plan_gap > allowed(plan.objective) && newton_gap <= allowed(out.objective) {
                        // Newton's own plan closes the gap with the envelope's
                        // Phi (L does not bind; the envelope's W1 leg is dearer)
                        out.dual = lower;
                        break;
                    }
                    let closed = plan_gap <= allowed(plan.objective);
                    // more Newton steps help only while psi's own gap counts
                    let stuck = out.objective - out.dual < 0.25 * plan_gap;
                    if closed || stuck || !out.converged || tolerance < 1e-2 * task.tolerance {
                        out = NewtonOutcome {
                            psi: plan.psi,
                            cells: plan.cells,
                            objective: plan.objective,
                            dual: plan.dual,
                            iterations: spent,
                            converged: closed,
                            w1_leg: Some((plan.gamma, plan.w1)),
                        };
                        break;
                    }
                    // a gap near the tolerance closes as psi converges further
                    tolerance *= 0.1;
                    let more = newton.run(
                        out.psi,
                        budget.saturating_sub(spent).min(TIGHTENING),
                        tolerance,
                        observer,
                    )?;
                    out = NewtonOutcome {
                        iterations: spent + more.iterations,
                        ..more
                    };
                }
            }
            Ok(LevelOutput {
                iterations: out.iterations,
                gap: out.objective - out.dual,
                outcome: out,
            })
        },
    )
}

/// psi on the support of Q, `+inf` (never chosen) off it.
fn on_support(mut psi: Array2<f64>, q: &Array2<f64>) -> Array2<f64> {
    ndarray::Zip::from(&mut psi).and(q).for_each(|v, m| {
        if *m <= 0.0 {
            *v = f64::INFINITY;
        }
    });
    psi
}
