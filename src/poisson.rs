//! Screened Poisson solves on a grid by the discrete cosine transform:
//!
//! ```text
//! (a I + b L) u = f,      (L u)_i = sum_{j ~ i} (u_i - u_j) / h^2,
//! ```
//!
//! `L` the graph Laplacian of the grid's edges (no flux leaves the box: the
//! Neumann condition). The 2-D DCT-II diagonalises `L`, with eigenvalues
//! `(4/h^2) (sin^2(pi k0 / (2 n0)) + sin^2(pi k1 / (2 n1)))`, so a solve costs
//! two transforms, O(N log N). The preconditioned solvers use it as the
//! continuum metric `(theta1 I - theta2 Laplacian)` whose steps do not shrink
//! with the grid.

use crate::grid::Grid;
use crate::par::Parallelism;
use ndarray::{Array2, ArrayViewMut1};
use rustdct::{DctPlanner, TransformType2And3};
use std::sync::Arc;

/// Plans and eigenvalues of the grid Laplacian (the workspace of the solve).
#[derive(Clone)]
pub struct ScreenedPoisson {
    shape: (usize, usize),
    dct: [Arc<dyn TransformType2And3<f64>>; 2],
    eigen: [Vec<f64>; 2],
    scratch: Array2<f64>,
}

impl std::fmt::Debug for ScreenedPoisson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScreenedPoisson {:?}", self.shape)
    }
}

impl ScreenedPoisson {
    /// Plans the transforms for `grid`.
    pub fn new(grid: &Grid) -> Self {
        let (n0, n1) = grid.shape();
        let mut planner = DctPlanner::new();
        let eigen = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|k| {
                    let s = (std::f64::consts::PI * k as f64 / (2.0 * n as f64)).sin();
                    4.0 * s * s / (grid.h * grid.h)
                })
                .collect()
        };
        ScreenedPoisson {
            shape: (n0, n1),
            dct: [planner.plan_dct2(n0), planner.plan_dct2(n1)],
            eigen: [eigen(n0), eigen(n1)],
            scratch: Array2::zeros((n1, n0)),
        }
    }

    /// Overwrites `f` with `u = (a I + b L)^{-1} f` (`a > 0`, `b >= 0`).
    pub fn solve(&mut self, a: f64, b: f64, f: &mut Array2<f64>, par: Parallelism) {
        debug_assert_eq!(f.dim(), self.shape);
        let (n0, n1) = self.shape;
        self.transform(f, par, true);
        let (e0, e1) = (&self.eigen[0], &self.eigen[1]);
        // DCT-III after DCT-II returns n/2 times the input on each axis
        // transformed (a 1-D grid skips its single-node axis)
        let scale = (2.0 / n0 as f64) * if n1 > 1 { 2.0 / n1 as f64 } else { 1.0 };
        par.rows(f, |k0, mut row: ArrayViewMut1<f64>| {
            for (k1, v) in row.iter_mut().enumerate() {
                *v *= scale / (a + b * (e0[k0] + e1[k1]));
            }
        });
        self.transform(f, par, false);
    }

    /// DCT-II (`forward`) or DCT-III along both axes, in place.
    fn transform(&mut self, f: &mut Array2<f64>, par: Parallelism, forward: bool) {
        // one scratch buffer per thread, not one allocation per row
        let along = |plan: &Arc<dyn TransformType2And3<f64>>, a: &mut Array2<f64>| {
            let scratch = || vec![0.0; plan.get_scratch_len()];
            par.rows_with_scratch(a, scratch, |scratch, mut row: ArrayViewMut1<f64>| {
                let slice = row.as_slice_mut().expect("rows are contiguous");
                if forward {
                    plan.process_dct2_with_scratch(slice, scratch);
                } else {
                    plan.process_dct3_with_scratch(slice, scratch);
                }
            });
        };
        if self.shape.1 > 1 {
            along(&self.dct[1], f);
        }
        self.scratch.assign(&f.view().reversed_axes());
        along(&self.dct[0], &mut self.scratch);
        f.assign(&self.scratch.view().reversed_axes());
    }

    /// `(a I + b L) u`, the operator itself (for tests and residuals).
    pub fn apply(a: f64, b: f64, h: f64, u: &Array2<f64>) -> Array2<f64> {
        let (n0, n1) = u.dim();
        let inv = b / (h * h);
        Array2::from_shape_fn((n0, n1), |(i, j)| {
            let c = u[[i, j]];
            let mut s = a * c;
            if i > 0 {
                s += inv * (c - u[[i - 1, j]]);
            }
            if i + 1 < n0 {
                s += inv * (c - u[[i + 1, j]]);
            }
            if j > 0 {
                s += inv * (c - u[[i, j - 1]]);
            }
            if j + 1 < n1 {
                s += inv * (c - u[[i, j + 1]]);
            }
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_inverts_the_operator() {
        for (lo, hi, cells) in [
            (vec![-1.0, -2.0], vec![2.0, 1.5], 24),
            (vec![0.0], vec![3.0], 37),
        ] {
            let grid = Grid::on_box(&lo, &hi, cells).unwrap();
            let mut p = ScreenedPoisson::new(&grid);
            let f = grid.evaluate(|x| (3.0 * x[0]).sin() + x[1] * x[1] - 0.3 * x[0] * x[1]);
            for par in [Parallelism::Sequential, Parallelism::Rayon] {
                let mut u = f.clone();
                p.solve(0.7, 0.05, &mut u, par);
                let back = ScreenedPoisson::apply(0.7, 0.05, grid.h, &u);
                let err = (&back - &f).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(err < 1e-10, "residual {err}");
            }
        }
    }
}
