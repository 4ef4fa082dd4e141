//! Kernels shared by the methods whose agents travel straight characteristics
//! `x(t) = x + (t/T)(x_T - x)` under `U(x, t) = HL_{T-t} phi (x)`, the
//! Hopf–Lax solution of `-U_t + |grad U|^2 / (2 alpha) = 0`, `U(., T) = phi`:
//! the push-forward of rho0 to time t, U at time t, the largest speed and the
//! residual of the HJ equation along the flow.

use crate::grid::Grid;
use crate::hj::{HopfLaxWorkspace, hopf_lax};
use crate::par::Parallelism;
use ndarray::Array2;

/// Pushes `rho0` along straight lines to the end points, to time fraction
/// `theta`. Each node's mass is split into 4 (4x4 in 2-D) sub-agents spread
/// over its cell, moved by the bilinear interpolant of the nodal
/// displacements: depositing one agent per node would alias (a moire of
/// period h/|1 - spacing|) wherever the flow compresses or expands.
pub fn push_forward(
    grid: &Grid,
    rho0: &Array2<f64>,
    end: &[Array2<f64>; 2],
    theta: f64,
) -> Array2<f64> {
    const SUB: usize = 4;
    let disp = [
        Array2::from_shape_fn(grid.shape(), |(i, j)| end[0][[i, j]] - grid.node(i, j)[0]),
        Array2::from_shape_fn(grid.shape(), |(i, j)| end[1][[i, j]] - grid.node(i, j)[1]),
    ];
    let offsets: Vec<f64> = (0..SUB)
        .map(|k| ((k as f64 + 0.5) / SUB as f64 - 0.5) * grid.h)
        .collect();
    let sub1 = if grid.dim == 2 { SUB } else { 1 };
    let share = 1.0 / (SUB * sub1) as f64;
    let mut out = grid.zeros();
    for ((i, j), &m) in rho0.indexed_iter() {
        if m == 0.0 {
            continue;
        }
        let x = grid.node(i, j);
        for &ox in &offsets {
            for &oy in offsets.iter().take(sub1) {
                let oy = if grid.dim == 2 { oy } else { 0.0 };
                let p = [x[0] + ox, x[1] + oy];
                let d = [grid.interpolate(&disp[0], p), grid.interpolate(&disp[1], p)];
                grid.deposit(
                    &mut out,
                    [p[0] + theta * d[0], p[1] + theta * d[1]],
                    m * share,
                );
            }
        }
    }
    out
}

/// Largest speed `|x_T - x| / T` over nodes carrying mass.
pub fn max_speed(grid: &Grid, rho0: &Array2<f64>, end: &[Array2<f64>; 2], horizon: f64) -> f64 {
    let floor = 1e-12 * rho0.iter().fold(0.0f64, |a, b| a.max(*b));
    rho0.indexed_iter()
        .filter(|(_, m)| **m > floor)
        .map(|((i, j), _)| {
            let x = grid.node(i, j);
            ((end[0][[i, j]] - x[0]).powi(2) + (end[1][[i, j]] - x[1]).powi(2)).sqrt() / horizon
        })
        .fold(0.0, f64::max)
}

/// `U(., T - span) = HL_span phi` (phi itself when `span = 0`).
pub fn value_at(
    grid: &Grid,
    phi: &Array2<f64>,
    alpha: f64,
    span: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) -> Array2<f64> {
    if span <= 0.0 {
        return phi.clone();
    }
    hopf_lax(grid, phi, alpha / (2.0 * span), ws, par).value
}

/// rho(T/2)-weighted RMS of `dU/dt - |grad U|^2 / (2 alpha)` at t = T/2, with
/// a centred time difference of width T/50.
#[allow(clippy::too_many_arguments)]
pub fn hj_residual(
    grid: &Grid,
    rho0: &Array2<f64>,
    phi: &Array2<f64>,
    end: &[Array2<f64>; 2],
    alpha: f64,
    horizon: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) -> f64 {
    let dt = horizon / 50.0;
    let span = horizon / 2.0;
    let later = value_at(grid, phi, alpha, span - dt / 2.0, ws, par);
    let earlier = value_at(grid, phi, alpha, span + dt / 2.0, ws, par);
    let mid = value_at(grid, phi, alpha, span, ws, par);
    let g = grid.gradient(&mid);
    let rho = push_forward(grid, rho0, end, 0.5);
    let mut acc = 0.0;
    for ((i, j), &m) in rho.indexed_iter() {
        let ut = (later[[i, j]] - earlier[[i, j]]) / dt;
        let r = ut - (g[0][[i, j]].powi(2) + g[1][[i, j]].powi(2)) / (2.0 * alpha);
        acc += m * r * r;
    }
    (acc / rho.sum()).sqrt()
}
