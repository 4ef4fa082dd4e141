//! One error enum for the whole crate. Every variant carries the data a user
//! needs to fix the input: the field, the value, the path.

use std::path::PathBuf;

/// Everything that can go wrong in proxflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is outside its admissible range.
    #[error("invalid value for `{field}`: {value} ({reason})")]
    InvalidParameter {
        /// The field or flag, as the user wrote it.
        field: String,
        /// The rejected value.
        value: String,
        /// What the value must satisfy.
        reason: String,
    },
    /// Two inputs disagree in dimension.
    #[error("dimension mismatch for `{field}`: expected {expected}, got {found}")]
    DimensionMismatch {
        /// The field whose length is wrong.
        field: String,
        /// The problem's dimension.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A name (case, distribution, divergence, data set) is not known.
    #[error("unknown {kind} `{name}`; known: {known}")]
    UnknownName {
        /// What was looked up (case, data set, ...).
        kind: String,
        /// The name given.
        name: String,
        /// Every known name, comma-separated.
        known: String,
    },
    /// A density is negative, non-finite or has no mass.
    #[error("invalid density `{field}`: {reason}")]
    InvalidDensity {
        /// The distribution's field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration file could not be parsed.
    #[error("malformed config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with the key's path.
        message: String,
    },
    /// A file could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An array file has the wrong content.
    #[error("bad array file {path}: {message}")]
    ArrayFile {
        /// The array file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A numerical method produced NaN or infinity.
    #[error("{method} diverged at iteration {iteration}: {quantity} = {value}")]
    Diverged {
        /// The method that diverged.
        method: String,
        /// The iteration at which it did.
        iteration: usize,
        /// The quantity that went bad.
        quantity: String,
        /// Its value.
        value: f64,
    },
    /// A training checkpoint is damaged or does not fit the run.
    #[error("bad checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A figure could not be drawn.
    #[error("plotting failed for {path}: {message}")]
    Plot {
        /// The figure's file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
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

/// Memory the operating system says is available (`MemAvailable` of
/// `/proc/meminfo`), or 16 GiB where that cannot be read.
pub fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb.saturating_mul(1024))
        .unwrap_or(16 << 30)
}

/// Checks before allocating that `count` items of `bytes_each` bytes fit in
/// the available memory; the error names `field`, its `value` and the bytes
/// needed.
pub fn check_memory(
    field: &str,
    value: impl std::fmt::Display,
    count: usize,
    bytes_each: usize,
) -> Result<()> {
    let available = available_memory();
    match (count as u64).checked_mul(bytes_each as u64) {
        Some(bytes) if bytes <= available => Ok(()),
        need => Err(Error::invalid(
            field,
            value,
            &format!(
                "needs {} bytes of memory, {available} are available",
                need.map_or_else(|| "more than 2^64".to_string(), |b| b.to_string())
            ),
        )),
    }
}
