//! Uniform 1-D and 2-D grids of nodes `x_ij = lo + (i, j) h` with square cells.
//!
//! A field is an `Array2<f64>` of shape `[n0, n1]`; a 1-D grid is stored as
//! `[n, 1]`, so every kernel serves both dimensions. Probability measures on a
//! grid are stored as cell masses (summing to one), densities as mass / h^d.

use crate::error::{Error, Result};
use ndarray::Array2;

/// A uniform grid of nodes with equal spacing `h` on every axis.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// 1 or 2.
    pub dim: usize,
    /// Coordinates of node (0, 0).
    pub lo: [f64; 2],
    /// Node spacing.
    pub h: f64,
    /// Number of nodes per axis (`n[1] == 1` in 1-D).
    pub n: [usize; 2],
}

/// Smallest number of cells per axis accepted anywhere.
pub const MIN_CELLS: usize = 4;

/// Fields of a grid's size a solver may hold at once (for the memory check).
pub const WORKING_FIELDS: usize = 64;

impl Grid {
    /// Grid on the box `[lo, hi]` (per axis, `dim` entries) with `cells` cells
    /// (`cells + 1` nodes) on the longest axis. Nodes sit at integer multiples of `h`, so the origin is a
    /// node whenever it lies in the box.
    pub fn on_box(lo: &[f64], hi: &[f64], cells: usize) -> Result<Self> {
        let dim = lo.len();
        if !(1..=2).contains(&dim) {
            return Err(Error::invalid("grid.lo", dim, "grids are 1-D or 2-D"));
        }
        if hi.len() != dim {
            return Err(Error::DimensionMismatch {
                field: "grid.hi".into(),
                expected: dim,
                found: hi.len(),
            });
        }
        if cells < MIN_CELLS {
            return Err(Error::invalid(
                "grid",
                cells,
                "a grid needs at least 4 cells per axis",
            ));
        }
        for a in 0..dim {
            if !(lo[a].is_finite() && hi[a].is_finite() && hi[a] > lo[a]) {
                return Err(Error::invalid(
                    "grid",
                    format!("[{}, {}]", lo[a], hi[a]),
                    "each axis needs finite lo < hi",
                ));
            }
        }
        let extent = (0..dim).map(|a| hi[a] - lo[a]).fold(0.0, f64::max);
        let h = extent / cells as f64;
        let mut glo = [0.0; 2];
        let mut n = [1usize; 2];
        for a in 0..dim {
            let first = (lo[a] / h + 1e-9).floor();
            let last = (hi[a] / h - 1e-9).ceil();
            glo[a] = first * h;
            if (last - first).is_nan() || last - first >= 1e12 {
                return Err(Error::invalid(
                    "grid",
                    cells,
                    "too many cells for any machine",
                ));
            }
            n[a] = ((last - first) as usize + 1).max(MIN_CELLS + 1);
        }
        // a solve keeps a few dozen fields of the grid's size
        let nodes = n[0].saturating_mul(n[1]);
        crate::error::check_memory("grid", cells, nodes, 8 * WORKING_FIELDS)?;
        Ok(Grid { dim, lo: glo, h, n })
    }

    /// Total number of nodes.
    pub fn len(&self) -> usize {
        self.n[0] * self.n[1]
    }

    /// Always false: a grid has at least [`MIN_CELLS`] nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of a field on this grid.
    pub fn shape(&self) -> (usize, usize) {
        (self.n[0], self.n[1])
    }

    /// A zero field.
    pub fn zeros(&self) -> Array2<f64> {
        Array2::zeros(self.shape())
    }

    /// Coordinate of node `i` on `axis`.
    #[inline]
    pub fn coord(&self, axis: usize, i: usize) -> f64 {
        self.lo[axis] + i as f64 * self.h
    }

    /// Node position (second entry 0 in 1-D).
    #[inline]
    pub fn node(&self, i: usize, j: usize) -> [f64; 2] {
        [
            self.coord(0, i),
            if self.dim == 2 { self.coord(1, j) } else { 0.0 },
        ]
    }

    /// Upper corner of the grid (last node).
    pub fn hi(&self) -> [f64; 2] {
        [self.coord(0, self.n[0] - 1), self.coord(1, self.n[1] - 1)]
    }

    /// Volume of one cell, `h^d`.
    pub fn cell_volume(&self) -> f64 {
        self.h.powi(self.dim as i32)
    }

    /// Fills a field with `f(x)` evaluated at every node.
    pub fn evaluate(&self, f: impl Fn([f64; 2]) -> f64) -> Array2<f64> {
        Array2::from_shape_fn(self.shape(), |(i, j)| f(self.node(i, j)))
    }

    /// Cell index and fractional offset of `x` on `axis`, clamped to the grid.
    #[inline]
    pub(crate) fn locate(&self, axis: usize, x: f64) -> (usize, f64) {
        let n = self.n[axis];
        if n == 1 {
            return (0, 0.0);
        }
        let s = ((x - self.lo[axis]) / self.h).clamp(0.0, (n - 1) as f64);
        let i = (s.floor() as usize).min(n - 2);
        (i, s - i as f64)
    }

    /// Flat indices `(k, m)`, `k < m`, of every pair of neighbouring nodes
    /// (along either axis).
    pub fn neighbour_pairs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (n0, n1) = self.shape();
        (0..n0 * n1).flat_map(move |k| {
            let (i, j) = (k / n1, k % n1);
            [
                (i + 1 < n0).then_some(k + n1),
                (j + 1 < n1).then_some(k + 1),
            ]
            .into_iter()
            .flatten()
            .map(move |m| (k, m))
        })
    }

    /// The largest slope `|u_a - u_b| / h` of a node field along an edge.
    pub fn steepest_slope(&self, u: &Array2<f64>) -> f64 {
        let n1 = self.n[1];
        self.neighbour_pairs()
            .map(|(a, b)| (u[[a / n1, a % n1]] - u[[b / n1, b % n1]]).abs())
            .fold(0.0, f64::max)
            / self.h
    }

    /// Bilinear (linear in 1-D) interpolation of a node field, constant outside.
    pub fn interpolate(&self, field: &Array2<f64>, x: [f64; 2]) -> f64 {
        let (i, fx) = self.locate(0, x[0]);
        let (j, fy) = self.locate(1, x[1]);
        let i1 = (i + 1).min(self.n[0] - 1);
        let j1 = (j + 1).min(self.n[1] - 1);
        let a = field[[i, j]] * (1.0 - fx) + field[[i1, j]] * fx;
        let b = field[[i, j1]] * (1.0 - fx) + field[[i1, j1]] * fx;
        a * (1.0 - fy) + b * fy
    }

    /// Bilinear interpolation clipped by the L-Lipschitz upper envelope of
    /// the four surrounding nodes, `min(bilinear, min_k field_k + L|x - x_k|)`.
    /// Every L-Lipschitz function through the node values lies below the
    /// envelope, so the clip only removes what bilinear interpolation adds at
    /// a kink: a cone `L|x - a|` or a valley `L dist(x, row)` with its apex on
    /// nodes is reproduced exactly, where bilinear interpolation rounds it off
    /// over a cell.
    pub fn interpolate_lipschitz(&self, field: &Array2<f64>, x: [f64; 2], lipschitz: f64) -> f64 {
        self.cic(x)
            .iter()
            .map(|&(i, j, _)| {
                let node = self.node(i, j);
                field[[i, j]] + lipschitz * (x[0] - node[0]).hypot(x[1] - node[1])
            })
            .fold(self.interpolate(field, x), f64::min)
    }

    /// The cloud-in-cell stencil of `x`: the four surrounding nodes (two in
    /// 1-D, the others with weight 0) and their bilinear weights. Points outside
    /// are clamped to the box.
    #[inline]
    pub fn cic(&self, x: [f64; 2]) -> [(usize, usize, f64); 4] {
        let (i, fx) = self.locate(0, x[0]);
        let (j, fy) = self.locate(1, x[1]);
        let i1 = (i + 1).min(self.n[0] - 1);
        let j1 = (j + 1).min(self.n[1] - 1);
        [
            (i, j, (1.0 - fx) * (1.0 - fy)),
            (i1, j, fx * (1.0 - fy)),
            (i, j1, (1.0 - fx) * fy),
            (i1, j1, fx * fy),
        ]
    }

    /// Cloud-in-cell deposit: adds `weight` at `x`, split bilinearly among the
    /// surrounding nodes. Mass is conserved; points outside are clamped to the box.
    #[inline]
    pub fn deposit(&self, out: &mut Array2<f64>, x: [f64; 2], weight: f64) {
        for (i, j, w) in self.cic(x) {
            out[[i, j]] += weight * w;
        }
    }

    /// Deposits weighted points and returns the mass field.
    pub fn deposit_all(&self, points: &[[f64; 2]], weights: &[f64]) -> Array2<f64> {
        let mut out = self.zeros();
        for (x, &w) in points.iter().zip(weights) {
            self.deposit(&mut out, *x, w);
        }
        out
    }

    /// Central-difference gradient (one-sided at the boundary); the second
    /// component is zero in 1-D.
    pub fn gradient(&self, field: &Array2<f64>) -> [Array2<f64>; 2] {
        let mut g = [self.zeros(), self.zeros()];
        for (axis, ga) in g.iter_mut().enumerate().take(self.dim) {
            let n = self.n[axis];
            for ((i, j), v) in ga.indexed_iter_mut() {
                let k = if axis == 0 { i } else { j };
                let at = |m: usize| {
                    if axis == 0 {
                        field[[m, j]]
                    } else {
                        field[[i, m]]
                    }
                };
                *v = if k == 0 {
                    (at(1) - at(0)) / self.h
                } else if k == n - 1 {
                    (at(n - 1) - at(n - 2)) / self.h
                } else {
                    (at(k + 1) - at(k - 1)) / (2.0 * self.h)
                };
            }
        }
        g
    }
}

/// Checks that a mass field is finite, non-negative and has positive mass, and
/// returns it normalised to total mass one.
pub fn normalise_mass(field: &str, mut mass: Array2<f64>) -> Result<Array2<f64>> {
    if let Some(v) = mass.iter().find(|v| !v.is_finite()) {
        return Err(Error::InvalidDensity {
            field: field.into(),
            reason: format!("contains the non-finite value {v}"),
        });
    }
    if let Some(v) = mass.iter().find(|v| **v < 0.0) {
        return Err(Error::InvalidDensity {
            field: field.into(),
            reason: format!("contains the negative value {v}"),
        });
    }
    let total: f64 = mass.sum();
    if total <= 0.0 {
        return Err(Error::InvalidDensity {
            field: field.into(),
            reason: "has zero mass on the grid".into(),
        });
    }
    mass /= total;
    Ok(mass)
}

/// L1 distance between two mass fields.
pub fn l1_distance(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// Mass-conserving binomial blur (weights 1 4 6 4 1 per axis): spreads each
/// node's mass over +-2 nodes.
pub fn blur(mass: &Array2<f64>) -> Array2<f64> {
    const W: [f64; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let mut out = mass.clone();
    for axis in 0..2 {
        let n = out.shape()[axis];
        if n == 1 {
            continue;
        }
        let src = out.clone();
        out.fill(0.0);
        for ((i, j), &m) in src.indexed_iter() {
            let k = if axis == 0 { i } else { j };
            for (d, w) in W.iter().enumerate() {
                // reflect at the ends so no mass leaves the box
                let t = k as isize + d as isize - 2;
                let t = if t < 0 {
                    -t
                } else if t >= n as isize {
                    2 * (n as isize - 1) - t
                } else {
                    t
                } as usize;
                let at = if axis == 0 { (t, j) } else { (i, t) };
                out[at] += w * m;
            }
        }
    }
    out
}

/// L1 distance of two mass fields after [`blur`]: the distance at the grid
/// scale, meaningful for singular measures that a grid method spreads over a
/// few cells (the plain L1 distance of two point masses one node apart is 2).
pub fn blurred_l1_distance(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    l1_distance(&blur(a), &blur(b))
}

/// Sliced Wasserstein-1 distance of two mass fields of equal total mass:
/// the mean over `directions` angles in [0, pi) of the exact 1-D W1 distance
/// of the projected node masses (one direction in 1-D). Unlike L1 it measures
/// how far mass sits apart, so it converges for singular measures that a grid
/// method spreads over a few cells.
pub fn sliced_w1(grid: &Grid, a: &Array2<f64>, b: &Array2<f64>, directions: usize) -> f64 {
    let directions = if grid.dim == 1 { 1 } else { directions.max(1) };
    let mut total = 0.0;
    for k in 0..directions {
        let angle = std::f64::consts::PI * k as f64 / directions as f64;
        let (c, s) = (angle.cos(), angle.sin());
        let mut points: Vec<(f64, f64)> = a
            .indexed_iter()
            .zip(b.iter())
            .filter(|((_, x), y)| **x != 0.0 || **y != 0.0)
            .map(|(((i, j), x), y)| {
                let p = grid.node(i, j);
                (c * p[0] + s * p[1], x - y)
            })
            .collect();
        points.sort_by(|u, v| u.0.total_cmp(&v.0));
        let mut cumulative = 0.0;
        for w in points.windows(2) {
            cumulative += w[0].1;
            total += cumulative.abs() * (w[1].0 - w[0].0);
        }
    }
    total / directions as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_mass_and_closes_the_gap_of_neighbouring_points() {
        let g = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 20).unwrap();
        let (mut a, mut b) = (g.zeros(), g.zeros());
        a[[0, 10]] = 1.0;
        b[[1, 10]] = 1.0;
        assert!((blur(&a).sum() - 1.0).abs() < 1e-14);
        assert!((l1_distance(&a, &b) - 2.0).abs() < 1e-14);
        let d = blurred_l1_distance(&a, &b);
        assert!(d > 0.1 && d < 1.0, "{d}");
    }

    #[test]
    fn sliced_w1_of_a_shifted_point_mass_is_the_mean_projected_shift() {
        let g = Grid::on_box(&[-2.0, -2.0], &[2.0, 2.0], 40).unwrap();
        let (mut a, mut b) = (g.zeros(), g.zeros());
        a[[20, 20]] = 1.0;
        b[[25, 20]] = 1.0; // shifted by 5 h = 0.5 along x1
        // mean of |0.5 cos(angle)| over [0, pi) is 0.5 * 2/pi
        let d = sliced_w1(&g, &a, &b, 360);
        assert!((d - 1.0 / std::f64::consts::PI).abs() < 1e-3, "{d}");
        assert_eq!(sliced_w1(&g, &a, &a, 8), 0.0);
    }

    #[test]
    fn origin_is_a_node_and_box_is_covered() {
        let g = Grid::on_box(&[-6.0, -6.0], &[11.0, 6.0], 64).unwrap();
        let i0 = (-g.lo[0] / g.h).round() as usize;
        assert!(g.coord(0, i0).abs() < 1e-12);
        assert!(g.hi()[0] >= 11.0 - g.h && g.lo[0] <= -6.0);
        assert!((65..=67).contains(&g.n[0]));
        let s = Grid::on_box(&[-6.0, -6.0], &[6.0, 6.0], 64).unwrap();
        assert_eq!(s.n, [65, 65]);
        assert!((s.hi()[0] - 6.0).abs() < 1e-12);
    }

    #[test]
    fn deposit_conserves_mass_and_interpolation_is_exact_for_linear() {
        let g = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 16).unwrap();
        let mut m = g.zeros();
        g.deposit(&mut m, [0.123, -0.377], 2.5);
        assert!((m.sum() - 2.5).abs() < 1e-14);
        // first moment is preserved by CIC
        let mx: f64 = m
            .indexed_iter()
            .map(|((i, j), v)| v * g.node(i, j)[0])
            .sum();
        assert!((mx / 2.5 - 0.123).abs() < 1e-12);
        let lin = g.evaluate(|x| 3.0 * x[0] - 2.0 * x[1] + 1.0);
        let v = g.interpolate(&lin, [0.31, 0.07]);
        assert!((v - (3.0 * 0.31 - 2.0 * 0.07 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn rejects_small_grids_and_bad_boxes() {
        assert!(Grid::on_box(&[0.0], &[1.0], 3).is_err());
        assert!(Grid::on_box(&[1.0], &[0.0], 16).is_err());
        assert!(Grid::on_box(&[0.0, f64::NAN], &[1.0, 1.0], 16).is_err());
    }
}
