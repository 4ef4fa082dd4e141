//! The ground floor for files: one atomic writer (temporary file, fsync,
//! rename, fsync of the folder) for JSON, `.npy` arrays and checkpoints, a
//! typed JSON reader, the serde helper for infinite numbers, and checks of
//! what a file claims before anything is allocated.
//!
//! A `.npy` file is `\x93NUMPY`, a version, a header length and a Python dict
//! header (`descr`, `fortran_order`, `shape`), then `prod(shape) * itemsize`
//! bytes of data; [`check_npy`] reads the header and compares that product,
//! computed with checked arithmetic, with the file's length.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;

/// Writes `bytes` to `path` through `path.tmp`, fsync and rename, so a crash
/// never leaves a half-written file under the final name.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().expect("a file name").to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // persist the rename itself; failure here does not lose the file
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::ArrayFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomically(path, (text + "\n").as_bytes())
}

/// Reads a JSON file written by [`write_json`] into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes an array as `.npy` (f64, C order), atomically.
pub fn write_npy<D: ndarray::Dimension>(path: &Path, array: &ndarray::Array<f64, D>) -> Result<()> {
    let mut bytes = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(array, &mut bytes).map_err(|e| Error::ArrayFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomically(path, &bytes)
}

/// Serde for an optional bound such as the Lipschitz bound L: `None` (no
/// bound) is the string `"inf"`, as an infinite bound would be written, and
/// `"inf"` or `null` read back as `None`.
pub mod optional_bound {
    use serde::{Deserializer, Serializer};

    /// Writes `Some(v)` as a number, `None` as `"inf"`.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
        super::maybe_infinite::serialize(&v.unwrap_or(f64::INFINITY), s)
    }

    /// Reads a number, `"inf"` (`None`) or `null` (`None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<f64>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wrapped(#[serde(with = "super::maybe_infinite")] f64);
        let v: Option<Wrapped> = serde::Deserialize::deserialize(d)?;
        Ok(v.map(|w| w.0).filter(|l| *l != f64::INFINITY))
    }
}

/// Serde for an `f64` that may be infinite or NaN (JSON has neither): finite
/// values as numbers, the others as the strings `"inf"`, `"-inf"`, `"nan"`.
pub mod maybe_infinite {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a finite value as a number, another as a string.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("nan")
        } else {
            s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
        }
    }

    /// Reads a number or one of the strings `"inf"`, `"-inf"`, `"nan"`.
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

/// Checks that the `.npy` file at `path` holds as many bytes as its header
/// claims; returns the shape.
pub fn check_npy(path: &Path) -> Result<Vec<usize>> {
    let bad = |message: String| Error::ArrayFile {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let length = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut lead = [0u8; 10];
    file.read_exact(&mut lead)
        .map_err(|_| bad("shorter than a .npy header".into()))?;
    if &lead[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, offset) = match lead[6] {
        1 => (u16::from_le_bytes([lead[8], lead[9]]) as u64, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            file.read_exact(&mut more)
                .map_err(|_| bad("truncated header length".into()))?;
            (
                u32::from_le_bytes([lead[8], lead[9], more[0], more[1]]) as u64,
                12u64,
            )
        }
        v => return Err(bad(format!("unknown .npy version {v}"))),
    };
    if offset + header_len > length {
        return Err(bad(format!(
            "header of {header_len} bytes in a file of {length}"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|_| bad("truncated header".into()))?;
    let header = String::from_utf8_lossy(&header);
    let itemsize = header
        .split("'descr'")
        .nth(1)
        .and_then(|rest| rest.split('\'').nth(1))
        .and_then(|descr| descr.trim_start_matches(['<', '>', '|', '=']).get(1..))
        .and_then(|size| size.parse::<u64>().ok())
        .ok_or_else(|| bad("header without a readable descr".into()))?;
    let shape: Vec<usize> = header
        .split("'shape'")
        .nth(1)
        .and_then(|rest| rest.split('(').nth(1))
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| bad("header without a shape".into()))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(format!("shape: {e}")))?;
    let needed = shape
        .iter()
        .try_fold(itemsize, |a, n| a.checked_mul(*n as u64));
    match needed {
        Some(bytes) if bytes <= length - offset - header_len => Ok(shape),
        _ => Err(bad(format!(
            "header claims shape {shape:?} of {itemsize}-byte values, the file holds {} bytes of data",
            length - offset - header_len
        ))),
    }
}
