//! `proxflow compare`: train the neural flow on a problem with a known answer
//! and hold it against that answer.

use clap::Args;
use proxflow::cases;
use proxflow::compare::{
    COMPARE_ITERATIONS, Comparison, GridReference, RadialReference, Reference, compare,
    neural_counterpart, train_config_exact, train_config_for,
};
use proxflow::error::{Error, Result};
use proxflow::mfg::{DualSolver, Silent, Solver};
use proxflow::neural::{BackendKind, TrainConfig, Trainer};
use std::path::{Path, PathBuf};

/// Flags of `proxflow compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// `subspace` or `dirac` (exact in any --dim), or a 2-D grid case with a
    /// neural counterpart: pinwheel-2d, dirac-2d, shift-near-2d.
    #[arg(long)]
    case: String,
    /// Dimension of `subspace` (default 7) and `dirac` (default 2).
    #[arg(long)]
    dim: Option<usize>,
    /// Generator iterations.
    #[arg(long, default_value_t = COMPARE_ITERATIONS)]
    iterations: usize,
    /// Adam learning rate of the potential (default: 1e-3 for the closed
    /// forms, 3e-4 for grid cases; see docs/comparison.md).
    #[arg(long)]
    lr_potential: Option<f64>,
    /// Final fraction of both learning rates (exponential decay; 1 = constant;
    /// default: 1 for the closed forms, 0.1 for grid cases).
    #[arg(long)]
    lr_decay: Option<f64>,
    /// Cells of the grid solve (grid cases).
    #[arg(long, default_value_t = 128)]
    grid: usize,
    /// Seed of training and of the comparison points.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu | wgpu.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// Fresh source points of the comparison.
    #[arg(long, default_value_t = 5000)]
    samples: usize,
    /// Output folder (default out/compare-<case>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// `proxflow compare`.
pub fn run(args: CompareArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("out/compare-{}", args.case)));
    // every input is checked before the grid solve and before `out` exists
    let (mut config, grid_case) = match args.case.as_str() {
        "subspace" | "dirac" => {
            let default_dim = if args.case == "subspace" { 7 } else { 2 };
            (
                train_config_exact(&args.case, args.dim.unwrap_or(default_dim)),
                None,
            )
        }
        name => {
            let case = cases::builtin(name)?;
            let data = neural_counterpart(name).ok_or_else(|| {
                Error::invalid(
                    "case",
                    name,
                    "no neural counterpart; use subspace, dirac, pinwheel-2d, dirac-2d or shift-near-2d",
                )
            })?;
            let grid = case.grid(args.grid)?;
            (train_config_for(&case.problem, data)?, Some((case, grid)))
        }
    };
    config.iterations = args.iterations;
    if let Some(rate) = args.lr_potential {
        config.potential_learning_rate = rate;
    }
    if let Some(decay) = args.lr_decay {
        config.lr_decay = decay;
    }
    config.seed = args.seed;
    config.backend = args.backend;
    config.validate()?;
    if args.samples < 2 {
        return Err(Error::invalid(
            "samples",
            args.samples,
            "must be at least 2",
        ));
    }
    let grid_solution = match &grid_case {
        Some((case, grid)) => {
            println!(
                "solving {} on a {}-cell grid (dual solver)",
                case.name, args.grid
            );
            let solution = DualSolver::default().solve(&case.problem, grid, &mut Silent)?;
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            solution.write_fields(&out.join("grid"))?;
            Some(solution)
        }
        None => None,
    };
    let reference: Box<dyn Reference + '_> = match &grid_solution {
        Some(s) => Box::new(GridReference::new(s)?),
        None => Box::new(RadialReference::for_config(
            &config,
            usize::from(config.data == "subspace") * 2,
        )?),
    };
    let name = args.case.clone();
    let reference_kind = if grid_solution.is_some() {
        "grid (dual solver)"
    } else {
        "closed form"
    };
    train_and_compare(
        &name,
        config,
        reference.as_ref(),
        reference_kind,
        &out,
        args.samples,
        args.quiet,
    )?;
    println!("  wrote {}", out.display());
    Ok(())
}

/// Trains `config` into `out/train`, compares the flow with `reference` on
/// `samples` fresh points, writes `out/summary.json` and `out/trajectories.png`
/// and prints the table.
pub fn train_and_compare(
    case: &str,
    config: TrainConfig,
    reference: &dyn Reference,
    reference_kind: &str,
    out: &Path,
    samples: usize,
    quiet: bool,
) -> Result<Comparison> {
    let seed = config.seed;
    let mut trainer = Trainer::new(config)?;
    let summary = crate::train::run_with_progress(&mut trainer, &out.join("train"), quiet)?;
    let comparison = compare(&trainer, reference, samples, seed ^ 0xc0)?;
    let value = serde_json::json!({
        "case": case,
        "dim": trainer.config.dim,
        "reference": reference_kind,
        "comparison": comparison,
        "training": summary,
    });
    proxflow::io::write_json(&out.join("summary.json"), &value)?;
    let (a, b) = comparison.plot_axes;
    let paths: Vec<_> = comparison
        .sample_paths
        .iter()
        .map(|p| p.0.clone())
        .collect();
    let exact: Vec<_> = comparison.sample_paths.iter().map(|p| p.1).collect();
    proxflow::neural::figures::trajectories(
        &paths,
        &exact,
        &format!(
            "{case}: learned paths against exact lines (coordinates {} and {})",
            a + 1,
            b + 1
        ),
        (&format!("x{}", a + 1), &format!("x{}", b + 1)),
        &out.join("trajectories.png"),
    )?;
    proxflow::neural::figures::samples(
        &comparison.learned_terminal,
        &comparison.reference_terminal,
        trainer.config.dim,
        "reference rho_T",
        &format!("{case}: learned against reference terminal law"),
        &out.join("terminal-laws.png"),
    )?;
    proxflow::neural::figures::run_figures(&out.join("train"))?;
    print_table(case, trainer.config.dim, &comparison);
    Ok(comparison)
}

fn print_table(case: &str, dim: usize, c: &Comparison) {
    let t = &c.terminal_law;
    println!("compare {case} ({dim}-D): learned flow against the reference");
    println!(
        "  terminal law   energy distance {:.2e} (noise floor {:.1e}), sliced W2 {:.3e} (noise floor {:.1e})",
        t.energy_distance, t.noise_floor_energy, t.sliced_w2, t.noise_floor_sliced_w2
    );
    println!(
        "  potentials     grad U(.,0) RMS {:.3e} (relative {:.3}), U(.,0) RMS after the best constant {:.3e}",
        c.gradient0_rms, c.gradient0_relative, c.value0_rms
    );
    println!(
        "  trajectories   endpoint RMS against y*(x0) {:.3e}, straightness median {:.2e}, p99 {:.2e}, speed violations {:.2}%",
        c.endpoint_rms,
        c.straightness_median,
        c.straightness_p99,
        100.0 * c.speed_violation_fraction
    );
    println!("  costs          kinetic    terminal   objective");
    for (name, k) in [("learned", &c.learned), ("reference", &c.reference)] {
        println!(
            "    {name:<12} {:<10.5} {:<10.5} {:.5}",
            k.kinetic, k.terminal, k.objective
        );
    }
}
