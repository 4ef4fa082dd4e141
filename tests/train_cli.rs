//! `proxflow train` and `proxflow sample` from the command line: a run killed
//! with SIGKILL resumes from its last complete checkpoint and ends where an
//! uninterrupted run ends; `sample` honours a different dt; bad input gives a
//! clear error, never a panic.

mod common;

use common::{proxflow, summary};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    common::scratch("train", name)
}

const SMALL: [&str; 14] = [
    "--data",
    "moons",
    "--widths",
    "16,16",
    "--critic-widths",
    "16,16",
    "--batch",
    "64",
    "--eval-every",
    "20",
    "--quiet",
    "--seed",
    "5",
    "--checkpoint-every",
];

/// The small CNN run on the 8x8 digits (eval and checkpoint every 5).
const SMALL_CNN: [&str; 17] = [
    "--data",
    "digits",
    "--channels",
    "3,3",
    "--kernel",
    "5",
    "--widths",
    "16,16",
    "--critic-widths",
    "16,16",
    "--batch",
    "32",
    "--eval-every",
    "5",
    "--quiet",
    "--checkpoint-every",
    "1",
];

fn train_with(flags: &[&str], out: &Path, iterations: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxflow"));
    c.arg("train")
        .args(flags)
        .args(["--iterations", iterations, "--out"])
        .arg(out);
    c
}

/// Kills a run (SIGKILL) once its history reaches `kill_at` iterations,
/// resumes it and checks that samples and diagnostics (but the wall time)
/// equal those of an uninterrupted run. Returns the uninterrupted run's folder.
fn killed_and_resumed_matches_whole(
    name: &str,
    flags: &[&str],
    iterations: &str,
    kill_at: usize,
) -> PathBuf {
    let whole = scratch(&format!("{name}-whole"));
    let o = train_with(flags, &whole, iterations).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let killed = scratch(&format!("{name}-killed"));
    let mut child = train_with(flags, &killed, iterations).spawn().unwrap();
    let started = Instant::now();
    while checkpoint_iteration(&killed).unwrap_or(0) < kill_at {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("samples.npy").exists(),
        "the run finished before the kill"
    );
    let o = proxflow(&["train", "--resume", killed.to_str().unwrap(), "--quiet"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("resuming"), "{text}");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read(&whole, "samples.npy"), read(&killed, "samples.npy"));
    // Every diagnostic but the wall time agrees row by row.
    let without_wall = |d: &Path| -> Vec<String> {
        String::from_utf8(read(d, "history.csv"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.remove(1);
                f.join(",")
            })
            .collect()
    };
    assert_eq!(without_wall(&whole), without_wall(&killed));
    let _ = std::fs::remove_dir_all(killed);
    whole
}

#[test]
fn a_killed_cnn_run_on_digits_resumes_bit_for_bit() {
    let whole = killed_and_resumed_matches_whole("cnn", &SMALL_CNN, "20", 10);
    let _ = std::fs::remove_dir_all(whole);
}

fn checkpoint_iteration(dir: &Path) -> Option<usize> {
    let rows = std::fs::read_to_string(dir.join("history.csv")).ok()?;
    rows.lines().last()?.split(',').next()?.parse().ok()
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_one() {
    let mut flags = SMALL.to_vec();
    flags.push("1");
    let whole = killed_and_resumed_matches_whole("mlp", &flags, "120", 40);

    // A different dt is honoured: dt = T/10 gives other (but close) samples.
    let coarse = whole.join("coarse.npy");
    let fine = whole.join("fine.npy");
    for (dt, path) in [("0.2", &coarse), ("0.1", &fine)] {
        let o = proxflow(&[
            "sample",
            "--from",
            whole.to_str().unwrap(),
            "--n",
            "500",
            "--dt",
            dt,
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let a: ndarray::Array2<f64> = ndarray_npy::read_npy(&coarse).unwrap();
    let b: ndarray::Array2<f64> = ndarray_npy::read_npy(&fine).unwrap();
    assert_eq!(a.dim(), (500, 2));
    let gap = (&a - &b).mapv(f64::abs).mean().unwrap();
    assert!(
        gap > 1e-7 && gap < 0.5,
        "mean |x_T(dt) - x_T(dt/2)| = {gap}"
    );
    let _ = std::fs::remove_dir_all(whole);
}

#[test]
fn bad_training_input_is_a_clear_error() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let flat = dir.join("flat.npy");
    ndarray_npy::write_npy(&flat, &ndarray::Array1::<f64>::zeros(10)).unwrap();
    let idx = dir.join("labels.idx");
    std::fs::write(&idx, [0u8, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]).unwrap();
    let flat_arg = format!("npy:{}", flat.display());
    let idx_arg = format!("idx:{}", idx.display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--data", "comet"], "unknown data `comet`"),
        (vec!["train", "--data", &flat_arg], "2-D array"),
        (vec!["train", "--data", &idx_arg], "IDX"),
        (
            vec!["train", "--data", "idx:/nonexistent/file"],
            "i/o error",
        ),
        (vec!["train", "--data", "pinwheel", "--dt", "0.3"], "dt"),
        (vec!["train", "--data", "pinwheel", "--alpha=-1"], "alpha"),
        (
            vec!["train", "--data", "pinwheel", "--variant", "w3"],
            "variant",
        ),
        (
            vec!["train", "--data", "pinwheel", "--backend", "tpu"],
            "backend",
        ),
        (
            vec!["train", "--data", "pinwheel", "--f", "hellinger"],
            "hellinger",
        ),
        (vec!["train", "--data", "pinwheel", "--batch", "0"], "batch"),
        (
            vec!["train", "--data", "pinwheel", "--lr-decay", "0"],
            "lr-decay",
        ),
        (
            vec!["train", "--data", "pinwheel", "--average", "1"],
            "average",
        ),
        (
            vec!["train", "--data", "digits", "--dim", "7"],
            "dimension mismatch",
        ),
        (
            vec!["train", "--data", "pinwheel", "--model", "cnn"],
            "needs image data",
        ),
        (
            vec![
                "train", "--data", "digits", "--model", "mlp", "--kernel", "3",
            ],
            "the mlp has none",
        ),
        (
            vec!["train", "--data", "digits", "--kernel", "4"],
            "must be odd",
        ),
        (
            vec!["train", "--data", "digits", "--channels", "4,4,4,4"],
            "divisible by 16",
        ),
        (
            vec!["train", "--data", "digits", "--source", "uniform:1,0"],
            "LOW < HIGH",
        ),
        (
            vec!["train", "--data", "digits", "--source", "laplace"],
            "uniform:LOW,HIGH",
        ),
        (
            vec![
                "train",
                "--data",
                "pinwheel",
                "--variant",
                "w1",
                "--lipschitz",
                "inf",
            ],
            "finite L",
        ),
        (
            vec![
                "train",
                "--data",
                "pinwheel",
                "--backend",
                "wgpu",
                "--precision",
                "f64",
            ],
            "f32",
        ),
        (vec!["train", "--resume", "/nonexistent/run"], "i/o error"),
        (vec!["sample", "--from", "/nonexistent/run"], "i/o error"),
    ];
    for (args, needle) in cases {
        let o = proxflow(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compare_writes_its_summary_and_refuses_cases_without_a_counterpart() {
    let out = scratch("compare");
    let o = proxflow(&[
        "compare",
        "--case",
        "subspace",
        "--dim",
        "3",
        "--iterations",
        "150",
        "--samples",
        "500",
        "--lr-decay",
        "0.5",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    // The closed-form schedule, with the flag given overriding its default.
    let config = &s["training"]["config"];
    assert_eq!(config["potential_learning_rate"].as_f64(), Some(1e-3));
    assert_eq!(config["lr_decay"].as_f64(), Some(0.5));
    let c = &s["comparison"];
    for key in [
        "gradient0_rms",
        "value0_rms",
        "endpoint_rms",
        "straightness_median",
        "speed_violation_fraction",
    ] {
        assert!(
            c[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {}",
            c[key]
        );
    }
    assert!(c["terminal_law"]["energy_distance"].as_f64().is_some());
    assert_eq!(
        c["reference"]["kinetic"]
            .as_f64()
            .map(|k| (k * 1e4).round()),
        Some(500.0)
    );
    let o = proxflow(&["compare", "--case", "line-2d"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no neural counterpart"));
    let _ = std::fs::remove_dir_all(out);
}
