//! The Huber c-transform
//!
//! ```text
//! W(x) = min_y { g(y) + k(x - y) },
//! k(z) = alpha |z|^2 / (2T)            for |z| <= c = L T / alpha,
//!        L |z| - L^2 T / (2 alpha)      beyond,
//! ```
//!
//! the inf-convolution of the W2 kernel `alpha|z|^2/(2T)` with the W1 kernel
//! `L|z|`: `W = HL_T(g^L)` where `g^L(x) = min_y g(y) + L|x - y|` is the
//! largest L-Lipschitz function below g. Writing
//! `k(z) = min_{s >= 0} |z|^2 / (2 (tau + s)) + L^2 s / 2` with `tau = T/alpha`,
//! W is a minimum over quadratic Hopf–Lax transforms (each exact and O(N)) on
//! a geometric ladder of `sigma = tau + s`. A ladder ratio r selects the
//! minimiser up to a relative cost error of `(ln r)^2 / 8` (3e-4 for r = 1.05);
//! callers re-evaluate the exact cost of the selected pair.

use super::hopf_lax::{HopfLaxWorkspace, hopf_lax, hopf_lax_values_into};
use crate::grid::Grid;
use crate::par::Parallelism;
use ndarray::{Array2, Zip};

/// The transport cost `k` of the W1–W2 proximal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HuberKernel {
    /// Kinetic weight alpha > 0 (0 means the pure W1 cone `L|z|`).
    pub alpha: f64,
    /// Horizon T.
    pub horizon: f64,
    /// Lipschitz bound L (None: the pure quadratic kernel).
    pub lipschitz: Option<f64>,
}

impl HuberKernel {
    /// The pure W1 cone `k(z) = L|z|` (no kinetic part).
    pub fn cone(lipschitz: f64) -> Self {
        Self {
            alpha: 0.0,
            horizon: 0.0,
            lipschitz: Some(lipschitz),
        }
    }

    /// `tau = T / alpha` (infinite for the pure cone).
    pub fn tau(&self) -> f64 {
        if self.alpha > 0.0 {
            self.horizon / self.alpha
        } else {
            0.0
        }
    }

    /// `c = L T / alpha`, where the quadratic branch ends.
    pub fn reach(&self) -> f64 {
        match self.lipschitz {
            Some(l) => l * self.tau(),
            None => f64::INFINITY,
        }
    }

    /// `k(r)` split into its kinetic part `alpha/(2T) min(r, c)^2` and its W1
    /// part `L (r - c)_+` (they add up to k).
    pub fn split(&self, r: f64) -> (f64, f64) {
        let c = self.reach();
        let kinetic = if self.alpha > 0.0 {
            let m = r.min(c);
            m * m / (2.0 * self.tau())
        } else {
            0.0
        };
        let w1 = match self.lipschitz {
            Some(l) if r > c => l * (r - c),
            _ => 0.0,
        };
        (kinetic, w1)
    }

    /// `k(r)`.
    pub fn cost(&self, r: f64) -> f64 {
        let (a, b) = self.split(r);
        a + b
    }

    /// The ladder of `sigma = tau + s` values covering distances up to `diameter`
    /// with ratio `ratio`; `sigma = 0` (the identity) comes first for the pure cone.
    pub fn ladder(&self, h: f64, diameter: f64, ratio: f64) -> Vec<f64> {
        let tau = self.tau();
        let Some(l) = self.lipschitz else {
            return vec![tau];
        };
        let top = tau + diameter / l;
        let mut sigma = if tau > 0.0 { tau } else { 0.25 * h / l };
        let mut out = if tau > 0.0 { vec![] } else { vec![0.0] };
        while sigma < top * ratio {
            out.push(sigma);
            sigma *= ratio;
        }
        out
    }
}

/// Values and node minimisers of a c-transform.
#[derive(Debug, Clone)]
pub struct CTransform {
    /// `W(x)` at every node.
    pub value: Array2<f64>,
    /// Minimising node index along axis 0 (`usize::MAX` where W is infinite).
    pub arg0: Array2<usize>,
    /// Minimising node index along axis 1.
    pub arg1: Array2<usize>,
}

/// The length of the box's diagonal, the farthest any minimiser lies.
fn diameter(grid: &Grid) -> f64 {
    let hi = grid.hi();
    ((hi[0] - grid.lo[0]).powi(2) + (hi[1] - grid.lo[1]).powi(2)).sqrt()
}

/// `W(x) = min_y g(y) + k(x - y)` over the nodes, `g = +inf` off its support.
pub fn huber_transform(
    grid: &Grid,
    g: &Array2<f64>,
    kernel: &HuberKernel,
    ratio: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) -> CTransform {
    let diameter = diameter(grid);
    let tau = kernel.tau();
    let l = kernel.lipschitz.unwrap_or(0.0);
    let mut best = CTransform {
        value: Array2::from_elem(grid.shape(), f64::INFINITY),
        arg0: Array2::from_elem(grid.shape(), usize::MAX),
        arg1: Array2::from_elem(grid.shape(), usize::MAX),
    };
    for sigma in kernel.ladder(grid.h, diameter, ratio) {
        let offset = 0.5 * l * l * (sigma - tau);
        if sigma == 0.0 {
            let (n0, n1) = grid.shape();
            for i in 0..n0 {
                for j in 0..n1 {
                    if g[[i, j]] < best.value[[i, j]] {
                        best.value[[i, j]] = g[[i, j]];
                        best.arg0[[i, j]] = i;
                        best.arg1[[i, j]] = j;
                    }
                }
            }
            continue;
        }
        let hl = hopf_lax(grid, g, 0.5 / sigma, ws, par);
        Zip::from(&mut best.value)
            .and(&mut best.arg0)
            .and(&mut best.arg1)
            .and(&hl.value)
            .and(&hl.arg0)
            .and(&hl.arg1)
            .for_each(|v, a0, a1, &w, &b0, &b1| {
                if w + offset < *v {
                    *v = w + offset;
                    *a0 = b0;
                    *a1 = b1;
                }
            });
    }
    best
}

/// The largest L-Lipschitz function below g: `g^L(x) = min_y g(y) + L|x - y|`,
/// the values of the cone's [`huber_transform`] without its minimisers.
/// Rungs `sigma` whose successor on the ladder still lies below `h / L` are
/// skipped: for `y != x` (`|x - y| >= h`) the cost `|z|^2 / (2 sigma) +
/// L^2 sigma / 2` falls up to `sigma = |z| / L`, so the successor beats them,
/// and for `y = x` the rung `sigma = 0` does; the result is the same.
pub fn lipschitz_envelope(
    grid: &Grid,
    g: &Array2<f64>,
    lipschitz: f64,
    ratio: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) -> Array2<f64> {
    let cone = HuberKernel::cone(lipschitz);
    let nearest = grid.h / lipschitz;
    let (mut best, mut rung) = (g.clone(), grid.zeros());
    for sigma in cone.ladder(grid.h, diameter(grid), ratio) {
        if sigma == 0.0 || sigma * ratio <= nearest {
            continue;
        }
        let offset = 0.5 * lipschitz * lipschitz * sigma;
        hopf_lax_values_into(grid, g, 0.5 / sigma, ws, par, &mut rung);
        best.zip_mut_with(&rung, |b, &w| {
            if w + offset < *b {
                *b = w + offset;
            }
        });
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_the_inf_convolution() {
        let k = HuberKernel {
            alpha: 0.5,
            horizon: 1.0,
            lipschitz: Some(1.0),
        };
        for r in [0.0, 0.7, 2.0, 3.5, 9.0] {
            // brute force inf_u alpha u^2/(2T) + L (r - u), u in [0, r]
            let brute = (0..=100_000)
                .map(|k| r * k as f64 / 1e5)
                .map(|u| 0.25 * u * u + (r - u))
                .fold(f64::INFINITY, f64::min);
            assert!((k.cost(r) - brute).abs() < 1e-8, "r={r}");
        }
    }

    #[test]
    fn transform_matches_brute_force_with_holes() {
        let grid = Grid::on_box(&[-3.0, -3.0], &[3.0, 3.0], 24).unwrap();
        let k = HuberKernel {
            alpha: 0.5,
            horizon: 0.3,
            lipschitz: Some(1.5),
        };
        // g finite on a few rows only (a singular support)
        let g = grid.evaluate(|x| {
            if (x[1] - 0.5).abs() < 0.3 {
                (2.0 * x[0]).sin()
            } else {
                f64::INFINITY
            }
        });
        let mut ws = HopfLaxWorkspace::new(&grid);
        let t = huber_transform(&grid, &g, &k, 1.02, &mut ws, Parallelism::Sequential);
        for ((i, j), w) in t.value.indexed_iter() {
            let x = grid.node(i, j);
            let brute = g
                .indexed_iter()
                .filter(|(_, v)| v.is_finite())
                .map(|((a, b), v)| {
                    let y = grid.node(a, b);
                    v + k.cost(((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2)).sqrt())
                })
                .fold(f64::INFINITY, f64::min);
            // the ladder over-estimates k by at most (ln 1.02)^2 / 8 relative
            assert!(
                *w >= brute - 1e-12 && *w <= brute + 1e-4 * (1.0 + brute.abs()),
                "{w} vs {brute}"
            );
        }
    }

    /// The envelope skips the cone's rungs below `h / L` and gathers no
    /// minimisers, and must still equal the cone's transform bit for bit.
    #[test]
    fn lipschitz_envelope_is_the_cone_transform() {
        let grid = Grid::on_box(&[-2.0, -1.0], &[2.0, 3.0], 40).unwrap();
        let cone = HuberKernel::cone(1.3);
        // steep and rough, with holes: the envelope moves most nodes
        let mut g = grid.evaluate(|x| 3.0 * (5.0 * x[0]).sin() * x[1].cos() + 0.7 * x[1]);
        g.slice_mut(ndarray::s![34.., ..10]).fill(f64::INFINITY);
        let mut ws = HopfLaxWorkspace::new(&grid);
        for par in [Parallelism::Sequential, Parallelism::Rayon] {
            let full = huber_transform(&grid, &g, &cone, 1.05, &mut ws, par).value;
            let envelope = lipschitz_envelope(&grid, &g, 1.3, 1.05, &mut ws, par);
            assert_eq!(envelope, full);
            assert!(envelope.iter().zip(&g).filter(|(e, g)| e < g).count() > 100);
        }
    }
}
