//! Distances between two samples `X ~ P`, `Y ~ Q` (row-major point sets):
//!
//! ```text
//! energy distance  E(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,
//! MMD^2(P, Q)      = E k(X, X') + E k(Y, Y') - 2 E k(X, Y),
//!                    k(x, y) = sum_s exp(-|x - y|^2 / (2 s^2)),
//! ```
//!
//! both with unbiased (U-statistic) within-sample terms, so two samples of one
//! law score zero on average.

use rayon::prelude::*;

fn distance_sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Euclidean distance of two points.
pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    distance_sq(a, b).sqrt()
}

/// Root mean square of the values (0 for none).
pub fn rms(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v * v, n + 1));
    (sum / n.max(1) as f64).sqrt()
}

/// Mean of `kernel(|a_i - b_j|^2)` over all pairs, or over `i != j` when `same`.
fn pair_mean(
    a: &[f64],
    b: &[f64],
    dim: usize,
    same: bool,
    kernel: &(dyn Fn(f64) -> f64 + Sync),
) -> f64 {
    let (n, m) = (a.len() / dim, b.len() / dim);
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let x = &a[i * dim..(i + 1) * dim];
            (0..m)
                .filter(|&j| !(same && i == j))
                .map(|j| kernel(distance_sq(x, &b[j * dim..(j + 1) * dim])))
                .sum::<f64>()
        })
        .sum();
    let pairs = if same { n * (n - 1) } else { n * m };
    total / pairs as f64
}

/// The energy distance of two samples (each at least 2 points).
pub fn energy_distance(x: &[f64], y: &[f64], dim: usize) -> f64 {
    let norm = |d2: f64| d2.sqrt();
    2.0 * pair_mean(x, y, dim, false, &norm)
        - pair_mean(x, x, dim, true, &norm)
        - pair_mean(y, y, dim, true, &norm)
}

/// The unbiased MMD^2 with a sum of Gaussian kernels of the given bandwidths.
pub fn mmd2(x: &[f64], y: &[f64], dim: usize, bandwidths: &[f64]) -> f64 {
    let k = |d2: f64| {
        bandwidths
            .iter()
            .map(|s| (-d2 / (2.0 * s * s)).exp())
            .sum::<f64>()
    };
    pair_mean(x, x, dim, true, &k) + pair_mean(y, y, dim, true, &k)
        - 2.0 * pair_mean(x, y, dim, false, &k)
}

/// Sliced Wasserstein-2: the root mean over `directions` random unit vectors
/// of the squared W2 distance of the projected samples (exact in 1-D: sorted
/// projections matched in order). Samples of unequal size are cut to the
/// smaller (both are i.i.d.).
pub fn sliced_w2<R: rand::Rng + ?Sized>(
    x: &[f64],
    y: &[f64],
    dim: usize,
    directions: usize,
    rng: &mut R,
) -> f64 {
    let n = (x.len() / dim).min(y.len() / dim);
    let mut total = 0.0;
    for _ in 0..directions {
        let mut v: Vec<f64> = (0..dim).map(|_| crate::data::normal(rng)).collect();
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        let project = |p: &[f64]| -> Vec<f64> {
            let mut out: Vec<f64> = p
                .chunks(dim)
                .take(n)
                .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
                .collect();
            out.sort_by(f64::total_cmp);
            out
        };
        let (a, b) = (project(x), project(y));
        total += a.iter().zip(&b).map(|(p, q)| (p - q).powi(2)).sum::<f64>() / n as f64;
    }
    (total / directions as f64).sqrt()
}

/// The bandwidths of the reference comparison (0.1, 0.3 and 1.0, summed).
pub const MMD_BANDWIDTHS: [f64; 3] = [0.1, 0.3, 1.0];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::normal;
    use rand::SeedableRng;

    #[test]
    fn gaussians_have_known_energy_distance() {
        // 1-D N(0,1) against N(m,1): E = 2 E|Z + m| - 2 E|Z'|, Z, Z' ~ N(0, 2).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 3000;
        let x: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let y: Vec<f64> = (0..n).map(|_| normal(&mut rng) + 1.0).collect();
        let s = 2f64.sqrt();
        let pdf = (-0.25f64).exp() / (std::f64::consts::PI).sqrt();
        // E|N(1, 2)| = s sqrt(2/pi) e^{-1/4} + (1 - 2 Phi(-1/s)).
        let mean_abs = s * pdf * s + libm::erf(1.0 / (s * 2f64.sqrt()));
        let exact = 2.0 * mean_abs - 2.0 * s * (2.0 / std::f64::consts::PI).sqrt();
        let e = energy_distance(&x, &y, 1);
        assert!((e - exact).abs() < 0.03, "{e} vs {exact}");
        let z: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        assert!(energy_distance(&x, &z, 1).abs() < 2e-3);
        assert!(mmd2(&x, &z, 1, &MMD_BANDWIDTHS).abs() < 2e-3);
        assert!(mmd2(&x, &y, 1, &MMD_BANDWIDTHS) > 0.1);
        // In 1-D every direction is +-1: W2 of N(0,1) and N(1,1) is 1.
        let w = sliced_w2(&x, &y, 1, 4, &mut rng);
        assert!((w - 1.0).abs() < 0.05, "{w}");
    }
}
