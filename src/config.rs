//! TOML configuration of a grid solve: the problem, the grid and the solver
//! options. Every field is checked; unknown keys are errors.
//!
//! ```toml
//! [problem]
//! dim = 2
//! alpha = 0.5
//! horizon = 1.0
//! lipschitz = 1.0          # omit to switch the W1 proximal off
//! divergence = "kl"
//! source = { kind = "gaussian", mean = [0.0, 0.0], std = 1.0 }
//! target = { kind = "dirac", at = [0.0, 0.0] }
//!
//! [grid]
//! lo = [-6.0, -6.0]
//! hi = [6.0, 6.0]
//! cells = 128
//!
//! [solver]                 # optional: options of the chosen method
//! max_iterations = 200
//! tolerance = 1e-3
//! ```
//!
//! Every method takes `max_iterations` and `tolerance`; the other keys are
//! the fields of `DualOptions`, `EulerianOptions` or `ParticleOptions`, and
//! one the chosen method does not take is an error naming it.

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::problem::Problem;
use serde::Deserialize;
use std::path::Path;

/// The box and resolution of the grid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Lower corner.
    pub lo: Vec<f64>,
    /// Upper corner.
    pub hi: Vec<f64>,
    /// Cells on the longest axis.
    pub cells: usize,
}

/// A whole solve configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolveConfig {
    /// The problem.
    pub problem: Problem,
    /// The grid.
    pub grid: GridConfig,
    /// The `[solver]` table, read into the chosen method's options by
    /// `mfg::Method::configure` (a key that method does not take is an
    /// error there).
    #[serde(default)]
    pub solver: toml::Table,
}

impl SolveConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: SolveConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: located(text, &e),
        })?;
        config.problem.validate()?;
        config.grid()?;
        Ok(config)
    }

    /// The grid it describes.
    pub fn grid(&self) -> Result<Grid> {
        if self.grid.lo.len() != self.problem.dim {
            return Err(Error::DimensionMismatch {
                field: "grid.lo".into(),
                expected: self.problem.dim,
                found: self.grid.lo.len(),
            });
        }
        Grid::on_box(&self.grid.lo, &self.grid.hi, self.grid.cells)
    }
}

/// The parser's message with the line it points at, so that a wrong type
/// names its key: ``line 3 (`alpha = "0.5"`): invalid type: ...``.
fn located(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let number = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(number - 1).unwrap_or("").trim();
            format!("line {number} (`{line}`): {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[problem]
dim = 2
alpha = 0.5
lipschitz = 1.0
source = { kind = "gaussian", mean = [0.0, 0.0], std = 1.0 }
target = { kind = "dirac", at = [0.0, 0.0] }
[grid]
lo = [-6.0, -6.0]
hi = [6.0, 6.0]
cells = 32
"#;

    #[test]
    fn good_config_parses() {
        let c = SolveConfig::parse(GOOD, Path::new("good.toml")).unwrap();
        assert_eq!(c.grid().unwrap().n, [33, 33]);
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            (GOOD.replace("alpha = 0.5", "alpha = -0.5"), "alpha"),
            (GOOD.replace("cells = 32", "cells = 2"), "grid"),
            (
                GOOD.replace("lipschitz = 1.0", "lipschitz = 0.0"),
                "lipschitz",
            ),
            (GOOD.replace("at = [0.0, 0.0]", "at = [0.0]"), "target.at"),
            (GOOD.replace("dirac", "comet"), "comet"),
            (GOOD.replace("[grid]", "[grid]\nspacing = 3"), "spacing"),
            (GOOD.replace("dim = 2", "dim = 2\nhorizon = nan"), "horizon"),
            ("[problem\n".to_string(), "malformed"),
        ];
        for (text, needle) in cases {
            let msg = SolveConfig::parse(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "`{msg}` lacks `{needle}`");
        }
    }
}
