//! `proxflow validate`: the validation suite. Runs every study and
//! regenerates `validation/report.md`, `validation/results.json` and the
//! figures in `validation/figures/`; the runs themselves (fields, checkpoints,
//! samples) go to `validation/runs/`, which is not committed.

use clap::Args;
use proxflow::cases;
use proxflow::chart::{Axes, Series, lines};
use proxflow::compare::{GridReference, RadialReference, train_config_exact, train_config_for};
use proxflow::error::{Error, Result};
use proxflow::mfg::MethodKind;
use proxflow::mfg::{DualSolver, Silent, Solver};
use proxflow::neural::train::read_history;
use proxflow::neural::{TrainConfig, Trainer, Variant};
use proxflow::studies::Study;
use proxflow::verify::Silent as Quiet;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Flags of `proxflow validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The reduced suite (about 30 minutes on 2 cores, 22 of them the digits).
    #[arg(long)]
    quick: bool,
    /// Output folder.
    #[arg(long, default_value = "validation")]
    out: PathBuf,
}

/// Sizes of one suite.
struct Plan {
    closed_forms: Vec<(&'static str, Vec<usize>)>,
    scaling: Vec<(&'static str, Vec<usize>)>,
    agreement_cases: Vec<&'static str>,
    agreement_grids: Vec<usize>,
    /// Starts, the dual's grid and the other methods' grid.
    uniqueness: (usize, usize, usize),
    uniqueness_cases: Vec<&'static str>,
    straightness_grids: Vec<usize>,
    ill_posed_grids: Vec<usize>,
    ill_posed_alphas: Vec<f64>,
    /// Grid and random starts of the no-W2 particle runs (each about 10 s at 48 here).
    no_w2: (usize, usize),
    neural_iterations: usize,
    variant_iterations: usize,
    /// Iterations of the image variants: the digits (quick, about 0.45 s an
    /// iteration here) or MNIST (full, about 2.5 s an iteration: the paper's
    /// 5,000 are a standalone `proxflow train --data mnist` run).
    image_iterations: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                closed_forms: vec![
                    ("dirac-1d", vec![256, 512, 1024]),
                    ("gauss-kl-1d", vec![256, 512]),
                    ("dirac-2d", vec![32, 64, 128]),
                    ("line-2d", vec![32, 64, 128]),
                    ("shift-near-2d", vec![32, 64]),
                    ("shift-2d", vec![32, 64, 128]),
                ],
                scaling: vec![
                    ("shift-near-2d", vec![32, 64, 128, 256]),
                    ("gauss-kl-1d", vec![512, 2048, 8192]),
                    ("dirac-2d", vec![32, 64, 128]),
                    ("shift-2d", vec![32, 64, 128, 256]),
                    ("pinwheel-2d", vec![64, 128, 256]),
                ],
                agreement_cases: vec!["dirac-2d", "line-2d"],
                agreement_grids: vec![32, 64],
                uniqueness: (3, 64, 32),
                uniqueness_cases: vec!["line-2d"],
                straightness_grids: vec![32, 64],
                ill_posed_grids: vec![32, 64],
                ill_posed_alphas: vec![0.5, 0.05, 0.005],
                no_w2: (40, 3),
                neural_iterations: 2000,
                variant_iterations: 1200,
                image_iterations: 1000,
            }
        } else {
            Plan {
                closed_forms: vec![
                    ("dirac-1d", vec![256, 512, 1024, 2048]),
                    ("gauss-kl-1d", vec![256, 512, 1024, 2048]),
                    ("dirac-2d", vec![64, 128, 256]),
                    ("line-2d", vec![64, 128, 256]),
                    ("shift-near-2d", vec![32, 64, 128]),
                    ("shift-2d", vec![64, 128, 256]),
                ],
                scaling: vec![
                    ("shift-near-2d", vec![64, 128, 256, 512]),
                    ("gauss-kl-1d", vec![2048, 8192, 32768]),
                    ("dirac-2d", vec![64, 128, 256]),
                    ("shift-2d", vec![64, 128, 256, 512]),
                    ("pinwheel-2d", vec![128, 256, 512]),
                ],
                agreement_cases: vec![
                    "dirac-2d",
                    "line-2d",
                    "shift-2d",
                    "shift-near-2d",
                    "pinwheel-2d",
                ],
                agreement_grids: vec![32, 64, 128, 256],
                uniqueness: (10, 128, 128),
                uniqueness_cases: vec!["line-2d", "pinwheel-2d"],
                straightness_grids: vec![32, 64, 128],
                ill_posed_grids: vec![32, 64, 128, 256],
                ill_posed_alphas: vec![0.5, 0.1, 0.01, 0.001],
                no_w2: (48, 5),
                neural_iterations: 10000,
                variant_iterations: 15000,
                image_iterations: 300,
            }
        }
    }
}

fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.fract() == 0.0 && x.abs() < 1e6 {
                format!("{x}")
            } else if x.abs() >= 1e-2 && x.abs() < 1e4 {
                format!("{x:.4}")
            } else {
                format!("{x:.2e}")
            }
        }
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A markdown table of `rows` (JSON objects) with the given columns.
fn table(rows: &[Value], columns: &[&str]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        columns.join(" | "),
        "---|".repeat(columns.len())
    );
    for r in rows {
        let cells: Vec<String> = columns.iter().map(|c| number(&r[*c])).collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}

/// Copies the PNGs of `from` whose names pass `keep` into
/// `figures/<name>-*.png`; returns their relative paths.
fn collect_figures(
    from: &Path,
    figures: &Path,
    name: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(|e| Error::io(from, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .filter(|p| keep(&p.file_name().expect("a file").to_string_lossy()))
        .collect();
    entries.sort();
    for p in entries {
        let file = format!(
            "{name}-{}",
            p.file_name().expect("a file").to_string_lossy()
        );
        std::fs::copy(&p, figures.join(&file)).map_err(|e| Error::io(&p, e))?;
        out.push(format!("figures/{file}"));
    }
    Ok(out)
}

/// One table per case of the agreement study (W1 is the metric on singular
/// targets, L1 on the others), then its observed orders.
fn agreement_section(summary: &Value) -> String {
    let mut out = String::new();
    for r in summary.as_array().cloned().unwrap_or_default() {
        let rows = |k: &str| r[k].as_array().cloned().unwrap_or_default();
        let metric = if r["singular"].as_bool() == Some(true) {
            "singular target: agreement in W1"
        } else {
            "absolutely continuous target: agreement in L1"
        };
        out.push_str(&format!(
            "### {} ({metric})\n\n{}\n{}\n",
            number(&r["case"]),
            table(
                &rows("rows"),
                &[
                    "method",
                    "grid",
                    "cell_width",
                    "objective",
                    "relative_error",
                    "relative_to_dual",
                    "w1_to_dual",
                    "l1_to_dual",
                    "wall_time_s"
                ]
            ),
            table(
                &rows("orders"),
                &["method", "from", "to", "objective", "w1", "l1"]
            )
        ));
    }
    out
}

fn images(paths: &[String]) -> String {
    paths.iter().map(|p| format!("![{p}]({p})\n")).collect()
}

/// `proxflow validate`.
pub fn run(args: ValidateArgs) -> Result<()> {
    let started = Instant::now();
    let announce = |section: &str| {
        println!(
            "{section} (elapsed {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    };
    let plan = Plan::new(args.quick);
    let out = args.out;
    let runs = out.join("runs");
    let figures = out.join("figures");
    for d in [&runs, &figures] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut results = serde_json::Map::new();
    let mut report = format!(
        "# proxflow validation report\n\nGenerated by `proxflow validate{}`; every number below comes from that run \
         (machine: {} logical cores). Suite: {}.\n\n",
        if args.quick { " --quick" } else { "" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if args.quick {
            "quick (reduced grids, starts and iterations)"
        } else {
            "full"
        }
    );

    // 1. Closed forms.
    announce("[1/8] closed forms");
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for (name, grids) in &plan.closed_forms {
        let case = cases::builtin(name)?;
        let exact = case.exact.map(|e| e.objective()).unwrap_or(f64::NAN);
        let mut last: Option<(f64, f64)> = None;
        let mut points = Vec::new();
        for &cells in grids {
            let grid = case.grid(cells)?;
            let sol = DualSolver::default().solve(&case.problem, &grid, &mut Silent)?;
            let d = &sol.diagnostics;
            let error = (d.objective - exact).abs() / exact;
            let order = last.map(|(e0, h0): (f64, f64)| (e0 / error).ln() / (h0 / grid.h).ln());
            last = Some((error, grid.h));
            points.push((grid.h, error));
            rows.push(json!({"case": name, "grid": cells, "h": grid.h, "objective": d.objective, "exact": exact,
                "relative_error": error, "observed_order": order, "duality_gap": d.duality_gap, "wall_time_s": d.wall_time_s}));
        }
        series.push(Series {
            label: name.to_string(),
            points,
        });
    }
    let path = figures.join("closed-forms-error.png");
    lines(
        &series,
        &Axes {
            title: "dual solver against the closed forms",
            x: "grid spacing h",
            y: "relative error of J",
            log_x: true,
            log_y: true,
        },
        &path,
    )?;
    report.push_str("## 1. Closed-form cases (dual solver)\n\nRelative error of the objective J against math.md section 3, observed order in h.\n\n");
    report.push_str(&table(
        &rows,
        &[
            "case",
            "grid",
            "objective",
            "exact",
            "relative_error",
            "observed_order",
            "duality_gap",
            "wall_time_s",
        ],
    ));
    report.push_str(&format!(
        "\n{}\n",
        images(&["figures/closed-forms-error.png".into()])
    ));
    results.insert("closed_forms".into(), Value::Array(rows));

    // 1b. Scaling of the dual method (the same code as `proxflow verify scaling`).
    announce("[1b/8] scaling of the dual method");
    report.push_str("## 1b. Scaling of the dual method\n\nIterations (all coarse-to-fine levels), Newton steps on the finest level, wall time, relative duality gap and its bias bound under refinement (`proxflow verify scaling`). gauss-kl-1d and shift-near-2d: the semi-discrete Newton ascent; shift-2d: the interior-point ascent (the W1 proximal binds); dirac-2d: the ladder (exact on a point target); pinwheel-2d: the guarded Newton on the grid itself with the plan of the L-Lipschitz envelope.\n\n");
    let mut scaling = Vec::new();
    for (name, grids) in &plan.scaling {
        let r = proxflow::verify::scaling(&cases::builtin(name)?, grids, &mut Quiet)?;
        let file = format!("scaling-{name}.png");
        r.plot(&figures.join(&file))?;
        report.push_str(&r.table());
        report.push_str(&format!("\n{}\n", images(&[format!("figures/{file}")])));
        scaling.push(r);
    }
    results.insert(
        "scaling".into(),
        serde_json::to_value(&scaling)
            .map_err(|e| Error::invalid("scaling", e, "not serialisable"))?,
    );

    // 2-5. The verification studies (the same code as `proxflow verify`).
    let mut studies: Vec<(&str, String, String, Study)> = vec![(
        "agreement",
        "agreement".into(),
        format!(
            "2. Agreement of the three grid methods ({})",
            plan.agreement_cases.join(", ")
        ),
        Study::Agreement {
            cases: plan.agreement_cases.iter().map(|c| c.to_string()).collect(),
            grids: plan.agreement_grids.clone(),
            methods: MethodKind::ALL.to_vec(),
        },
    )];
    for case in &plan.uniqueness_cases {
        studies.push((
            "uniqueness",
            format!("uniqueness-{case}"),
            format!("3. Uniqueness from random starts ({case})"),
            Study::Uniqueness {
                case: case.to_string(),
                grid: plan.uniqueness.1,
                coarse_grid: plan.uniqueness.2,
                starts: plan.uniqueness.0,
                methods: MethodKind::ALL.to_vec(),
                seed: 0,
            },
        ));
    }
    studies.extend([
        (
            "straightness",
            "straightness".into(),
            "4. Straight characteristics (pinwheel-2d)".into(),
            Study::Straightness {
                case: "pinwheel-2d".into(),
                grids: plan.straightness_grids.clone(),
                methods: vec![MethodKind::Dual, MethodKind::Eulerian],
                agents: 24,
                steps: 40,
            },
        ),
        (
            "ill_posed",
            "ill-posed".into(),
            "5. Ill-posedness without either proximal (line-2d)".into(),
            Study::IllPosed {
                case: "line-2d".into(),
                grids: plan.ill_posed_grids.clone(),
                rounds: 10,
                alphas: plan.ill_posed_alphas.clone(),
                coarse_grid: plan.no_w2.0,
                starts: plan.no_w2.1,
            },
        ),
    ]);
    for (key, folder, title, study) in studies {
        announce(&title);
        let dir = runs.join(&folder);
        let summary = study.run(&dir, &mut Quiet)?.summary;
        report.push_str(&format!("## {title}\n\n"));
        let rows = |k: &str| summary[k].as_array().cloned().unwrap_or_default();
        report.push_str(&match key {
            "agreement" => agreement_section(&summary),
            "uniqueness" => format!("Largest pairwise W1 of rho_T: {}, L1: {}; grad U(., 0): rho0-weighted RMS {}, max where rho0 >= 5% of its peak {} ({} starts).\n\n{}",
                number(&summary["max_pairwise_w1"]), number(&summary["max_pairwise_l1"]), number(&summary["max_pairwise_grad_u_rms"]), number(&summary["max_pairwise_grad_u"]), number(&summary["starts"]),
                table(&rows("methods"), &["method", "grid", "cell_width", "max_pairwise_w1", "max_pairwise_l1", "max_pairwise_grad_u_rms", "max_pairwise_grad_u", "wall_time_s"])),
            "straightness" => table(&rows("rows"), &["method", "grid", "agents", "straightness_median", "straightness_p99", "speed_violation_fraction", "max_speed", "speed_bound"]),
            _ => format!("Without W1 (rows with L = inf) the Lipschitz constant of U(., T) grows with order {} in 1/h.\n\n{}\nWithout W2 (particles, random starts):\n\n{}",
                number(&summary["lipschitz_growth_order"]),
                table(&rows("rows"), &["grid", "lipschitz_bound", "lipschitz_terminal", "objective", "kinetic_energy", "max_speed"]),
                table(&rows("no_w2"), &["alpha", "starts", "trajectory_spread", "terminal_spread", "objective"])),
        });
        let shown = if key == "agreement" {
            let mut all = Vec::new();
            for case in &plan.agreement_cases {
                let name = format!("agreement-{case}");
                all.extend(collect_figures(&dir.join(case), &figures, &name, |_| true)?);
            }
            all
        } else {
            let name = if key == "uniqueness" {
                folder.as_str()
            } else {
                key
            };
            collect_figures(&dir, &figures, name, |_| true)?
        };
        report.push_str(&format!("\n{}\n", images(&shown)));
        let entry = if key == "uniqueness" {
            folder.clone()
        } else {
            key.into()
        };
        results.insert(entry, summary);
    }

    // 6. Neural against exact.
    announce("[6/8] neural flow against the exact solution");
    report.push_str("## 6. Neural flow against the exact solution\n\n");
    let mut neural = Vec::new();
    let exact_runs: Vec<(&str, usize, usize)> =
        vec![("dirac", 2, 0), ("subspace", 7, 2), ("subspace", 12, 2)];
    for (data, dim, offset) in exact_runs {
        let mut c = train_config_exact(data, dim);
        c.iterations = plan.neural_iterations;
        let reference = RadialReference::for_config(&c, offset)?;
        let name = format!("{data}-{dim}d");
        let dir = runs.join(&name);
        let comparison = crate::compare::train_and_compare(
            &name,
            c,
            &reference,
            "closed form",
            &dir,
            5000,
            true,
        )?;
        neural.push(
            json!({"run": name, "iterations": plan.neural_iterations, "comparison": comparison}),
        );
    }
    let case = cases::builtin("pinwheel-2d")?;
    // The demo's settings, so that `proxflow demo` reproduces this row.
    let grid = case.grid(crate::DEMO_GRID)?;
    let options = proxflow::mfg::DualOptions {
        max_iterations: crate::DEMO_GRID_ITERATIONS,
        ..Default::default()
    };
    let solution = DualSolver::new(options).solve(&case.problem, &grid, &mut Silent)?;
    let mut c = train_config_for(&case.problem, "pinwheel")?;
    c.iterations = crate::DEMO_NEURAL_ITERATIONS;
    let reference = GridReference::new(&solution)?;
    let comparison = crate::compare::train_and_compare(
        "pinwheel-2d",
        c,
        &reference,
        "grid (dual solver)",
        &runs.join("pinwheel-2d"),
        5000,
        true,
    )?;
    neural.push(json!({"run": "pinwheel-2d", "iterations": crate::DEMO_NEURAL_ITERATIONS, "comparison": comparison}));
    let flat: Vec<Value> = neural.iter().map(|n| {
        let c = &n["comparison"];
        json!({"run": n["run"], "iterations": n["iterations"], "energy_distance": c["terminal_law"]["energy_distance"],
            "noise_floor": c["terminal_law"]["noise_floor_energy"], "endpoint_rms": c["endpoint_rms"], "gradient0_relative": c["gradient0_relative"],
            "kinetic": c["learned"]["kinetic"], "kinetic_exact": c["reference"]["kinetic"], "straightness_median": c["straightness_median"],
            "speed_violation_fraction": c["speed_violation_fraction"]})
    }).collect();
    report.push_str(&table(
        &flat,
        &[
            "run",
            "iterations",
            "energy_distance",
            "noise_floor",
            "endpoint_rms",
            "gradient0_relative",
            "kinetic",
            "kinetic_exact",
            "straightness_median",
            "speed_violation_fraction",
        ],
    ));
    for name in ["subspace-7d", "pinwheel-2d"] {
        let mut figs = collect_figures(&runs.join(name), &figures, name, |_| true)?;
        figs.extend(collect_figures(
            &runs.join(name).join("train"),
            &figures,
            &format!("{name}-train"),
            |f| f.contains("samples") || f.contains("orthogonal"),
        )?);
        report.push_str(&format!("\n{}", images(&figs)));
    }
    results.insert("neural_vs_exact".into(), Value::Array(neural));

    // 7-8. Variants in 7-D and on images.
    let variant_section = |title: &str,
                           key: &str,
                           data: &str,
                           dim: usize,
                           iterations: usize,
                           report: &mut String|
     -> Result<Value> {
        report.push_str(&format!("\n## {title}\n\n"));
        let mut rows = Vec::new();
        let mut curves = Vec::new();
        for (name, variant) in Variant::ALL {
            let mut c = TrainConfig::paper(data, dim);
            c.variant = variant;
            c.iterations = iterations;
            c.eval_every = (iterations / 20).max(10);
            if !variant.penalised() {
                c.lipschitz = None;
            }
            let dir = runs.join(format!("{key}-{name}"));
            let summary = Trainer::new(c)?.run(&dir, &mut proxflow::neural::Silent)?;
            proxflow::neural::figures::run_figures(&dir)?;
            let last = summary.final_diagnostics.clone();
            let history = read_history(&dir.join("history.csv"))?;
            let judge = summary.judge.as_ref();
            rows.push(json!({"variant": name, "status": match &summary.status { proxflow::neural::Status::Completed => "completed".to_string(),
                    proxflow::neural::Status::Diverged { iteration, .. } => format!("diverged at {iteration}") },
                "divergence": last.as_ref().map(|r| r.divergence), "kinetic": last.as_ref().map(|r| r.kinetic),
                "mean_kinetic": proxflow::neural::train::mean_kinetic(&history),
                "max_speed": last.as_ref().map(|r| r.max_speed), "wall_time_s": summary.wall_seconds,
                "confident": judge.map(|j| j.confident_fraction), "classes": judge.map(|j| j.classes_present),
                "frechet": judge.map(|j| j.frechet), "frechet_floor": judge.map(|j| j.frechet_floor)}));
            curves.push((name.to_string(), history));
        }
        let chart_dir = runs.join(key);
        std::fs::create_dir_all(&chart_dir).map_err(|e| Error::io(&chart_dir, e))?;
        proxflow::neural::figures::training_curves(&curves, &chart_dir)?;
        let mut columns = vec![
            "variant",
            "status",
            "divergence",
            "kinetic",
            "mean_kinetic",
            "max_speed",
            "wall_time_s",
        ];
        let image = proxflow::neural::train::is_image_data(data);
        if image {
            columns.extend(["confident", "classes", "frechet", "frechet_floor"]);
        }
        report.push_str(&table(&rows, &columns));
        let mut figs = collect_figures(&chart_dir, &figures, key, |_| true)?;
        if image {
            for (name, _) in Variant::ALL {
                figs.extend(collect_figures(
                    &runs.join(format!("{key}-{name}")),
                    &figures,
                    &format!("{key}-{name}"),
                    |f| f.contains("samples"),
                )?);
            }
        }
        report.push_str(&format!("\n{}", images(&figs)));
        Ok(Value::Array(rows))
    };
    announce("[7/8] the four variants, pinwheel in 7-D");
    let v7 = variant_section(
        "7. The four variants, pinwheel in 7-D",
        "variants-7d",
        "pinwheel",
        7,
        plan.variant_iterations,
        &mut report,
    )?;
    results.insert("variants_7d".into(), v7);
    // the quick suite takes the 8x8 digits, the full one the MNIST subset
    let (image_data, image_title) = if args.quick {
        (
            "digits",
            "8. The four variants on images (8x8 digits, 64-D, CNN)",
        )
    } else {
        (
            "mnist",
            "8. The four variants on images (MNIST subset, 784-D, CNN)",
        )
    };
    announce(&format!("[8/8] the four variants, {image_data} images"));
    let vm = variant_section(
        image_title,
        image_data,
        image_data,
        proxflow::neural::target::Target::load(image_data, None, 1, 0)?.dim,
        plan.image_iterations,
        &mut report,
    )?;
    results.insert(image_data.into(), vm);

    let wall = started.elapsed().as_secs_f64();
    report.push_str(&format!("\nTotal wall time: {wall:.0} s.\n"));
    results.insert("wall_time_s".into(), json!(wall));
    results.insert("quick".into(), json!(args.quick));
    proxflow::io::write_json(&out.join("results.json"), &Value::Object(results))?;
    let path = out.join("report.md");
    std::fs::write(&path, report).map_err(|e| Error::io(&path, e))?;
    println!("wrote {} ({wall:.0} s)", path.display());
    Ok(())
}
