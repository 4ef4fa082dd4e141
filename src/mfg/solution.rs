//! What every MFG solver returns: densities and value functions on the grid,
//! the terminal discriminator phi* = U(., T), the map y*(x) where the method
//! has one, and the figures of merit. Diagnostics, plots and reports take a
//! `Solution`, never a solver.

use crate::error::{Error, Result};
use crate::grid::Grid;
use ndarray::Array2;
use std::path::Path;

/// Why a solver stopped (in JSON: its display text, read back by
/// [`std::str::FromStr`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// The fixed-point residual fell below the tolerance.
    Converged {
        /// The method's residual (the duality gap for the dual method).
        residual: f64,
    },
    /// The iteration cap was reached with this residual.
    MaxIterations {
        /// The method's residual at the last iteration.
        residual: f64,
    },
}

impl StopReason {
    /// `Converged` or `MaxIterations` with the final residual.
    pub fn new(converged: bool, residual: f64) -> Self {
        if converged {
            StopReason::Converged { residual }
        } else {
            StopReason::MaxIterations { residual }
        }
    }
}

impl serde::Serialize for StopReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StopReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for StopReason {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let residual = |rest: &str| {
            rest.strip_prefix("(residual ")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.parse::<f64>().ok())
                .ok_or_else(|| format!("not a stop reason: `{text}`"))
        };
        if let Some(rest) = text.strip_prefix("converged ") {
            Ok(StopReason::Converged {
                residual: residual(rest)?,
            })
        } else if let Some(rest) = text.strip_prefix("iteration cap reached ") {
            Ok(StopReason::MaxIterations {
                residual: residual(rest)?,
            })
        } else {
            Err(format!("not a stop reason: `{text}`"))
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Converged { residual } => write!(f, "converged (residual {residual:.2e})"),
            StopReason::MaxIterations { residual } => {
                write!(f, "iteration cap reached (residual {residual:.2e})")
            }
        }
    }
}

/// Figures of merit of a solution (math.md sections 1–3 and E). In JSON an
/// infinite or NaN number is the string `"inf"`, `"-inf"` or `"nan"`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Diagnostics {
    /// `J = kinetic_energy + quantisation + terminal_cost`.
    #[serde(with = "crate::io::maybe_infinite")]
    pub objective: f64,
    /// `alpha int int |v|^2/2 rho` (= `alpha/(2T) E|y* - x|^2` on straight lines).
    #[serde(with = "crate::io::maybe_infinite")]
    pub kinetic_energy: f64,
    /// `D_f^L(rho_T || Q)`.
    #[serde(with = "crate::io::maybe_infinite")]
    pub terminal_cost: f64,
    /// The part of J that the grid adds: in the dual method's semi-discrete
    /// plan, the spread of each Laguerre cell about its centroid (pixels of
    /// rho0 sent to nodes), which vanishes like h^2; 0 for other methods.
    #[serde(with = "crate::io::maybe_infinite")]
    pub quantisation: f64,
    /// Dual value `int HL_T phi d rho0 - Lambda_f(phi; Q)`.
    #[serde(with = "crate::io::maybe_infinite")]
    pub dual_value: f64,
    /// `objective - dual_value`, a convergence certificate.
    #[serde(with = "crate::io::maybe_infinite")]
    pub duality_gap: f64,
    /// How far `dual_value` may exceed the optimum it bounds (NaN where the
    /// method's dual value is no bound): the optimum lies in
    /// `[dual_value - lower_bound_bias, objective]`.
    #[serde(with = "crate::io::maybe_infinite")]
    pub lower_bound_bias: f64,
    /// rho-weighted RMS of `dU/dt - |grad U|^2/(2 alpha)` at t = T/2.
    #[serde(with = "crate::io::maybe_infinite")]
    pub hj_residual: f64,
    /// Largest agent speed `|y* - x| / T` on the support of rho0.
    #[serde(with = "crate::io::maybe_infinite")]
    pub max_speed: f64,
    /// `L / alpha` (infinite without the W1 proximal).
    #[serde(with = "crate::io::maybe_infinite")]
    pub speed_bound: f64,
    /// Outer iterations.
    pub iterations: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// Why the solver stopped.
    pub stop_reason: StopReason,
    /// `|mass(rho_T) - 1|`.
    #[serde(with = "crate::io::maybe_infinite")]
    pub mass_error: f64,
    /// Wall time of the solve.
    pub wall_time_s: f64,
    /// Coarse-to-fine levels of the dual method's Newton ascent, coarsest
    /// first (empty for other methods and algorithms).
    pub levels: Vec<super::Level>,
}

/// Density and value function at one time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Time in `[0, T]`.
    pub t: f64,
    /// Mass field rho(., t).
    pub rho: Array2<f64>,
    /// Value function U(., t).
    pub value: Array2<f64>,
}

/// U(., t_m) at increasing times `t_0 = 0 < ... < t_M = T`.
#[derive(Debug, Clone)]
pub struct ValueSeries {
    /// The times.
    pub times: Vec<f64>,
    /// U at each time.
    pub fields: Vec<Array2<f64>>,
}

impl ValueSeries {
    /// U(., t), linear in time between the stored levels.
    pub fn at(&self, t: f64) -> Array2<f64> {
        let last = self.times.len() - 1;
        let k = self.times.partition_point(|&s| s <= t).clamp(1, last);
        let (t0, t1) = (self.times[k - 1], self.times[k]);
        let w = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
        &self.fields[k - 1] * (1.0 - w) + &self.fields[k] * w
    }
}

/// A solution of the MFG system on a grid.
#[derive(Debug, Clone)]
pub struct Solution {
    /// Method that produced it.
    pub method: super::MethodKind,
    /// The grid.
    pub grid: Grid,
    /// Horizon T.
    pub horizon: f64,
    /// Kinetic weight.
    pub alpha: f64,
    /// Source masses.
    pub rho0: Array2<f64>,
    /// Target masses.
    pub target: Array2<f64>,
    /// Terminal masses rho(., T).
    pub rho_terminal: Array2<f64>,
    /// Terminal potential phi* = U(., T).
    pub phi: Array2<f64>,
    /// U(., 0).
    pub value0: Array2<f64>,
    /// The map y*(x) at every node (one field per axis), where defined.
    pub map: Option<[Array2<f64>; 2]>,
    /// Densities and values at stored times (including 0 and T).
    pub snapshots: Vec<Snapshot>,
    /// U on a fine time grid, for methods whose U is not the Hopf–Lax
    /// transform of phi* (`None`: U(., t) = HL_{T-t} phi*).
    pub values: Option<ValueSeries>,
    /// Figures of merit.
    pub diagnostics: Diagnostics,
}

impl Solution {
    /// rho(., t) at any t in [0, T]: the agents at `x + (t/T)(x_T - x)` on their
    /// straight characteristics (the stored snapshots where no map exists).
    pub fn density_at(&self, t: f64) -> Array2<f64> {
        let theta = (t / self.horizon).clamp(0.0, 1.0);
        match &self.map {
            Some(map) => super::characteristics::push_forward(&self.grid, &self.rho0, map, theta),
            None => self.nearest_snapshot(t).rho.clone(),
        }
    }

    /// U(., t) at any t in [0, T]: the stored series where the method has one,
    /// else the Hopf–Lax transform of phi* over `T - t`.
    pub fn value_at(&self, t: f64) -> Array2<f64> {
        if let Some(series) = &self.values {
            return series.at(t);
        }
        let span = (self.horizon - t).clamp(0.0, self.horizon);
        let mut ws = crate::hj::HopfLaxWorkspace::new(&self.grid);
        super::characteristics::value_at(
            &self.grid,
            &self.phi,
            self.alpha,
            span,
            &mut ws,
            crate::par::Parallelism::Rayon,
        )
    }

    /// grad U(., 0) at every node: `alpha (x - y*(x)) / T` where the method
    /// has a map (straight characteristics), else differences of U(., 0).
    pub fn initial_gradient(&self) -> [Array2<f64>; 2] {
        match &self.map {
            Some(map) => {
                let s = self.alpha / self.horizon;
                let g = |axis: usize| {
                    Array2::from_shape_fn(self.grid.shape(), |(i, j)| {
                        s * (self.grid.node(i, j)[axis] - map[axis][[i, j]])
                    })
                };
                [g(0), g(1)]
            }
            None => self.grid.gradient(&self.value0),
        }
    }

    fn nearest_snapshot(&self, t: f64) -> &Snapshot {
        self.snapshots
            .iter()
            .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
            .expect("at least two snapshots")
    }

    /// Writes `rho0.npy, rho_T.npy, U0.npy, phi.npy` (and the map) into `dir`.
    pub fn write_fields(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut fields: Vec<(&str, &Array2<f64>)> = vec![
            ("rho0.npy", &self.rho0),
            ("rho_T.npy", &self.rho_terminal),
            ("U0.npy", &self.value0),
            ("phi.npy", &self.phi),
            ("target.npy", &self.target),
        ];
        if let Some([mx, my]) = &self.map {
            fields.push(("map_x.npy", mx));
            fields.push(("map_y.npy", my));
        }
        for (name, field) in fields {
            crate::io::write_npy(&dir.join(name), field)?;
        }
        Ok(())
    }
}
