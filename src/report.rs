//! Summaries of a [`Solution`]: the `summary.json` written next to the fields
//! and the short table printed on the terminal.

use crate::error::{Error, Result};
use crate::mfg::Solution;
use serde_json::{Value, json};
use std::path::Path;

/// A number, or the string "inf" where JSON has no infinity.
fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("nan")
    } else if v > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

/// The summary of a solve as JSON.
pub fn summary(case: &str, cells: usize, solution: &Solution, exact: Option<f64>) -> Value {
    let d = &solution.diagnostics;
    let mut v = json!({
        "case": case,
        "method": solution.method,
        "grid": cells,
        "nodes": solution.grid.n[..solution.grid.dim],
        "h": solution.grid.h,
        "objective": number(d.objective),
        "kinetic_energy": number(d.kinetic_energy),
        "terminal_cost": number(d.terminal_cost),
        "quantisation": number(d.quantisation),
        "dual_value": number(d.dual_value),
        "duality_gap": number(d.duality_gap),
        "lower_bound_bias": number(d.lower_bound_bias),
        "hj_residual": number(d.hj_residual),
        "max_speed": number(d.max_speed),
        "speed_bound": number(d.speed_bound),
        "iterations": d.iterations,
        "converged": d.converged,
        "stop_reason": d.stop_reason.to_string(),
        "mass_error": number(d.mass_error),
        "wall_time_s": d.wall_time_s,
        "levels": d.levels,
    });
    if let Some(j) = exact {
        v["exact_objective"] = json!(j);
        v["relative_error"] = number((d.objective - j) / j);
    }
    v
}

/// Writes JSON through a temporary file and a rename.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::ArrayFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads a JSON file written by [`write_json`].
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A short human-readable table of a summary.
pub fn table(summary: &Value) -> String {
    let rows = [
        "case",
        "method",
        "grid",
        "objective",
        "exact_objective",
        "relative_error",
        "kinetic_energy",
        "terminal_cost",
        "dual_value",
        "duality_gap",
        "hj_residual",
        "max_speed",
        "speed_bound",
        "iterations",
        "converged",
        "stop_reason",
        "wall_time_s",
    ];
    let mut out = String::new();
    for key in rows {
        if let Some(v) = summary.get(key) {
            let text = match v {
                Value::Number(n) => {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    if !n.is_f64() {
                        n.to_string()
                    } else if f != 0.0 && f.abs() < 1e-3 {
                        format!("{f:.3e}")
                    } else {
                        format!("{f:.6}")
                    }
                }
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key:<16} {text}\n"));
        }
    }
    out
}

/// Serde for an `f64` that may be infinite (JSON has no infinity): finite
/// values as numbers, infinities as the strings `"inf"` / `"-inf"`.
pub mod maybe_infinite {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a finite value as a number, an infinite one as a string.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
        }
    }

    /// Reads a number or one of the strings `"inf"`, `"-inf"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(v),
            Raw::Text(t) => t.parse::<f64>().map_err(serde::de::Error::custom),
        }
    }
}
