//! One error enum for the whole crate. Every variant carries the data a user
//! needs to fix the input: the field, the value, the path.

use std::path::PathBuf;

/// Everything that can go wrong in proxflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is outside its admissible range.
    #[error("invalid value for `{field}`: {value} ({reason})")]
    InvalidParameter {
        field: String,
        value: String,
        reason: String,
    },
    /// Two inputs disagree in dimension.
    #[error("dimension mismatch for `{field}`: expected {expected}, got {found}")]
    DimensionMismatch {
        field: String,
        expected: usize,
        found: usize,
    },
    /// A name (case, distribution, divergence, data set) is not known.
    #[error("unknown {kind} `{name}`; known: {known}")]
    UnknownName {
        kind: String,
        name: String,
        known: String,
    },
    /// A density is negative, non-finite or has no mass.
    #[error("invalid density `{field}`: {reason}")]
    InvalidDensity { field: String, reason: String },
    /// A configuration file could not be parsed.
    #[error("malformed config {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A file could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An array file has the wrong content.
    #[error("bad array file {path}: {message}")]
    ArrayFile { path: PathBuf, message: String },
    /// A numerical method produced NaN or infinity.
    #[error("{method} diverged at iteration {iteration}: {quantity} = {value}")]
    Diverged {
        method: String,
        iteration: usize,
        quantity: String,
        value: f64,
    },
    /// A training checkpoint is damaged or does not fit the run.
    #[error("bad checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A figure could not be drawn.
    #[error("plotting failed for {path}: {message}")]
    Plot { path: PathBuf, message: String },
}

/// Crate-wide result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Looks `name` up in a table of named choices; the error lists them all.
pub fn choose<T: Copy>(kind: &str, name: &str, table: &[(&str, T)]) -> Result<T> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| Error::UnknownName {
            kind: kind.into(),
            name: name.into(),
            known: table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        })
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(field: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        Error::InvalidParameter {
            field: field.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Rejects NaN/inf and values at or below `min` (strict) for a named field.
pub fn require_positive(field: &str, value: f64) -> Result<f64> {
    if !value.is_finite() || value <= 0.0 {
        return Err(Error::invalid(field, value, "must be a finite number > 0"));
    }
    Ok(value)
}

/// Rejects NaN/inf and negative values for a named field.
pub fn require_non_negative(field: &str, value: f64) -> Result<f64> {
    if !value.is_finite() || value < 0.0 {
        return Err(Error::invalid(field, value, "must be a finite number >= 0"));
    }
    Ok(value)
}
