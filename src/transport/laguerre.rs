//! Laguerre (power) cells: the semi-discrete quadratic c-transform of a node
//! potential, integrated exactly against a source spread uniformly over the
//! pixel around each node,
//!
//! ```text
//! u(x) = min_j psi_j + |x - y_j|^2 / (2 tau),     int u(x) rho0(x) dx.
//! ```
//!
//! The cell of node `j` is where it attains the minimum; inside a pixel it is
//! a convex polygon (the differences of the parabolas are affine). Each cell
//! reports its source mass, its transport cost `int |x - y_j|^2/(2 tau) rho0`
//! and its shared boundaries: moving `psi_k` by `d` moves the boundary with
//! `j` by `d tau / |y_j - y_k|`, so `d mass_j / d psi_k = rho0 * length * tau
//! / |y_j - y_k|`. These are the exact gradient and Hessian of the
//! semi-discrete dual, whose value `int u rho0 = cost + <mass, psi>` and whose
//! plan (each cell to its node) pair with no discretisation gap.

use crate::grid::Grid;
use crate::hj::{HopfLax, HopfLaxWorkspace, hopf_lax_into};
use crate::par::Parallelism;
use ndarray::Array2;

/// The cells of one potential, summed per node.
#[derive(Debug, Clone)]
pub struct LaguerreCells {
    /// Source mass of each node's cell (the plan's second marginal).
    pub mass: Array2<f64>,
    /// `sum_j int_{cell j} |x - y_j|^2 / (2 tau) rho0(x) dx`.
    pub cost: f64,
    /// `int u rho0 = cost + <mass, psi>`.
    pub dual_integral: f64,
    /// Mean aim of the source mass of each pixel (the node itself where it has none).
    pub aim: [Array2<f64>; 2],
    /// `(j, k, d mass_j / d psi_k)` for neighbouring cells, flat node indices `j < k`.
    pub coupling: Vec<(usize, usize, f64)>,
    /// `sum_j mass_j |xbar_j - y_j|^2 / (2 tau)`, `xbar_j` the centroid of
    /// cell j: the cost of moving each cell's centroid. The rest of `cost` is
    /// the spread of each cell about its centroid, which vanishes like h^2.
    pub centroid_cost: f64,
}

/// Reusable buffers: the node-level transform that seeds each pixel's candidates.
#[derive(Debug, Clone)]
pub struct LaguerreWorkspace {
    nodes: HopfLax,
    hopf_lax: HopfLaxWorkspace,
}

impl LaguerreWorkspace {
    /// Workspace for `grid`.
    pub fn new(grid: &Grid) -> Self {
        LaguerreWorkspace {
            nodes: HopfLax {
                value: grid.zeros(),
                arg0: Array2::zeros(grid.shape()),
                arg1: Array2::zeros(grid.shape()),
            },
            hopf_lax: HopfLaxWorkspace::new(grid),
        }
    }
}

/// Edge label of a pixel side (not a cell boundary).
const BORDER: usize = usize::MAX;

/// A polygon vertex and the label of the side that leaves it.
#[derive(Debug, Clone, Copy)]
struct Vertex {
    p: [f64; 2],
    side: usize,
    /// The side is a pixel border that the boundary with `side` runs along
    /// (as when the cells are the pixels themselves): the neighbouring
    /// pixel shares it.
    shared: bool,
}

/// Keeps the part of `poly` where `a . z <= b`; the new side gets `label`.
/// A pixel side lying on the line takes the label too, marked shared.
fn clip(poly: &[Vertex], a: [f64; 2], b: f64, label: usize, out: &mut Vec<Vertex>) {
    out.clear();
    let n = poly.len();
    let scale = b.abs()
        + poly
            .iter()
            .map(|v| (a[0] * v.p[0]).abs() + (a[1] * v.p[1]).abs())
            .fold(0.0, f64::max);
    let tol = 1e-10 * scale;
    for k in 0..n {
        let (p, q) = (poly[k], poly[(k + 1) % n]);
        let sp = a[0] * p.p[0] + a[1] * p.p[1] - b;
        let sq = a[0] * q.p[0] + a[1] * q.p[1] - b;
        if p.side == BORDER && sp.abs() <= tol && sq.abs() <= tol {
            out.push(Vertex {
                side: label,
                shared: true,
                ..p
            });
            continue;
        }
        let cut = |t: f64| {
            [
                p.p[0] + t * (q.p[0] - p.p[0]),
                p.p[1] + t * (q.p[1] - p.p[1]),
            ]
        };
        if sp <= 0.0 {
            out.push(p);
            if sq > 0.0 {
                out.push(Vertex {
                    p: cut(sp / (sp - sq)),
                    side: label,
                    shared: false,
                });
            }
        } else if sq <= 0.0 {
            out.push(Vertex {
                p: cut(sp / (sp - sq)),
                ..p
            });
        }
    }
}

/// Area, `int |z - y|^2 dz` and `int z dz` of a convex polygon.
fn moments(poly: &[Vertex], y: [f64; 2]) -> (f64, f64, [f64; 2]) {
    let (mut area, mut second, mut first) = (0.0, 0.0, [0.0; 2]);
    let v0 = poly[0].p;
    for w in poly[1..].windows(2) {
        let (v1, v2) = (w[0].p, w[1].p);
        let a = 0.5 * ((v1[0] - v0[0]) * (v2[1] - v0[1]) - (v1[1] - v0[1]) * (v2[0] - v0[0]));
        let g = [(v0[0] + v1[0] + v2[0]) / 3.0, (v0[1] + v1[1] + v2[1]) / 3.0];
        let d2 = |v: [f64; 2]| (v[0] - g[0]).powi(2) + (v[1] - g[1]).powi(2);
        let spread = (d2(v0) + d2(v1) + d2(v2)) / 12.0;
        second += a * ((g[0] - y[0]).powi(2) + (g[1] - y[1]).powi(2) + spread);
        area += a;
        first[0] += a * g[0];
        first[1] += a * g[1];
    }
    (area, second, first)
}

/// What one row of pixels contributes.
#[derive(Default)]
struct RowCells {
    cost: f64,
    aim: Vec<[f64; 2]>,
    coupling: Vec<(usize, usize, f64)>,
    /// Mass and first moment `int x rho0` of every cell piece.
    moments: Vec<(usize, f64, [f64; 2])>,
}

/// The Laguerre cells of `psi` (`+inf` off the target's support) against the
/// node masses `rho0`, each spread uniformly over its pixel
/// `[x - h/2, x + h/2]^d`. In 1-D the pixels are thin strips, so the
/// transverse spread adds nothing measurable to the cost.
pub fn laguerre_cells(
    grid: &Grid,
    rho0: &Array2<f64>,
    psi: &Array2<f64>,
    tau: f64,
    ws: &mut LaguerreWorkspace,
    par: Parallelism,
) -> LaguerreCells {
    let (n0, n1) = grid.shape();
    hopf_lax_into(grid, psi, 0.5 / tau, &mut ws.hopf_lax, par, &mut ws.nodes);
    let nodes = &ws.nodes;
    let half = [
        0.5 * grid.h,
        if grid.dim == 2 {
            0.5 * grid.h
        } else {
            1e-6 * grid.h
        },
    ];
    let row = |a: usize| -> RowCells {
        let mut out = RowCells::default();
        let mut candidates: Vec<(usize, [f64; 2], f64)> = Vec::new();
        let (mut poly, mut next) = (Vec::with_capacity(16), Vec::with_capacity(16));
        for b in 0..n1 {
            let centre = grid.node(a, b);
            let m = rho0[[a, b]];
            if m <= 0.0 || !nodes.value[[a, b]].is_finite() {
                out.aim.push(centre);
                continue;
            }
            let density = m / (4.0 * half[0] * half[1]);
            // candidates: support nodes in the box of the minimisers at the
            // pixel's node and its neighbours (the box holds the pixel's image)
            let (mut lo, mut hi) = ([usize::MAX; 2], [0usize; 2]);
            for i in a.saturating_sub(1)..(a + 2).min(n0) {
                for j in b.saturating_sub(1)..(b + 2).min(n1) {
                    let arg = [nodes.arg0[[i, j]], nodes.arg1[[i, j]]];
                    for k in 0..2 {
                        lo[k] = lo[k].min(arg[k]);
                        hi[k] = hi[k].max(arg[k]);
                    }
                }
            }
            candidates.clear();
            for i in lo[0]..=hi[0] {
                for j in lo[1]..=hi[1] {
                    let v = psi[[i, j]];
                    if v.is_finite() {
                        let y = grid.node(i, j);
                        let rel = [y[0] - centre[0], y[1] - centre[1]];
                        let at_centre = v + (rel[0] * rel[0] + rel[1] * rel[1]) / (2.0 * tau);
                        candidates.push((i * n1 + j, rel, at_centre));
                    }
                }
            }
            let best = candidates
                .iter()
                .enumerate()
                .min_by(|x, y| x.1.2.total_cmp(&y.1.2))
                .map(|(k, _)| k)
                .expect("the minimiser is a candidate");
            // a candidate above the best one over the whole pixel owns nothing
            let (_, yb, vb) = candidates[best];
            candidates.retain(|&(_, y, v)| {
                let spread =
                    (half[0] * (y[0] - yb[0]).abs() + half[1] * (y[1] - yb[1]).abs()) / tau;
                v - vb - spread <= 0.0
            });
            let mut aim = [0.0; 2];
            for (c, &(node, y, v)) in candidates.iter().enumerate() {
                poly.clear();
                for (s0, s1) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                    poly.push(Vertex {
                        p: [s0 * half[0], s1 * half[1]],
                        side: BORDER,
                        shared: false,
                    });
                }
                // f_c <= f_k  <=>  z . (y_k - y_c) / tau <= f_k(0) - f_c(0)
                for (k, &(_, yk, vk)) in candidates.iter().enumerate() {
                    if k == c || poly.len() < 3 {
                        continue;
                    }
                    let normal = [(yk[0] - y[0]) / tau, (yk[1] - y[1]) / tau];
                    clip(&poly, normal, vk - v, k, &mut next);
                    std::mem::swap(&mut poly, &mut next);
                }
                if poly.len() < 3 {
                    continue;
                }
                let (area, second, first) = moments(&poly, y);
                if area <= 0.0 {
                    continue;
                }
                let mass = density * area;
                out.moments.push((
                    node,
                    mass,
                    [
                        mass * centre[0] + density * first[0],
                        mass * centre[1] + density * first[1],
                    ],
                ));
                out.cost += density * second / (2.0 * tau);
                aim[0] += mass * (centre[0] + y[0]);
                aim[1] += mass * (centre[1] + y[1]);
                for (e, w) in poly.iter().enumerate() {
                    // each boundary once: from the lower node's cell, or half
                    // from each side where it runs along the pixel border
                    let k = w.side;
                    if k == BORDER || (!w.shared && candidates[k].0 < node) {
                        continue;
                    }
                    let u = poly[(e + 1) % poly.len()].p;
                    let length = ((u[0] - w.p[0]).powi(2) + (u[1] - w.p[1]).powi(2)).sqrt();
                    let yk = candidates[k].1;
                    let gap = ((yk[0] - y[0]).powi(2) + (yk[1] - y[1]).powi(2)).sqrt();
                    let other = candidates[k].0;
                    let weight = density * length * tau / gap * if w.shared { 0.5 } else { 1.0 };
                    if length > 0.0 {
                        out.coupling
                            .push((node.min(other), node.max(other), weight));
                    }
                }
            }
            out.aim.push([aim[0] / m, aim[1] / m]);
        }
        out
    };
    let rows: Vec<RowCells> = par.map(n0, row);
    let mut mass = grid.zeros();
    let mut aim = [grid.zeros(), grid.zeros()];
    let mut first = [grid.zeros(), grid.zeros()];
    let mut cost = 0.0;
    let mut coupling = Vec::new();
    {
        let flat = mass.as_slice_mut().expect("standard layout");
        let [f0, f1] = &mut first;
        let (f0, f1) = (
            f0.as_slice_mut().expect("standard layout"),
            f1.as_slice_mut().expect("standard layout"),
        );
        for (a, r) in rows.into_iter().enumerate() {
            for (node, m, x) in r.moments {
                flat[node] += m;
                f0[node] += x[0];
                f1[node] += x[1];
            }
            cost += r.cost;
            for (b, p) in r.aim.into_iter().enumerate() {
                aim[0][[a, b]] = p[0];
                aim[1][[a, b]] = p[1];
            }
            coupling.extend(r.coupling);
        }
    }
    coupling.sort_unstable_by_key(|&(j, k, _)| (j, k));
    coupling.dedup_by(|next, kept| {
        let same = next.0 == kept.0 && next.1 == kept.1;
        if same {
            kept.2 += next.2;
        }
        same
    });
    let paired: f64 = mass
        .iter()
        .zip(psi.iter())
        .filter(|(m, _)| **m > 0.0)
        .map(|(m, p)| m * p)
        .sum();
    let centroid_cost = mass
        .indexed_iter()
        .filter(|(_, m)| **m > 0.0)
        .map(|((i, j), m)| {
            let y = grid.node(i, j);
            let d0 = first[0][[i, j]] / m - y[0];
            let d1 = first[1][[i, j]] / m - y[1];
            m * (d0 * d0 + d1 * d1) / (2.0 * tau)
        })
        .sum();
    LaguerreCells {
        mass,
        cost,
        dual_integral: cost + paired,
        aim,
        coupling,
        centroid_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cell masses, cost and dual integral against a brute-force quadrature
    /// of `min_j psi_j + |x - y_j|^2/(2 tau)` over fine sub-pixel points, and
    /// the coupling against finite differences of the masses.
    #[test]
    fn cells_match_quadrature_and_finite_differences() {
        let grid = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 10).unwrap();
        let rho0 = grid.evaluate(|x| (-(x[0] * x[0] + 2.0 * x[1] * x[1])).exp());
        let rho0 = &rho0 / rho0.sum();
        let mut psi =
            grid.evaluate(|x| 0.3 * x[0] - 0.2 * x[1] * x[1] + 0.1 * (3.0 * x[0] * x[1]).sin());
        psi[[0, 0]] = f64::INFINITY;
        let tau = 0.7;
        let mut ws = LaguerreWorkspace::new(&grid);
        let cells = laguerre_cells(&grid, &rho0, &psi, tau, &mut ws, Parallelism::Sequential);
        let sub = 40;
        let (n0, n1) = grid.shape();
        let mut mass = grid.zeros();
        let mut integral = 0.0;
        for ((a, b), m) in rho0.indexed_iter() {
            let c = grid.node(a, b);
            for s in 0..sub {
                for t in 0..sub {
                    let x = [
                        c[0] + grid.h * ((s as f64 + 0.5) / sub as f64 - 0.5),
                        c[1] + grid.h * ((t as f64 + 0.5) / sub as f64 - 0.5),
                    ];
                    let (v, at) = psi
                        .indexed_iter()
                        .map(|((i, j), p)| {
                            let y = grid.node(i, j);
                            (
                                p + ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2)) / (2.0 * tau),
                                (i, j),
                            )
                        })
                        .fold(
                            (f64::INFINITY, (0, 0)),
                            |u, w| if w.0 < u.0 { w } else { u },
                        );
                    let w = m / (sub * sub) as f64;
                    integral += w * v;
                    mass[at] += w;
                }
            }
        }
        assert!(
            (cells.dual_integral - integral).abs() < 1e-4,
            "{} vs {integral}",
            cells.dual_integral
        );
        assert!((cells.mass.sum() - 1.0).abs() < 1e-12);
        let err = (&cells.mass - &mass).mapv(f64::abs).sum();
        assert!(err < 2e-2, "cell masses off by {err}");
        // d mass_j / d psi_k by central differences
        let mut checked = 0;
        for &(j, k, w) in cells.coupling.iter().filter(|c| c.2 > 1e-3).take(10) {
            let d = 1e-6;
            let at = (k / n1, k % n1);
            let mut p = psi.clone();
            p[at] += d;
            let up = laguerre_cells(&grid, &rho0, &p, tau, &mut ws, Parallelism::Sequential);
            p[at] -= 2.0 * d;
            let down = laguerre_cells(&grid, &rho0, &p, tau, &mut ws, Parallelism::Sequential);
            let fd = (up.mass[(j / n1, j % n1)] - down.mass[(j / n1, j % n1)]) / (2.0 * d);
            assert!((fd - w).abs() < 1e-5 + 1e-4 * w, "({j},{k}) fd {fd} vs {w}");
            checked += 1;
        }
        assert!(
            checked >= 5,
            "{checked} couplings checked of {}",
            cells.coupling.len()
        );
        let _ = n0;
    }
}
