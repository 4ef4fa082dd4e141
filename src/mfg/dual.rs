//! Coupled MFG solver with exact characteristics (method `dual`).
//!
//! Three algorithms maximise the dual ([`DualAlgorithm`]). The default runs
//! the semi-discrete Newton ascent of `mfg::semidiscrete` first: exact
//! Laguerre cells, a certified gap with no discretisation bias, iterations
//! that do not grow with the grid. It closes the gap exactly where the W1
//! proximal does not bind (L = inf, or L above the slope of the solution's
//! discriminator). Where L binds, the primal-dual interior-point ascent of
//! `mfg::interior_point` imposes `|grad psi| <= L` on the P1 elements
//! (a certified gap again, second order in h on smooth targets). On point
//! and line targets, and wherever that does not close the gap, the
//! ladder-of-scales ascent below takes over:
//!
//! With both proximals the problem is a transport problem with the Huber cost
//! `k` of [`crate::hj::huber`] (the inf-convolution of the W2 and W1 kernels):
//!
//! ```text
//! J* = min_gamma  D_f(gamma || Q) + OT_k(rho0, gamma)
//!    = max_psi    Phi(psi) = int psi^k d rho0 - Lambda_f(psi; Q),
//!      psi^k(x) = min_y psi(y) + k(x - y) = min_s HL_{tau+s} psi (x) + L^2 s / 2.
//! ```
//!
//! An agent at x aims at `y*(x)`, the minimiser in `psi^k`, and travels the
//! straight segment to `x_T = x + min(1, c/|y* - x|) (y* - x)`, `c = LT/alpha`;
//! the rest of the way to y* is the W1 part of `D_f^L`.
//!
//! The solver maximises Phi by dual ascent. Beyond the reach c the cost is
//! linear and the minimiser is not unique, so Phi is smoothed: the minimum
//! over the scales s becomes a soft minimum at temperature eps, lowered in
//! stages (eps-continuation). Each step solves the Gauss–Newton system
//! `(tau D^T Gamma D + diag(grad Lambda)) delta = gamma_soft - grad Lambda`
//! (the linearised push-forward: a weighted Laplacian) by conjugate gradients
//! and backtracks on the smoothed Phi; where the cost is linear the
//! soft minimum over scales is stiff, and its diagonal curvature (weight
//! `stiffness`) is added to the operator. The best response is blurred over a
//! 5x5 stencil at temperature `theta h^2 / sigma`, which makes the dual smooth
//! and the terminal density free of node combs.
//!
//! Primal: every agent aiming at the barycentre of its blurred response is a
//! feasible plan with an exactly computed cost; the primal iterate is a
//! Frank–Wolfe mixture of such plans (exact line search), including the
//! response to the linearisation `f'(gamma_bar/q)` itself, so its cost `J`
//! decreases monotonically. In 1-D the monotone plan onto the Gibbs measure of
//! psi (exact for convex costs) is a further candidate. `J` bounds `J*` from
//! above and `Phi(psi)` from below: the duality gap certifies the result. At
//! the optimum `phi* = psi^L = U(., T)` and `U(., 0) = psi^k = HL_T phi*`.

use super::characteristics::{hj_residual, max_speed, push_forward, value_at};
use super::monotone::monotone_transport;
use super::semidiscrete::{Level, Task, multilevel};
use super::solution::{Diagnostics, Snapshot, Solution, StopReason};
use super::{IterationState, Observer, conjugate_gradient};
use crate::divergence::FDivergence;
use crate::error::{Error, Result};
use crate::grid::{Grid, normalise_mass};
use crate::hj::{
    HopfLax, HopfLaxWorkspace, HuberKernel, hopf_lax, hopf_lax_into, lipschitz_envelope,
};
use crate::par::Parallelism;
use crate::problem::Problem;
use ndarray::Array2;

/// Options of the dual-ascent solver.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DualOptions {
    /// Iterations at most (Newton steps on every level and ladder steps together).
    pub max_iterations: usize,
    /// Stop when `J - Phi <= tolerance * max(|J|, 0.01)` (at the ladder's last stage).
    pub tolerance: f64,
    /// Ratio of the ladder of scales of the Huber c-transform (> 1).
    pub ladder_ratio: f64,
    /// First smoothing temperature (cost units).
    pub smoothing: f64,
    /// Last smoothing temperature.
    pub smoothing_min: f64,
    /// Ascent iterations at most per smoothing stage.
    pub stage_iterations: usize,
    /// Grid-scale blur of the best response: temperature `theta h^2 / sigma`.
    pub local_smoothing: f64,
    /// Floor of the Gauss–Newton edge weights relative to the largest mass
    /// (keeps steps bounded where the densities are tiny).
    pub edge_floor: f64,
    /// Weight of the diagonal curvature of the soft minimum over scales in the
    /// Gauss–Newton operator (the stiffness of the linear, W1 branch).
    pub stiffness: f64,
    /// Number of stored snapshots in [0, T] (at least 2).
    pub snapshots: usize,
    /// Parallel sweeps.
    pub parallelism: Parallelism,
    /// Semi-discrete Newton, the ladder, or the first that applies.
    pub algorithm: DualAlgorithm,
}

impl Default for DualOptions {
    fn default() -> Self {
        DualOptions {
            max_iterations: 1000,
            tolerance: 1e-5,
            ladder_ratio: 1.1,
            smoothing: 1e-2,
            smoothing_min: 1e-4,
            stage_iterations: 40,
            local_smoothing: 0.5,
            edge_floor: 1e-3,
            stiffness: 0.1,
            snapshots: 5,
            parallelism: Parallelism::Rayon,
            algorithm: DualAlgorithm::Auto,
        }
    }
}

/// How the dual is maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DualAlgorithm {
    /// Semi-discrete Newton first; where the W1 proximal binds, the
    /// interior-point ascent (the ladder on point and line targets, and
    /// wherever the interior-point ascent does not close the gap).
    #[default]
    Auto,
    /// Semi-discrete Newton only (an error where the W1 proximal binds).
    Newton,
    /// The interior-point Newton ascent with the P1 Lipschitz constraint
    /// (needs a finite L).
    InteriorPoint,
    /// The ladder-of-scales ascent only.
    Ladder,
}

/// Optional starting point (used by uniqueness studies).
#[derive(Debug, Clone, Default)]
pub struct InitialGuess {
    /// Initial terminal potential psi on the support of Q; zero if `None`.
    pub potential: Option<Array2<f64>>,
}

/// A transport plan from rho0, summarised by what the solver reports.
#[derive(Debug, Clone)]
struct Plan {
    /// Second marginal gamma (node masses).
    gamma: Array2<f64>,
    /// Terminal density rho_T (cloud-in-cell of the agents' end points).
    rho_terminal: Array2<f64>,
    /// Barycentric end point x_T of the agents starting at each node.
    end: [Array2<f64>; 2],
    /// `sum alpha/(2T) min(|y - x|, c)^2` over the plan.
    kinetic: f64,
    /// `sum L (|y - x| - c)_+` over the plan.
    w1: f64,
}

impl Plan {
    fn cost(&self) -> f64 {
        self.kinetic + self.w1
    }

    /// `self <- (1 - w) self + w other`.
    fn mix(&mut self, other: &Plan, w: f64) {
        let blend = |a: &mut Array2<f64>, b: &Array2<f64>| {
            *a *= 1.0 - w;
            a.scaled_add(w, b);
        };
        blend(&mut self.gamma, &other.gamma);
        blend(&mut self.rho_terminal, &other.rho_terminal);
        blend(&mut self.end[0], &other.end[0]);
        blend(&mut self.end[1], &other.end[1]);
        self.kinetic = (1.0 - w) * self.kinetic + w * other.kinetic;
        self.w1 = (1.0 - w) * self.w1 + w * other.w1;
    }
}

/// What an ascent hands to the rest of the solve.
struct Outcome {
    /// The best potential (`+inf` off the support).
    psi: Array2<f64>,
    /// `psi^k` on the nodes (`U(., 0)`).
    value0: Array2<f64>,
    /// The best plan.
    plan: Plan,
    objective: f64,
    dual: f64,
    iterations: usize,
    converged: bool,
    /// See [`Diagnostics::lower_bound_bias`].
    bias: f64,
    /// The coarse-to-fine levels of the Newton ascent (empty for the ladder).
    levels: Vec<Level>,
    /// See [`Diagnostics::quantisation`].
    quantisation: f64,
}

/// Everything the ascent needs at one potential.
struct Evaluation {
    /// Smoothed dual value.
    soft: f64,
    /// Exact dual value Phi.
    hard: f64,
    /// `psi^k` on the nodes.
    transform: Array2<f64>,
    /// The soft best response.
    plan: Plan,
    /// `gamma_soft - grad Lambda` (zero off the support of Q).
    gradient: Array2<f64>,
    /// `grad Lambda(psi)`.
    gibbs: Array2<f64>,
    /// Diagonal curvature of the soft minima (the stiffness that the
    /// Laplacian model misses where the cost is linear).
    curvature: Array2<f64>,
}

/// The soft local minimum of one agent at one scale.
#[derive(Debug, Clone, Default)]
struct Local {
    /// Soft minimum value.
    value: f64,
    /// Its temperature.
    eps: f64,
    /// `(i, j, weight, |x - y|)` of the nodes it spreads over.
    entries: Vec<(usize, usize, f64, f64)>,
}

/// Everything fixed during a solve, with the reusable buffers.
struct Setup<'a> {
    grid: &'a Grid,
    rho0: &'a Array2<f64>,
    q: &'a Array2<f64>,
    f: FDivergence,
    kernel: HuberKernel,
    /// `sigma = tau + s` of every scale and its offset `L^2 s / 2`.
    ladder: Vec<(f64, f64)>,
    /// Temperature of the local soft minimum in units of `h^2 / sigma`.
    local_theta: f64,
    /// Floor of the Gauss–Newton edge weights, relative to the largest mass.
    edge_floor: f64,
    /// Weight of the soft-minimum curvature in the Gauss–Newton diagonal.
    stiffness: f64,
    par: Parallelism,
    ws: HopfLaxWorkspace,
    scales: Vec<HopfLax>,
}

impl<'a> Setup<'a> {
    /// The ladder of scales and the buffers for a solve with options `o`.
    fn new(
        grid: &'a Grid,
        rho0: &'a Array2<f64>,
        q: &'a Array2<f64>,
        f: FDivergence,
        kernel: HuberKernel,
        o: &DualOptions,
    ) -> Self {
        let hi = grid.hi();
        let diameter = ((hi[0] - grid.lo[0]).powi(2) + (hi[1] - grid.lo[1]).powi(2)).sqrt();
        let tau = kernel.tau();
        let l = kernel.lipschitz.unwrap_or(0.0);
        let ladder: Vec<(f64, f64)> = kernel
            .ladder(grid.h, diameter, o.ladder_ratio)
            .into_iter()
            .map(|sigma| (sigma, 0.5 * l * l * (sigma - tau)))
            .collect();
        let empty = HopfLax {
            value: grid.zeros(),
            arg0: Array2::zeros(grid.shape()),
            arg1: Array2::zeros(grid.shape()),
        };
        Setup {
            grid,
            rho0,
            q,
            f,
            kernel,
            scales: vec![empty; ladder.len()],
            ladder,
            local_theta: o.local_smoothing,
            edge_floor: o.edge_floor,
            stiffness: o.stiffness,
            par: o.parallelism,
            ws: HopfLaxWorkspace::new(grid),
        }
    }

    fn support(&self) -> impl Iterator<Item = bool> + '_ {
        self.q.iter().map(|v| *v > 0.0)
    }

    /// Evaluates the smoothed dual, the soft best response and the gradient.
    fn evaluate(&mut self, psi: &Array2<f64>, eps: f64) -> Result<Evaluation> {
        let grid = self.grid;
        for (k, &(sigma, _)) in self.ladder.iter().enumerate() {
            hopf_lax_into(
                grid,
                psi,
                0.5 / sigma,
                &mut self.ws,
                self.par,
                &mut self.scales[k],
            );
        }
        let reach = self.kernel.reach();
        let mut plan = Plan {
            gamma: grid.zeros(),
            rho_terminal: grid.zeros(),
            end: [grid.zeros(), grid.zeros()],
            kinetic: 0.0,
            w1: 0.0,
        };
        let mut transform = grid.zeros();
        let (mut soft_sum, mut hard_sum) = (0.0, 0.0);
        let mut locals: Vec<Local> = vec![Local::default(); self.ladder.len()];
        let mut curvature = grid.zeros();
        let mut dual_gamma = grid.zeros();
        let mut weights = vec![0.0; self.ladder.len()];
        for ((i, j), &m) in self.rho0.indexed_iter() {
            let x = grid.node(i, j);
            let hard = self
                .ladder
                .iter()
                .zip(&self.scales)
                .map(|(&(_, offset), hl)| hl.value[[i, j]] + offset)
                .fold(f64::INFINITY, f64::min);
            if !hard.is_finite() {
                return Err(Error::InvalidDensity {
                    field: "target".into(),
                    reason: "has no mass on the grid".into(),
                });
            }
            transform[[i, j]] = hard;
            if m == 0.0 {
                continue;
            }
            hard_sum += m * hard;
            // a scale whose hard minimum exceeds the best by far more than both
            // temperatures carries no weight: skip its local soft minimum
            let reach_soft =
                40.0 * eps + 4.0 * self.local_theta * grid.h * grid.h / self.ladder[0].0;
            for (k, (&(sigma, offset), hl)) in self.ladder.iter().zip(&self.scales).enumerate() {
                if hl.value[[i, j]] + offset > hard + reach_soft {
                    locals[k].value = f64::INFINITY;
                    locals[k].entries.clear();
                    continue;
                }
                let node = (hl.arg0[[i, j]], hl.arg1[[i, j]]);
                self.soft_local(psi, x, node, sigma, &mut locals[k]);
                locals[k].value += offset;
            }
            let low = locals.iter().map(|r| r.value).fold(f64::INFINITY, f64::min);
            let mut total = 0.0;
            for (w, r) in weights.iter_mut().zip(&locals) {
                *w = if eps > 0.0 {
                    (-(r.value - low) / eps).exp()
                } else if r.value == low {
                    1.0
                } else {
                    0.0
                };
                total += *w;
            }
            soft_sum += m * (low - eps * total.ln());
            let mut bary = [0.0; 2];
            for (w, local) in weights.iter().zip(&locals) {
                let w = w / total;
                if w < 1e-12 {
                    continue;
                }
                // the dual gradient: the blurred best response
                let mut aim = [0.0; 2];
                for &(a0, a1, lw, _) in &local.entries {
                    dual_gamma[[a0, a1]] += m * w * lw;
                    let share = w * lw;
                    if eps > 0.0 {
                        curvature[[a0, a1]] += m * share * (1.0 - share) / eps;
                    }
                    let y = grid.node(a0, a1);
                    aim[0] += lw * y[0];
                    aim[1] += lw * y[1];
                }
                // the primal plan: each agent aims at the barycentre of its blur
                // (a map, so no entropic spread in the cost), unless the
                // deposit of that point would leave the support of Q
                let targets: Vec<([f64; 2], f64)> = if self.on_support(aim) {
                    vec![(aim, 1.0)]
                } else {
                    local
                        .entries
                        .iter()
                        .map(|&(a0, a1, lw, _)| (grid.node(a0, a1), lw))
                        .collect()
                };
                for (y, lw) in targets {
                    let mass = m * w * lw;
                    if mass == 0.0 {
                        continue;
                    }
                    let dist = ((y[0] - x[0]).powi(2) + (y[1] - x[1]).powi(2)).sqrt();
                    let step = if dist > reach { reach / dist } else { 1.0 };
                    let end = [x[0] + step * (y[0] - x[0]), x[1] + step * (y[1] - x[1])];
                    let (kin, w1) = self.kernel.split(dist);
                    plan.kinetic += mass * kin;
                    plan.w1 += mass * w1;
                    grid.deposit(&mut plan.gamma, y, mass);
                    grid.deposit(&mut plan.rho_terminal, end, mass);
                    bary[0] += w * lw * end[0];
                    bary[1] += w * lw * end[1];
                }
            }
            plan.end[0][[i, j]] = bary[0];
            plan.end[1][[i, j]] = bary[1];
        }
        // agents without mass still get an end point (for plots of the map)
        for ((i, j), &m) in self.rho0.indexed_iter() {
            if m == 0.0 {
                let x = grid.node(i, j);
                plan.end[0][[i, j]] = x[0];
                plan.end[1][[i, j]] = x[1];
            }
        }
        let (ps, qs) = (
            psi.as_slice().expect("layout"),
            self.q.as_slice().expect("layout"),
        );
        let lambda = self.f.lambda(ps, qs);
        let gibbs =
            Array2::from_shape_vec(grid.shape(), self.f.lambda_gradient(ps, qs)).expect("shape");
        let mut gradient = &dual_gamma - &gibbs;
        for (g, on) in gradient.iter_mut().zip(self.support()) {
            if !on {
                *g = 0.0;
            }
        }
        Ok(Evaluation {
            soft: soft_sum - lambda,
            hard: hard_sum - lambda,
            transform,
            plan,
            gradient,
            gibbs,
            curvature,
        })
    }

    /// Exact line search of `(1-w) C_a + w C_b + D_f((1-w) g_a + w g_b || Q)`
    /// over `w` in [0, 1] (a convex function of w).
    fn line_search(&self, current: &Plan, response: &Plan) -> f64 {
        let mut mixed = current.gamma.clone();
        let mut objective = |w: f64| {
            ndarray::Zip::from(&mut mixed)
                .and(&current.gamma)
                .and(&response.gamma)
                .for_each(|m, &a, &b| *m = (1.0 - w) * a + w * b);
            (1.0 - w) * current.cost() + w * response.cost() + self.divergence(&mixed)
        };
        let golden = 0.5 * (5f64.sqrt() - 1.0);
        let (mut lo, mut hi) = (0.0, 1.0);
        let mut a = hi - golden * (hi - lo);
        let mut b = lo + golden * (hi - lo);
        let (mut fa, mut fb) = (objective(a), objective(b));
        for _ in 0..50 {
            if fa <= fb {
                hi = b;
                b = a;
                fb = fa;
                a = hi - golden * (hi - lo);
                fa = objective(a);
            } else {
                lo = a;
                a = b;
                fa = fb;
                b = lo + golden * (hi - lo);
                fb = objective(b);
            }
        }
        let w = 0.5 * (lo + hi);
        let (f0, f1, fw) = (objective(0.0), objective(1.0), objective(w));
        if f1 <= fw && f1 <= f0 {
            1.0
        } else if f0 <= fw {
            0.0
        } else {
            w
        }
    }

    fn divergence(&self, gamma: &Array2<f64>) -> f64 {
        self.f.divergence(
            gamma.as_slice().expect("standard layout"),
            self.q.as_slice().expect("standard layout"),
        )
    }

    /// Whether the cloud-in-cell deposit of `y` touches only nodes where Q has mass.
    fn on_support(&self, y: [f64; 2]) -> bool {
        let grid = self.grid;
        let inside = (0..grid.dim).all(|a| {
            let t = (y[a] - grid.lo[a]) / grid.h;
            t >= 0.0 && t <= (grid.n[a] - 1) as f64
        });
        inside
            && grid
                .cic(y)
                .iter()
                .all(|&(i, j, w)| w == 0.0 || self.q[[i, j]] > 0.0)
    }

    /// Soft minimum of `psi(y) + |x - y|^2 / (2 sigma)` over the 5x5 (5 in 1-D)
    /// nodes around the node minimiser, at temperature `theta h^2 / sigma`:
    /// a grid-scale entropic blur that makes the best response a smooth
    /// function of psi (a hard minimum over nodes sends agents to nodes only and
    /// leaves a comb-shaped density). The weights are the derivative of the
    /// soft value with respect to psi and, being non-negative, a transport plan.
    fn soft_local(
        &self,
        psi: &Array2<f64>,
        x: [f64; 2],
        node: (usize, usize),
        sigma: f64,
        out: &mut Local,
    ) {
        let grid = self.grid;
        let eps = self.local_theta * grid.h * grid.h / sigma;
        out.entries.clear();
        let span: isize = 2;
        let (r0, r1) = (span, if grid.dim == 2 { span } else { 0 });
        let mut low = f64::INFINITY;
        for di in -r0..=r0 {
            for dj in -r1..=r1 {
                let i = node.0 as isize + di;
                let j = node.1 as isize + dj;
                if i < 0 || j < 0 || i >= grid.n[0] as isize || j >= grid.n[1] as isize {
                    continue;
                }
                let (i, j) = (i as usize, j as usize);
                let v = psi[[i, j]];
                if !v.is_finite() {
                    continue;
                }
                let y = grid.node(i, j);
                let d2 = (y[0] - x[0]).powi(2) + (y[1] - x[1]).powi(2);
                let total = v + d2 / (2.0 * sigma);
                low = low.min(total);
                out.entries.push((i, j, total, d2.sqrt()));
            }
        }
        let mut sum = 0.0;
        for e in out.entries.iter_mut() {
            e.2 = (-(e.2 - low) / eps).exp();
            sum += e.2;
        }
        for e in out.entries.iter_mut() {
            e.2 /= sum;
        }
        out.value = low - eps * sum.ln();
        out.eps = eps;
    }

    /// Solves `(tau D^T Gamma D + diag(gibbs) + shift) delta = rhs` on the
    /// support of Q by Jacobi-preconditioned conjugate gradients.
    fn newton_direction(&self, eval: &Evaluation) -> Array2<f64> {
        let grid = self.grid;
        let (n0, n1) = grid.shape();
        let tau = self.kernel.tau();
        let on: Vec<bool> = self.support().collect();
        let gamma = &eval.plan.gamma;
        let floor = self.edge_floor * gamma.iter().fold(0.0f64, |a, b| a.max(*b));
        let coef = tau / (grid.h * grid.h);
        // edge weights Gamma between neighbouring support nodes
        let edge = |a: usize, b: usize| -> f64 {
            if on[a] && on[b] {
                coef * (0.5
                    * (gamma.as_slice().expect("layout")[a] + gamma.as_slice().expect("layout")[b])
                    + floor)
            } else {
                0.0
            }
        };
        let mut wx = vec![0.0; n0 * n1];
        let mut wy = vec![0.0; n0 * n1];
        for i in 0..n0 {
            for j in 0..n1 {
                let k = i * n1 + j;
                if i + 1 < n0 {
                    wx[k] = edge(k, k + n1);
                }
                if j + 1 < n1 {
                    wy[k] = edge(k, k + 1);
                }
            }
        }
        let gibbs = eval.gibbs.as_slice().expect("layout");
        let curvature = eval.curvature.as_slice().expect("layout");
        let shift = 1e-10 + 1e-6 * gibbs.iter().fold(0.0f64, |a, b| a.max(*b));
        let diag: Vec<f64> = (0..n0 * n1)
            .map(|k| {
                let (i, j) = (k / n1, k % n1);
                let mut d = gibbs[k] + shift + wx[k] + wy[k] + self.stiffness * curvature[k];
                if i > 0 {
                    d += wx[k - n1];
                }
                if j > 0 {
                    d += wy[k - 1];
                }
                d
            })
            .collect();
        let apply = |v: &[f64], out: &mut [f64]| {
            for k in 0..n0 * n1 {
                if !on[k] {
                    out[k] = 0.0;
                    continue;
                }
                let (i, j) = (k / n1, k % n1);
                let mut s = diag[k] * v[k];
                if i + 1 < n0 {
                    s -= wx[k] * v[k + n1];
                }
                if i > 0 {
                    s -= wx[k - n1] * v[k - n1];
                }
                if j + 1 < n1 {
                    s -= wy[k] * v[k + 1];
                }
                if j > 0 {
                    s -= wy[k - 1] * v[k - 1];
                }
                out[k] = s;
            }
        };
        let rhs = eval.gradient.as_slice().expect("layout");
        conjugate_gradient(&apply, &diag, rhs, &on, 1e-4, 300)
            .into_shape_with_order(grid.shape())
            .expect("shape")
    }
}

/// The dual-ascent solver with exact characteristics.
#[derive(Debug, Clone, Default)]
pub struct DualSolver {
    /// Its options.
    pub options: DualOptions,
}

impl DualSolver {
    /// Solver with the given options.
    pub fn new(options: DualOptions) -> Self {
        DualSolver { options }
    }
}

impl DualSolver {
    /// Runs the algorithms the options ask for, from `psi`.
    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        problem: &Problem,
        grid: &Grid,
        rho0: &Array2<f64>,
        q: &Array2<f64>,
        kernel: HuberKernel,
        psi: Array2<f64>,
        guess_given: bool,
        observer: &mut dyn Observer,
    ) -> Result<Outcome> {
        let o = &self.options;
        let mut spent = 0;
        if o.algorithm == DualAlgorithm::InteriorPoint && problem.lipschitz.is_none() {
            return Err(Error::invalid(
                "algorithm",
                "interior-point",
                "the interior-point ascent imposes the Lipschitz bound: it needs a finite L",
            ));
        }
        let task = Task {
            problem,
            grid,
            rho0,
            q,
            parallelism: o.parallelism,
            max_iterations: o.max_iterations,
            tolerance: o.tolerance,
        };
        if matches!(o.algorithm, DualAlgorithm::Auto | DualAlgorithm::Newton) {
            let start = guess_given.then(|| psi.clone());
            let (r, levels) = multilevel(&task, start, observer)?;
            let iterations = levels.iter().map(|l| l.iterations).sum();
            let (dual, gap) = (r.dual, r.objective - r.dual);
            if r.converged {
                let (gamma, w1) = r.w1_leg.unwrap_or_else(|| (r.cells.mass.clone(), 0.0));
                let certified = Certified {
                    psi: r.psi,
                    cells: r.cells,
                    gamma,
                    w1,
                    objective: r.objective,
                    dual,
                    iterations,
                    converged: true,
                    levels,
                };
                return Ok(certified.outcome(grid, &kernel, o.parallelism));
            }
            if o.algorithm == DualAlgorithm::Newton {
                return Err(Error::invalid(
                    "algorithm",
                    "newton",
                    &format!(
                        "the semi-discrete Newton ascent ended at gap {gap:.2e} after {iterations} iterations (the W1 proximal binds where the gap stays open): use auto or ladder"
                    ),
                ));
            }
            spent = iterations;
        }
        // on point and line targets the ladder's cone is exact, while the P1
        // constraint costs O(h) at the apex: there auto goes to the ladder
        let interior = match o.algorithm {
            DualAlgorithm::InteriorPoint => true,
            DualAlgorithm::Auto => !problem.target.is_singular(problem.dim),
            _ => false,
        };
        // an unconverged interior-point outcome: what the ladder must beat
        let mut fallback: Option<Outcome> = None;
        if let (Some(l), true) = (problem.lipschitz, interior) {
            let start = guess_given.then(|| psi.clone());
            let task = Task {
                max_iterations: o.max_iterations.saturating_sub(spent),
                ..task
            };
            let (r, levels) = super::interior_point::multilevel(&task, l, start, observer)?;
            let iterations = spent + levels.iter().map(|l| l.iterations).sum::<usize>();
            let certified = Certified {
                psi: r.psi,
                cells: r.cells,
                gamma: r.gamma,
                w1: r.w1,
                objective: r.objective,
                dual: r.dual,
                iterations,
                converged: r.converged,
                levels,
            };
            let out = certified.outcome(grid, &kernel, o.parallelism);
            if r.converged || o.algorithm == DualAlgorithm::InteriorPoint {
                return Ok(out);
            }
            fallback = Some(out);
            spent = iterations;
        }
        // the ladder gets what the ascents before it left of the cap
        let rest = DualOptions {
            max_iterations: o.max_iterations.saturating_sub(spent),
            ..o.clone()
        };
        if rest.max_iterations == 0
            && let Some(out) = fallback.take()
        {
            return Ok(out);
        }
        let mut setup = Setup::new(grid, rho0, q, problem.divergence, kernel, &rest);
        let mut out = ladder_ascent(
            &mut setup, problem, grid, rho0, q, &kernel, psi, &rest, observer,
        )?;
        out.iterations += spent;
        // the smaller certified gap wins: an unconverged ladder run must not
        // replace a nearly converged interior point
        match fallback {
            Some(best) if best.objective - best.dual < out.objective - out.dual => Ok(Outcome {
                iterations: out.iterations,
                ..best
            }),
            _ => Ok(out),
        }
    }
}

/// The end of a Laguerre-cell ascent (Newton or interior point): plan
/// "each cell to its node", then a W1 leg of cost `w1` to `gamma`.
struct Certified {
    psi: Array2<f64>,
    cells: crate::transport::LaguerreCells,
    gamma: Array2<f64>,
    w1: f64,
    objective: f64,
    dual: f64,
    iterations: usize,
    converged: bool,
    levels: Vec<Level>,
}

impl Certified {
    fn outcome(self, grid: &Grid, kernel: &HuberKernel, parallelism: Parallelism) -> Outcome {
        let mut ws = HopfLaxWorkspace::new(grid);
        let value0 = hopf_lax(grid, &self.psi, 0.5 / kernel.tau(), &mut ws, parallelism).value;
        let cells = self.cells;
        Outcome {
            psi: self.psi,
            value0,
            plan: Plan {
                gamma: self.gamma,
                rho_terminal: cells.mass,
                end: cells.aim,
                kinetic: cells.centroid_cost,
                w1: self.w1,
            },
            quantisation: cells.cost - cells.centroid_cost,
            objective: self.objective,
            dual: self.dual,
            iterations: self.iterations,
            converged: self.converged,
            bias: 0.0,
            levels: self.levels,
        }
    }
}

impl super::Solver for DualSolver {
    type Guess = InitialGuess;

    fn solve_from(
        &self,
        problem: &Problem,
        grid: &Grid,
        guess: &InitialGuess,
        observer: &mut dyn Observer,
    ) -> Result<Solution> {
        let o = &self.options;
        o.validate()?;
        if problem.divergence == FDivergence::W1 {
            return Err(Error::invalid(
                "divergence",
                "w1",
                "method dual needs a strictly convex f (kl, reverse-kl, alpha, js, chi2)",
            ));
        }
        let (start, rho0, q) = super::begin(problem, grid, super::MethodKind::Dual)?;
        let kernel = HuberKernel {
            alpha: problem.alpha,
            horizon: problem.horizon,
            lipschitz: problem.lipschitz,
        };
        let mut psi = match &guess.potential {
            Some(p) => {
                super::check_guess_shape("initial potential", p, grid)?;
                p.clone()
            }
            None => grid.zeros(),
        };
        for (v, &m) in psi.iter_mut().zip(&q) {
            if m == 0.0 {
                *v = f64::INFINITY;
            }
        }
        let outcome = self.outcome(
            problem,
            grid,
            &rho0,
            &q,
            kernel,
            psi,
            guess.potential.is_some(),
            observer,
        )?;
        let Outcome {
            psi: best_psi,
            value0,
            plan,
            objective,
            dual,
            iterations,
            converged,
            bias,
            levels,
            quantisation,
        } = outcome;
        let gap = objective - dual;
        let mut ws = HopfLaxWorkspace::new(grid);
        // U(., T) = psi^L (psi itself without the W1 proximal)
        let mut phi = match problem.lipschitz {
            Some(l) => lipschitz_envelope(
                grid,
                &best_psi,
                l,
                o.ladder_ratio.min(1.05),
                &mut ws,
                o.parallelism,
            ),
            None => best_psi.clone(),
        };
        let top = phi
            .iter()
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, |a, b| a.max(*b));
        phi.mapv_inplace(|v| if v.is_finite() { v } else { top });
        let rho_terminal = normalise_mass("terminal density", plan.rho_terminal.clone())?;
        let (alpha, horizon) = (problem.alpha, problem.horizon);
        let max_speed = max_speed(grid, &rho0, &plan.end, horizon);
        let snapshots = snapshots(
            grid,
            &rho0,
            &phi,
            &plan,
            alpha,
            horizon,
            o.snapshots,
            &mut ws,
            o.parallelism,
        );
        let hj_residual = hj_residual(
            grid,
            &rho0,
            &phi,
            &plan.end,
            alpha,
            horizon,
            &mut ws,
            o.parallelism,
        );
        let terminal_cost = plan.w1
            + problem.divergence.divergence(
                plan.gamma.as_slice().expect("standard layout"),
                q.as_slice().expect("standard layout"),
            );
        let diagnostics = Diagnostics {
            objective,
            kinetic_energy: plan.kinetic,
            quantisation,
            terminal_cost,
            dual_value: dual,
            duality_gap: gap,
            lower_bound_bias: bias,
            levels,
            hj_residual,
            max_speed,
            speed_bound: problem.lipschitz.map_or(f64::INFINITY, |l| l / alpha),
            iterations,
            converged,
            stop_reason: StopReason::new(converged, gap),
            mass_error: (plan.rho_terminal.sum() - 1.0).abs(),
            wall_time_s: start.elapsed().as_secs_f64(),
        };
        Ok(Solution {
            method: super::MethodKind::Dual,
            grid: grid.clone(),
            horizon,
            alpha,
            rho0,
            target: q,
            rho_terminal,
            phi,
            value0,
            map: Some(plan.end),
            snapshots,
            values: None,
            diagnostics,
        })
    }
}

/// The ladder-of-scales ascent (the algorithm where the W1 proximal binds).
#[allow(clippy::too_many_arguments)]
fn ladder_ascent(
    setup: &mut Setup,
    problem: &Problem,
    grid: &Grid,
    rho0: &Array2<f64>,
    q: &Array2<f64>,
    kernel: &HuberKernel,
    mut psi: Array2<f64>,
    o: &DualOptions,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let smooth = setup.ladder.len() > 1;
    let mut eps = if smooth { o.smoothing } else { 0.0 };
    let mut eval = setup.evaluate(&psi, eps)?;
    let mut best = (eval.hard, psi.clone(), eval.transform.clone());
    let mut iterations = 0;
    let mut stage_count = 0;
    let mut step = 1.0;
    let mut converged = false;
    let mut mixture = eval.plan.clone();
    let mut objective = mixture.cost() + setup.divergence(&mixture.gamma);
    let mut dual_done = false;
    while iterations < o.max_iterations {
        iterations += 1;
        stage_count += 1;
        // once the dual has stalled, only the primal moves (Frank-Wolfe)
        let direction = if dual_done {
            grid.zeros()
        } else {
            setup.newton_direction(&eval)
        };
        let slope: f64 = (&direction * &eval.gradient).sum();
        let mut accepted = false;
        for _ in 0..if dual_done { 0 } else { 12 } {
            let mut trial = psi.clone();
            trial.scaled_add(step, &direction);
            let e = setup.evaluate(&trial, eps)?;
            if e.soft >= eval.soft + 1e-4 * step * slope {
                psi = trial;
                eval = e;
                accepted = true;
                step = (step * 2.0).min(1.0);
                break;
            }
            step *= 0.5;
        }
        if !dual_done {
            let w = setup.line_search(&mixture, &eval.plan);
            mixture.mix(&eval.plan, w);
        }
        // a Frank-Wolfe atom too: the best response to f'(gamma_bar / q)
        let linear = ndarray::Zip::from(&mixture.gamma)
            .and(q)
            .map_collect(|&g, &t| {
                if t > 0.0 {
                    problem.divergence.f_prime((g / t).max(1e-8))
                } else {
                    f64::INFINITY
                }
            });
        let fw = setup.evaluate(&linear, eps)?;
        let w = setup.line_search(&mixture, &fw.plan);
        mixture.mix(&fw.plan, w);
        objective = mixture.cost() + setup.divergence(&mixture.gamma);
        if !objective.is_finite() || !eval.hard.is_finite() {
            return Err(Error::Diverged {
                method: "dual".into(),
                iteration: iterations,
                quantity: "objective".into(),
                value: objective,
            });
        }
        if eval.hard > best.0 {
            best = (eval.hard, psi.clone(), eval.transform.clone());
        }
        observer.observe(&IterationState {
            iteration: iterations,
            objective,
            dual: best.0,
            smoothing: eps,
            residual: objective - best.0,
        });
        let gap = objective - best.0;
        let last_stage = !smooth || eps <= o.smoothing_min;
        // the ladder's dual may exceed J by its bias, so a closed gap alone
        // does not mean psi has settled: the Newton step must promise no
        // more than the tolerance too
        let allowed = super::allowed_gap(o.tolerance, objective);
        let closed = slope <= allowed && gap <= allowed;
        if last_stage && closed {
            converged = true;
            break;
        }
        let stalled = !accepted || slope <= 1e-14 * objective.abs().max(1.0);
        let stage_done = closed || stalled || stage_count >= o.stage_iterations;
        if stage_done {
            if last_stage {
                dual_done |= stalled;
            } else {
                eps = (eps * 0.25).max(o.smoothing_min);
                stage_count = 0;
                step = 1.0;
                eval = setup.evaluate(&psi, eps)?;
            }
        }
    }
    let (dual, best_psi, value0) = best;
    // the soft best response to the best potential is a feasible plan too:
    // keep whichever of it and the Frank-Wolfe mixture costs less
    let last = setup.evaluate(&best_psi, eps)?.plan;
    let last_objective = last.cost() + setup.divergence(&last.gamma);
    let (mut plan, mut objective) = if last_objective < objective {
        (last, last_objective)
    } else {
        (mixture, objective)
    };
    // in 1-D the monotone plan onto the Gibbs measure of psi is exact for
    // the transport part: another feasible plan, often the best
    if grid.dim == 1 {
        let (ps, qs) = (
            best_psi.as_slice().expect("layout"),
            q.as_slice().expect("layout"),
        );
        let gibbs =
            Array2::from_shape_vec(grid.shape(), problem.divergence.lambda_gradient(ps, qs))
                .expect("shape");
        let monotone = monotone_plan(grid, rho0, &gibbs, kernel);
        let value = monotone.cost() + setup.divergence(&monotone.gamma);
        if value < objective {
            plan = monotone;
            objective = value;
        }
    }
    let converged = converged || objective - dual <= super::allowed_gap(o.tolerance, objective);
    Ok(Outcome {
        psi: best_psi,
        value0,
        bias: lower_bound_bias(grid, kernel, o.ladder_ratio, &plan),
        plan,
        objective,
        dual,
        iterations,
        converged,
        levels: Vec::new(),
        quantisation: 0.0,
    })
}

/// How far the dual value may exceed the optimum that the primal plans bound.
/// Two sources (the second is bounded with the computed plan standing in for
/// the unknown optimal one):
/// - the plans are semi-discrete (agents aim at points, deposited by
///   cloud-in-cell), the dual is that of the node problem; splitting an
///   agent's mass over the cloud-in-cell nodes of its aim costs at most
///   `d h^2 / (8 tau)` more (Jensen: the cost's curvature is at most `1/tau`,
///   the deposit's variance at most `d h^2 / 4`), so the node optimum exceeds
///   the semi-discrete one by at most that;
/// - the ladder of scales over-estimates the linear branch of the cost by the
///   factor `cosh(ln r / 2)` at most, i.e. by `(cosh(ln r / 2) - 1) L |y - x|`,
///   bounded with the plan's W1 part and reach: `(cosh - 1)(w1 + L c)`.
fn lower_bound_bias(grid: &Grid, kernel: &HuberKernel, ladder_ratio: f64, plan: &Plan) -> f64 {
    let tau = kernel.tau();
    let deposit = grid.dim as f64 * grid.h * grid.h / (8.0 * tau);
    let ladder = match kernel.lipschitz {
        Some(l) => ((0.5 * ladder_ratio.ln()).cosh() - 1.0) * (plan.w1 + l * kernel.reach()),
        None => 0.0,
    };
    deposit + ladder
}

/// The monotone (1-D optimal) plan from `rho0` onto `gamma` with the Huber cost.
fn monotone_plan(
    grid: &Grid,
    rho0: &Array2<f64>,
    gamma: &Array2<f64>,
    kernel: &HuberKernel,
) -> Plan {
    let (kinetic, map) = monotone_transport(grid, rho0, gamma, &|d| kernel.split(d).0);
    let (w1, _) = monotone_transport(grid, rho0, gamma, &|d| kernel.split(d).1);
    let reach = kernel.reach();
    let mut plan = Plan {
        gamma: gamma.clone(),
        rho_terminal: grid.zeros(),
        end: [grid.zeros(), grid.zeros()],
        kinetic,
        w1,
    };
    for (i, y) in map.iter().enumerate() {
        let x = grid.coord(0, i);
        let d = y - x;
        let end = if d.abs() > reach {
            x + reach * d.signum()
        } else {
            *y
        };
        plan.end[0][[i, 0]] = end;
        grid.deposit(&mut plan.rho_terminal, [end, 0.0], rho0[[i, 0]]);
    }
    plan
}

#[allow(clippy::too_many_arguments)]
fn snapshots(
    grid: &Grid,
    rho0: &Array2<f64>,
    phi: &Array2<f64>,
    plan: &Plan,
    alpha: f64,
    horizon: f64,
    count: usize,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) -> Vec<Snapshot> {
    let n = count.max(2);
    (0..n)
        .map(|k| {
            let theta = k as f64 / (n - 1) as f64;
            let t = theta * horizon;
            let rho = if k == n - 1 {
                plan.rho_terminal.clone()
            } else {
                push_forward(grid, rho0, &plan.end, theta)
            };
            Snapshot {
                t,
                rho,
                value: value_at(grid, phi, alpha, horizon - t, ws, par),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoothed dual's gradient (the soft plan's marginal minus the Gibbs
    /// measure) is checked against central differences of the smoothed dual.
    #[test]
    fn soft_dual_gradient_matches_finite_differences() {
        for name in ["gauss-kl-1d", "shift-near-2d"] {
            let case = crate::cases::builtin(name).unwrap();
            let grid = case
                .grid(if case.problem.dim == 1 { 64 } else { 24 })
                .unwrap();
            let (rho0, q) = case.problem.masses(&grid).unwrap();
            let kernel = HuberKernel {
                alpha: case.problem.alpha,
                horizon: case.problem.horizon,
                lipschitz: case.problem.lipschitz,
            };
            let o = DualOptions {
                parallelism: Parallelism::Sequential,
                stiffness: 1.0,
                ..Default::default()
            };
            let mut setup = Setup::new(&grid, &rho0, &q, case.problem.divergence, kernel, &o);
            let psi = grid.evaluate(|x| 0.3 * x[0] * x[0] - 0.2 * x[0] + 0.1 * x[1]);
            let eps = 1e-2;
            let e = setup.evaluate(&psi, eps).unwrap();
            let mut checked = 0;
            for ((i, j), g) in e.gradient.indexed_iter() {
                if g.abs() < 1e-4 {
                    continue;
                }
                let d = 1e-6;
                let mut p = psi.clone();
                p[[i, j]] += d;
                let up = setup.evaluate(&p, eps).unwrap().soft;
                p[[i, j]] -= 2.0 * d;
                let down = setup.evaluate(&p, eps).unwrap().soft;
                let fd = (up - down) / (2.0 * d);
                assert!(
                    (fd - g).abs() < 1e-6 + 1e-4 * g.abs(),
                    "{name} ({i},{j}): fd {fd} vs {g}"
                );
                checked += 1;
                if checked == 12 {
                    break;
                }
            }
            assert!(checked >= 8, "{name}: only {checked} nodes checked");
        }
    }
}
