//! File helpers that check what a file claims before anything is allocated.
//!
//! A `.npy` file is `\x93NUMPY`, a version, a header length and a Python dict
//! header (`descr`, `fortran_order`, `shape`), then `prod(shape) * itemsize`
//! bytes of data; [`check_npy`] reads the header and compares that product,
//! computed with checked arithmetic, with the file's length.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

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
