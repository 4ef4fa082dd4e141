//! Samplers of the paper's 2-D data sets (math.md section 5), zero-padded to
//! any dimension d >= 2.

use crate::error::{Error, Result};
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};
use std::f64::consts::PI;

/// A named 2-D data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSet {
    /// 5 arms, radial std 0.3, tangential std 0.1, rate 0.25, scale 1.4.
    Pinwheel,
    /// Two moons, noise 0.05, shifted by -(0.5, 0.2), scaled by 4.2.
    Moons,
    /// Swiss roll, noise 1.0, columns (0, 2), scaled by 0.35.
    SwissRoll,
    /// Two circles, factor 0.5, noise 0.08, scaled by 2.
    Circles,
    /// Eight Gaussians on the circle of radius 2, std 0.2.
    EightGaussians,
    /// Eight squares of side 0.5 in [-1, 1]^2.
    Checkerboard,
    /// Two interleaved spirals.
    TwoSpirals,
}

impl DataSet {
    /// Every data set with its name.
    pub const ALL: [(&'static str, DataSet); 7] = [
        ("pinwheel", DataSet::Pinwheel),
        ("moons", DataSet::Moons),
        ("swiss-roll", DataSet::SwissRoll),
        ("circles", DataSet::Circles),
        ("8gaussians", DataSet::EightGaussians),
        ("checkerboard", DataSet::Checkerboard),
        ("two-spirals", DataSet::TwoSpirals),
    ];

    /// Looks a data set up by name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name || n.replace('-', "_") == name)
            .map(|(_, d)| *d)
            .ok_or_else(|| Error::UnknownName {
                kind: "data set".into(),
                name: name.into(),
                known: Self::ALL
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// One 2-D sample.
    pub fn sample2<R: Rng + ?Sized>(&self, rng: &mut R) -> [f64; 2] {
        match self {
            DataSet::Pinwheel => {
                let arm = rng.random_range(0..5) as f64;
                let f0 = 1.0 + 0.3 * normal(rng);
                let f1 = 0.1 * normal(rng);
                let a = 2.0 * PI * arm / 5.0 + 0.25 * f0.exp();
                let (s, c) = a.sin_cos();
                [1.4 * (f0 * c + f1 * s), 1.4 * (-f0 * s + f1 * c)]
            }
            DataSet::Moons => {
                let t = PI * rng.random::<f64>();
                let p = if rng.random::<bool>() {
                    [t.cos(), t.sin()]
                } else {
                    [1.0 - t.cos(), 1.0 - t.sin() - 0.5]
                };
                [
                    4.2 * (p[0] + 0.05 * normal(rng) - 0.5),
                    4.2 * (p[1] + 0.05 * normal(rng) - 0.2),
                ]
            }
            DataSet::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * rng.random::<f64>());
                [
                    0.35 * (t * t.cos() + normal(rng)),
                    0.35 * (t * t.sin() + normal(rng)),
                ]
            }
            DataSet::Circles => {
                let t = 2.0 * PI * rng.random::<f64>();
                let r = if rng.random::<bool>() { 1.0 } else { 0.5 };
                [
                    2.0 * (r * t.cos() + 0.08 * normal(rng)),
                    2.0 * (r * t.sin() + 0.08 * normal(rng)),
                ]
            }
            DataSet::EightGaussians => {
                let t = 2.0 * PI * rng.random_range(0..8) as f64 / 8.0;
                [
                    2.0 * t.cos() + 0.2 * normal(rng),
                    2.0 * t.sin() + 0.2 * normal(rng),
                ]
            }
            DataSet::Checkerboard => {
                let x1: f64 = rng.random::<f64>() * 4.0 - 2.0;
                let x2 = rng.random::<f64>() - 2.0 * rng.random_range(0..2) as f64
                    + x1.floor().rem_euclid(2.0);
                [0.5 * x1, 0.5 * x2]
            }
            DataSet::TwoSpirals => {
                let n = rng.random::<f64>().sqrt() * 540.0 * 2.0 * PI / 360.0;
                let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                let x = sign * (-n.cos() * n + 0.5 * rng.random::<f64>());
                let y = sign * (n.sin() * n + 0.5 * rng.random::<f64>());
                [x / 3.0 + 0.1 * normal(rng), y / 3.0 + 0.1 * normal(rng)]
            }
        }
    }

    /// `n` samples embedded in `dim` dimensions by zero padding (row-major n x dim).
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, dim: usize, rng: &mut R) -> Result<Vec<f64>> {
        if dim < 2 {
            return Err(Error::invalid("dim", dim, "2-D data sets need dim >= 2"));
        }
        let mut out = vec![0.0; n * dim];
        for row in out.chunks_mut(dim) {
            let p = self.sample2(rng);
            row[0] = p[0];
            row[1] = p[1];
        }
        Ok(out)
    }
}

/// One standard normal draw.
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn samplers_are_seeded_bounded_and_padded() {
        for (name, d) in DataSet::ALL {
            let mut a = rand::rngs::StdRng::seed_from_u64(7);
            let mut b = rand::rngs::StdRng::seed_from_u64(7);
            let x = d.sample(2000, 7, &mut a).unwrap();
            assert_eq!(
                x,
                d.sample(2000, 7, &mut b).unwrap(),
                "{name} not reproducible"
            );
            assert!(x.chunks(7).all(|r| r[2..].iter().all(|v| *v == 0.0)));
            let max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(max < 8.0 && max > 0.5, "{name}: max |x| = {max}");
        }
        assert!(DataSet::from_name("pinwheel").is_ok());
        assert!(DataSet::from_name("spiral-galaxy").is_err());
    }

    #[test]
    fn checkerboard_fills_eight_squares() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let x = DataSet::Checkerboard.sample(20_000, 2, &mut rng).unwrap();
        for p in x.chunks(2) {
            assert!(p[0].abs() <= 1.0 && p[1].abs() <= 1.0);
            let (cx, cy) = ((p[0] / 0.5).floor() as i64, (p[1] / 0.5).floor() as i64);
            assert_eq!((cx + cy).rem_euclid(2), 0, "point {p:?} in a white square");
        }
    }
}
