//! Helpers of the command-line tests: run the binary, a fresh scratch folder,
//! the summary a command wrote.

#![allow(dead_code)] // each test file uses a subset of the helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `proxflow` with `args` and returns what it printed and its status.
pub fn proxflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxflow"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// A scratch path under the temporary folder, unique to this process and
/// removed if an earlier run left it.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("proxflow-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `DIR/summary.json`, parsed.
pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Asserts that a command was refused as bad input: exit code 2 and one
/// line on stderr that contains `needle`, no panic.
pub fn assert_refused(args: &[&str], o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
}

/// Writes a `.npy` file whose header claims `shape` (f64) over `data` zero bytes.
pub fn write_npy_header(path: &Path, shape: &str, data: usize) {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data));
    std::fs::write(path, bytes).unwrap();
}
