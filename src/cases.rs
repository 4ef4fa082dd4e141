//! Built-in problems with their boxes and, where one exists, their closed-form
//! solution (KL, T = 1 throughout). Each box keeps the Gaussian truncation
//! below 1e-6 of mass.

use crate::divergence::FDivergence;
use crate::error::{Error, Result};
use crate::exact::{DiracCase, Exact, GaussKlCase, ShiftCase};
use crate::grid::Grid;
use crate::problem::{Distribution, Problem};

/// A named problem on a box, with its exact solution if known.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line on what it tests.
    pub summary: &'static str,
    /// The problem.
    pub problem: Problem,
    /// Lower corner of the computational box.
    pub lo: Vec<f64>,
    /// Upper corner of the computational box.
    pub hi: Vec<f64>,
    /// Closed-form solution, if any.
    pub exact: Option<Exact>,
}

impl Case {
    /// The grid with `cells` nodes on the longest axis.
    pub fn grid(&self, cells: usize) -> Result<Grid> {
        Grid::on_box(&self.lo, &self.hi, cells)
    }

    /// Default grid resolution for the dimension.
    pub fn default_cells(&self) -> usize {
        if self.problem.dim == 1 { 1024 } else { 128 }
    }
}

/// Names of all built-in cases.
pub const NAMES: [&str; 7] = [
    "dirac-1d",
    "dirac-2d",
    "shift-2d",
    "shift-near-2d",
    "gauss-kl-1d",
    "line-2d",
    "pinwheel-2d",
];

const ALPHA: f64 = 0.5;
const HORIZON: f64 = 1.0;

fn problem(dim: usize, target: Distribution, lipschitz: Option<f64>) -> Problem {
    Problem {
        dim,
        source: Distribution::standard_normal(dim),
        target,
        horizon: HORIZON,
        alpha: ALPHA,
        lipschitz,
        divergence: FDivergence::Kl,
    }
}

fn dirac_case(dim: usize) -> DiracCase {
    DiracCase {
        dim,
        alpha: ALPHA,
        horizon: HORIZON,
        lipschitz: 1.0,
    }
}

fn shift_case(target_x: f64) -> Case {
    let (name, summary) = if target_x > 4.0 {
        (
            "shift-2d",
            "N(0,I) -> N((5,0),I): far regime, the mean moves by LT/alpha = 2",
        )
    } else {
        (
            "shift-near-2d",
            "N(0,I) -> N((2,0),I): near regime, Huber quadratic branch",
        )
    };
    Case {
        name,
        summary,
        problem: problem(
            2,
            Distribution::Gaussian {
                mean: vec![target_x, 0.0],
                std: Some(1.0),
                cov: None,
            },
            Some(1.0),
        ),
        lo: vec![-6.0, -6.0],
        hi: vec![target_x + 6.0, 6.0],
        exact: Some(Exact::Shift(ShiftCase {
            sigma: 1.0,
            source_mean: [0.0, 0.0],
            target_mean: [target_x, 0.0],
            alpha: ALPHA,
            horizon: HORIZON,
            lipschitz: 1.0,
        })),
    }
}

/// Looks a built-in case up by name.
pub fn builtin(name: &str) -> Result<Case> {
    let square = |dim: usize| (vec![-6.0; dim], vec![6.0; dim]);
    Ok(match name {
        "dirac-1d" | "dirac-2d" => {
            let dim = if name == "dirac-1d" { 1 } else { 2 };
            let (lo, hi) = square(dim);
            Case {
                name: if dim == 1 { "dirac-1d" } else { "dirac-2d" },
                summary: "N(0,I) -> delta_0, L = 1: soft-thresholding, phi* = L|x|",
                problem: problem(dim, Distribution::Dirac { at: vec![0.0; dim] }, Some(1.0)),
                lo,
                hi,
                exact: Some(Exact::Dirac {
                    case: dirac_case(dim),
                    at: [0.0, 0.0],
                }),
            }
        }
        "shift-2d" => shift_case(5.0),
        "shift-near-2d" => shift_case(2.0),
        "gauss-kl-1d" => {
            let (lo, hi) = square(1);
            Case {
                name: "gauss-kl-1d",
                summary: "N(0,1) -> N(1,0.25), plain KL (no W1 proximal): affine map",
                problem: problem(
                    1,
                    Distribution::Gaussian {
                        mean: vec![1.0],
                        std: Some(0.5),
                        cov: None,
                    },
                    None,
                ),
                lo,
                hi,
                exact: Some(Exact::GaussKl(GaussKlCase {
                    source: (0.0, 1.0),
                    target: (1.0, 0.5),
                    alpha: ALPHA,
                    horizon: HORIZON,
                })),
            }
        }
        "line-2d" => {
            let (lo, hi) = square(2);
            Case {
                name: "line-2d",
                summary: "N(0,I) -> N(0,1) on the x-axis: a singular target, collapse across the line",
                problem: problem(
                    2,
                    Distribution::Subspace {
                        mean: vec![0.0, 0.0],
                        std: 1.0,
                        axes: vec![0],
                    },
                    Some(1.0),
                ),
                lo,
                hi,
                exact: Some(Exact::Subspace {
                    free: 1,
                    across: dirac_case(1),
                }),
            }
        }
        "pinwheel-2d" => {
            let (lo, hi) = square(2);
            Case {
                name: "pinwheel-2d",
                summary: "N(0,I) -> pinwheel (5 arms), L = 1: no closed form",
                problem: problem(
                    2,
                    Distribution::Dataset {
                        name: "pinwheel".into(),
                        samples: 400_000,
                        seed: 0,
                    },
                    Some(1.0),
                ),
                lo,
                hi,
                exact: None,
            }
        }
        _ => {
            return Err(Error::UnknownName {
                kind: "case".into(),
                name: name.into(),
                known: NAMES.join(", "),
            });
        }
    })
}

/// Every built-in case.
pub fn all() -> Vec<Case> {
    NAMES
        .iter()
        .map(|n| builtin(n).expect("built-in"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_exact_objectives() {
        // math.md section 3 / issue table, reproduced from the formulas
        let want = [
            ("dirac-1d", 0.247116),
            ("dirac-2d", 0.489358),
            ("shift-2d", 3.5),
            ("shift-near-2d", 2.0 / 3.0),
            ("gauss-kl-1d", 0.280978),
            ("line-2d", 0.247116),
        ];
        for (name, j) in want {
            let c = builtin(name).unwrap();
            let got = c.exact.unwrap().objective();
            assert!((got - j).abs() < 5e-7, "{name}: {got} vs {j}");
            c.problem.validate().unwrap();
        }
        assert!(builtin("pinwheel-2d").unwrap().exact.is_none());
        assert!(builtin("nope").is_err());
    }

    #[test]
    fn boxes_hold_the_gaussians() {
        for c in all() {
            let grid = c.grid(64).unwrap();
            let (rho0, q) = c.problem.masses(&grid).unwrap();
            let edge = |m: &ndarray::Array2<f64>| {
                let (n0, n1) = grid.shape();
                m.indexed_iter()
                    .filter(|((i, j), _)| {
                        *i == 0 || *i == n0 - 1 || (n1 > 1 && (*j == 0 || *j == n1 - 1))
                    })
                    .map(|(_, v)| *v)
                    .sum::<f64>()
            };
            assert!(edge(&rho0) < 1e-6 && edge(&q) < 1e-6, "{}", c.name);
        }
    }
}
