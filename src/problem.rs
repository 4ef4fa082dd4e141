//! The W1–W2 proximal problem (math.md section 1):
//!
//! ```text
//! min_v  alpha int_0^T int |v|^2/2 rho dx dt + D_f^L(rho(., T) || Q),
//! rho_t + div(rho v) = 0,  rho(., 0) = rho0,
//! ```
//!
//! with its data (source, target, T, alpha, L, f) and their validation. One
//! `Problem` serves every solver.

use crate::data::DataSet;
use crate::divergence::FDivergence;
use crate::error::{Error, Result, require_non_negative, require_positive};
use crate::grid::{Grid, normalise_mass};
use ndarray::Array2;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A probability distribution given by name (TOML: `kind = "..."`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Distribution {
    /// Gaussian with a mean and either an isotropic `std` or a full `cov`.
    Gaussian {
        /// The mean, one entry per dimension.
        mean: Vec<f64>,
        /// Isotropic standard deviation (1 if neither it nor `cov` is given).
        #[serde(default)]
        std: Option<f64>,
        /// Full covariance, symmetric positive definite.
        #[serde(default)]
        cov: Option<Vec<Vec<f64>>>,
    },
    /// Point mass.
    Dirac {
        /// The point, inside the grid's box.
        at: Vec<f64>,
    },
    /// Uniform on the box `[lo, hi]`.
    Uniform {
        /// The lower corner.
        lo: Vec<f64>,
        /// The upper corner.
        hi: Vec<f64>,
    },
    /// Gaussian with standard deviation `std` along the listed `axes`, a point
    /// mass at `mean` across them (a Gaussian on a line or subspace).
    Subspace {
        /// The mean; across the free axes, the point the mass sits on.
        mean: Vec<f64>,
        /// Standard deviation along the free axes.
        std: f64,
        /// The free axes (0-based).
        axes: Vec<usize>,
    },
    /// Weighted mixture (weights are normalised).
    Mixture {
        /// The weighted components.
        components: Vec<Component>,
    },
    /// One of the 2-D data sets of math.md section 5, as a sample cloud.
    Dataset {
        /// The data set's name (see [`crate::data::DataSet::ALL`]).
        name: String,
        /// Samples deposited on the grid (cloud in cell).
        #[serde(default = "default_samples")]
        samples: usize,
        /// Seed of the sampler.
        #[serde(default)]
        seed: u64,
    },
    /// A density on the problem's grid read from a `.npy` file.
    Npy {
        /// The `.npy` file, one value per grid node.
        path: PathBuf,
    },
}

/// A point mass (on the axes not in `free`) must sit on the grid: its mass would otherwise be clamped
/// onto the boundary without a word.
fn inside_grid(grid: &Grid, field: &str, point: &[f64], free: &[usize]) -> Result<()> {
    let hi = grid.hi();
    for (a, x) in point.iter().enumerate().take(grid.dim) {
        if !free.contains(&a) && !(grid.lo[a]..=hi[a]).contains(x) {
            return Err(Error::invalid(
                field,
                format!("{point:?}"),
                &format!(
                    "lies outside the grid [{}, {}] on axis {a}",
                    grid.lo[a], hi[a]
                ),
            ));
        }
    }
    Ok(())
}

/// Most samples a `dataset` distribution may deposit on a grid.
pub const MAX_DATASET_SAMPLES: usize = 1_000_000_000;

fn default_samples() -> usize {
    200_000
}

/// One weighted component of a mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Non-negative weight.
    pub weight: f64,
    /// The component.
    pub distribution: Distribution,
}

impl Distribution {
    /// Whether some of the mass sits on a set of zero volume in `dim`
    /// dimensions (a point, or a line in 2-D).
    pub fn is_singular(&self, dim: usize) -> bool {
        match self {
            Distribution::Dirac { .. } => true,
            Distribution::Subspace { axes, .. } => axes.len() < dim,
            Distribution::Mixture { components } => components
                .iter()
                .any(|c| c.weight > 0.0 && c.distribution.is_singular(dim)),
            _ => false,
        }
    }

    /// Standard normal in `dim` dimensions.
    pub fn standard_normal(dim: usize) -> Self {
        Distribution::Gaussian {
            mean: vec![0.0; dim],
            std: Some(1.0),
            cov: None,
        }
    }

    /// Checks every field against `dim`; `field` names the distribution in errors.
    pub fn validate(&self, field: &str, dim: usize) -> Result<()> {
        let check_len = |name: &str, v: &[f64]| -> Result<()> {
            if v.len() != dim {
                return Err(Error::DimensionMismatch {
                    field: format!("{field}.{name}"),
                    expected: dim,
                    found: v.len(),
                });
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(Error::invalid(
                    &format!("{field}.{name}"),
                    x,
                    "must be finite",
                ));
            }
            Ok(())
        };
        match self {
            Distribution::Gaussian { mean, std, cov } => {
                check_len("mean", mean)?;
                match (std, cov) {
                    (Some(_), Some(_)) => {
                        return Err(Error::invalid(
                            &format!("{field}.cov"),
                            "both std and cov",
                            "give one of them",
                        ));
                    }
                    (Some(s), None) => {
                        require_positive(&format!("{field}.std"), *s)?;
                    }
                    (None, Some(c)) => {
                        if c.len() != dim || c.iter().any(|r| r.len() != dim) {
                            return Err(Error::DimensionMismatch {
                                field: format!("{field}.cov"),
                                expected: dim,
                                found: c.len(),
                            });
                        }
                        let m = nalgebra::DMatrix::from_fn(dim, dim, |i, j| c[i][j]);
                        if (0..dim).any(|i| (0..dim).any(|j| (c[i][j] - c[j][i]).abs() > 1e-12))
                            || m.cholesky().is_none()
                        {
                            return Err(Error::invalid(
                                &format!("{field}.cov"),
                                format!("{c:?}"),
                                "must be symmetric positive definite",
                            ));
                        }
                    }
                    (None, None) => {}
                }
            }
            Distribution::Dirac { at } => check_len("at", at)?,
            Distribution::Uniform { lo, hi } => {
                check_len("lo", lo)?;
                check_len("hi", hi)?;
                if lo.iter().zip(hi).any(|(a, b)| a >= b) {
                    return Err(Error::invalid(
                        &format!("{field}.hi"),
                        format!("{hi:?}"),
                        "must exceed lo on every axis",
                    ));
                }
            }
            Distribution::Subspace { mean, std, axes } => {
                check_len("mean", mean)?;
                require_positive(&format!("{field}.std"), *std)?;
                if let Some(a) = axes.iter().find(|a| **a >= dim) {
                    return Err(Error::invalid(
                        &format!("{field}.axes"),
                        a,
                        "axis index out of range",
                    ));
                }
            }
            Distribution::Mixture { components } => {
                if components.is_empty() {
                    return Err(Error::invalid(
                        &format!("{field}.components"),
                        "[]",
                        "a mixture needs a component",
                    ));
                }
                let mut total = 0.0;
                for (k, c) in components.iter().enumerate() {
                    let name = format!("{field}.components[{k}]");
                    total += require_non_negative(&format!("{name}.weight"), c.weight)?;
                    c.distribution.validate(&name, dim)?;
                }
                if total <= 0.0 {
                    return Err(Error::invalid(
                        &format!("{field}.components"),
                        total,
                        "weights must not all be zero",
                    ));
                }
            }
            Distribution::Dataset { name, samples, .. } => {
                DataSet::from_name(name)?;
                if dim != 2 {
                    return Err(Error::DimensionMismatch {
                        field: format!("{field}.name"),
                        expected: 2,
                        found: dim,
                    });
                }
                if *samples == 0 || *samples > MAX_DATASET_SAMPLES {
                    return Err(Error::invalid(
                        &format!("{field}.samples"),
                        samples,
                        &format!(
                            "must be in 1..={MAX_DATASET_SAMPLES} (about a minute of sampling)"
                        ),
                    ));
                }
            }
            Distribution::Npy { .. } => {}
        }
        Ok(())
    }

    /// Unnormalised mass of every grid cell (normalised by [`Problem::masses`]).
    fn raw_masses(&self, grid: &Grid, field: &str) -> Result<Array2<f64>> {
        let dim = grid.dim;
        Ok(match self {
            Distribution::Gaussian { mean, std, cov } => {
                let prec = match (std, cov) {
                    (_, Some(c)) => {
                        let m = nalgebra::DMatrix::from_fn(dim, dim, |i, j| c[i][j]);
                        m.try_inverse().expect("validated as positive definite")
                    }
                    (s, None) => {
                        let s = s.unwrap_or(1.0);
                        nalgebra::DMatrix::identity(dim, dim) / (s * s)
                    }
                };
                grid.evaluate(|x| {
                    let d = nalgebra::DVector::from_fn(dim, |i, _| x[i] - mean[i]);
                    (-0.5 * d.dot(&(&prec * &d))).exp()
                })
            }
            Distribution::Dirac { at } => {
                inside_grid(grid, &format!("{field}.at"), at, &[])?;
                let mut m = grid.zeros();
                grid.deposit(&mut m, [at[0], *at.get(1).unwrap_or(&0.0)], 1.0);
                m
            }
            Distribution::Uniform { lo, hi } => {
                let h = grid.h;
                grid.evaluate(|x| {
                    (0..dim)
                        .map(|a| {
                            let l = (x[a] - h / 2.0).max(lo[a]);
                            let u = (x[a] + h / 2.0).min(hi[a]);
                            ((u - l) / h).max(0.0)
                        })
                        .product()
                })
            }
            Distribution::Subspace { mean, std, axes } => {
                inside_grid(grid, &format!("{field}.mean"), mean, axes)?;
                // product of 1-D factors: Gaussian on free axes, CIC point elsewhere
                let factor = |axis: usize| -> Vec<f64> {
                    let n = grid.n[axis];
                    if axes.contains(&axis) {
                        (0..n)
                            .map(|i| {
                                (-0.5 * ((grid.coord(axis, i) - mean[axis]) / std).powi(2)).exp()
                            })
                            .collect()
                    } else {
                        let s = ((mean[axis] - grid.lo[axis]) / grid.h).clamp(0.0, (n - 1) as f64);
                        let i = (s.floor() as usize).min(n - 2);
                        let mut v = vec![0.0; n];
                        v[i] = 1.0 - (s - i as f64);
                        v[i + 1] += s - i as f64;
                        v
                    }
                };
                let f0 = factor(0);
                let f1 = if dim == 2 { factor(1) } else { vec![1.0] };
                Array2::from_shape_fn(grid.shape(), |(i, j)| f0[i] * f1[j])
            }
            Distribution::Mixture { components } => {
                let total: f64 = components.iter().map(|c| c.weight).sum();
                let mut m = grid.zeros();
                for (k, c) in components.iter().enumerate() {
                    let part = normalise_mass(
                        &format!("{field}.components[{k}]"),
                        c.distribution.raw_masses(grid, field)?,
                    )?;
                    m.scaled_add(c.weight / total, &part);
                }
                m
            }
            Distribution::Dataset {
                name,
                samples,
                seed,
            } => {
                let set = DataSet::from_name(name)?;
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                let mut m = grid.zeros();
                for _ in 0..*samples {
                    let p = set.sample2(&mut rng);
                    grid.deposit(&mut m, p, 1.0);
                }
                m
            }
            Distribution::Npy { path } => read_grid_density(path, grid)?,
        })
    }
}

/// Reads a non-negative density of the grid's shape from a `.npy` file
/// (`f64`, shape `[n0, n1]`, or `[n]` on a 1-D grid).
pub fn read_grid_density(path: &std::path::Path, grid: &Grid) -> Result<Array2<f64>> {
    let bad = |message: String| Error::ArrayFile {
        path: path.to_path_buf(),
        message,
    };
    crate::io::check_npy(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let arr: ndarray::ArrayD<f64> =
        ndarray_npy::ReadNpyExt::read_npy(file).map_err(|e| bad(e.to_string()))?;
    let want = grid.shape();
    let arr2 = match arr.ndim() {
        1 if want.1 == 1 => arr
            .into_shape_with_order((want.0, 1))
            .map_err(|e| bad(e.to_string()))?,
        2 => arr.into_dimensionality().map_err(|e| bad(e.to_string()))?,
        _ => {
            return Err(bad(format!(
                "expected a 2-D array, found {} dimensions",
                arr.ndim()
            )));
        }
    };
    if arr2.dim() != want {
        return Err(bad(format!(
            "shape {:?} does not match the grid {:?}",
            arr2.dim(),
            want
        )));
    }
    Ok(arr2.into_dimensionality().expect("2-D"))
}

/// Source, target, horizon, weights and divergence of one MFG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Space dimension.
    pub dim: usize,
    /// Source rho0.
    pub source: Distribution,
    /// Target Q.
    pub target: Distribution,
    /// Horizon T > 0.
    #[serde(default = "one")]
    pub horizon: f64,
    /// Kinetic weight alpha >= 0 (the W2 proximal).
    pub alpha: f64,
    /// Lipschitz bound L > 0 (the W1 proximal); `None` switches it off.
    #[serde(default)]
    pub lipschitz: Option<f64>,
    /// The f of the divergence.
    #[serde(default = "kl")]
    pub divergence: FDivergence,
}

fn one() -> f64 {
    1.0
}

fn kl() -> FDivergence {
    FDivergence::Kl
}

impl Problem {
    /// Checks every value and names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(Error::invalid("dim", self.dim, "must be at least 1"));
        }
        require_positive("horizon", self.horizon)?;
        require_non_negative("alpha", self.alpha)?;
        if let Some(l) = self.lipschitz {
            require_positive("lipschitz", l)?;
        }
        if self.lipschitz.is_none() && self.divergence == FDivergence::W1 {
            return Err(Error::invalid(
                "lipschitz",
                "none",
                "the W1 divergence needs a finite Lipschitz bound",
            ));
        }
        self.source.validate("source", self.dim)?;
        self.target.validate("target", self.dim)?;
        Ok(())
    }

    /// `c = L T / alpha`, the largest distance an agent travels.
    pub fn max_displacement(&self) -> f64 {
        match self.lipschitz {
            Some(l) if self.alpha > 0.0 => l * self.horizon / self.alpha,
            _ => f64::INFINITY,
        }
    }

    /// Source and target as unit-mass fields on `grid`.
    pub fn masses(&self, grid: &Grid) -> Result<(Array2<f64>, Array2<f64>)> {
        if grid.dim != self.dim {
            return Err(Error::DimensionMismatch {
                field: "grid".into(),
                expected: self.dim,
                found: grid.dim,
            });
        }
        let rho0 = normalise_mass("source", self.source.raw_masses(grid, "source")?)?;
        let q = normalise_mass("target", self.target.raw_masses(grid, "target")?)?;
        Ok((rho0, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Problem {
        Problem {
            dim: 2,
            source: Distribution::standard_normal(2),
            target: Distribution::Dirac { at: vec![0.0, 0.0] },
            horizon: 1.0,
            alpha: 0.5,
            lipschitz: Some(1.0),
            divergence: FDivergence::Kl,
        }
    }

    #[test]
    fn every_bad_value_is_named() {
        let cases: Vec<(Problem, &str)> = vec![
            (
                Problem {
                    horizon: 0.0,
                    ..base()
                },
                "horizon",
            ),
            (
                Problem {
                    alpha: -1.0,
                    ..base()
                },
                "alpha",
            ),
            (
                Problem {
                    lipschitz: Some(0.0),
                    ..base()
                },
                "lipschitz",
            ),
            (
                Problem {
                    horizon: f64::NAN,
                    ..base()
                },
                "horizon",
            ),
            (
                Problem {
                    target: Distribution::Dirac { at: vec![0.0] },
                    ..base()
                },
                "target.at",
            ),
            (
                Problem {
                    source: Distribution::Gaussian {
                        mean: vec![0.0, 0.0],
                        std: Some(-1.0),
                        cov: None,
                    },
                    ..base()
                },
                "source.std",
            ),
            (
                Problem {
                    target: Distribution::Dataset {
                        name: "galaxy".into(),
                        samples: 10,
                        seed: 0,
                    },
                    ..base()
                },
                "galaxy",
            ),
        ];
        for (p, field) in cases {
            let msg = p.validate().unwrap_err().to_string();
            assert!(msg.contains(field), "`{msg}` does not name `{field}`");
        }
        assert!(base().validate().is_ok());
    }

    #[test]
    fn npy_densities_are_checked() {
        let grid = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 8).unwrap();
        let dir = std::env::temp_dir().join(format!("proxflow-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, a: &Array2<f64>| {
            let path = dir.join(name);
            ndarray_npy::write_npy(&path, a).unwrap();
            path
        };
        let good = write("good.npy", &grid.evaluate(|x| 1.0 + x[0] * x[0]));
        let mut neg = grid.evaluate(|_| 1.0);
        neg[[3, 3]] = -0.5;
        let cases = [
            (write("neg.npy", &neg), "negative value -0.5"),
            (write("zero.npy", &grid.zeros()), "zero mass"),
            (
                write("shape.npy", &Array2::zeros((4, 9))),
                "does not match the grid",
            ),
            (dir.join("missing.npy"), "i/o error"),
        ];
        let problem = |path: std::path::PathBuf| Problem {
            target: Distribution::Npy { path },
            ..base()
        };
        assert!(problem(good).masses(&grid).is_ok());
        for (path, needle) in cases {
            let msg = problem(path).masses(&grid).unwrap_err().to_string();
            assert!(msg.contains(needle), "`{msg}` lacks `{needle}`");
        }
    }

    #[test]
    fn masses_are_normalised_and_dirac_sits_on_its_node() {
        let grid = Grid::on_box(&[-6.0, -6.0], &[6.0, 6.0], 32).unwrap();
        let (rho0, q) = base().masses(&grid).unwrap();
        assert!((rho0.sum() - 1.0).abs() < 1e-12 && (q.sum() - 1.0).abs() < 1e-12);
        let i0 = (-grid.lo[0] / grid.h).round() as usize;
        assert!((q[[i0, i0]] - 1.0).abs() < 1e-12);
        let mean: f64 = rho0
            .indexed_iter()
            .map(|((i, j), m)| m * grid.node(i, j)[0])
            .sum();
        assert!(mean.abs() < 1e-12);
    }
}
