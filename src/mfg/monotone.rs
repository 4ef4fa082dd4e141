//! One-dimensional transport with a convex cost by monotone rearrangement
//! (the north-west corner rule), exact for every convex k:
//!
//! ```text
//! OT_k(mu, nu) = int_0^1 k( |F_nu^{-1}(u) - F_mu^{-1}(u)| ) du
//! ```
//!
//! for node masses (atoms at the nodes), so the plan is feasible for the same
//! discrete problem as every other plan of the solver.

use crate::grid::Grid;
use ndarray::Array2;

/// Cumulative masses `(u_k, node index)` of the atoms with mass.
fn atoms(mass: &Array2<f64>) -> Vec<(f64, usize)> {
    let total: f64 = mass.sum();
    let mut u = 0.0;
    let mut out = Vec::new();
    for (i, m) in mass.iter().enumerate() {
        if *m > 0.0 {
            u += m / total;
            out.push((u, i));
        }
    }
    if let Some(last) = out.last_mut() {
        last.0 = 1.0;
    }
    out
}

/// `OT_k(mu, nu)` for node masses on a 1-D grid and a convex cost `k(|d|)`,
/// and the barycentric image of every node of `mu` under the monotone plan.
pub fn monotone_transport(
    grid: &Grid,
    mu: &Array2<f64>,
    nu: &Array2<f64>,
    cost: &dyn Fn(f64) -> f64,
) -> (f64, Vec<f64>) {
    let (a, b) = (atoms(mu), atoms(nu));
    let mut image = vec![0.0; grid.n[0]];
    let mut weight = vec![0.0; grid.n[0]];
    let (mut i, mut j, mut u) = (0, 0, 0.0);
    let mut total = 0.0;
    while i < a.len() && j < b.len() {
        let next = a[i].0.min(b[j].0);
        let du = next - u;
        if du > 0.0 {
            let (x, y) = (grid.coord(0, a[i].1), grid.coord(0, b[j].1));
            total += du * cost((y - x).abs());
            image[a[i].1] += du * y;
            weight[a[i].1] += du;
        }
        u = next;
        if a[i].0 <= next {
            i += 1;
        }
        if b[j].0 <= next {
            j += 1;
        }
    }
    let map = (0..grid.n[0])
        .map(|k| {
            if weight[k] > 0.0 {
                image[k] / weight[k]
            } else {
                grid.coord(0, k)
            }
        })
        .collect();
    (total, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_and_scaled_gaussians_have_the_closed_form_cost() {
        // W2^2 between N(0,1) and N(1, 0.5^2) is 1 + (1 - 0.5)^2 = 1.25
        let grid = Grid::on_box(&[-8.0], &[8.0], 4096).unwrap();
        let g = |m: f64, s: f64| grid.evaluate(|x| (-0.5 * ((x[0] - m) / s).powi(2)).exp());
        let (mu, nu) = (g(0.0, 1.0), g(1.0, 0.5));
        let (w2, map) = monotone_transport(&grid, &mu, &nu, &|d| d * d);
        assert!((w2 - 1.25).abs() < 2e-3, "{w2}");
        let i = grid.n[0] / 2 + 100;
        let x = grid.coord(0, i);
        assert!(
            (map[i] - (1.0 + 0.5 * x)).abs() < 1e-2,
            "map({x}) = {}",
            map[i]
        );
    }

    #[test]
    fn everything_to_a_point_costs_the_mean_cost() {
        let grid = Grid::on_box(&[-4.0], &[4.0], 64).unwrap();
        let mu = grid.evaluate(|x| (-x[0] * x[0]).exp());
        let mut nu = grid.zeros();
        nu[[32, 0]] = 1.0;
        let (c, map) = monotone_transport(&grid, &mu, &nu, &|d| d);
        let direct: f64 = mu
            .indexed_iter()
            .map(|((i, _), m)| m * grid.coord(0, i).abs())
            .sum::<f64>()
            / mu.sum();
        assert!((c - direct).abs() < 1e-12);
        assert!(
            map.iter()
                .enumerate()
                .all(|(k, y)| mu[[k, 0]] == 0.0 || y.abs() < 1e-12)
        );
    }
}
