//! The proxflow command line: solve built-in or configured problems on a
//! grid, list the cases, run the demo.

use clap::{Parser, Subcommand};
use proxflow::cases;
use proxflow::config::SolveConfig;
use proxflow::error::Result;
use solve::{Job, chosen_method, solve_and_write};
use std::path::PathBuf;

mod compare;
mod solve;
mod train;
mod validate;
mod verify_args;

/// The demo's settings, shared with the pinwheel row of `proxflow validate`
/// so that the two report the same numbers.
const DEMO_GRID: usize = 96;
const DEMO_GRID_ITERATIONS: usize = 1000;
const DEMO_NEURAL_ITERATIONS: usize = proxflow::compare::COMPARE_ITERATIONS;

#[derive(Parser)]
#[command(
    name = "proxflow",
    version,
    about = "Wasserstein-proximal generative flows and their mean-field games"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Solve the MFG of a built-in case or a TOML config on a grid.
    Solve {
        /// Built-in case (see `proxflow cases`).
        #[arg(long, conflicts_with = "config", required_unless_present = "config")]
        case: Option<String>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Cells on the longest axis (default: 1024 in 1-D, 128 in 2-D).
        #[arg(long)]
        grid: Option<usize>,
        /// Solver: `dual` (exact characteristics, dual ascent), `eulerian`
        /// (finite-difference HJ + semi-Lagrangian or finite-volume
        /// continuity, fictitious play) or `particles` (agents relaxing to
        /// their characteristic relation).
        #[arg(long, default_value = "dual", value_parser = ["dual", "eulerian", "particles"])]
        method: String,
        /// Continuity scheme of the eulerian method (default
        /// `semi-lagrangian`; overrides the config's `solver.transport.kind`).
        #[arg(long, value_parser = ["semi-lagrangian", "finite-volume"])]
        transport: Option<String>,
        /// Iterations at most.
        #[arg(long)]
        max_iterations: Option<usize>,
        /// Relative duality-gap tolerance.
        #[arg(long)]
        tolerance: Option<f64>,
        /// Output folder.
        #[arg(long, default_value = "out/solve")]
        out: PathBuf,
        /// Skip the figures.
        #[arg(long)]
        no_plot: bool,
    },
    /// List the built-in cases.
    Cases,
    /// Train the neural W1-W2 flow (writes history.csv, summary.json,
    /// samples.npy and checkpoint.bin into --out).
    Train(Box<train::TrainArgs>),
    /// Generate samples from a trained run.
    Sample(train::SampleArgs),
    /// Run the validation suite and regenerate validation/report.md,
    /// validation/results.json and validation/figures/.
    Validate(validate::ValidateArgs),
    /// Re-draw the figures of saved training runs (training curves of several
    /// runs on one chart per quantity).
    Plot(train::PlotArgs),
    /// Train the neural flow on a problem with a known answer (closed form or
    /// grid solution) and compare: terminal laws, potentials, trajectories, costs.
    Compare(Box<compare::CompareArgs>),
    /// Check the theory numerically: uniqueness, straight characteristics,
    /// ill-posedness without either proximal. Writes DIR/summary.json and figures.
    Verify {
        #[command(subcommand)]
        study: verify_args::StudyArgs,
    },
    /// The main job on built-in defaults: solve `pinwheel-2d` on the grid,
    /// train the neural flow on the same problem (CPU backend), compare the
    /// two and draw every figure into --out.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Cells on the longest axis.
        #[arg(long, default_value_t = DEMO_GRID)]
        grid: usize,
        /// Iterations at most of the grid solver.
        #[arg(long, default_value_t = DEMO_GRID_ITERATIONS)]
        max_iterations: usize,
        /// Generator iterations of the neural flow.
        #[arg(long, default_value_t = DEMO_NEURAL_ITERATIONS)]
        iterations: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// One line per finished solve, on stderr.
struct Lines;

impl proxflow::verify::Progress for Lines {
    fn observe(&mut self, message: &str) {
        eprintln!("  {message}");
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Cases => {
            for c in cases::all() {
                let exact = c
                    .exact
                    .map(|e| format!("J = {:.6}", e.objective()))
                    .unwrap_or_else(|| "no closed form".into());
                println!(
                    "{:<14} {}D  {:<16} {}",
                    c.name, c.problem.dim, exact, c.summary
                );
            }
        }
        Command::Verify { study } => {
            let (study, out) = study.into_study()?;
            let outcome = study.run(&out, &mut Lines)?;
            print!("{}", outcome.text);
            println!("  wrote {}", out.display());
        }
        Command::Train(args) => train::train(*args)?,
        Command::Sample(args) => train::sample(args)?,
        Command::Plot(args) => train::plot(args)?,
        Command::Validate(args) => validate::run(args)?,
        Command::Compare(args) => compare::run(*args)?,
        Command::Solve {
            case,
            config,
            grid,
            method,
            transport,
            max_iterations,
            tolerance,
            out,
            no_plot,
        } => {
            let (job, settings) = match (case, config) {
                (Some(name), _) => {
                    let c = cases::builtin(&name)?;
                    let cells = grid.unwrap_or(c.default_cells());
                    let job = Job {
                        grid: c.grid(cells)?,
                        name,
                        problem: c.problem.clone(),
                        cells,
                        exact: c.exact.map(|e| e.objective()),
                    };
                    (job, toml::Table::new())
                }
                (None, Some(path)) => {
                    let mut cfg = SolveConfig::load(&path)?;
                    if let Some(n) = grid {
                        cfg.grid.cells = n;
                    }
                    let job = Job {
                        grid: cfg.grid()?,
                        name: path.display().to_string(),
                        cells: cfg.grid.cells,
                        problem: cfg.problem,
                        exact: None,
                    };
                    (job, cfg.solver)
                }
                (None, None) => unreachable!("clap requires --case or --config"),
            };
            let method = chosen_method(
                &method,
                &settings,
                transport.as_deref(),
                max_iterations,
                tolerance,
            )?;
            let (_, summary) = solve_and_write(&job, &method, &out, !no_plot)?;
            print!("{}", summary.table());
            println!("  wrote {}", out.display());
        }
        Command::Demo {
            out,
            grid,
            max_iterations,
            iterations,
            quiet,
        } => {
            let c = cases::builtin("pinwheel-2d")?;
            let job = Job {
                grid: c.grid(grid)?,
                name: c.name.into(),
                problem: c.problem.clone(),
                cells: grid,
                exact: None,
            };
            let method = chosen_method(
                "dual",
                &toml::Table::new(),
                None,
                Some(max_iterations),
                None,
            )?;
            // the neural half's settings are checked before the grid solve
            let mut config = proxflow::compare::train_config_for(&c.problem, "pinwheel")?;
            config.iterations = iterations;
            config.validate()?;
            let n = job.grid.n;
            println!("proxflow demo: {} on a {}x{} grid", c.summary, n[0], n[1]);
            let (solution, summary) = solve_and_write(&job, &method, &out, true)?;
            print!("{}", summary.table());
            println!("neural flow on the same problem: {iterations} iterations on the CPU backend");
            let reference = proxflow::compare::GridReference::new(&solution)?;
            compare::train_and_compare(
                c.name,
                config,
                &reference,
                "grid (dual solver)",
                &out.join("neural"),
                5000,
                quiet,
            )?;
            println!(
                "  figures: {0}/density.png, {0}/potentials.png (grid); {0}/neural/trajectories.png, {0}/neural/train/samples.png and curves-*.png (neural)",
                out.display()
            );
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
