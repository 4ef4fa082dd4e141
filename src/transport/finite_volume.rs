//! Conservative finite volumes for the continuity equation
//!
//! ```text
//! rho_t + div(rho v) = 0
//! ```
//!
//! on cell masses `m_i` (node i owns the cell around it). The flux through the
//! face between nodes i and i+1 is `v_face m_up / h` with `v_face` the mean of
//! the two nodal velocities and `m_up` the upwind mass, constant (`Upwind`,
//! first order) or reconstructed with minmod-limited slopes (`Muscl`, second
//! order); faces on the box boundary carry no flux, so mass is conserved to
//! round-off. Time stepping is forward Euler (`Upwind`) or Heun (`Muscl`, a
//! convex combination of Euler steps), with `dt = cfl h / sum_axes max|v|`;
//! `cfl <= 1/2` keeps the masses non-negative.

use crate::grid::Grid;
use crate::hj::finite_difference::minmod;
use ndarray::Array2;

/// Spatial reconstruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FvScheme {
    /// Donor cell, first order.
    Upwind,
    /// Minmod-limited linear reconstruction, second order where smooth.
    Muscl,
}

/// Options of the finite-volume solver.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FvOptions {
    /// Reconstruction.
    pub scheme: FvScheme,
    /// Courant number over all axes (<= 0.5 for positivity).
    pub cfl: f64,
}

impl Default for FvOptions {
    fn default() -> Self {
        FvOptions {
            scheme: FvScheme::Muscl,
            cfl: 0.45,
        }
    }
}

/// `dm/dt` of the masses `m` under the face velocities `v` (entry `[i, j]` of
/// axis a: the face between node (i, j) and its successor along a), into `out`.
fn rate(
    grid: &Grid,
    m: &Array2<f64>,
    v: &[Array2<f64>; 2],
    scheme: FvScheme,
    out: &mut Array2<f64>,
) {
    out.fill(0.0);
    let (n0, n1) = grid.shape();
    let inv_h = 1.0 / grid.h;
    for (axis, va) in v.iter().enumerate().take(grid.dim) {
        let n = grid.n[axis];
        let at = |i: usize, j: usize, k: isize| -> Option<(usize, usize)> {
            let (a, b) = if axis == 0 {
                (i as isize + k, j as isize)
            } else {
                (i as isize, j as isize + k)
            };
            let lim = if axis == 0 { n0 } else { n1 } as isize;
            let c = if axis == 0 { a } else { b };
            (c >= 0 && c < lim).then_some((a as usize, b as usize))
        };
        let slope = |i: usize, j: usize| -> f64 {
            if scheme == FvScheme::Upwind {
                return 0.0;
            }
            match (at(i, j, -1), at(i, j, 1)) {
                (Some(l), Some(r)) => minmod(m[[i, j]] - m[l], m[r] - m[[i, j]]),
                _ => 0.0,
            }
        };
        for i in 0..n0 {
            for j in 0..n1 {
                let k = if axis == 0 { i } else { j };
                if k + 1 >= n {
                    continue;
                }
                let r = at(i, j, 1).expect("inside");
                let vf = va[[i, j]];
                let up = if vf > 0.0 {
                    m[[i, j]] + 0.5 * slope(i, j)
                } else {
                    m[r] - 0.5 * slope(r.0, r.1)
                };
                let flux = vf * up * inv_h;
                out[[i, j]] -= flux;
                out[r] += flux;
            }
        }
    }
}

/// Advances the masses `m` over `duration` under the (frozen) nodal velocity
/// field `v` (face velocities: the means of the two nodes); returns the
/// number of steps.
pub fn advance(
    grid: &Grid,
    m: &mut Array2<f64>,
    v: &[Array2<f64>; 2],
    duration: f64,
    opts: &FvOptions,
) -> usize {
    let face = |axis: usize| {
        faces(
            grid,
            |i, j, a, b| 0.5 * (v[axis][[i, j]] + v[axis][[a, b]]),
            axis,
        )
    };
    advance_faces(grid, m, &[face(0), face(1)], duration, opts)
}

/// A face field: `value(i, j, a, b)` on the face between node (i, j) and its
/// successor (a, b) along `axis`, zero past the last node.
fn faces(
    grid: &Grid,
    value: impl Fn(usize, usize, usize, usize) -> f64,
    axis: usize,
) -> Array2<f64> {
    let (n0, n1) = grid.shape();
    Array2::from_shape_fn((n0, n1), |(i, j)| {
        let (a, b) = if axis == 0 { (i + 1, j) } else { (i, j + 1) };
        if a < n0 && b < n1 && axis < grid.dim {
            value(i, j, a, b)
        } else {
            0.0
        }
    })
}

/// Face velocities `-(U_next - U) / (h alpha)` of a value function: compact
/// differences, exact at the midpoint of a face where the central
/// differences of the two nodes halve the speed at a kink of U (the support
/// of a singular target, where the velocity flips sign).
pub fn face_velocities(grid: &Grid, u: &Array2<f64>, alpha: f64) -> [Array2<f64>; 2] {
    let s = -1.0 / (grid.h * alpha);
    let face = |axis| faces(grid, |i, j, a, b| s * (u[[a, b]] - u[[i, j]]), axis);
    [face(0), face(1)]
}

/// Advances the masses `m` over `duration` under frozen face velocities
/// (layout of [`face_velocities`]); returns the number of steps.
pub fn advance_faces(
    grid: &Grid,
    m: &mut Array2<f64>,
    v: &[Array2<f64>; 2],
    duration: f64,
    opts: &FvOptions,
) -> usize {
    let speed: f64 = (0..grid.dim)
        .map(|a| v[a].iter().fold(0.0f64, |s, x| s.max(x.abs())))
        .sum();
    if speed == 0.0 || duration <= 0.0 {
        return 0;
    }
    let steps = (duration * speed / (opts.cfl * grid.h)).ceil().max(1.0) as usize;
    let dt = duration / steps as f64;
    let mut k1 = grid.zeros();
    let mut k2 = grid.zeros();
    let mut stage = grid.zeros();
    for _ in 0..steps {
        rate(grid, m, v, opts.scheme, &mut k1);
        match opts.scheme {
            FvScheme::Upwind => m.scaled_add(dt, &k1),
            FvScheme::Muscl => {
                stage.assign(m);
                stage.scaled_add(dt, &k1);
                rate(grid, &stage, v, opts.scheme, &mut k2);
                // Heun: m <- (m + stage + dt k2) / 2
                stage.scaled_add(dt, &k2);
                *m += &stage;
                *m *= 0.5;
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(grid: &Grid, centre: f64) -> Array2<f64> {
        let mut g = grid.evaluate(|x| {
            (-0.5 * ((x[0] - centre) / 0.5).powi(2) - 0.5 * (x[1] / 0.7).powi(2)).exp()
        });
        let s = g.sum();
        g /= s;
        g
    }

    #[test]
    fn mass_is_conserved_and_stays_non_negative() {
        let grid = Grid::on_box(&[-4.0, -4.0], &[4.0, 4.0], 48).unwrap();
        let m = gaussian(&grid, 1.0);
        // rotation plus a compressive pull towards the origin
        let v = [
            grid.evaluate(|x| -x[1] - 0.8 * x[0]),
            grid.evaluate(|x| x[0] - 0.8 * x[1]),
        ];
        for scheme in [FvScheme::Upwind, FvScheme::Muscl] {
            let mut mm = m.clone();
            let steps = advance(&grid, &mut mm, &v, 1.5, &FvOptions { scheme, cfl: 0.45 });
            assert!(steps > 10);
            assert!(
                (mm.sum() - 1.0).abs() < 1e-12,
                "{scheme:?}: mass {}",
                mm.sum()
            );
            assert!(mm.iter().all(|x| *x >= 0.0), "{scheme:?}: negative mass");
            // the pull concentrates the mass near the origin
            let r2: f64 = mm
                .indexed_iter()
                .map(|((i, j), w)| {
                    w * {
                        let x = grid.node(i, j);
                        x[0] * x[0] + x[1] * x[1]
                    }
                })
                .sum();
            assert!(r2 < 0.5, "{scheme:?}: second moment {r2}");
        }
    }

    #[test]
    fn translation_converges_with_the_order_of_the_scheme() {
        for (scheme, min_order) in [(FvScheme::Upwind, 0.7), (FvScheme::Muscl, 1.4)] {
            let mut errors = Vec::new();
            for cells in [64usize, 128, 256] {
                let grid = Grid::on_box(&[-4.0], &[4.0], cells).unwrap();
                let density = |c: f64| {
                    let mut g = grid.evaluate(|x| (-0.5 * ((x[0] - c) / 0.5).powi(2)).exp());
                    let s = g.sum();
                    g /= s;
                    g
                };
                let mut m = density(-1.0);
                let v = [grid.evaluate(|_| 1.0), grid.zeros()];
                advance(&grid, &mut m, &v, 2.0, &FvOptions { scheme, cfl: 0.45 });
                let exact = density(1.0);
                errors.push(
                    m.iter()
                        .zip(exact.iter())
                        .map(|(a, b)| (a - b).abs())
                        .sum::<f64>(),
                );
            }
            let orders: Vec<f64> = errors.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
            eprintln!("{scheme:?}: L1 errors {errors:?}, orders {orders:?}");
            assert!(
                orders.iter().all(|o| *o > min_order),
                "{scheme:?}: {orders:?}"
            );
        }
    }
}
