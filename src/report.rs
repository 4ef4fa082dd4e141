//! Summaries of a [`Solution`]: the typed [`GridSummary`] written as
//! `summary.json` next to the fields (and read back by the studies and the
//! validation report), and the short table printed on the terminal.

use crate::error::{Error, Result};
use crate::mfg::{Diagnostics, MethodKind, Solution};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The summary of one grid solve: what was solved, on which grid, and every
/// figure of merit of [`Diagnostics`] (flattened into the same object).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridSummary {
    /// The case's name or the config's path.
    pub case: String,
    /// The method that solved it.
    pub method: MethodKind,
    /// Cells on the longest axis.
    pub grid: usize,
    /// Nodes per axis.
    pub nodes: Vec<usize>,
    /// Grid spacing.
    pub h: f64,
    /// The figures of merit.
    #[serde(flatten)]
    pub diagnostics: Diagnostics,
    /// The closed-form objective, where the case has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_objective: Option<f64>,
    /// `(J - J_exact) / J_exact`, where the case has a closed form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_error: Option<f64>,
}

impl GridSummary {
    /// The summary of `solution` (`cells` on the longest axis), with the
    /// relative error where the closed-form objective `exact` is known.
    pub fn new(case: &str, cells: usize, solution: &Solution, exact: Option<f64>) -> Self {
        let d = &solution.diagnostics;
        GridSummary {
            case: case.into(),
            method: solution.method,
            grid: cells,
            nodes: solution.grid.n[..solution.grid.dim].to_vec(),
            h: solution.grid.h,
            diagnostics: d.clone(),
            exact_objective: exact,
            relative_error: exact
                .map(|j| (d.objective - j) / j)
                .filter(|e| e.is_finite()),
        }
    }

    /// Writes it as `summary.json` in `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::io::write_json(&dir.join("summary.json"), self)
    }

    /// Reads a `summary.json` written by [`GridSummary::write`].
    pub fn read(path: &Path) -> Result<Self> {
        crate::io::read_json(path)
    }

    /// A short human-readable table, one `key value` line each.
    pub fn table(&self) -> String {
        let d = &self.diagnostics;
        let number = |f: f64| {
            if f != 0.0 && f.abs() < 1e-3 {
                format!("{f:.3e}")
            } else {
                format!("{f:.6}")
            }
        };
        let mut rows: Vec<(&str, String)> = vec![
            ("case", self.case.clone()),
            ("method", self.method.to_string()),
            ("grid", self.grid.to_string()),
            ("objective", number(d.objective)),
        ];
        if let Some(j) = self.exact_objective {
            rows.push(("exact_objective", number(j)));
        }
        if let Some(e) = self.relative_error {
            rows.push(("relative_error", number(e)));
        }
        rows.extend([
            ("kinetic_energy", number(d.kinetic_energy)),
            ("terminal_cost", number(d.terminal_cost)),
            ("dual_value", number(d.dual_value)),
            ("duality_gap", number(d.duality_gap)),
            ("hj_residual", number(d.hj_residual)),
            ("max_speed", number(d.max_speed)),
            ("speed_bound", number(d.speed_bound)),
            ("iterations", d.iterations.to_string()),
            ("converged", d.converged.to_string()),
            ("stop_reason", d.stop_reason.to_string()),
            ("wall_time_s", number(d.wall_time_s)),
        ]);
        rows.iter()
            .map(|(k, v)| format!("  {k:<16} {v}\n"))
            .collect()
    }
}

/// Writes a solution's fields, its [`GridSummary`] and (with `figures`) its
/// density and potential figures into `out`; returns the summary.
pub fn write_solution(
    out: &Path,
    case: &str,
    cells: usize,
    solution: &Solution,
    exact: Option<f64>,
    figures: bool,
) -> Result<GridSummary> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    solution.write_fields(out)?;
    let summary = GridSummary::new(case, cells, solution, exact);
    summary.write(out)?;
    if figures {
        let title = format!("{case}: density and characteristics");
        crate::plot::densities(solution, &title, &out.join("density.png"))?;
        crate::plot::potentials(solution, &out.join("potentials.png"))?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfg::{DualSolver, Silent, Solver};

    #[test]
    fn a_summary_round_trips_with_infinite_numbers() {
        let case = crate::cases::builtin("dirac-1d").unwrap();
        let grid = case.grid(64).unwrap();
        let mut solution = DualSolver::default()
            .solve(&case.problem, &grid, &mut Silent)
            .unwrap();
        solution.diagnostics.speed_bound = f64::INFINITY;
        solution.diagnostics.lower_bound_bias = f64::NAN;
        let summary = GridSummary::new("dirac-1d", 64, &solution, Some(1.0));
        let value = serde_json::to_value(&summary).unwrap();
        assert_eq!(value["speed_bound"], "inf");
        assert_eq!(value["lower_bound_bias"], "nan");
        assert_eq!(value["method"], "dual");
        assert!(
            value["stop_reason"]
                .as_str()
                .unwrap()
                .starts_with("converged")
        );
        let back: GridSummary = serde_json::from_value(value).unwrap();
        assert_eq!(back.diagnostics.objective, summary.diagnostics.objective);
        assert!(back.diagnostics.speed_bound.is_infinite());
        assert!(back.diagnostics.lower_bound_bias.is_nan());
        assert_eq!(
            back.diagnostics.stop_reason.to_string(),
            summary.diagnostics.stop_reason.to_string()
        );
        assert!(summary.table().contains("relative_error"));
    }
}
