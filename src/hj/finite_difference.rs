//! Monotone finite differences for the backward Hamilton–Jacobi equation
//!
//! ```text
//! -U_t + |grad U|^2 / (2 alpha) = 0,   U(., T) = g,
//! ```
//!
//! written in reversed time `s = T - t` as `U_s + H(grad U) = 0`,
//! `H(p) = |p|^2/(2 alpha)`. The Godunov numerical Hamiltonian of a convex H
//! with minimum at 0 is `sum_axes max(max(a,0)^2, min(b,0)^2) / (2 alpha)` with
//! one-sided differences `a = D- U`, `b = D+ U`. `Godunov` uses first-order
//! differences and forward Euler; `Eno2` uses second-order ENO differences and
//! Heun's method (TVD RK2). The time step adapts to the CFL condition.

use crate::grid::Grid;
use crate::par::Parallelism;
use ndarray::{Array2, ArrayViewMut1};

/// Spatial order of the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FdScheme {
    /// First order, forward Euler.
    Godunov,
    /// Second-order ENO, Heun.
    Eno2,
}

/// Options of the finite-difference solver.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FdOptions {
    /// Spatial scheme.
    pub scheme: FdScheme,
    /// Courant number (<= 0.5 keeps both schemes monotone/stable in 2-D).
    pub cfl: f64,
    /// Row sweeps in parallel or not.
    pub parallelism: Parallelism,
}

impl Default for FdOptions {
    fn default() -> Self {
        FdOptions {
            scheme: FdScheme::Eno2,
            cfl: 0.4,
            parallelism: Parallelism::Rayon,
        }
    }
}

/// The minmod limiter: the smaller slope when both agree in sign, else 0.
#[inline]
pub(crate) fn minmod(a: f64, b: f64) -> f64 {
    // both selections are computed so that the compiler can blend (no branch)
    let smaller = if a.abs() < b.abs() { a } else { b };
    if a * b <= 0.0 { 0.0 } else { smaller }
}

/// One-sided derivatives `(D- U, D+ U)` at the middle of the five values
/// `u(k-2..=k+2)` (see [`stencil`]).
#[inline]
fn one_sided(v: [f64; 5], h: f64, scheme: FdScheme) -> (f64, f64) {
    let back = (v[2] - v[1]) / h;
    let fwd = (v[3] - v[2]) / h;
    match scheme {
        FdScheme::Godunov => (back, fwd),
        FdScheme::Eno2 => {
            let d2 = |m: usize| (v[m + 1] - 2.0 * v[m] + v[m - 1]) / h;
            (
                back + 0.5 * minmod(d2(1), d2(2)),
                fwd - 0.5 * minmod(d2(2), d2(3)),
            )
        }
    }
}

/// The indices `k-2..=k+2` clamped into `0..n`: values held constant beyond
/// the ends make the outward one-sided slope vanish, so no information enters
/// from outside the box (the state constraint that matches Hopf–Lax with the
/// minimum over the box; linear extrapolation lets a boundary minimum run away).
#[inline]
fn stencil(k: usize, n: usize) -> [usize; 5] {
    let top = n - 1;
    [
        k.saturating_sub(2),
        k.saturating_sub(1),
        k,
        (k + 1).min(top),
        (k + 2).min(top),
    ]
}

/// The upwind term `max(max(a,0)^2, min(b,0)^2)` of one axis.
#[inline]
fn upwind(a: f64, b: f64) -> f64 {
    a.max(0.0).powi(2).max(b.min(0.0).powi(2))
}

/// Godunov numerical Hamiltonian at every node, written into `out`; returns the
/// largest |one-sided slope| (for the CFL condition).
fn numerical_hamiltonian(
    grid: &Grid,
    u: &Array2<f64>,
    alpha: f64,
    scheme: FdScheme,
    out: &mut Array2<f64>,
    par: Parallelism,
) -> f64 {
    let (n0, n1) = grid.shape();
    let h = grid.h;
    let u = u.as_standard_layout();
    let u = u.as_slice().expect("standard layout");
    let top = std::sync::Mutex::new(0.0f64);
    par.rows(out, |i, mut row: ArrayViewMut1<f64>| {
        let row = row.as_slice_mut().expect("rows are contiguous");
        let rows = stencil(i, n0).map(|m| &u[m * n1..(m + 1) * n1]);
        let centre = rows[2];
        let mut local = 0.0f64;
        for (j, out) in row.iter_mut().enumerate() {
            let (a, b) = one_sided(rows.map(|r| r[j]), h, scheme);
            let mut ham = upwind(a, b);
            local = local.max(a.abs()).max(b.abs());
            if n1 > 1 {
                // interior nodes read the row directly, the ends clamp
                let v = match centre.get(j.wrapping_sub(2)..j + 3) {
                    Some(w) => [w[0], w[1], w[2], w[3], w[4]],
                    None => stencil(j, n1).map(|m| centre[m]),
                };
                let (a, b) = one_sided(v, h, scheme);
                ham += upwind(a, b);
                local = local.max(a.abs()).max(b.abs());
            }
            *out = ham / (2.0 * alpha);
        }
        let mut t = top.lock().expect("no poisoning");
        *t = t.max(local);
    });
    top.into_inner().expect("no poisoning")
}

/// Solves backward over a time span `horizon = T - t` from `terminal`, returning
/// `U(., t)` and the number of time steps taken.
pub fn solve_backward(
    grid: &Grid,
    terminal: &Array2<f64>,
    alpha: f64,
    horizon: f64,
    opts: &FdOptions,
) -> (Array2<f64>, usize) {
    let mut u = terminal.clone();
    let mut ham = grid.zeros();
    let mut stage = grid.zeros();
    let mut elapsed = 0.0;
    let mut steps = 0;
    let par = opts.parallelism;
    while elapsed < horizon * (1.0 - 1e-14) {
        let slope = numerical_hamiltonian(grid, &u, alpha, opts.scheme, &mut ham, par);
        let speed = grid.dim as f64 * slope / alpha;
        let dt = (opts.cfl * grid.h / speed.max(1e-300)).min(horizon - elapsed);
        match opts.scheme {
            FdScheme::Godunov => u.scaled_add(-dt, &ham),
            FdScheme::Eno2 => {
                // Heun: u1 = u - dt H(u); u <- (u + u1 - dt H(u1)) / 2
                stage.assign(&u);
                stage.scaled_add(-dt, &ham);
                numerical_hamiltonian(grid, &stage, alpha, opts.scheme, &mut ham, par);
                stage.scaled_add(-dt, &ham);
                u += &stage;
                u *= 0.5;
            }
        }
        elapsed += dt;
        steps += 1;
    }
    (u, steps)
}
