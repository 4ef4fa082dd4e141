//! The command line: outputs of a solve, and one clear error line with a
//! non-zero exit for every kind of bad input.

mod common;

use common::{proxflow, summary};
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = common::scratch("cli", name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn solve_writes_summary_fields_and_figures() {
    let out = scratch("solve");
    let o = proxflow(&[
        "solve",
        "--case",
        "dirac-2d",
        "--grid",
        "48",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = summary(&out);
    for key in [
        "case",
        "method",
        "grid",
        "objective",
        "kinetic_energy",
        "terminal_cost",
        "hj_residual",
        "max_speed",
        "speed_bound",
        "iterations",
        "converged",
        "stop_reason",
        "wall_time_s",
        "exact_objective",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}");
    }
    let j = summary["objective"].as_f64().unwrap();
    let e = summary["exact_objective"].as_f64().unwrap();
    assert!((j - e).abs() < 1e-2 * e);
    for f in [
        "rho0.npy",
        "rho_T.npy",
        "U0.npy",
        "phi.npy",
        "density.png",
        "potentials.png",
    ] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f} missing or empty");
    }
    // the arrays load back with the grid's shape
    let rho: ndarray::Array2<f64> = ndarray_npy::read_npy(out.join("rho_T.npy")).unwrap();
    assert_eq!(rho.dim(), (49, 49));
    assert!((rho.sum() - 1.0).abs() < 1e-12);
}

#[test]
fn eulerian_method_solves_through_the_same_command() {
    let out = scratch("eulerian");
    let o = proxflow(&[
        "solve",
        "--case",
        "shift-near-2d",
        "--grid",
        "32",
        "--method",
        "eulerian",
        "--no-plot",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = summary(&out);
    assert_eq!(summary["method"], "eulerian");
    let j = summary["objective"].as_f64().unwrap();
    let e = summary["exact_objective"].as_f64().unwrap();
    assert!((j - e).abs() < 2e-2 * e, "J {j} vs {e}");
    let bad = proxflow(&["solve", "--case", "shift-near-2d", "--method", "bogus"]);
    assert!(!bad.status.success());
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    let dir = scratch("bad");
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "[problem]\ndim = 2\nalpha = -1\n").unwrap();
    let neg_alpha = dir.join("neg.toml");
    std::fs::write(
        &neg_alpha,
        "[problem]\ndim = 1\nalpha = -1.0\nsource = { kind = \"gaussian\", mean = [0.0], std = 1.0 }\n\
         target = { kind = \"dirac\", at = [0.0] }\n[grid]\nlo = [-4.0]\nhi = [4.0]\ncells = 64\n",
    )
    .unwrap();
    let bad_npy = dir.join("rho.npy");
    ndarray_npy::write_npy(&bad_npy, &ndarray::Array2::<f64>::zeros((3, 3))).unwrap();
    let npy_cfg = dir.join("npy.toml");
    std::fs::write(
        &npy_cfg,
        format!(
            "[problem]\ndim = 2\nalpha = 0.5\nlipschitz = 1.0\nsource = {{ kind = \"gaussian\", mean = [0.0, 0.0], std = 1.0 }}\n\
             target = {{ kind = \"npy\", path = \"{}\" }}\n[grid]\nlo = [-4.0, -4.0]\nhi = [4.0, 4.0]\ncells = 16\n",
            bad_npy.display()
        ),
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["solve".into(), "--case".into(), "comet".into()],
            "unknown case",
        ),
        (
            vec![
                "solve".into(),
                "--case".into(),
                "dirac-1d".into(),
                "--grid".into(),
                "3".into(),
            ],
            "grid",
        ),
        (
            vec![
                "solve".into(),
                "--config".into(),
                bad_toml.display().to_string(),
            ],
            "malformed config",
        ),
        (
            vec![
                "solve".into(),
                "--config".into(),
                neg_alpha.display().to_string(),
            ],
            "alpha",
        ),
        (
            vec![
                "solve".into(),
                "--config".into(),
                "/nonexistent/x.toml".into(),
            ],
            "i/o error",
        ),
        (
            vec![
                "solve".into(),
                "--config".into(),
                npy_cfg.display().to_string(),
                "--no-plot".into(),
            ],
            "does not match the grid",
        ),
        (
            vec![
                "solve".into(),
                "--case".into(),
                "dirac-1d".into(),
                "--tolerance".into(),
                "0".into(),
            ],
            "tolerance",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::assert_refused(&args, &proxflow(&args), needle);
    }
}

/// `proxflow verify` writes the summary keys each study promises.
#[test]
fn verify_studies_write_their_summaries() {
    let runs: [(&str, Vec<&str>, Vec<&str>); 4] = [
        (
            "scaling",
            vec!["--case", "shift-near-2d", "--grids", "32,64"],
            vec!["rows", "case"],
        ),
        (
            "uniqueness",
            vec![
                "--case",
                "line-2d",
                "--grid",
                "24",
                "--methods",
                "dual",
                "--starts",
                "2",
            ],
            vec!["max_pairwise_l1", "max_pairwise_grad_u"],
        ),
        (
            "straightness",
            vec![
                "--case",
                "dirac-2d",
                "--grids",
                "24",
                "--methods",
                "dual",
                "--agents",
                "8",
                "--steps",
                "8",
            ],
            vec![
                "straightness_median",
                "straightness_p99",
                "speed_violation_fraction",
            ],
        ),
        (
            "ill-posed",
            vec![
                "--case",
                "line-2d",
                "--grids",
                "16,24",
                "--rounds",
                "2",
                "--alphas",
                "0.5",
                "--coarse-grid",
                "16",
                "--starts",
                "2",
            ],
            vec!["rows"],
        ),
    ];
    for (study, args, keys) in runs {
        let out = scratch(study);
        let mut all = vec!["verify", study];
        all.extend(args);
        all.extend(["--out", out.to_str().unwrap()]);
        let o = proxflow(&all);
        assert!(
            o.status.success(),
            "{study}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let summary = summary(&out);
        for key in keys {
            assert!(summary.get(key).is_some(), "{study}: summary lacks {key}");
        }
        if study == "scaling" {
            let rows = summary["rows"].as_array().unwrap();
            assert_eq!(rows.len(), 2);
            for row in rows {
                let gap = row["relative_gap"].as_f64().unwrap();
                assert!((0.0..=1e-4).contains(&gap), "gap {gap}");
                assert_eq!(row["lower_bound_bias"].as_f64(), Some(0.0));
                assert!(row["iterations"].as_u64().unwrap() > 0);
            }
        }
        if study == "ill-posed" {
            let rows = summary["rows"].as_array().unwrap();
            assert_eq!(rows.len(), 4);
            for row in rows {
                for key in [
                    "grid",
                    "lipschitz_bound",
                    "lipschitz_terminal",
                    "objective",
                    "max_speed",
                ] {
                    assert!(row.get(key).is_some(), "row lacks {key}");
                }
            }
            assert_eq!(rows[0]["lipschitz_bound"], "inf");
        }
        let pngs = std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "png")
            })
            .count();
        assert!(pngs >= 1, "{study}: no figure");
    }
}

/// A config of shift-near-2d on a 16-cell grid with the given `[solver]` table.
fn config_with_solver(dir: &std::path::Path, solver: &str) -> PathBuf {
    let path = dir.join("solver.toml");
    std::fs::write(
        &path,
        format!(
            "[problem]\ndim = 2\nalpha = 0.5\nlipschitz = 1.0\nsource = {{ kind = \"gaussian\", mean = [0.0, 0.0], std = 1.0 }}\n\
             target = {{ kind = \"gaussian\", mean = [2.0, 0.0], std = 1.0 }}\n[grid]\nlo = [-6.0, -6.0]\nhi = [6.0, 6.0]\ncells = 16\n\
             [solver]\n{solver}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_solver_section_applies_to_every_method() {
    let dir = scratch("solver-section");
    let config = config_with_solver(&dir, "max_iterations = 2");
    for method in ["dual", "eulerian", "particles"] {
        let out = dir.join(method);
        let args = [
            "solve",
            "--config",
            config.to_str().unwrap(),
            "--method",
            method,
            "--no-plot",
            "--out",
            out.to_str().unwrap(),
        ];
        let o = proxflow(&args);
        assert!(
            o.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = summary(&out);
        assert_eq!(s["method"], method);
        // the default caps (1000, 60, 200) would let every method converge here
        assert!(s["iterations"].as_u64().unwrap() <= 2, "{method}: {s}");
        assert!(
            s["stop_reason"]
                .as_str()
                .unwrap()
                .starts_with("iteration cap"),
            "{method}: {s}"
        );
    }
    // a key the chosen method does not take is refused before any work
    for (method, key) in [
        ("dual", "slices = 20"),
        ("eulerian", "ladder_ratio = 1.2"),
        ("particles", "transport = { cfl = 0.3 }"),
        ("eulerian", "max_iteration = 3"),
    ] {
        let config = config_with_solver(&dir, key);
        let out = dir.join(format!("refused-{method}"));
        let args = [
            "solve",
            "--config",
            config.to_str().unwrap(),
            "--method",
            method,
            "--out",
            out.to_str().unwrap(),
        ];
        let name = key.split(' ').next().unwrap();
        common::assert_refused(&args, &proxflow(&args), name);
        assert!(!out.exists(), "{method}: {} left behind", out.display());
    }
}
