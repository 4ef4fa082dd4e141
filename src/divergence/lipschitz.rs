//! The Lipschitz-regularised f-divergence on a grid and its optimal discriminator:
//!
//! ```text
//! D_f^L(P||Q) = sup_{|grad phi| <= L} sum_i p_i phi_i - sum_i q_i f*(phi_i)
//!             = inf_{gamma, m} D_f(gamma||Q) + L sum_i |m_i|   s.t.  div m = P - gamma
//! ```
//!
//! (for unit mass P the shift `nu` of `Lambda_f` is absorbed into phi). The
//! Lipschitz constraint `|grad phi| <= L` is imposed on the gradient sampled
//! where it is second-order accurate: the bilinear gradient at every cell
//! centre, `|G_c phi|_2 <= L`, and the slope along every edge, `|D_e phi| <= L`
//! (the edges bound the checkerboard, which has no cell gradient). A cone
//! `L|x - a|` sampled at the nodes satisfies both with equality at its apex;
//! forward differences `|(D+ phi)_i|_2 <= L` would flatten the apex to slope
//! `L/sqrt 2` on two sides and bias every discriminator low by O(h). In 1-D
//! only the edges remain, which is the Lipschitz condition on the nodes. We
//! run the primal–dual hybrid gradient method (Chambolle–Pock) on
//! `min_phi G(phi) + F(K phi)` with `G(phi) = sum q f*(phi) - <p, phi>`,
//! `K = (G_c, D_e)` and `F` the indicator of the L-balls; its dual variable is
//! the flux. The state is kept between calls so that an outer MFG loop
//! warm-starts it.

use super::fdiv::FDivergence;
use crate::grid::Grid;
use crate::hj::{HopfLaxWorkspace, lipschitz_envelope};
use crate::par::Parallelism;
use crate::poisson::ScreenedPoisson;
use ndarray::{Array2, ArrayViewMut1};

/// Stopping rule and parallelism of the primal–dual solver.
#[derive(Debug, Clone, Copy)]
pub struct PdhgOptions {
    /// Hard cap on iterations per call.
    pub max_iterations: usize,
    /// Stop when the primal residual (mass units) and the relative Lipschitz
    /// violation are below this.
    pub tolerance: f64,
    /// Ratio of the primal to the dual step; if `None` the primal step is
    /// `primal_scale / max q`, which makes the prox of `tau q f*` well scaled
    /// on any grid.
    pub step_ratio: Option<f64>,
    /// `tau max q` when `step_ratio` is `None`.
    pub primal_scale: f64,
    /// Parallel sweeps over grid rows.
    pub parallelism: Parallelism,
    /// The metric of the primal (phi) step.
    pub metric: PdhgMetric,
}

impl Default for PdhgOptions {
    fn default() -> Self {
        PdhgOptions {
            max_iterations: 20_000,
            tolerance: 1e-7,
            step_ratio: None,
            primal_scale: 1.0,
            parallelism: Parallelism::Rayon,
            metric: PdhgMetric::Euclidean,
        }
    }
}

/// The metric in which PDHG takes its phi step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdhgMetric {
    /// The plain Euclidean step with the exact prox of `q f*`: cheap
    /// iterations, but steps shrink like `h` and iterations grow like `1/h`.
    #[default]
    Euclidean,
    /// G-prox (Jacobs, Léger, Li & Osher 2019): the step is taken in the metric
    /// `M = diag(q f*''(phi)) + b L`, L the grid Laplacian, `b = 5 sigma`
    /// (so `sigma K^T K <= 2 sigma L <= 0.4 M`), a Newton step on `q f*` plus
    /// an H1 proximity term; the iterations needed for a given accuracy do
    /// not grow with the grid. M is inverted by conjugate gradients
    /// preconditioned with a DCT screened-Poisson solve. For f whose
    /// conjugate is finite everywhere (kl, alpha, chi2); the others fall back
    /// to [`PdhgMetric::Euclidean`].
    H1,
}

/// Warm-startable iterate of the primal–dual solver (the workspace of the kernel).
#[derive(Debug, Clone)]
pub struct PdhgState {
    /// The discriminator phi.
    pub phi: Array2<f64>,
    phi_bar: Array2<f64>,
    phi_prev: Array2<f64>,
    /// The flux: cell-centre vectors (x, y components) and edge scalars
    /// (x edges, y edges), each stored at the node that starts its cell or edge.
    pub flux: [Array2<f64>; 4],
    /// Total iterations run so far.
    pub iterations: usize,
    /// Primal step reached by residual balancing (kept for warm starts).
    tau: Option<f64>,
    /// Running sum and count of the iterates phi, when averaging is on.
    average: Option<(Array2<f64>, usize)>,
    /// Current relative change of the steps.
    adapt: f64,
    /// The H1 metric's solver, planned on first use.
    poisson: Option<ScreenedPoisson>,
}

/// Ladder ratio of the Lipschitz envelope of the discriminator.
const ENVELOPE_RATIO: f64 = 1.05;

/// Residuals further apart than this ratio trigger a change of steps.
const BALANCE: f64 = 2.0;

impl PdhgState {
    /// Zero discriminator and zero flux on `grid`.
    pub fn new(grid: &Grid) -> Self {
        PdhgState {
            phi: grid.zeros(),
            phi_bar: grid.zeros(),
            phi_prev: grid.zeros(),
            flux: [grid.zeros(), grid.zeros(), grid.zeros(), grid.zeros()],
            iterations: 0,
            tau: None,
            average: None,
            adapt: 0.5,
            poisson: None,
        }
    }

    /// Starts from a given discriminator (flux reset to zero).
    pub fn from_phi(grid: &Grid, phi: Array2<f64>) -> Self {
        let mut s = Self::new(grid);
        s.phi_bar.assign(&phi);
        s.phi = phi;
        s
    }
}

/// What one call of the solver reports.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PdhgReport {
    /// `sum p phi - Lambda_f(phi; Q)` at the final iterate.
    pub value: f64,
    /// Iterations in this call.
    pub iterations: usize,
    /// Final primal residual (mass units).
    pub residual: f64,
    /// `lipschitz_constant(phi) / L - 1`, clipped at zero.
    pub lipschitz_violation: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// The discrete Lipschitz constant of a field: the largest of the bilinear
/// gradients at the cell centres and of the edge slopes (the quantities the
/// constraint of [`solve_lipschitz`] bounds).
pub fn lipschitz_constant(grid: &Grid, phi: &Array2<f64>) -> f64 {
    let (n0, n1) = grid.shape();
    let mut best: f64 = 0.0;
    for i in 0..n0 {
        for j in 0..n1 {
            let [cx, cy, ex, ey] = gradient_samples(phi, i, j, n0, n1);
            best = best.max(cx.hypot(cy)).max(ex.abs()).max(ey.abs());
        }
    }
    best / grid.h
}

/// `h K phi` at the cell and the two edges that start at node (i, j): the
/// cell's bilinear gradient (x, y) and the x- and y-edge differences; zero
/// where the cell or edge leaves the grid.
fn gradient_samples(phi: &Array2<f64>, i: usize, j: usize, n0: usize, n1: usize) -> [f64; 4] {
    let c = phi[[i, j]];
    let ex = if i + 1 < n0 { phi[[i + 1, j]] - c } else { 0.0 };
    let ey = if j + 1 < n1 { phi[[i, j + 1]] - c } else { 0.0 };
    if i + 1 < n0 && j + 1 < n1 {
        let far = phi[[i + 1, j + 1]];
        let cx = 0.5 * (ex + far - phi[[i, j + 1]]);
        let cy = 0.5 * (ey + far - phi[[i + 1, j]]);
        [cx, cy, ex, ey]
    } else {
        [0.0, 0.0, ex, ey]
    }
}

/// Dual value `sum p phi - Lambda_f(phi; Q)` of a discriminator.
pub fn dual_value(f: FDivergence, p: &Array2<f64>, q: &Array2<f64>, phi: &Array2<f64>) -> f64 {
    let pv = p.as_slice().expect("standard layout");
    let qv = q.as_slice().expect("standard layout");
    let fv = phi.as_slice().expect("standard layout");
    let ep: f64 = pv.iter().zip(fv).map(|(a, b)| a * b).sum();
    ep - f.lambda(fv, qv)
}

/// Runs PDHG iterations from `state` until the tolerance or the iteration cap.
/// `p` and `q` are mass fields of total mass one.
pub fn solve_lipschitz(
    grid: &Grid,
    f: FDivergence,
    lipschitz: f64,
    p: &Array2<f64>,
    q: &Array2<f64>,
    opts: &PdhgOptions,
    state: &mut PdhgState,
) -> PdhgReport {
    let h = grid.h;
    debug_assert!(h > 0.0);
    let metric = if opts.metric == PdhgMetric::H1
        && f != FDivergence::W1
        && f.conj_domain_sup().is_infinite()
    {
        PdhgMetric::H1
    } else {
        PdhgMetric::Euclidean
    };
    // tau sigma ||K||^2 < 1 with ||K||^2 <= 4 d / h^2: in Fourier variables
    // K^T K has the symbol (4/h^2) (s1 (1 + c2) + s2 (1 + c1)) with
    // s = sin^2(theta/2), c = 1 - s, whose largest value is 8/h^2 (at s1 = s2 = 1),
    // the same bound as forward differences alone; in the H1 metric sigma = 1/tau
    let norm2 = 4.0 * grid.dim as f64 / (h * h);
    let prod = match metric {
        PdhgMetric::Euclidean => 0.99 / norm2,
        PdhgMetric::H1 => 1.0,
    };
    let q_max = q.iter().fold(0.0f64, |a, b| a.max(*b));
    // W1 has no curvature for the balance to act on: a fixed ratio serves it
    let fixed = opts
        .step_ratio
        .or((f == FDivergence::W1).then_some(1e5 * lipschitz));
    let mut tau = match (fixed, state.tau, metric) {
        (Some(ratio), _, _) => (prod * ratio).sqrt(),
        (None, Some(tau), _) => tau,
        // sigma of the mass of a unit-density cell
        (None, None, PdhgMetric::H1) => h.powi(-(grid.dim as i32)),
        (None, None, PdhgMetric::Euclidean) => opts.primal_scale / q_max.max(1e-300),
    };
    if metric == PdhgMetric::H1 && state.poisson.is_none() {
        state.poisson = Some(ScreenedPoisson::new(grid));
    }
    let par = opts.parallelism;
    let mut residual = f64::INFINITY;
    let mut it = 0;
    let mut converged = false;
    while it < opts.max_iterations {
        it += 1;
        flux_step(
            grid,
            lipschitz,
            prod / tau,
            &state.phi_bar,
            &mut state.flux,
            par,
        );
        std::mem::swap(&mut state.phi_prev, &mut state.phi);
        residual = match metric {
            PdhgMetric::Euclidean => phi_step(grid, f, tau, p, q, state, par),
            PdhgMetric::H1 => phi_step_h1(grid, f, 5.0 / tau, p, q, state, par),
        };
        if let Some((sum, count)) = &mut state.average {
            *sum += &state.phi;
            *count += 1;
        }
        if it % 10 == 0 || it == opts.max_iterations {
            let viol = lipschitz_constant(grid, &state.phi) / lipschitz - 1.0;
            if residual < opts.tolerance && viol < opts.tolerance.sqrt() {
                converged = true;
                break;
            }
            // residual balancing (Goldstein, Esser, Baraniuk): a lagging
            // primal residual (mass) calls for a longer primal step, a
            // lagging Lipschitz violation for a longer dual step
            if fixed.is_none() {
                let viol = viol.max(0.0);
                if residual > BALANCE * viol {
                    tau /= 1.0 - state.adapt;
                } else if viol > BALANCE * residual {
                    tau *= 1.0 - state.adapt;
                }
                state.adapt *= 0.99;
            }
        }
    }
    state.tau = Some(tau);
    state.iterations += it;
    let viol = (lipschitz_constant(grid, &state.phi) / lipschitz - 1.0).max(0.0);
    PdhgReport {
        value: dual_value(f, p, q, &state.phi),
        iterations: it,
        residual,
        lipschitz_violation: viol,
        converged,
    }
}

/// `m <- shrink(m + sigma K phi_bar, sigma L)` at every cell and edge.
fn flux_step(
    grid: &Grid,
    lipschitz: f64,
    sigma: f64,
    phi_bar: &Array2<f64>,
    flux: &mut [Array2<f64>; 4],
    par: Parallelism,
) {
    let (n0, n1) = grid.shape();
    let s = sigma / grid.h;
    let bound = sigma * lipschitz;
    // prox of sigma L|.|: shrink towards zero by the bound
    let shrink = |norm: f64| {
        if norm > bound {
            1.0 - bound / norm
        } else {
            0.0
        }
    };
    let kernel = |i: usize, [mut cx, mut cy, mut ex, mut ey]: [ArrayViewMut1<f64>; 4]| {
        for j in 0..n1 {
            let [gx, gy, dx, dy] = gradient_samples(phi_bar, i, j, n0, n1);
            if i + 1 < n0 && j + 1 < n1 {
                let (wx, wy) = (cx[j] + s * gx, cy[j] + s * gy);
                let k = shrink(wx.hypot(wy));
                cx[j] = wx * k;
                cy[j] = wy * k;
            }
            if i + 1 < n0 {
                let w = ex[j] + s * dx;
                ex[j] = w * shrink(w.abs());
            }
            if j + 1 < n1 {
                let w = ey[j] + s * dy;
                ey[j] = w * shrink(w.abs());
            }
        }
    };
    par.rows4(flux, kernel);
}

/// `(K^T m)_{ij}`: each cell and edge hands its flux back to its nodes with
/// the coefficients of `K` (fluxes off the grid are zero).
fn adjoint_at(flux: &[Array2<f64>; 4], i: usize, j: usize, inv_h: f64) -> f64 {
    let [cx, cy, ex, ey] = flux;
    let mut out = -ex[[i, j]] - ey[[i, j]] - 0.5 * (cx[[i, j]] + cy[[i, j]]);
    if i > 0 {
        out += ex[[i - 1, j]] + 0.5 * (cx[[i - 1, j]] - cy[[i - 1, j]]);
    }
    if j > 0 {
        out += ey[[i, j - 1]] + 0.5 * (cy[[i, j - 1]] - cx[[i, j - 1]]);
    }
    if i > 0 && j > 0 {
        out += 0.5 * (cx[[i - 1, j - 1]] + cy[[i - 1, j - 1]]);
    }
    out * inv_h
}

/// `phi <- prox_{tau G}(phi_prev - tau K^T m)` and `phi_bar <- 2 phi - phi_prev`.
/// Returns the primal residual `sum |(phi_prev - phi)/tau - K^T(m_prev - m)|`,
/// measured here by its computable part `sum |p - q f*'(phi) - K^T m|`.
fn phi_step(
    grid: &Grid,
    f: FDivergence,
    tau: f64,
    p: &Array2<f64>,
    q: &Array2<f64>,
    state: &mut PdhgState,
    par: Parallelism,
) -> f64 {
    let n1 = grid.shape().1;
    let inv_h = 1.0 / grid.h;
    let flux = &state.flux;
    let phi_prev = &state.phi_prev;
    let residual = std::sync::Mutex::new(0.0);
    let kernel = |i: usize, mut row: ArrayViewMut1<f64>, mut bar: ArrayViewMut1<f64>| {
        let mut local = 0.0;
        for j in 0..n1 {
            let dtm = adjoint_at(flux, i, j, inv_h);
            let old = phi_prev[[i, j]];
            let w = old - tau * dtm + tau * p[[i, j]];
            let qi = q[[i, j]];
            let new = if qi > 0.0 {
                f.prox_conj(tau * qi, w)
            } else {
                w
            };
            let gq = if qi > 0.0 { qi * f.conj_d1(new) } else { 0.0 };
            local += (p[[i, j]] - gq - dtm).abs();
            row[j] = new;
            bar[j] = 2.0 * new - old;
        }
        *residual.lock().expect("no poisoning") += local;
    };
    par.rows2(&mut state.phi, &mut state.phi_bar, kernel);
    residual.into_inner().expect("no poisoning")
}

/// The curvature `g = q f*''(phi)` of the linearised term.
fn curvature(f: FDivergence, q: &Array2<f64>, phi: &Array2<f64>) -> Array2<f64> {
    ndarray::Zip::from(q)
        .and(phi)
        .map_collect(|&qi, &v| if qi > 0.0 { qi * f.conj_d2(v) } else { 0.0 })
}

/// The H1 phi step: `phi <- phi_prev - M^{-1}(K^T m - p + q f*'(phi_prev))`
/// in the metric `M = diag(g) + b L + 1e-3 (mean g) I`, `g = q f*''(phi_prev)`
/// the curvature of the linearised term (a Newton step on it; the small shift
/// keeps M invertible where g vanishes), and `phi_bar <- 2 phi - phi_prev`.
/// M is inverted by conjugate gradients preconditioned with `(mean g) I + b L`
/// (one DCT pair each): g is smooth or concentrated on few nodes, and either
/// way a handful of iterations suffice. Returns the primal residual
/// `sum |p - q f*'(phi) - K^T m|`.
fn phi_step_h1(
    grid: &Grid,
    f: FDivergence,
    b: f64,
    p: &Array2<f64>,
    q: &Array2<f64>,
    state: &mut PdhgState,
    par: Parallelism,
) -> f64 {
    let inv_h = 1.0 / grid.h;
    let g = curvature(f, q, &state.phi_prev);
    let flux = &state.flux;
    let adjoint = Array2::from_shape_fn(grid.shape(), |(i, j)| adjoint_at(flux, i, j, inv_h));
    let rhs = ndarray::Zip::from(&adjoint)
        .and(p)
        .and(q)
        .and(&state.phi_prev)
        .map_collect(|&dtm, &pi, &qi, &v| {
            let gq = if qi > 0.0 { qi * f.conj_d1(v) } else { 0.0 };
            dtm - pi + gq
        });
    let poisson = state.poisson.as_mut().expect("planned before use");
    let a = (g.sum() / g.len() as f64).max(1e-14);
    let shift = 1e-3 * a;
    let apply = |v: &Array2<f64>| -> Array2<f64> {
        let mut out = ScreenedPoisson::apply(shift, b, grid.h, v);
        out.zip_mut_with(&(&g * v), |o, w| *o += w);
        out
    };
    let mut x = grid.zeros();
    let mut r = rhs.clone();
    let mut z = r.clone();
    poisson.solve(a, b, &mut z, par);
    let mut dir = z.clone();
    let mut rz = (&r * &z).sum();
    let stop = 1e-4 * rz.abs().sqrt();
    for _ in 0..30 {
        if rz.abs().sqrt() <= stop {
            break;
        }
        let ad = apply(&dir);
        let step = rz / (&dir * &ad).sum();
        x.scaled_add(step, &dir);
        r.scaled_add(-step, &ad);
        z.assign(&r);
        poisson.solve(a, b, &mut z, par);
        let rz_new = (&r * &z).sum();
        let beta = rz_new / rz;
        dir.zip_mut_with(&z, |d, &zi| *d = zi + beta * *d);
        rz = rz_new;
    }
    let step = x;
    ndarray::Zip::from(&mut state.phi)
        .and(&mut state.phi_bar)
        .and(&state.phi_prev)
        .and(&step)
        .for_each(|phi, bar, &old, &d| {
            *phi = old - d;
            *bar = 2.0 * *phi - old;
        });
    ndarray::Zip::from(&state.phi)
        .and(&adjoint)
        .and(p)
        .and(q)
        .fold(0.0, |acc, &v, &dtm, &pi, &qi| {
            let gq = if qi > 0.0 { qi * f.conj_d1(v) } else { 0.0 };
            acc + (pi - gq - dtm).abs()
        })
}

/// The Lipschitz-regularised divergence and its discriminator, solved from
/// scratch (`lipschitz = None` gives the plain divergence and `phi = f'(p/q)`).
pub fn lipschitz_divergence(
    grid: &Grid,
    f: FDivergence,
    lipschitz: Option<f64>,
    p: &Array2<f64>,
    q: &Array2<f64>,
    opts: &PdhgOptions,
) -> (PdhgReport, Array2<f64>) {
    match lipschitz {
        Some(l) => {
            let mut state = PdhgState::new(grid);
            let rep = solve_lipschitz(grid, f, l, p, q, opts, &mut state);
            (rep, state.phi)
        }
        None => plain_divergence(grid, f, p, q),
    }
}

/// `D_f(P||Q)` and `phi = f'(p/q)`; where `q = 0` the discriminator takes the
/// largest finite value it has on the support of q (the terminal condition is
/// undefined there; math.md section 2).
pub fn plain_divergence(
    grid: &Grid,
    f: FDivergence,
    p: &Array2<f64>,
    q: &Array2<f64>,
) -> (PdhgReport, Array2<f64>) {
    let pv = p.as_slice().expect("standard layout");
    let qv = q.as_slice().expect("standard layout");
    let value = f.divergence(pv, qv);
    let floor = 1e-300;
    let mut phi = grid.zeros();
    let mut top = f64::NEG_INFINITY;
    for ((ph, &pi), &qi) in phi.iter_mut().zip(pv).zip(qv) {
        if qi > 0.0 {
            *ph = f.f_prime(pi.max(floor) / qi);
            top = top.max(*ph);
        } else {
            *ph = f64::NAN;
        }
    }
    phi.mapv_inplace(|v| if v.is_nan() { top } else { v });
    let lip = lipschitz_constant(grid, &phi);
    (
        PdhgReport {
            value,
            iterations: 0,
            residual: 0.0,
            lipschitz_violation: lip,
            converged: true,
        },
        phi,
    )
}

/// The largest L-Lipschitz function that equals `phi` on the support of `q`
/// (McShane's extension): `min_{q_s > 0} phi_s + L |x - s|` at the nodes
/// where `q` is zero, `phi` on the support; with it, each node's minimiser
/// `s` (the node itself on the support).
///
/// Off supp Q the objective `<p, phi> - <q, f*(phi)>` only grows with phi,
/// so this is the optimal discriminator wherever P has mass outside Q, and
/// it is the continuum `phi*` (`L |x - a| + c` for `Q = delta_a`) where P has
/// none, which PDHG leaves undetermined and flat. Cost: support nodes times
/// off-support nodes; `phi` is returned unchanged where Q has no zero node.
pub fn extend_from_support(
    grid: &Grid,
    phi: &Array2<f64>,
    q: &Array2<f64>,
    lipschitz: f64,
    par: Parallelism,
) -> (Array2<f64>, Array2<(usize, usize)>) {
    let support: Vec<(usize, usize)> = q
        .indexed_iter()
        .filter(|(_, m)| **m > 0.0)
        .map(|(ij, _)| ij)
        .collect();
    if support.is_empty() || support.len() == q.len() {
        return (phi.clone(), Array2::from_shape_fn(q.dim(), |ij| ij));
    }
    let (n0, n1) = q.dim();
    let nearest: Vec<(f64, (usize, usize))> = par.map(n0 * n1, |k| {
        let (i, j) = (k / n1, k % n1);
        if q[[i, j]] > 0.0 {
            return (phi[[i, j]], (i, j));
        }
        let x = grid.node(i, j);
        support
            .iter()
            .map(|&s| {
                let y = grid.node(s.0, s.1);
                (phi[s] + lipschitz * (x[0] - y[0]).hypot(x[1] - y[1]), s)
            })
            .fold(
                (f64::INFINITY, (i, j)),
                |a, b| if b.0 < a.0 { b } else { a },
            )
    });
    let value = Array2::from_shape_fn((n0, n1), |(i, j)| nearest[i * n1 + j].0);
    let source = Array2::from_shape_fn((n0, n1), |(i, j)| nearest[i * n1 + j].1);
    (value, source)
}

/// The optimal discriminator of `D_f^L(. || Q)` tracked across calls: an
/// outer MFG loop hands it slowly changing measures P and each call
/// warm-starts PDHG from the last one (the plain divergence when `L = inf`).
/// The phi it hands out is the L-Lipschitz envelope of the PDHG iterate, so
/// an unconverged iterate never asks agents for speeds above `L / alpha`.
#[derive(Debug, Clone)]
pub struct Discriminator {
    f: FDivergence,
    lipschitz: Option<f64>,
    q: Array2<f64>,
    state: PdhgState,
    options: PdhgOptions,
    phi: Array2<f64>,
    workspace: HopfLaxWorkspace,
}

impl Discriminator {
    /// Discriminator against the target masses `q` on `grid`.
    pub fn new(
        grid: &Grid,
        f: FDivergence,
        lipschitz: Option<f64>,
        q: Array2<f64>,
        options: PdhgOptions,
    ) -> Self {
        Discriminator {
            f,
            lipschitz,
            q,
            state: PdhgState::new(grid),
            options,
            phi: grid.zeros(),
            workspace: HopfLaxWorkspace::new(grid),
        }
    }

    /// Runs up to `iterations` PDHG steps for the measure `p`; returns the
    /// divergence estimate and the discriminator phi.
    pub fn update(
        &mut self,
        grid: &Grid,
        p: &Array2<f64>,
        iterations: usize,
    ) -> (f64, &Array2<f64>) {
        match self.lipschitz {
            Some(l) => {
                let opts = PdhgOptions {
                    max_iterations: iterations.max(1),
                    ..self.options
                };
                // the ergodic mean of the call's iterates: PDHG's iterates
                // oscillate at the grid scale, and agents answering such a
                // phi would pile up in combs
                self.state.average = Some((grid.zeros(), 0));
                solve_lipschitz(grid, self.f, l, p, &self.q, &opts, &mut self.state);
                let (sum, count) = self.state.average.take().expect("set above");
                let mean = sum / count.max(1) as f64;
                let par = self.options.parallelism;
                let ws = &mut self.workspace;
                self.phi = lipschitz_envelope(grid, &mean, l, ENVELOPE_RATIO, ws, par);
                (dual_value(self.f, p, &self.q, &self.phi), &self.phi)
            }
            None => {
                let (rep, phi) = plain_divergence(grid, self.f, p, &self.q);
                self.phi = phi;
                (rep.value, &self.phi)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From a point target the extension is the exact cone, whatever the
    /// discriminator held off the point; on a line target it is `L` times
    /// the distance to the line, and the support keeps its values.
    #[test]
    fn extension_from_the_support_is_the_cone_of_a_point_and_the_wedge_of_a_line() {
        let grid = Grid::on_box(&[-2.0, -2.0], &[2.0, 2.0], 16).unwrap();
        let flat = Array2::from_shape_fn(grid.shape(), |(i, j)| 0.1 * (i as f64 - j as f64));
        let mut point = grid.zeros();
        point[[8, 8]] = 1.0;
        let (cone, source) = extend_from_support(&grid, &flat, &point, 1.5, Parallelism::Rayon);
        for ((i, j), v) in cone.indexed_iter() {
            let x = grid.node(i, j);
            assert!((v - 1.5 * x[0].hypot(x[1])).abs() < 1e-12, "{i} {j}");
            assert_eq!(source[[i, j]], (8, 8));
        }
        let mut line = grid.zeros();
        line.row_mut(8).fill(1.0 / 17.0);
        let level = Array2::from_shape_fn(
            grid.shape(),
            |(i, j)| {
                if i == 8 { 0.3 } else { 0.05 * j as f64 }
            },
        );
        let (wedge, _) = extend_from_support(&grid, &level, &line, 2.0, Parallelism::Sequential);
        for ((i, j), v) in wedge.indexed_iter() {
            let expected = 0.3 + 2.0 * grid.node(i, j)[0].abs();
            assert!((v - expected).abs() < 1e-12, "{i} {j} {v}");
        }
        let everywhere = Array2::from_elem(grid.shape(), 1.0);
        let (same, own) = extend_from_support(&grid, &flat, &everywhere, 1.0, Parallelism::Rayon);
        assert_eq!(same, flat);
        assert_eq!(own[[3, 5]], (3, 5));
    }

    /// `<K phi, m> = <phi, K^T m>` for arbitrary fields: the flux step and the
    /// phi step use one operator.
    #[test]
    fn the_adjoint_matches_the_operator() {
        let grid = Grid::on_box(&[0.0, 0.0], &[1.0, 1.3], 10).unwrap();
        let (n0, n1) = grid.shape();
        let wave = |a: f64, b: f64| {
            Array2::from_shape_fn((n0, n1), |(i, j)| {
                (a * i as f64 + b * j as f64 * j as f64).sin()
            })
        };
        let phi = wave(0.7, 0.31);
        let flux = [
            wave(1.3, 0.2),
            wave(0.4, 0.9),
            wave(2.1, 0.05),
            wave(0.15, 1.7),
        ];
        let mut forward = 0.0;
        for i in 0..n0 {
            for j in 0..n1 {
                let k = gradient_samples(&phi, i, j, n0, n1);
                let inside = [
                    i + 1 < n0 && j + 1 < n1,
                    i + 1 < n0 && j + 1 < n1,
                    i + 1 < n0,
                    j + 1 < n1,
                ];
                for a in 0..4 {
                    if inside[a] {
                        forward += k[a] / grid.h * flux[a][[i, j]];
                    }
                }
            }
        }
        // the adjoint reads fluxes off the grid as zero
        let mut clean = flux.clone();
        for ((i, j), _) in phi.indexed_iter() {
            if i + 1 == n0 || j + 1 == n1 {
                clean[0][[i, j]] = 0.0;
                clean[1][[i, j]] = 0.0;
            }
            if i + 1 == n0 {
                clean[2][[i, j]] = 0.0;
            }
            if j + 1 == n1 {
                clean[3][[i, j]] = 0.0;
            }
        }
        let backward: f64 = phi
            .indexed_iter()
            .map(|((i, j), v)| v * adjoint_at(&clean, i, j, 1.0 / grid.h))
            .sum();
        assert!(
            (forward - backward).abs() < 1e-12 * forward.abs().max(1.0),
            "{forward} vs {backward}"
        );
    }

    /// A cone sampled at the nodes meets the constraint with equality at its
    /// apex, and a checkerboard of amplitude Lh/2 (L-Lipschitz on the nodes)
    /// is admitted too.
    #[test]
    fn sampled_lipschitz_functions_meet_the_constraint() {
        let grid = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 20).unwrap();
        let cone = grid.evaluate(|x| 2.0 * x[0].hypot(x[1]));
        let k = lipschitz_constant(&grid, &cone);
        assert!((k - 2.0).abs() < 1e-12, "{k}");
        let board = Array2::from_shape_fn(grid.shape(), |(i, j)| {
            0.5 * grid.h * if (i + j) % 2 == 0 { 1.0 } else { -1.0 }
        });
        assert!((lipschitz_constant(&grid, &board) - 1.0).abs() < 1e-12);
    }
}
