//! Forward semi-Lagrangian transport ("splatting") for the continuity
//! equation
//!
//! ```text
//! rho_t + div(rho v) = 0,   v = -grad U / alpha,
//! ```
//!
//! on node masses. Over one step `[t, t + tau]` the mass of node i rides its
//! characteristic to the foot `X_i` and is deposited on the nodes around
//! the foot by the transpose of bilinear interpolation:
//!
//! ```text
//! m'_j = sum_i m_i W_j(X_i),   W_j >= 0,   sum_j W_j = 1.
//! ```
//!
//! The weights sum to one and are non-negative, so mass is conserved to
//! round-off and stays non-negative with no CFL limit (feet outside the box
//! are clamped to it). Mass whose characteristics meet at a node lands on
//! that node: a collapse stays sharp where cell-average fluxes smear it over
//! a few cells.
//!
//! Two rules give the foot ([`FootRule`]):
//!
//! - `hopf-lax` (the default), the exact characteristic of the step: the
//!   optimal control of dynamic programming over the step,
//!   `X_i = argmin_y U(y, t + tau) + alpha |y - x_i|^2 / (2 tau)`, with U
//!   bilinear between the nodes; the minimum is found exactly, cell by cell
//!   (a stationary point inside, the minimum along each edge, the corners).
//!   It resolves a collapse below the grid scale: a foot lands on the kink
//!   of U where the kink is, even when the last step moves less than a cell.
//! - `rk2`, the midpoint rule on `v = -grad U / alpha`, with U at the step's
//!   start and middle (a solver stores both; interpolating U linearly in
//!   time is badly wrong near a collapse, where U changes like
//!   `|x|^2 / (T - t)`). The velocity is the gradient of the bilinear
//!   interpolant: inside a cell the compact differences of its corners, on
//!   a grid line (where every node's mass starts) the central difference.

use crate::grid::Grid;
use crate::par::Parallelism;
use ndarray::Array2;

/// How the foot of a node is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FootRule {
    /// The exact minimiser of the step's dynamic programming problem.
    #[default]
    HopfLax,
    /// The RK2 midpoint rule on the velocity.
    Rk2,
}

/// Options of the semi-Lagrangian transport.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlOptions {
    /// How the foot is found.
    pub foot: FootRule,
    /// Transport steps over the horizon (each spans `slices / steps` of the
    /// caller's time slices, which it must divide; an even number of them
    /// for `rk2`, which reads U at the step's middle). Every step
    /// re-deposits the masses on the nodes, which spreads a collapsing cloud
    /// below the grid scale by O(h); a fixed count keeps that spread O(h) on
    /// every grid, where a fixed Courant number (a step crossing 12 cells)
    /// took more steps as h fell. The characteristics of `|p|^2 / (2 alpha)`
    /// are straight, so one Hopf–Lax step is exact up to U's error. The
    /// coupled solver, W1 of rho_T to the dual solver's at 256^2: dirac-2d
    /// 1.04e-3 with one step, 2.12e-3 with two; line-2d 3.1e-4 against
    /// 8.9e-4 (at 128^2 both cases took one step either way).
    pub steps: usize,
}

impl Default for SlOptions {
    fn default() -> Self {
        SlOptions {
            foot: FootRule::HopfLax,
            steps: 1,
        }
    }
}

impl SlOptions {
    /// Slices per transport step, or `None` when `steps` does not divide
    /// `slices` into whole steps (an even number of slices each for `rk2`).
    pub fn slices_per_step(&self, slices: usize) -> Option<usize> {
        let fits = self.steps > 0 && slices.is_multiple_of(self.steps);
        let stride = if fits { slices / self.steps } else { 0 };
        let even = self.foot == FootRule::HopfLax || stride.is_multiple_of(2);
        (stride > 0 && even).then_some(stride)
    }
}

/// What one step moved.
#[derive(Debug, Clone)]
pub struct SlStep {
    /// `alpha/2 sum_i m_i |X_i - x_i|^2 / dt`: the kinetic energy of the step.
    pub kinetic: f64,
    /// Largest `|X_i - x_i| / dt` over nodes with mass above `floor`.
    pub max_speed: f64,
    /// The momentum `m_i (X_i - x_i) / dt` at the start nodes.
    pub momentum: [Array2<f64>; 2],
}

/// Where the mass of a point goes over one step.
pub trait Foot: Sync {
    /// The position after `dt` of the mass at `x`.
    fn foot(&self, grid: &Grid, x: [f64; 2], dt: f64) -> [f64; 2];
}

/// A velocity field over one step: `velocity(grid, x, theta)` at the point
/// `x` and the fraction `theta` of the step.
pub trait VelocityField: Sync {
    /// The velocity at `x`, `theta` of the way through the step.
    fn velocity(&self, grid: &Grid, x: [f64; 2], theta: f64) -> [f64; 2];
}

/// The RK2 (midpoint) foot through a velocity field.
pub struct Rk2<V>(pub V);

impl<V: VelocityField> Foot for Rk2<V> {
    fn foot(&self, grid: &Grid, x: [f64; 2], dt: f64) -> [f64; 2] {
        let v = self.0.velocity(grid, x, 0.0);
        let mid = [x[0] + 0.5 * dt * v[0], x[1] + 0.5 * dt * v[1]];
        let w = self.0.velocity(grid, mid, 0.5);
        [x[0] + dt * w[0], x[1] + dt * w[1]]
    }
}

/// The exact characteristic of one step: the minimiser of
/// `U(y) + alpha |y - x|^2 / (2 dt)` with U bilinear between the nodes (U
/// at the step's end).
pub struct HopfLax<'a> {
    /// U at the end of the step.
    pub end: &'a Array2<f64>,
    /// The control cost weight.
    pub alpha: f64,
    /// The largest slope of U along an edge.
    slope: f64,
    /// The least U over each block of `BLOCK x BLOCK` cells.
    blocks: BlockMinima,
}

/// Cells per side of a pruning block.
const BLOCK: usize = 8;

/// The least node value over blocks of `BLOCK x BLOCK` cells: a lower bound
/// of a bilinear U over a block, so a foot search skips whole blocks.
struct BlockMinima {
    /// Blocks along each axis.
    count: [usize; 2],
    /// Row-major minima.
    min: Vec<f64>,
}

impl BlockMinima {
    fn new(grid: &Grid, u: &Array2<f64>) -> Self {
        let cells = |axis: usize| (grid.n[axis] - 1).max(1);
        let count = [cells(0).div_ceil(BLOCK), cells(1).div_ceil(BLOCK)];
        let mut min = vec![f64::INFINITY; count[0] * count[1]];
        for ((i, j), &v) in u.indexed_iter() {
            // a node on a block boundary bounds both blocks
            for bi in Self::owners(i, count[0]) {
                for bj in Self::owners(j, count[1]) {
                    let b = &mut min[bi * count[1] + bj];
                    *b = b.min(v);
                }
            }
        }
        BlockMinima { count, min }
    }

    /// The blocks whose closed node range holds node `i`.
    fn owners(i: usize, count: usize) -> std::ops::RangeInclusive<usize> {
        i.saturating_sub(1) / BLOCK..=(i / BLOCK).min(count - 1)
    }
}

impl<'a> HopfLax<'a> {
    /// The rule for U `end` at the step's end.
    pub fn new(grid: &Grid, end: &'a Array2<f64>, alpha: f64) -> Self {
        let slope = grid.steepest_slope(end);
        let blocks = BlockMinima::new(grid, end);
        HopfLax {
            end,
            alpha,
            slope,
            blocks,
        }
    }
}

impl HopfLax<'_> {
    /// The exact minimum of `U(y) + k |y - x|^2` over the cell with first
    /// corner `(ci, cj)` (U bilinear there), folded into `best`.
    fn search_cell(
        &self,
        grid: &Grid,
        x: [f64; 2],
        k: f64,
        ci: usize,
        cj: usize,
        best: &mut (f64, [f64; 2]),
    ) {
        let (u, h) = (self.end, grid.h);
        let two_d = grid.dim == 2 && grid.n[1] > 1;
        let corner = grid.node(ci, cj);
        let (i1, j1) = (ci + 1, (cj + 1).min(grid.n[1] - 1));
        let u00 = u[[ci, cj]];
        // U = u00 + b p + c q + d p q in the cell's offsets (p, q)
        let b = (u[[i1, cj]] - u00) / h;
        let (c, d) = if two_d {
            let (u01, u11) = (u[[ci, j1]], u[[i1, j1]]);
            ((u01 - u00) / h, (u11 - u[[i1, cj]] - u01 + u00) / (h * h))
        } else {
            (0.0, 0.0)
        };
        let (a0, a1) = (x[0] - corner[0], x[1] - corner[1]);
        let mut consider = |p: f64, q: f64| {
            let f = u00 + b * p + c * q + d * p * q + k * ((p - a0).powi(2) + (q - a1).powi(2));
            if f < best.0 {
                *best = (f, [corner[0] + p, corner[1] + q]);
            }
        };
        let side = |p: f64| p.clamp(0.0, h);
        // the minimum along each edge (a convex quadratic in one offset)
        consider(side(a0 - b / (2.0 * k)), 0.0);
        if two_d {
            consider(side(a0 - (b + d * h) / (2.0 * k)), h);
            consider(0.0, side(a1 - c / (2.0 * k)));
            consider(h, side(a1 - (c + d * h) / (2.0 * k)));
            // a stationary point inside, where the cell's objective is convex
            let det = 4.0 * k * k - d * d;
            if det > 0.0 {
                let (r0, r1) = (2.0 * k * a0 - b, 2.0 * k * a1 - c);
                let p = (2.0 * k * r0 - d * r1) / det;
                let q = (2.0 * k * r1 - d * r0) / det;
                if (0.0..=h).contains(&p) && (0.0..=h).contains(&q) {
                    consider(p, q);
                }
            }
        }
    }

    /// A lower bound of `U(y) + k |y - x|^2` over block `(bi, bj)`: its
    /// least node plus the squared distance to its box.
    fn block_floor(&self, grid: &Grid, x: [f64; 2], k: f64, bi: usize, bj: usize) -> f64 {
        let low = self.blocks.min[bi * self.blocks.count[1] + bj];
        let side = |axis: usize, b: usize| {
            let last = (grid.n[axis] - 1) as f64;
            let lo = grid.lo[axis] + (b * BLOCK) as f64 * grid.h;
            (
                lo,
                grid.lo[axis] + ((b * BLOCK + BLOCK) as f64).min(last) * grid.h,
            )
        };
        box_floor(grid, x, k, low, [side(0, bi), side(1, bj)])
    }

    /// A lower bound of `U(y) + k |y - x|^2` over a cell: its lowest corner
    /// (a bilinear U is least at a corner) plus the squared distance to it.
    fn cell_floor(&self, grid: &Grid, x: [f64; 2], k: f64, ci: usize, cj: usize) -> f64 {
        let u = self.end;
        let j1 = (cj + 1).min(grid.n[1] - 1);
        let low = u[[ci, cj]]
            .min(u[[ci + 1, cj]])
            .min(u[[ci, j1]])
            .min(u[[ci + 1, j1]]);
        let corner = grid.node(ci, cj);
        let side = |axis: usize| (corner[axis], corner[axis] + grid.h);
        box_floor(grid, x, k, low, [side(0), side(1)])
    }
}

/// `low + k d^2`, with d the distance from `x` to the box `[lo, hi]` per
/// axis (the second axis only in 2-D): a lower bound of `U(y) + k |y - x|^2`
/// over the box when U >= `low` there.
fn box_floor(grid: &Grid, x: [f64; 2], k: f64, low: f64, sides: [(f64, f64); 2]) -> f64 {
    let gap = |axis: usize| {
        let (lo, hi) = sides[axis];
        (lo - x[axis]).max(x[axis] - hi).max(0.0)
    };
    let g1 = if grid.dim == 2 { gap(1) } else { 0.0 };
    low + k * (gap(0).powi(2) + g1 * g1)
}

impl Foot for HopfLax<'_> {
    fn foot(&self, grid: &Grid, x: [f64; 2], dt: f64) -> [f64; 2] {
        let k = self.alpha / (2.0 * dt);
        // |grad U| <= sqrt 2 slope: no minimiser lies further than this
        let reach = std::f64::consts::SQRT_2 * self.slope / k;
        let h = grid.h;
        let cell_at = |axis: usize, y: f64| -> usize {
            let n = grid.n[axis];
            if n == 1 {
                return 0;
            }
            (((y - grid.lo[axis]) / h).floor().max(0.0) as usize).min(n - 2)
        };
        let cells = |axis: usize| cell_at(axis, x[axis] - reach)..=cell_at(axis, x[axis] + reach);
        let start = [
            x[0].clamp(grid.lo[0], grid.hi()[0]),
            x[1].clamp(grid.lo[1], grid.hi()[1]),
        ];
        let mut best = (
            grid.interpolate(self.end, start)
                + k * ((start[0] - x[0]).powi(2) + (start[1] - x[1]).powi(2)),
            start,
        );
        // a good first guess makes the floors prune most cells: the cells
        // around the explicit step `x - grad U(x) / (2k)`
        let guess = {
            let (ci, cj) = (cell_at(0, start[0]), cell_at(1, start[1]));
            let slope = |axis: usize| {
                let (mut lo, mut hi) = (start, start);
                lo[axis] = grid.node(ci, cj)[axis];
                hi[axis] = (lo[axis] + h).min(grid.hi()[axis]);
                if hi[axis] > lo[axis] {
                    (grid.interpolate(self.end, hi) - grid.interpolate(self.end, lo))
                        / (hi[axis] - lo[axis])
                } else {
                    0.0
                }
            };
            [
                start[0] - slope(0) / (2.0 * k),
                start[1] - slope(1) / (2.0 * k),
            ]
        };
        let near = |axis: usize, y: f64| {
            let c = cell_at(axis, y);
            c.saturating_sub(1)..=(c + 1).min(cell_at(axis, f64::INFINITY))
        };
        for ci in near(0, guess[0]) {
            for cj in near(1, guess[1]) {
                self.search_cell(grid, x, k, ci, cj, &mut best);
            }
        }
        let (rows, cols) = (cells(0), cells(1));
        // the cells of block b inside the range r
        let span = |b: usize, r: &std::ops::RangeInclusive<usize>| {
            (b * BLOCK).max(*r.start())..=(b * BLOCK + BLOCK - 1).min(*r.end())
        };
        for bi in rows.start() / BLOCK..=rows.end() / BLOCK {
            for bj in cols.start() / BLOCK..=cols.end() / BLOCK {
                if self.block_floor(grid, x, k, bi, bj) >= best.0 {
                    continue;
                }
                for ci in span(bi, &rows) {
                    for cj in span(bj, &cols) {
                        if self.cell_floor(grid, x, k, ci, cj) < best.0 {
                            self.search_cell(grid, x, k, ci, cj, &mut best);
                        }
                    }
                }
            }
        }
        best.1
    }
}

/// `v = -grad U / alpha` over one step, from U at its start and at its
/// middle (linear in time between them; RK2 asks for these two times only).
#[derive(Clone, Copy)]
pub struct ValueSlab<'a> {
    /// U at the start of the step.
    pub start: &'a Array2<f64>,
    /// U at its middle.
    pub middle: &'a Array2<f64>,
    /// The control cost weight.
    pub alpha: f64,
}

/// Coordinate of `x` along `axis` in cells, snapped to a grid line within
/// 1e-9 cells: the cell index, the fraction in it, and whether `x` lies on
/// the cell's first line.
fn cell_of(grid: &Grid, axis: usize, x: f64) -> (usize, f64, bool) {
    let n = grid.n[axis];
    if n == 1 {
        return (0, 0.0, false);
    }
    let s = ((x - grid.lo[axis]) / grid.h).clamp(0.0, (n - 1) as f64);
    let r = s.round();
    if (s - r).abs() < 1e-9 {
        let i = r as usize;
        return (i.min(n - 2), if i == n - 1 { 1.0 } else { 0.0 }, true);
    }
    let i = (s.floor() as usize).min(n - 2);
    (i, s - i as f64, false)
}

impl ValueSlab<'_> {
    fn value(&self, theta: f64, i: usize, j: usize) -> f64 {
        let w = (2.0 * theta).min(1.0);
        (1.0 - w) * self.start[[i, j]] + w * self.middle[[i, j]]
    }

    /// The slope along `axis` of the bilinear interpolant of U in the cell
    /// whose first corner along `axis` is `c`, at transverse fraction `f`
    /// of the transverse cell starting at `t`.
    fn slope(&self, grid: &Grid, theta: f64, axis: usize, c: usize, t: usize, f: f64) -> f64 {
        let other = 1 - axis;
        let t1 = (t + 1).min(grid.n[other] - 1);
        let at = |a: usize, b: usize| {
            if axis == 0 {
                self.value(theta, a, b)
            } else {
                self.value(theta, b, a)
            }
        };
        ((1.0 - f) * (at(c + 1, t) - at(c, t)) + f * (at(c + 1, t1) - at(c, t1))) / grid.h
    }
}

impl VelocityField for &ValueSlab<'_> {
    fn velocity(&self, grid: &Grid, x: [f64; 2], theta: f64) -> [f64; 2] {
        (*self).velocity(grid, x, theta)
    }
}

impl VelocityField for ValueSlab<'_> {
    fn velocity(&self, grid: &Grid, x: [f64; 2], theta: f64) -> [f64; 2] {
        let cells = [cell_of(grid, 0, x[0]), cell_of(grid, 1, x[1])];
        let mut v = [0.0; 2];
        for (axis, va) in v.iter_mut().enumerate().take(grid.dim) {
            let (c, f, on_line) = cells[axis];
            let (t, ft, _) = cells[1 - axis];
            let slope = |c| self.slope(grid, theta, axis, c, t, ft);
            let g = if !on_line {
                slope(c)
            } else if f == 1.0 {
                // the last node: one-sided
                slope(c)
            } else if c == 0 {
                slope(0)
            } else {
                0.5 * (slope(c - 1) + slope(c))
            };
            *va = -g / self.alpha;
        }
        v
    }
}

/// Where [`advance`] deposits the masses: at the feet, and at the points
/// `x + (f / n)(X - x)`, f = 1..n-1, of each step's chord for the `n - 1`
/// levels inside the step (overwritten), skipping those a solver does not
/// report (each costs one bilinear splat per node).
pub struct Deposits<'a> {
    /// The masses at the end of the step.
    pub end: &'a mut Array2<f64>,
    /// The masses at the levels inside the step, in time order; `None`: not
    /// deposited.
    pub inside: &'a mut [Option<Array2<f64>>],
}

/// Pushes the masses `m` over one step of length `dt` to their feet under
/// `rule` and deposits them into `out`; `alpha` weighs the kinetic energy.
/// Nodes with mass at most `floor` do not count towards `max_speed`.
#[allow(clippy::too_many_arguments)]
pub fn advance(
    grid: &Grid,
    m: &Array2<f64>,
    rule: &impl Foot,
    alpha: f64,
    dt: f64,
    floor: f64,
    out: Deposits<'_>,
    parallelism: Parallelism,
) -> SlStep {
    let mut momentum = [grid.zeros(), grid.zeros()];
    // feet first (in parallel), as displacements per unit time; a node
    // without mass moves nothing
    let [m0, m1] = &mut momentum;
    parallelism.rows2(m0, m1, |i, mut r0, mut r1| {
        for j in 0..r0.len() {
            if m[[i, j]] == 0.0 {
                continue;
            }
            let x = grid.node(i, j);
            let f = rule.foot(grid, x, dt);
            r0[j] = (f[0] - x[0]) / dt;
            r1[j] = (f[1] - x[1]) / dt;
        }
    });
    let Deposits { end, inside } = out;
    end.fill(0.0);
    for level in inside.iter_mut().flatten() {
        level.fill(0.0);
    }
    let parts = inside.len() as f64 + 1.0;
    let (mut kinetic, mut max_speed) = (0.0, 0.0f64);
    for ((i, j), &mass) in m.indexed_iter() {
        let w = [momentum[0][[i, j]], momentum[1][[i, j]]];
        let x = grid.node(i, j);
        if mass != 0.0 {
            grid.deposit(end, [x[0] + dt * w[0], x[1] + dt * w[1]], mass);
            for (f, level) in inside.iter_mut().enumerate() {
                let Some(level) = level else { continue };
                let s = dt * (f as f64 + 1.0) / parts;
                grid.deposit(level, [x[0] + s * w[0], x[1] + s * w[1]], mass);
            }
        }
        let speed2 = w[0] * w[0] + w[1] * w[1];
        kinetic += 0.5 * alpha * mass * speed2 * dt;
        if mass > floor {
            max_speed = max_speed.max(speed2.sqrt());
        }
        momentum[0][[i, j]] = mass * w[0];
        momentum[1][[i, j]] = mass * w[1];
    }
    SlStep {
        kinetic,
        max_speed,
        momentum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(grid: &Grid, c: [f64; 2], s: f64) -> Array2<f64> {
        let mut g = grid
            .evaluate(|x| (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2)) / (2.0 * s * s)).exp());
        let total = g.sum();
        g /= total;
        g
    }

    #[test]
    fn steps_divide_the_slices_evenly_for_rk2() {
        let hopf_lax = |steps| SlOptions {
            steps,
            ..Default::default()
        };
        let rk2 = |steps| SlOptions {
            steps,
            foot: FootRule::Rk2,
        };
        assert_eq!(SlOptions::default().slices_per_step(40), Some(40));
        assert_eq!(hopf_lax(8).slices_per_step(40), Some(5));
        assert_eq!(rk2(8).slices_per_step(40), None);
        assert_eq!(rk2(4).slices_per_step(40), Some(10));
        assert_eq!(hopf_lax(3).slices_per_step(40), None);
        assert_eq!(hopf_lax(0).slices_per_step(40), None);
    }

    /// One step of `m` under `rule`, deposited at the step's end only.
    fn step_to_end(
        grid: &Grid,
        m: &Array2<f64>,
        rule: &impl Foot,
        alpha: f64,
        dt: f64,
    ) -> Array2<f64> {
        let mut out = grid.zeros();
        let deposits = Deposits {
            end: &mut out,
            inside: &mut [],
        };
        advance(grid, m, rule, alpha, dt, 0.0, deposits, Parallelism::Rayon);
        out
    }

    #[test]
    fn mass_is_conserved_to_round_off_and_stays_non_negative() {
        let grid = Grid::on_box(&[-4.0, -4.0], &[4.0, 4.0], 48).unwrap();
        let mut m = gaussian(&grid, [1.0, -0.5], 0.8);
        // a rotation plus a pull to the origin, and a wall push at the box
        let u = grid.evaluate(|x| 0.4 * (x[0] * x[0] + x[1] * x[1]) + 0.9 * x[0].atan2(x[1]));
        let u2 = &u * 1.3;
        let (mut out, mut half) = (grid.zeros(), Some(grid.zeros()));
        for _ in 0..30 {
            let slab = ValueSlab {
                start: &u,
                middle: &u2,
                alpha: 0.5,
            };
            let deposits = Deposits {
                end: &mut out,
                inside: std::slice::from_mut(&mut half),
            };
            let step = advance(
                &grid,
                &m,
                &Rk2(slab),
                0.5,
                0.2,
                0.0,
                deposits,
                Parallelism::Rayon,
            );
            assert!(step.kinetic > 0.0);
            std::mem::swap(&mut m, &mut out);
            for d in [&m, half.as_ref().expect("deposited")] {
                assert!((d.sum() - 1.0).abs() < 1e-12, "mass {}", d.sum());
                assert!(d.iter().all(|x| *x >= 0.0), "negative mass");
            }
        }
    }

    #[test]
    fn the_apex_of_a_cone_holds_its_mass_and_its_neighbours_reach_it() {
        // U = |x| / 2 (alpha = 1/2: speed 1 towards the apex at node 0)
        let grid = Grid::on_box(&[-2.0, -2.0], &[2.0, 2.0], 16).unwrap();
        let cone = grid.evaluate(|x| 0.5 * x[0].hypot(x[1]));
        let slab = ValueSlab {
            start: &cone,
            middle: &cone,
            alpha: 0.5,
        };
        assert_eq!(Rk2(slab).foot(&grid, [0.0, 0.0], 0.1), [0.0, 0.0]);
        let f = Rk2(slab).foot(&grid, [0.25, 0.0], 0.1);
        assert!((f[0] - 0.15).abs() < 1e-12 && f[1].abs() < 1e-12, "{f:?}");
        // one step of exactly one cell lands a neighbour's mass on the apex
        let mut m = grid.zeros();
        m[[8, 8]] = 0.5;
        m[[9, 8]] = 0.5;
        let out = step_to_end(&grid, &m, &Rk2(slab), 0.5, 0.25);
        assert!((out[[8, 8]] - 1.0).abs() < 1e-12, "{}", out[[8, 8]]);
    }

    /// The exact field of a collapse onto the origin at `T = 1`.
    struct Collapse {
        t0: f64,
        dt: f64,
    }

    impl VelocityField for Collapse {
        fn velocity(&self, _: &Grid, x: [f64; 2], theta: f64) -> [f64; 2] {
            let left = 1.0 - (self.t0 + theta * self.dt);
            [-x[0] / left, -x[1] / left]
        }
    }

    #[test]
    fn a_collapse_through_the_exact_field_lands_on_the_target_node() {
        for cells in [32, 64, 128] {
            let grid = Grid::on_box(&[-3.0, -3.0], &[3.0, 3.0], cells).unwrap();
            let mut m = gaussian(&grid, [0.3, -0.2], 0.7);
            let steps = 20;
            let dt = 1.0 / steps as f64;
            for k in 0..steps {
                let field = Collapse {
                    t0: k as f64 * dt,
                    dt,
                };
                m = step_to_end(&grid, &m, &Rk2(field), 1.0, dt);
            }
            let centre = cells / 2;
            let held = m[[centre, centre]];
            eprintln!("collapse @{cells}: {held:.6} of the mass on the target node");
            assert!((m.sum() - 1.0).abs() < 1e-12);
            assert!(held >= 0.95, "{cells}: {held}");
        }
    }

    #[test]
    fn the_hopf_lax_foot_lands_on_a_kink_below_the_grid_scale() {
        // phi = |x| (alpha = 1/2: speed 2 towards the apex), one step of 0.05
        // moves 0.1 < h = 0.125 yet a node within 0.1 of the apex lands on it
        let grid = Grid::on_box(&[-2.0, -2.0], &[2.0, 2.0], 32).unwrap();
        let cone = grid.evaluate(|x| x[0].hypot(x[1]));
        let rule = HopfLax::new(&grid, &cone, 0.5);
        let f = rule.foot(&grid, [0.08, -0.05], 0.05);
        assert!(f[0].abs() < 1e-12 && f[1].abs() < 1e-12, "{f:?}");
        // further out the foot moves by L dt / alpha = 0.1 towards the apex
        let f = rule.foot(&grid, [0.75, 0.0], 0.05);
        assert!((f[0] - 0.65).abs() < 1e-12 && f[1].abs() < 1e-12, "{f:?}");
        // a valley along the x axis (a line target): feet land on the row
        let valley = grid.evaluate(|x| x[1].abs());
        let rule = HopfLax::new(&grid, &valley, 0.5);
        let f = rule.foot(&grid, [0.3, 0.07], 0.05);
        assert!((f[0] - 0.3).abs() < 1e-12 && f[1].abs() < 1e-12, "{f:?}");
    }

    #[test]
    fn the_pruned_hopf_lax_search_finds_the_global_minimum() {
        // a wavy U with many local minima: pruning by the cells' floors must
        // return what visiting every cell returns
        let grid = Grid::on_box(&[-3.0, -3.0], &[3.0, 3.0], 40).unwrap();
        let u = grid.evaluate(|x| (2.1 * x[0]).sin() * (1.7 * x[1]).cos() + 0.3 * x[0].abs());
        let (alpha, dt) = (0.5, 0.3);
        let rule = HopfLax::new(&grid, &u, alpha);
        let k = alpha / (2.0 * dt);
        let objective = |x: [f64; 2], y: [f64; 2]| {
            grid.interpolate(&u, y) + k * ((y[0] - x[0]).powi(2) + (y[1] - x[1]).powi(2))
        };
        for i in (0..grid.n[0]).step_by(3) {
            for j in (0..grid.n[1]).step_by(5) {
                let x = grid.node(i, j);
                let x = [x[0] + 0.37 * grid.h, x[1] - 0.21 * grid.h];
                let mut every = (f64::INFINITY, x);
                for ci in 0..grid.n[0] - 1 {
                    for cj in 0..grid.n[1] - 1 {
                        rule.search_cell(&grid, x, k, ci, cj, &mut every);
                    }
                }
                let pruned = objective(x, rule.foot(&grid, x, dt));
                assert!(
                    (pruned - every.0).abs() < 1e-12,
                    "{x:?}: {pruned} vs {}",
                    every.0
                );
            }
        }
    }
}
