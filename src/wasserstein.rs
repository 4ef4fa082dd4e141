//! The Wasserstein-1 distance between two measures on the same grid.
//!
//! In 1-D it is exact: `W1(a, b) = h sum_i |A_i - B_i|`, A and B the
//! cumulative masses. In 2-D it is Beckmann's problem on the grid graph,
//!
//! ```text
//! W1_G(a, b) = min sum_e len_e f_e   over f >= 0 on the directed edges,
//!              (outflow - inflow)_i = a_i - b_i   at every node,
//! ```
//!
//! with edges from every node to its neighbours at the offsets (1,0), (1,1)
//! and (2,1) and their images under the square's symmetries (16
//! neighbours). It is solved exactly, as the linear program it is, by the
//! primal network simplex. A flux on a graph is a transport plan along its
//! paths, so `W1 <= W1_G`; and the graph's path length exceeds the straight
//! distance by at most the factor [`STENCIL_STRETCH`] (the stencil's
//! directions are at most 26.6 degrees apart), so
//! `W1_G / STENCIL_STRETCH <= W1 <= W1_G`. The distance is exact for
//! displacements along the stencil's directions: axis, diagonal and
//! knight moves.

use crate::error::{Error, Result};
use crate::grid::Grid;
use ndarray::Array2;

/// The largest ratio of the stencil graph's path length to the straight
/// distance between two nodes: `1 / cos(theta / 2)` with `theta =
/// atan(1/2)` the widest angle between neighbouring stencil directions.
pub const STENCIL_STRETCH: f64 = 1.027_486_296_746_015_7;

/// No node.
const NONE: usize = usize::MAX;

/// Offsets of the stencil's edges (each used in both directions).
const STENCIL: [(isize, isize); 8] = [
    (1, 0),
    (0, 1),
    (1, 1),
    (1, -1),
    (2, 1),
    (1, 2),
    (2, -1),
    (1, -2),
];

/// `W1(a, b)` between two measures of equal mass on the nodes of `grid`
/// (exact in 1-D, the 16-neighbour graph distance in 2-D; see the module
/// documentation).
pub fn grid_w1(grid: &Grid, a: &Array2<f64>, b: &Array2<f64>) -> Result<f64> {
    if a.dim() != grid.shape() || b.dim() != grid.shape() {
        return Err(Error::invalid(
            "measures",
            format!("{:?} and {:?}", a.dim(), b.dim()),
            &format!("must both have the grid's shape {:?}", grid.shape()),
        ));
    }
    let (ma, mb) = (a.sum(), b.sum());
    let bad = a.iter().chain(b.iter()).any(|v| !v.is_finite() || *v < 0.0);
    if bad || (ma - mb).abs() > 1e-9 * ma.abs().max(mb.abs()).max(1e-300) {
        return Err(Error::invalid(
            "measures",
            format!("masses {ma} and {mb}"),
            "must be finite, non-negative and of equal mass",
        ));
    }
    if grid.dim == 1 {
        let mut cumulative = 0.0;
        let mut total = 0.0;
        for (x, y) in a.iter().zip(b.iter()) {
            cumulative += x - y;
            total += cumulative.abs();
        }
        return Ok(grid.h * total);
    }
    let supply: Vec<f64> = a.iter().zip(b.iter()).map(|(x, y)| x - y).collect();
    Ok(NetworkSimplex::on_grid(grid, &supply).solve())
}

/// The primal network simplex for an uncapacitated transshipment problem,
/// with a spanning tree stored as parent pointers, depths and child lists
/// (doubly linked, so a node leaves its parent's list in O(1)).
/// The tree starts as a star of artificial arcs to an extra root, priced so
/// high that no optimal flow keeps mass on them.
struct NetworkSimplex {
    /// Real arcs, then one artificial arc per node.
    tail: Vec<usize>,
    head: Vec<usize>,
    cost: Vec<f64>,
    flow: Vec<f64>,
    in_tree: Vec<bool>,
    /// Per node (the root last): its parent, the tree arc to it, whether
    /// that arc points up (from the node to its parent), depth, first
    /// child and its siblings.
    parent: Vec<usize>,
    pred: Vec<usize>,
    up: Vec<bool>,
    depth: Vec<usize>,
    first_child: Vec<usize>,
    next_sibling: Vec<usize>,
    prev_sibling: Vec<usize>,
    /// Potentials: an arc's reduced cost is `cost + pi[tail] - pi[head]`.
    pi: Vec<f64>,
    real_arcs: usize,
}

impl NetworkSimplex {
    fn on_grid(grid: &Grid, supply: &[f64]) -> Self {
        let (n0, n1) = grid.shape();
        let mut tail = Vec::with_capacity(16 * n0 * n1);
        let mut head = Vec::with_capacity(16 * n0 * n1);
        let mut cost = Vec::with_capacity(16 * n0 * n1);
        for i in 0..n0 {
            for j in 0..n1 {
                for &(di, dj) in &STENCIL {
                    let (a, b) = (i as isize + di, j as isize + dj);
                    if a < 0 || b < 0 || a >= n0 as isize || b >= n1 as isize {
                        continue;
                    }
                    let (from, to) = (i * n1 + j, a as usize * n1 + b as usize);
                    let len = grid.h * ((di * di + dj * dj) as f64).sqrt();
                    tail.extend([from, to]);
                    head.extend([to, from]);
                    cost.extend([len, len]);
                }
            }
        }
        let real_arcs = tail.len();
        let n = supply.len();
        let root = n;
        let longest = cost.iter().fold(0.0f64, |m, c| m.max(*c));
        // dearer than any path through the real arcs
        let artificial = (longest + 1.0) * (n as f64 + 1.0);
        let mut ns = NetworkSimplex {
            flow: vec![0.0; real_arcs + n],
            in_tree: vec![false; real_arcs + n],
            tail,
            head,
            cost,
            parent: vec![root; n + 1],
            pred: vec![usize::MAX; n + 1],
            up: vec![true; n + 1],
            depth: vec![1; n + 1],
            first_child: vec![NONE; n + 1],
            next_sibling: vec![NONE; n + 1],
            prev_sibling: vec![NONE; n + 1],
            pi: vec![0.0; n + 1],
            real_arcs,
        };
        ns.depth[root] = 0;
        for u in 0..n {
            ns.attach(u, root);
        }
        for (u, &s) in supply.iter().enumerate() {
            let e = ns.tail.len();
            ns.in_tree[e] = true;
            ns.pred[u] = e;
            ns.cost.push(artificial);
            if s >= 0.0 {
                ns.tail.push(u);
                ns.head.push(root);
                ns.flow[e] = s;
                ns.pi[u] = -artificial;
            } else {
                ns.tail.push(root);
                ns.head.push(u);
                ns.flow[e] = -s;
                ns.up[u] = false;
                ns.pi[u] = artificial;
            }
        }
        ns
    }

    /// Puts `u` first among the children of `p` (its parent is set apart).
    fn attach(&mut self, u: usize, p: usize) {
        let head = self.first_child[p];
        self.next_sibling[u] = head;
        self.prev_sibling[u] = NONE;
        if head != NONE {
            self.prev_sibling[head] = u;
        }
        self.first_child[p] = u;
    }

    /// Takes `u` out of its parent's child list.
    fn detach(&mut self, u: usize) {
        let (prev, next) = (self.prev_sibling[u], self.next_sibling[u]);
        if prev == NONE {
            self.first_child[self.parent[u]] = next;
        } else {
            self.next_sibling[prev] = next;
        }
        if next != NONE {
            self.prev_sibling[next] = prev;
        }
    }

    fn reduced_cost(&self, e: usize) -> f64 {
        self.cost[e] + self.pi[self.tail[e]] - self.pi[self.head[e]]
    }

    /// Block pricing: the most negative reduced cost in the first block
    /// (from `start`, wrapping) that holds one.
    fn entering(&self, start: &mut usize, block: usize, tolerance: f64) -> Option<usize> {
        let m = self.real_arcs;
        let (mut best, mut chosen) = (-tolerance, None);
        let mut seen = 0;
        let mut e = *start;
        while seen < m {
            if !self.in_tree[e] {
                let c = self.reduced_cost(e);
                if c < best {
                    best = c;
                    chosen = Some(e);
                }
            }
            seen += 1;
            e = if e + 1 == m { 0 } else { e + 1 };
            if seen % block == 0 && chosen.is_some() {
                break;
            }
        }
        *start = e;
        chosen
    }

    fn join(&self, mut u: usize, mut v: usize) -> usize {
        while u != v {
            if self.depth[u] >= self.depth[v] {
                u = self.parent[u];
            } else {
                v = self.parent[v];
            }
        }
        u
    }

    /// One pivot on the entering arc `e`.
    fn pivot(&mut self, e: usize) {
        let (first, second) = (self.tail[e], self.head[e]);
        let join = self.join(first, second);
        // the cycle: e from first to second, up from second to join, down to
        // first; arcs traversed against their direction limit the step.
        // Ties go to the second side, which keeps the tree strongly feasible
        let (mut delta, mut out, mut on_first) = (f64::INFINITY, usize::MAX, true);
        let mut u = first;
        while u != join {
            if self.up[u] && self.flow[self.pred[u]] < delta {
                delta = self.flow[self.pred[u]];
                (out, on_first) = (u, true);
            }
            u = self.parent[u];
        }
        let mut u = second;
        while u != join {
            if !self.up[u] && self.flow[self.pred[u]] <= delta {
                delta = self.flow[self.pred[u]];
                (out, on_first) = (u, false);
            }
            u = self.parent[u];
        }
        assert!(out != usize::MAX, "uncapacitated cycle of negative cost");
        if delta > 0.0 {
            self.flow[e] += delta;
            let mut u = first;
            while u != join {
                let a = self.pred[u];
                self.flow[a] += if self.up[u] { -delta } else { delta };
                u = self.parent[u];
            }
            let mut u = second;
            while u != join {
                let a = self.pred[u];
                self.flow[a] += if self.up[u] { delta } else { -delta };
                u = self.parent[u];
            }
        }
        let leaving = self.pred[out];
        self.flow[leaving] = 0.0;
        self.in_tree[leaving] = false;
        self.in_tree[e] = true;
        // the side of the tree that the leaving arc cuts off holds u_in; it
        // is re-rooted at u_in and hung below v_in by the entering arc
        let (u_in, v_in) = if on_first {
            (first, second)
        } else {
            (second, first)
        };
        // reverse the stem u_in -> ... -> out
        let (mut node, mut new_parent, mut new_pred, mut new_up) =
            (u_in, v_in, e, self.tail[e] == u_in);
        loop {
            let (p, a, dir) = (self.parent[node], self.pred[node], self.up[node]);
            self.detach(node);
            self.parent[node] = new_parent;
            self.pred[node] = new_pred;
            self.up[node] = new_up;
            self.attach(node, new_parent);
            if node == out {
                break;
            }
            (new_parent, new_pred, new_up) = (node, a, !dir);
            node = p;
        }
        // potentials and depths of the moved subtree
        let shift = if self.up[u_in] {
            self.pi[v_in] - self.cost[e] - self.pi[u_in]
        } else {
            self.pi[v_in] + self.cost[e] - self.pi[u_in]
        };
        let mut stack = vec![u_in];
        while let Some(u) = stack.pop() {
            self.pi[u] += shift;
            self.depth[u] = self.depth[self.parent[u]] + 1;
            let mut c = self.first_child[u];
            while c != NONE {
                stack.push(c);
                c = self.next_sibling[c];
            }
        }
    }

    /// Runs to optimality; returns the cost of the real arcs' flow plus the
    /// artificial flow left (none at the optimum) charged at its price.
    fn solve(mut self) -> f64 {
        let m = self.real_arcs;
        if m == 0 {
            return 0.0;
        }
        let block = ((m as f64).sqrt() as usize).max(16);
        let tolerance = 1e-12 * self.cost[..m].iter().fold(0.0f64, |a, c| a.max(*c));
        let mut start = 0;
        while let Some(e) = self.entering(&mut start, block, tolerance) {
            self.pivot(e);
        }
        self.flow.iter().zip(&self.cost).map(|(f, c)| f * c).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(grid: &Grid, i: usize, j: usize) -> Array2<f64> {
        let mut m = grid.zeros();
        m[[i, j]] = 1.0;
        m
    }

    #[test]
    fn point_masses_moved_along_stencil_directions_cost_their_distance() {
        let grid = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 20).unwrap();
        let h = grid.h;
        for (di, dj) in [(3usize, 0usize), (0, 5), (4, 4), (6, 3), (2, 4), (7, 2)] {
            let w = grid_w1(&grid, &point(&grid, 5, 5), &point(&grid, 5 + di, 5 + dj)).unwrap();
            let exact = h * ((di * di + dj * dj) as f64).sqrt();
            assert!(w >= exact - 1e-12, "({di},{dj}): {w} < {exact}");
            assert!(w <= STENCIL_STRETCH * exact + 1e-12, "({di},{dj}): {w}");
            if di == 0 || dj == 0 || di == dj || di == 2 * dj || dj == 2 * di {
                assert!((w - exact).abs() < 1e-12, "({di},{dj}): {w} vs {exact}");
            }
        }
    }

    #[test]
    fn the_stretch_is_the_widest_gap_between_stencil_directions() {
        let theta = 0.5f64.atan();
        assert!((STENCIL_STRETCH - 1.0 / (0.5 * theta).cos()).abs() < 1e-15);
    }

    #[test]
    fn one_dimensional_distance_is_the_cdf_formula() {
        let grid = Grid::on_box(&[0.0], &[1.0], 10).unwrap();
        let mut a = grid.zeros();
        let mut b = grid.zeros();
        a[[2, 0]] = 0.5;
        a[[3, 0]] = 0.5;
        b[[7, 0]] = 1.0;
        // 0.5 * 0.5 + 0.5 * 0.4
        let w = grid_w1(&grid, &a, &b).unwrap();
        assert!((w - 0.45).abs() < 1e-14, "{w}");
    }

    #[test]
    fn unequal_masses_and_wrong_shapes_are_refused() {
        let grid = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 8).unwrap();
        let a = point(&grid, 1, 1);
        let mut b = point(&grid, 2, 2);
        b *= 2.0;
        assert!(grid_w1(&grid, &a, &b).is_err());
        assert!(grid_w1(&grid, &a, &Array2::zeros((3, 3))).is_err());
    }

    fn density(grid: &Grid, f: impl Fn([f64; 2]) -> f64) -> Array2<f64> {
        let mut d = grid.evaluate(f);
        let total = d.sum();
        d /= total;
        d
    }

    fn gaussian(grid: &Grid, c: [f64; 2]) -> Array2<f64> {
        density(grid, |x| {
            (-((x[0] - c[0]).powi(2) / 0.5 + (x[1] - c[1]).powi(2) / 0.3)).exp()
        })
    }

    #[test]
    fn gaussians_of_equal_covariance_lie_their_mean_shift_apart() {
        let grid = Grid::on_box(&[-3.0, -3.0], &[3.0, 3.0], 48).unwrap();
        let h = grid.h;
        // node shifts along the stencil: exact
        for (di, dj) in [(4.0, 0.0), (3.0, 3.0), (4.0, 2.0)] {
            let s = [di * h, dj * h];
            let w = grid_w1(
                &grid,
                &gaussian(&grid, [-0.5, 0.0]),
                &gaussian(&grid, [-0.5 + s[0], s[1]]),
            )
            .unwrap();
            let exact = s[0].hypot(s[1]);
            // up to the box's truncation of the tails
            assert!(
                (w - exact).abs() < 1e-5 * exact,
                "shift {s:?}: {w} vs {exact}"
            );
        }
        // any shift: within the stencil's stretch (and the sampling's error)
        let s = [0.61, 0.23];
        let w = grid_w1(&grid, &gaussian(&grid, [0.0, 0.0]), &gaussian(&grid, s)).unwrap();
        let exact = s[0].hypot(s[1]);
        assert!(
            w > 0.99 * exact && w < 1.01 * STENCIL_STRETCH * exact,
            "{w} vs {exact}"
        );
    }

    #[test]
    fn a_translated_density_lies_its_translation_apart() {
        let grid = Grid::on_box(&[-3.0, -3.0], &[3.0, 3.0], 40).unwrap();
        let h = grid.h;
        // a ring plus an off-centre bump, moved by a knight's offset of 6 x 3 cells
        let shape = |x: [f64; 2]| {
            let r = x[0].hypot(x[1]);
            (-8.0 * (r - 1.0).powi(2)).exp()
                + 0.5 * (-4.0 * ((x[0] - 0.6).powi(2) + x[1].powi(2))).exp()
        };
        let a = density(&grid, |x| shape([x[0] + 1.0, x[1] + 0.5]));
        let b = density(&grid, |x| {
            shape([x[0] + 1.0 - 6.0 * h, x[1] + 0.5 - 3.0 * h])
        });
        let w = grid_w1(&grid, &a, &b).unwrap();
        let exact = h * 45f64.sqrt();
        // the box clips a little of the ring's tail
        assert!((w - exact).abs() < 1e-3 * exact, "{w} vs {exact}");
        assert_eq!(grid_w1(&grid, &a, &a).unwrap(), 0.0);
    }
}
