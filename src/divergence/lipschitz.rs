//! The Lipschitz-regularised f-divergence on a grid and its optimal discriminator:
//!
//! ```text
//! D_f^L(P||Q) = sup_{|grad phi| <= L} sum_i p_i phi_i - sum_i q_i f*(phi_i)
//!             = inf_{gamma, m} D_f(gamma||Q) + L sum_i |m_i|   s.t.  div m = P - gamma
//! ```
//!
//! (for unit mass P the shift `nu` of `Lambda_f` is absorbed into phi). The
//! Lipschitz constraint is isotropic on forward differences,
//! `|(D+ phi)_i|_2 <= L` at every node. We run the primal–dual hybrid gradient
//! method (Chambolle–Pock) on `min_phi G(phi) + F(D phi)` with
//! `G(phi) = sum q f*(phi) - <p, phi>` and `F` the indicator of the L-ball; its
//! dual variable is the flux `m`. The state is kept between calls so that an
//! outer MFG loop warm-starts it.

use super::fdiv::FDivergence;
use crate::grid::Grid;
use crate::hj::{HopfLaxWorkspace, lipschitz_envelope};
use crate::par::Parallelism;
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
}

impl Default for PdhgOptions {
    fn default() -> Self {
        PdhgOptions {
            max_iterations: 20_000,
            tolerance: 1e-7,
            step_ratio: None,
            primal_scale: 1.0,
            parallelism: Parallelism::Rayon,
        }
    }
}

/// Warm-startable iterate of the primal–dual solver (the workspace of the kernel).
#[derive(Debug, Clone)]
pub struct PdhgState {
    /// The discriminator phi.
    pub phi: Array2<f64>,
    phi_bar: Array2<f64>,
    phi_prev: Array2<f64>,
    /// The flux m (one field per axis).
    pub flux: [Array2<f64>; 2],
    /// Total iterations run so far.
    pub iterations: usize,
    /// Primal step reached by residual balancing (kept for warm starts).
    tau: Option<f64>,
    /// Running sum and count of the iterates phi, when averaging is on.
    average: Option<(Array2<f64>, usize)>,
    /// Current relative change of the steps.
    adapt: f64,
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
            flux: [grid.zeros(), grid.zeros()],
            iterations: 0,
            tau: None,
            average: None,
            adapt: 0.5,
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
    /// `max |D+ phi| / L - 1`, clipped at zero.
    pub lipschitz_violation: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// `max_i |(D+ phi)_i|`, the discrete Lipschitz constant of a field.
pub fn lipschitz_constant(grid: &Grid, phi: &Array2<f64>) -> f64 {
    let (n0, n1) = grid.shape();
    let mut best: f64 = 0.0;
    for i in 0..n0 {
        for j in 0..n1 {
            let gx = if i + 1 < n0 {
                phi[[i + 1, j]] - phi[[i, j]]
            } else {
                0.0
            };
            let gy = if j + 1 < n1 {
                phi[[i, j + 1]] - phi[[i, j]]
            } else {
                0.0
            };
            best = best.max((gx * gx + gy * gy).sqrt());
        }
    }
    best / grid.h
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
    let dim = grid.dim as f64;
    debug_assert!(h > 0.0);
    // tau sigma ||D||^2 < 1 with ||D||^2 <= 4 d / h^2.
    let prod = 0.99 * h * h / (4.0 * dim);
    let q_max = q.iter().fold(0.0f64, |a, b| a.max(*b));
    // W1 has no curvature for the balance to act on: a fixed ratio serves it
    let fixed = opts
        .step_ratio
        .or((f == FDivergence::W1).then_some(1e5 * lipschitz));
    let mut tau = match (fixed, state.tau) {
        (Some(ratio), _) => (prod * ratio).sqrt(),
        (None, Some(tau)) => tau,
        (None, None) => opts.primal_scale / q_max.max(1e-300),
    };
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
        residual = phi_step(grid, f, tau, p, q, state, par);
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

/// `m <- shrink(m + sigma D+ phi_bar, sigma L)` node by node.
fn flux_step(
    grid: &Grid,
    lipschitz: f64,
    sigma: f64,
    phi_bar: &Array2<f64>,
    flux: &mut [Array2<f64>; 2],
    par: Parallelism,
) {
    let (n0, n1) = grid.shape();
    let inv_h = 1.0 / grid.h;
    let [mx, my] = flux;
    let kernel = |i: usize, mut mxr: ArrayViewMut1<f64>, mut myr: ArrayViewMut1<f64>| {
        for j in 0..n1 {
            let c = phi_bar[[i, j]];
            let gx = if i + 1 < n0 {
                (phi_bar[[i + 1, j]] - c) * inv_h
            } else {
                0.0
            };
            let gy = if j + 1 < n1 {
                (phi_bar[[i, j + 1]] - c) * inv_h
            } else {
                0.0
            };
            let wx = mxr[j] + sigma * gx;
            let wy = myr[j] + sigma * gy;
            let norm = (wx * wx + wy * wy).sqrt();
            let shrink = if norm > sigma * lipschitz {
                1.0 - sigma * lipschitz / norm
            } else {
                0.0
            };
            mxr[j] = wx * shrink;
            myr[j] = wy * shrink;
        }
    };
    par.rows2(mx, my, kernel);
}

/// `phi <- prox_{tau G}(phi_prev - tau D^T m)` and `phi_bar <- 2 phi - phi_prev`.
/// Returns the primal residual `sum |(phi_prev - phi)/tau - D^T(m_prev - m)|`,
/// measured here by its computable part `sum |p - q f*'(phi) - D^T m|`.
fn phi_step(
    grid: &Grid,
    f: FDivergence,
    tau: f64,
    p: &Array2<f64>,
    q: &Array2<f64>,
    state: &mut PdhgState,
    par: Parallelism,
) -> f64 {
    let (n0, n1) = grid.shape();
    let inv_h = 1.0 / grid.h;
    let [mx, my] = &state.flux;
    let phi_prev = &state.phi_prev;
    let residual = std::sync::Mutex::new(0.0);
    let kernel = |i: usize, mut row: ArrayViewMut1<f64>, mut bar: ArrayViewMut1<f64>| {
        let mut local = 0.0;
        for j in 0..n1 {
            // D^T m with D+ forward differences: backward divergence
            let mut dtm = 0.0;
            if i + 1 < n0 {
                dtm -= mx[[i, j]];
            }
            if i > 0 {
                dtm += mx[[i - 1, j]];
            }
            if j + 1 < n1 {
                dtm -= my[[i, j]];
            }
            if j > 0 {
                dtm += my[[i, j - 1]];
            }
            dtm *= inv_h;
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
