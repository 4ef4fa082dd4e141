//! Interior-point Newton ascent of the semi-discrete dual where the W1
//! proximal binds (finite L):
//!
//! ```text
//! J_h = max_psi  Phi(psi) = int u_psi rho0 dx - Lambda_f(psi; Q)
//!       subject to  |grad_T psi| <= L  on every element T,
//!       u_psi(x) = min_j psi_j + |x - y_j|^2 / (2 tau),   tau = T / alpha,
//! ```
//!
//! psi on every node, its P1 interpolant (two triangles a cell in 2-D,
//! segments in 1-D) L-Lipschitz, so psi is L-Lipschitz between any two
//! points of the box. Each constraint `c_T = (L^2 - |grad_T psi|^2) / 2 >= 0`
//! has a multiplier `lambda_T >= 0`; primal-dual Newton steps linearise the
//! stationarity `mass - grad Lambda - sum_T |T| G_T^T lambda_T grad_T psi = 0`
//! together with `lambda_T c_T = mu` (one sparse Cholesky solve a step), are
//! damped on `Phi + mu sum_T |T| log c_T`, and follow the central path as
//! `mu` falls.
//!
//! The multipliers make a flux `m_T = lambda_T grad_T psi`. Weak duality
//! gives the certificate at every iterate: `Phi(psi)` (psi feasible) from
//! below; from above the Laguerre plan (exact cost) to rho_T, the flux, made
//! to carry rho_T exactly to the normalised Gibbs measure gamma by one P1
//! Poisson solve (cost `L sum |T| |m_T|`), and `D_f(gamma || Q)`. Both
//! bounds belong to the one discrete problem above (the Beckmann form of its
//! W1 leg), so the gap has no bias. In 1-D the P1 constraint is the
//! Lipschitz constraint between nodes itself.

use super::semidiscrete::{Level, LevelOutput, Newton, Task, coarse_to_fine, restrict};
use super::{IterationState, Observer};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::transport::{LaguerreCells, LaguerreWorkspace};
use ndarray::Array2;

/// The result of an interior-point ascent.
pub(crate) struct BarrierOutcome {
    /// The last potential (feasible).
    pub psi: Array2<f64>,
    /// Its cells (the plan to rho_T).
    pub cells: LaguerreCells,
    /// The certified upper bound.
    pub objective: f64,
    /// The W1 leg of the upper bound, `L sum |T| |m_T|` plus the residual's charge.
    pub w1: f64,
    /// The W1 image of rho_T (the measure compared with Q).
    pub gamma: Array2<f64>,
    /// `Phi(psi)`, the certified lower bound.
    pub dual: f64,
    /// Newton iterations taken.
    pub iterations: usize,
    /// Whether the relative gap reached the tolerance.
    pub converged: bool,
    /// The last barrier weight.
    pub mu: f64,
    /// The constraint multipliers `lambda_T` (the flux is `lambda_T grad_T psi`).
    pub multipliers: Vec<f64>,
    /// The certified gap at the first iterate.
    pub first_gap: f64,
}

/// One element of the P1 interpolant: `grad psi = sign ((psi_b - psi_a), (psi_c - psi_a)) / h`.
#[derive(Debug, Clone, Copy)]
struct Element {
    a: usize,
    b: usize,
    c: Option<usize>,
    sign: f64,
}

/// The triangles (2-D, two per cell) or segments (1-D) of the grid.
fn elements(grid: &Grid) -> Vec<Element> {
    let (n0, n1) = grid.shape();
    let at = |i: usize, j: usize| i * n1 + j;
    if grid.dim == 1 {
        return (0..n0 - 1)
            .map(|i| Element {
                a: at(i, 0),
                b: at(i + 1, 0),
                c: None,
                sign: 1.0,
            })
            .collect();
    }
    let mut out = Vec::with_capacity(2 * (n0 - 1) * (n1 - 1));
    for i in 0..n0 - 1 {
        for j in 0..n1 - 1 {
            out.push(Element {
                a: at(i, j),
                b: at(i + 1, j),
                c: Some(at(i, j + 1)),
                sign: 1.0,
            });
            out.push(Element {
                a: at(i + 1, j + 1),
                b: at(i, j + 1),
                c: Some(at(i + 1, j)),
                sign: -1.0,
            });
        }
    }
    out
}

impl Element {
    fn gradient(&self, v: &[f64], h: f64) -> [f64; 2] {
        let g0 = self.sign * (v[self.b] - v[self.a]) / h;
        let g1 = self.c.map_or(0.0, |c| self.sign * (v[c] - v[self.a]) / h);
        [g0, g1]
    }

    /// Adds `G^T w` to `out` (the transpose of [`Element::gradient`]).
    fn scatter(&self, w: [f64; 2], h: f64, out: &mut [f64]) {
        let s = self.sign / h;
        out[self.b] += s * w[0];
        out[self.a] -= s * (w[0] + if self.c.is_some() { w[1] } else { 0.0 });
        if let Some(c) = self.c {
            out[c] += s * w[1];
        }
    }

    /// The element's vertices with the columns of `G` (`sign / h` times).
    fn columns(&self) -> ([usize; 3], [[f64; 2]; 3], usize) {
        match self.c {
            Some(c) => (
                [self.a, self.b, c],
                [[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]],
                3,
            ),
            None => ([self.a, self.b, 0], [[-1.0, 0.0], [1.0, 0.0], [0.0; 2]], 2),
        }
    }
}

/// The log barrier of `|grad_T psi| <= L` on every element.
struct Barrier {
    lipschitz: f64,
    elements: Vec<Element>,
    /// Area (length in 1-D) of one element.
    size: f64,
}

impl Barrier {
    fn slack(&self, g: [f64; 2]) -> f64 {
        self.lipschitz * self.lipschitz - g[0] * g[0] - g[1] * g[1]
    }

    /// `sum |T| log(slack)` (`-inf` outside the constraint).
    fn value(&self, psi: &[f64], h: f64) -> f64 {
        self.elements
            .iter()
            .map(|e| {
                let s = self.slack(e.gradient(psi, h));
                if s > 0.0 {
                    self.size * s.ln()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .sum()
    }

    /// Largest step `t` along `d` that keeps every slack positive.
    fn max_step(&self, psi: &[f64], d: &[f64], h: f64) -> f64 {
        let mut best = f64::INFINITY;
        for e in &self.elements {
            let g = e.gradient(psi, h);
            let dg = e.gradient(d, h);
            let a = dg[0] * dg[0] + dg[1] * dg[1];
            if a <= 0.0 {
                continue;
            }
            let b = 2.0 * (g[0] * dg[0] + g[1] * dg[1]);
            let c = -self.slack(g);
            let t = (-b + (b * b - 4.0 * a * c).max(0.0).sqrt()) / (2.0 * a);
            best = best.min(t);
        }
        best
    }

    /// Steepest element gradient of psi.
    fn steepest(&self, psi: &[f64], h: f64) -> f64 {
        self.elements
            .iter()
            .map(|e| {
                let g = e.gradient(psi, h);
                (g[0] * g[0] + g[1] * g[1]).sqrt()
            })
            .fold(0.0, f64::max)
    }
}

struct Evaluation {
    cells: LaguerreCells,
    /// `q f*'(psi - nu)` (grad Lambda) and `q f*''(psi - nu)`.
    gibbs: Vec<f64>,
    curvature: Vec<f64>,
    /// `Phi(psi)`.
    dual: f64,
    /// `Phi + mu * barrier`, the function the steps ascend.
    merit: f64,
    /// Its gradient.
    gradient: Vec<f64>,
}

/// Fixed data of one ascent.
struct Ascent<'a> {
    /// The level's unconstrained dual (its cells, Lambda and their derivatives).
    transport: Newton<'a>,
    barrier: Barrier,
    /// The P1 stiffness `sum_T |T| G_T^T G_T` (plus a trace of the identity), factored.
    stiffness: super::SparseCholesky,
}

impl Ascent<'_> {
    /// Largest distance between two nodes (the W1 price of a unit of residual is at most L times it).
    fn diameter(&self) -> f64 {
        let (hi, lo) = (self.transport.grid.hi(), self.transport.grid.lo);
        ((hi[0] - lo[0]).powi(2) + (hi[1] - lo[1]).powi(2)).sqrt()
    }

    /// Phi, the merit `Phi + mu barrier` and its gradient at psi.
    fn evaluate(&self, psi: &Array2<f64>, mu: f64, ws: &mut LaguerreWorkspace) -> Evaluation {
        let (h, b) = (self.transport.grid.h, &self.barrier);
        let ps = psi.as_slice().expect("standard layout");
        let plain = self.transport.evaluate(psi, ws);
        let mut gradient = plain.gradient;
        for e in &b.elements {
            let g = e.gradient(ps, h);
            let w = -2.0 * mu * b.size / b.slack(g);
            e.scatter([w * g[0], w * g[1]], h, &mut gradient);
        }
        Evaluation {
            merit: plain.dual + mu * b.value(ps, h),
            cells: plain.cells,
            gibbs: plain.gibbs,
            curvature: plain.curvature,
            dual: plain.dual,
            gradient,
        }
    }

    /// The certified upper bound at `psi` with multipliers `lambda`: the
    /// flux `m_T = lambda_T grad_T psi` plus the correction `grad p`, `K p =
    /// rho_T - G^T m - gibbs` (K the P1 stiffness), carries rho_T to the
    /// normalised Gibbs measure exactly; what the factor leaves over is
    /// charged at `L diam / 2`. Returns (upper, W1 leg, gamma).
    fn certificate(
        &self,
        psi: &Array2<f64>,
        e: &Evaluation,
        lambda: &[f64],
    ) -> (f64, f64, Vec<f64>) {
        let (h, b, f) = (
            self.transport.grid.h,
            &self.barrier,
            self.transport.divergence,
        );
        let (ps, qs) = (
            psi.as_slice().expect("standard layout"),
            self.transport.q.as_slice().expect("standard layout"),
        );
        let total: f64 = e.gibbs.iter().sum();
        let gamma: Vec<f64> = e.gibbs.iter().map(|g| g / total).collect();
        let mut residual: Vec<f64> = e
            .cells
            .mass
            .iter()
            .zip(&gamma)
            .map(|(m, g)| m - g)
            .collect();
        let flux: Vec<[f64; 2]> = b
            .elements
            .iter()
            .zip(lambda)
            .map(|(el, l)| {
                let g = el.gradient(ps, h);
                el.scatter([-b.size * l * g[0], -b.size * l * g[1]], h, &mut residual);
                [l * g[0], l * g[1]]
            })
            .collect();
        let correction = self
            .stiffness
            .solve(&residual)
            .unwrap_or_else(|| vec![0.0; ps.len()]);
        let mut left = residual;
        let mut cost = 0.0;
        for (el, m) in b.elements.iter().zip(&flux) {
            let c = el.gradient(&correction, h);
            el.scatter([-b.size * c[0], -b.size * c[1]], h, &mut left);
            cost += b.size * ((m[0] + c[0]).powi(2) + (m[1] + c[1]).powi(2)).sqrt();
        }
        let moved: f64 = left.iter().map(|r| r.abs()).sum();
        let w1 = b.lipschitz * (cost + 0.5 * self.diameter() * moved);
        (e.cells.cost + w1 + f.divergence(&gamma, qs), w1, gamma)
    }

    /// The primal-dual Newton direction: `(W + diag(curvature) + floor
    /// L_grid + sum_T G_T^T B_T G_T) delta = gradient of the merit`, `W` the
    /// Laplacian of the cells' couplings and `B_T = |T| lambda_T (I + 2 g
    /// g^T / s)` the constraint's curvature with its multiplier (`s = L^2 -
    /// |g|^2`); solved by sparse Cholesky.
    fn direction(
        &self,
        psi: &[f64],
        e: &Evaluation,
        lambda: &[f64],
        floor: f64,
    ) -> Result<Vec<f64>> {
        let (h, b) = (self.transport.grid.h, &self.barrier);
        let n = psi.len();
        let mut entries: Vec<(usize, usize, f64)> =
            Vec::with_capacity(n + 6 * b.elements.len() + 3 * e.cells.coupling.len());
        let mut diag = e.curvature.clone();
        for &(j, k, w) in &e.cells.coupling {
            diag[j] += w;
            diag[k] += w;
            entries.push((j.max(k), j.min(k), -w));
        }
        let transport = diag.iter().fold(0.0f64, |a, v| a.max(*v));
        if floor > 0.0 {
            // Levenberg–Marquardt: couple every node to its grid neighbours
            let largest = e.cells.coupling.iter().fold(0.0f64, |a, c| a.max(c.2));
            let w = floor * largest;
            for (k, m) in self.transport.grid.neighbour_pairs() {
                diag[k] += w;
                diag[m] += w;
                entries.push((m, k, -w));
            }
        }
        for (el, l) in b.elements.iter().zip(lambda) {
            let g = el.gradient(psi, h);
            let r = 2.0 / b.slack(g);
            let scale = b.size * l / (h * h);
            let block = [
                [1.0 + r * g[0] * g[0], r * g[0] * g[1]],
                [r * g[0] * g[1], 1.0 + r * g[1] * g[1]],
            ];
            assemble(el, block, scale, &mut diag, &mut entries);
        }
        // a trace of the identity against round-off, scaled by the
        // transport's curvature (the barrier's grows without bound as mu
        // falls); raised towards the largest entry if the factor breaks down
        let largest = diag.iter().fold(0.0f64, |a, v| a.max(*v));
        for shift in [
            1e-12 * transport,
            1e-12 * largest,
            1e-9 * largest,
            1e-6 * largest,
        ] {
            let mut system = entries.clone();
            system.extend(
                diag.iter()
                    .enumerate()
                    .map(|(k, d)| (k, k, d + shift.max(1e-300))),
            );
            if let Some(delta) =
                super::SparseCholesky::new(n, system).and_then(|f| f.solve(&e.gradient))
            {
                return Ok(delta);
            }
        }
        Err(Error::Diverged {
            method: "dual (interior point)".into(),
            iteration: 0,
            quantity: "Newton system".into(),
            value: largest,
        })
    }

    /// Primal-dual Newton ascent from a feasible `psi`: the constraint
    /// `(L^2 - |g_T|^2) / 2 >= 0` has its own multiplier `lambda_T` (the flux
    /// is `lambda_T g_T`), linearised together with `lambda_T c_T = mu`. The
    /// steps are damped on the merit `Phi + mu barrier` and `mu` falls as
    /// they settle, until the certified gap is at most `tolerance max(|upper|,
    /// 0.01)`.
    fn run(
        &self,
        mut psi: Array2<f64>,
        multipliers: Option<Vec<f64>>,
        mut mu: f64,
        max_iterations: usize,
        tolerance: f64,
        observer: &mut dyn Observer,
    ) -> Result<BarrierOutcome> {
        let h = self.transport.grid.h;
        let b = &self.barrier;
        let area = b.size * b.elements.len() as f64;
        let central = |psi: &Array2<f64>, mu: f64| -> Vec<f64> {
            let ps = psi.as_slice().expect("standard layout");
            b.elements
                .iter()
                .map(|e| 2.0 * mu / b.slack(e.gradient(ps, h)))
                .collect()
        };
        let mut lambda = multipliers.unwrap_or_else(|| central(&psi, mu));
        let mut ws = LaguerreWorkspace::new(self.transport.grid);
        let mut e = self.evaluate(&psi, mu, &mut ws);
        let mut iterations = 0;
        let mut stalled = false;
        let mut floor: f64 = 1e-3;
        let mut first_gap = f64::NAN;
        loop {
            let (upper, w1, gamma) = self.certificate(&psi, &e, &lambda);
            observer.observe(&IterationState {
                iteration: iterations,
                objective: upper,
                dual: e.dual,
                smoothing: mu,
                residual: upper - e.dual,
            });
            if !(upper.is_finite() && e.dual.is_finite()) {
                return Err(Error::Diverged {
                    method: "dual (interior point)".into(),
                    iteration: iterations,
                    quantity: "objective".into(),
                    value: upper,
                });
            }
            let gap = upper - e.dual;
            if iterations == 0 {
                first_gap = gap;
            }
            let done = gap <= super::allowed_gap(tolerance, upper);
            if done || iterations >= max_iterations || (mu < 1e-14 && stalled) {
                return Ok(BarrierOutcome {
                    psi,
                    objective: upper,
                    w1,
                    gamma: Array2::from_shape_vec(self.transport.grid.shape(), gamma)
                        .expect("grid shape"),
                    dual: e.dual,
                    cells: e.cells,
                    iterations,
                    converged: done,
                    mu,
                    multipliers: lambda,
                    first_gap,
                });
            }
            iterations += 1;
            let ps = psi.as_slice().expect("standard layout");
            let delta = self.direction(ps, &e, &lambda, floor)?;
            // the multipliers' step from lambda c = mu, linearised
            let dlambda: Vec<f64> = b
                .elements
                .iter()
                .zip(&lambda)
                .map(|(el, l)| {
                    let g = el.gradient(ps, h);
                    let dg = el.gradient(&delta, h);
                    let c = 0.5 * b.slack(g);
                    (mu - l * c + l * (g[0] * dg[0] + g[1] * dg[1])) / c
                })
                .collect();
            let slope: f64 = delta.iter().zip(&e.gradient).map(|(d, g)| d * g).sum();
            let boundary = b.max_step(ps, &delta, h);
            let mut step = (0.95 * boundary).min(1.0);
            let mut accepted = None;
            for _ in 0..40 {
                let mut trial = psi.clone();
                trial
                    .iter_mut()
                    .zip(&delta)
                    .for_each(|(t, d)| *t += step * d);
                let next_lambda: Vec<f64> = lambda
                    .iter()
                    .zip(&dlambda)
                    .map(|(l, d)| (l + step * d).max(0.05 * l))
                    .collect();
                let next = self.evaluate(&trial, mu, &mut ws);
                if next.merit >= e.merit + 1e-4 * step * slope {
                    accepted = Some((trial, next_lambda, next));
                    break;
                }
                step *= 0.5;
            }
            stalled = accepted.is_none();
            // a step cut by the boundary alone counts as full
            floor = super::next_floor(floor, step >= 0.9 * boundary.min(1.0));
            if let Some((trial, next_lambda, next)) = accepted {
                psi = trial;
                lambda = next_lambda;
                e = next;
            }
            // near the central point the barrier's share of the gap is about
            // mu |box|: lower mu once the Newton decrement is below it
            let share = mu * area;
            if stalled || slope < 0.25 * share || gap < 2.0 * share {
                mu *= 0.2;
                e = self.evaluate(&psi, mu, &mut ws);
            }
        }
    }

    /// Scales psi towards its mean until no element is steeper than 0.9 L.
    fn make_feasible(&self, psi: &mut Array2<f64>) {
        let steepest = self.barrier.steepest(
            psi.as_slice().expect("standard layout"),
            self.transport.grid.h,
        );
        let limit = 0.9 * self.barrier.lipschitz;
        if steepest > limit {
            let mean = psi.mean().unwrap_or(0.0);
            psi.mapv_inplace(|v| mean + (v - mean) * limit / steepest);
        }
    }
}

/// Adds `|T| G_T^T B G_T` (B symmetric 2 x 2) to lower-triangle `entries`
/// and to `diag`.
fn assemble(
    el: &Element,
    block: [[f64; 2]; 2],
    scale: f64,
    diag: &mut [f64],
    entries: &mut Vec<(usize, usize, f64)>,
) {
    let (nodes, cols, count) = el.columns();
    for p in 0..count {
        for r in 0..=p {
            let (cp, cr) = (cols[p], cols[r]);
            let v = scale
                * (cp[0] * (block[0][0] * cr[0] + block[0][1] * cr[1])
                    + cp[1] * (block[1][0] * cr[0] + block[1][1] * cr[1]));
            let (i, j) = (nodes[p], nodes[r]);
            if i == j {
                diag[i] += v;
            } else {
                entries.push((i.max(j), i.min(j), v));
            }
        }
    }
}

/// The factored P1 stiffness `sum_T |T| G_T^T G_T + 1e-12 max diag I`.
fn stiffness(barrier: &Barrier, grid: &Grid) -> Result<super::SparseCholesky> {
    let n = grid.len();
    let mut diag = vec![0.0; n];
    let mut entries = Vec::with_capacity(n + 6 * barrier.elements.len());
    let scale = barrier.size / (grid.h * grid.h);
    for el in &barrier.elements {
        assemble(el, [[1.0, 0.0], [0.0, 1.0]], scale, &mut diag, &mut entries);
    }
    let top = diag.iter().fold(0.0f64, |a, v| a.max(*v));
    entries.extend(
        diag.iter()
            .enumerate()
            .map(|(k, d)| (k, k, d + 1e-12 * top)),
    );
    super::SparseCholesky::new(n, entries).ok_or_else(|| Error::Diverged {
        method: "dual (interior point)".into(),
        iteration: 0,
        quantity: "stiffness".into(),
        value: f64::NAN,
    })
}

/// Newton steps after which a warm-started level that has not cut its gap
/// tenfold starts afresh.
const WARM_ITERATIONS: usize = 20;

/// Index in [`elements`] of the element of `grid` that holds `x`.
fn element_at(grid: &Grid, x: [f64; 2]) -> usize {
    let n1 = grid.shape().1;
    let (i, s) = grid.locate(0, x[0]);
    if n1 == 1 {
        return i;
    }
    let (j, t) = grid.locate(1, x[1]);
    2 * (i * (n1 - 1) + j) + usize::from(s + t > 1.0)
}

/// The coarse multipliers on the fine elements: each fine element lies in
/// one coarse element with the same P1 gradient, so the flux carries over.
fn prolong_multipliers(
    coarse: &Grid,
    lambda: &[f64],
    fine: &Grid,
    fine_elements: &[Element],
) -> Vec<f64> {
    let centroid = |e: &Element| -> [f64; 2] {
        let (nodes, _, count) = e.columns();
        let (n1, mut x) = (fine.shape().1, [0.0; 2]);
        for &k in &nodes[..count] {
            let y = fine.node(k / n1, k % n1);
            x[0] += y[0] / count as f64;
            x[1] += y[1] / count as f64;
        }
        x
    };
    fine_elements
        .iter()
        .map(|e| lambda[element_at(coarse, centroid(e))])
        .collect()
}

/// The P1 interpolant (on the triangles of [`elements`]) of a coarse
/// potential at `x`: fine triangles nest in coarse ones, so a potential
/// inside the constraint stays inside it.
fn p1_interpolate(coarse: &Grid, psi: &Array2<f64>, x: [f64; 2]) -> f64 {
    let (i, s) = coarse.locate(0, x[0]);
    if coarse.shape().1 == 1 {
        return psi[[i, 0]] + s * (psi[[i + 1, 0]] - psi[[i, 0]]);
    }
    let (j, t) = coarse.locate(1, x[1]);
    if s + t <= 1.0 {
        let base = psi[[i, j]];
        base + s * (psi[[i + 1, j]] - base) + t * (psi[[i, j + 1]] - base)
    } else {
        let base = psi[[i + 1, j + 1]];
        base + (1.0 - s) * (psi[[i, j + 1]] - base) + (1.0 - t) * (psi[[i + 1, j]] - base)
    }
}

/// Coarse-to-fine interior-point ascent with Lipschitz bound `lipschitz`:
/// each level starts from the P1-prolonged potential, multipliers and
/// barrier weight of the one below (afresh if it has not cut its gap tenfold in
/// [`WARM_ITERATIONS`] steps), the coarsest (at least 16 cells a side) from
/// `start` sampled on it, or zero. Coarse levels stop at a relative gap of 1e-3.
pub(crate) fn multilevel(
    task: &Task,
    lipschitz: f64,
    start: Option<Array2<f64>>,
    observer: &mut dyn Observer,
) -> Result<(BarrierOutcome, Vec<Level>)> {
    let (problem, parallelism) = (task.problem, task.parallelism);
    let (max_iterations, tolerance) = (task.max_iterations, task.tolerance);
    let tau = problem.horizon / problem.alpha;
    let mut start = start;
    coarse_to_fine(
        task,
        true,
        |input, previous: Option<(Grid, BarrierOutcome)>| {
            let level = input.grid;
            let barrier = Barrier {
                lipschitz,
                elements: elements(level),
                size: level.cell_volume() / if level.dim == 2 { 2.0 } else { 1.0 },
            };
            let ascent = Ascent {
                stiffness: stiffness(&barrier, level)?,
                barrier,
                transport: Newton {
                    grid: level,
                    rho0: input.rho0,
                    q: input.q,
                    divergence: problem.divergence,
                    tau,
                    parallelism,
                },
            };
            let (psi, multipliers, mu) = match (previous, start.take()) {
                (Some((g, p)), _) => {
                    let psi = Array2::from_shape_fn(level.shape(), |(i, j)| {
                        p1_interpolate(&g, &p.psi, level.node(i, j))
                    });
                    let lambda =
                        prolong_multipliers(&g, &p.multipliers, level, &ascent.barrier.elements);
                    (psi, Some(lambda), p.mu)
                }
                (None, Some(p)) => {
                    let mut psi = restrict(task.grid, &p, level);
                    ascent.make_feasible(&mut psi);
                    (psi, None, 1e-3)
                }
                (None, None) => (level.zeros(), None, 1e-3),
            };
            let level_tolerance = if input.finest {
                tolerance
            } else {
                tolerance.max(1e-3)
            };
            let warm = multipliers.is_some();
            let budget = max_iterations.saturating_sub(input.spent);
            let mut out = ascent.run(
                psi,
                multipliers,
                mu,
                if warm {
                    budget.min(WARM_ITERATIONS)
                } else {
                    budget
                },
                level_tolerance,
                observer,
            )?;
            if warm && !out.converged {
                let progressing = out.objective - out.dual <= 0.1 * out.first_gap;
                let rest = budget.saturating_sub(out.iterations);
                // a warm start that does not close its gap sits near the
                // boundary where the fine problem's path does not run (point
                // targets): start afresh; otherwise go on from where it is
                let again = if progressing {
                    ascent.run(
                        out.psi,
                        Some(out.multipliers),
                        out.mu,
                        rest,
                        level_tolerance,
                        observer,
                    )?
                } else {
                    ascent.run(level.zeros(), None, 1e-3, rest, level_tolerance, observer)?
                };
                out = BarrierOutcome {
                    iterations: out.iterations + again.iterations,
                    ..again
                };
            }
            Ok(LevelOutput {
                iterations: out.iterations,
                gap: out.objective - out.dual,
                outcome: out,
            })
        },
    )
}
