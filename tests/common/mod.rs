//! Helpers of the command-line tests: run the binary, a fresh scratch folder,
//! the summary a command wrote.

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
