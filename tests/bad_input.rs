//! Bad input, class by class: sizes nobody can allocate, lengths read from a
//! file, values out of range, unknown keys and wrong types, a study's
//! parameters, a resumed run's total and flags. Every case exits with code 2, prints
//! one line that names the field, panics never and leaves no new file behind.

mod common;

use common::proxflow;
use proxflow::io::check_npy;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every path under `dir`.
fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// Runs `args` in `dir` and checks exit code 2, one line naming `needle`,
/// no panic and no new file.
fn rejects(dir: &Path, args: &[&str], needle: &str) {
    let before = listing(dir);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_proxflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    common::assert_refused(args, &o, needle);
    assert_eq!(listing(dir), before, "{args:?} left files behind");
}

fn config(dim: usize, problem: &str, grid: &str) -> String {
    let zeros = vec!["0.0"; dim].join(", ");
    let alpha = if problem.contains("alpha") {
        ""
    } else {
        "alpha = 0.5\n"
    };
    format!(
        "[problem]\ndim = {dim}\n{alpha}source = {{ kind = \"gaussian\", mean = [{zeros}], std = 1.0 }}\n{problem}\n[grid]\n{grid}\n"
    )
}

#[test]
fn configs_and_data_files_are_refused_with_the_field_named() {
    let dir = common::scratch("bad", "configs");
    std::fs::create_dir_all(&dir).unwrap();
    let box1 = "lo = [-4.0]\nhi = [4.0]\ncells = 64";
    let box2 = "lo = [-4.0, -4.0]\nhi = [4.0, 4.0]\ncells = 16";
    let dirac1 = "target = { kind = \"dirac\", at = [0.0] }";
    let files = [
        (
            "type.toml",
            config(1, &format!("alpha = \"0.5\"\n{dirac1}"), box1),
            "alpha = \"0.5\"",
        ),
        (
            "component.toml",
            config(
                1,
                "target = { kind = \"mixture\", components = [{ weight = 1.0, colour = 3, distribution = { kind = \"dirac\", at = [0.0] } }] }",
                box1,
            ),
            "colour",
        ),
        (
            "outside.toml",
            config(1, "target = { kind = \"dirac\", at = [9.0] }", box1),
            "target.at",
        ),
        (
            "line.toml",
            config(
                2,
                "target = { kind = \"subspace\", mean = [0.0, 7.5], std = 1.0, axes = [0] }",
                box2,
            ),
            "target.mean",
        ),
        (
            "hi.toml",
            config(
                2,
                "target = { kind = \"dirac\", at = [0.0, 0.0] }",
                "lo = [-4.0, -4.0]\nhi = [4.0]\ncells = 16",
            ),
            "grid.hi",
        ),
        (
            "huge-grid.toml",
            config(
                2,
                "target = { kind = \"dirac\", at = [0.0, 0.0] }",
                "lo = [-4.0, -4.0]\nhi = [4.0, 4.0]\ncells = 1000000",
            ),
            "bytes of memory",
        ),
        (
            "samples.toml",
            config(
                2,
                "target = { kind = \"dataset\", name = \"pinwheel\", samples = 1000000000000 }",
                box2,
            ),
            "target.samples",
        ),
        (
            "npy.toml",
            config(2, "target = { kind = \"npy\", path = \"huge.npy\" }", box2),
            "claims shape [100000, 100000]",
        ),
    ];
    common::write_npy_header(&dir.join("huge.npy"), "(100000, 100000)", 64);
    for (name, text, _) in &files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    for (name, _, needle) in &files {
        rejects(&dir, &["solve", "--config", name, "--out", "out"], needle);
    }
    let huge = u64::MAX.to_string();
    rejects(
        &dir,
        &[
            "solve", "--case", "dirac-1d", "--grid", &huge, "--out", "out",
        ],
        "grid",
    );
    rejects(
        &dir,
        &["train", "--data", "npy:huge.npy", "--out", "out"],
        "claims shape",
    );
}

#[test]
fn training_and_study_parameters_are_checked_before_any_work() {
    let dir = common::scratch("bad", "train");
    std::fs::create_dir_all(&dir).unwrap();
    rejects(
        &dir,
        &[
            "train",
            "--data",
            "moons",
            "--iterations",
            "0",
            "--out",
            "out",
        ],
        "`iterations`",
    );
    rejects(
        &dir,
        &[
            "train",
            "--data",
            "moons",
            "--batch",
            "1000000000000",
            "--out",
            "out",
        ],
        "`batch`",
    );
    rejects(
        &dir,
        &[
            "verify",
            "ill-posed",
            "--case",
            "line-2d",
            "--alphas=-1",
            "--out",
            "out",
        ],
        "`alphas`",
    );
    // each of these ran part of its work before it was refused, leaving a
    // half-written folder behind
    for (args, needle) in [
        (
            &["verify", "straightness", "--agents", "0", "--out", "out"][..],
            "`agents`",
        ),
        (
            &[
                "verify",
                "straightness",
                "--grids",
                "16",
                "--steps",
                "0",
                "--out",
                "out",
            ][..],
            "`steps`",
        ),
        (
            &["verify", "agreement", "--grids", "16,2", "--out", "out"][..],
            "`grid`",
        ),
        (
            &["demo", "--iterations", "0", "--out", "out"][..],
            "`iterations`",
        ),
        (
            &[
                "compare",
                "--case",
                "pinwheel-2d",
                "--grid",
                "2",
                "--out",
                "out",
            ][..],
            "`grid`",
        ),
        (
            &[
                "compare",
                "--case",
                "dirac",
                "--samples",
                "1",
                "--out",
                "out",
            ][..],
            "`samples`",
        ),
    ] {
        rejects(&dir, args, needle);
    }
}

#[test]
fn a_trained_run_refuses_a_smaller_total_an_oversized_sample_and_a_wrapped_length() {
    let dir = common::scratch("bad", "resume");
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    let o = proxflow(&[
        "train",
        "--data",
        "moons",
        "--widths",
        "8",
        "--critic-widths",
        "8",
        "--batch",
        "16",
        "--iterations",
        "3",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    rejects(
        &dir,
        &["train", "--resume", "run", "--iterations", "2"],
        "`iterations`",
    );
    rejects(
        &dir,
        &["sample", "--from", "run", "--n", "1000000000000"],
        "`n`",
    );
    // flags that contradict the stored run are named, not ignored
    for (flags, named) in [
        (&["--batch", "32", "--alpha", "0.3"][..], "alpha, batch"),
        (&["--out", "elsewhere"][..], "out"),
    ] {
        let mut args = vec!["train", "--resume", "run", "--iterations", "5"];
        args.extend_from_slice(flags);
        rejects(&dir, &args, named);
    }

    // a checkpoint whose value count wraps when multiplied by 8, re-hashed
    // so that the checksum holds
    let path = run.join("checkpoint.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let magic = b"PROXFLOW-CKPT-1\n".len();
    let header = u64::from_le_bytes(bytes[magic..magic + 8].try_into().unwrap()) as usize;
    let count = magic + 8 + header;
    bytes[count..count + 8].copy_from_slice(&(u64::MAX / 4).to_le_bytes());
    let body = bytes.len() - 8;
    let hash = bytes[..body]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    bytes[body..].copy_from_slice(&hash.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    rejects(
        &dir,
        &["train", "--resume", "run", "--iterations", "5"],
        &format!("expected {} values", u64::MAX / 4),
    );
}

#[test]
fn npy_headers_are_held_to_the_file_length() {
    let dir = common::scratch("bad", "npy");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, shape: &str, data: usize| {
        let path = dir.join(name);
        common::write_npy_header(&path, shape, data);
        path
    };
    assert_eq!(
        check_npy(&file("good.npy", "(3, 2)", 48)).unwrap(),
        vec![3, 2]
    );
    let huge = check_npy(&file("huge.npy", "(100000, 100000)", 64)).unwrap_err();
    assert!(
        huge.to_string().contains("claims shape [100000, 100000]"),
        "{huge}"
    );
    // a product that wraps in 64 bits, and a file one value short
    assert!(check_npy(&file("wrap.npy", "(4294967296, 4294967296, 16)", 8)).is_err());
    assert!(check_npy(&file("short.npy", "(3, 2)", 40)).is_err());
}
