//! The proxflow command line: solve built-in or configured problems on a
//! grid, list the cases, run the demo.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proxflow::cases;
use proxflow::config::SolveConfig;
use proxflow::error::{Error, Result};
use proxflow::grid::Grid;
use proxflow::mfg::{
    DualOptions, DualSolver, EulerianOptions, EulerianSolver, IterationState, Observer,
    ParticleOptions, ParticleSolver, Solution, Solver,
};
use proxflow::problem::Problem;
use proxflow::{plot, report};
use std::path::{Path, PathBuf};

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
        /// (finite-difference HJ + finite-volume continuity, fictitious play)
        /// or `particles` (agents relaxing to their characteristic relation).
        #[arg(long, default_value = "dual", value_parser = ["dual", "eulerian", "particles"])]
        method: String,
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
    /// The main job on built-in defaults: solve `pinwheel-2d` on the grid and
    /// draw the density with its characteristics.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Cells on the longest axis.
        #[arg(long, default_value_t = 96)]
        grid: usize,
        /// Iterations at most.
        #[arg(long, default_value_t = 300)]
        max_iterations: usize,
    },
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
struct Progress(ProgressBar);

impl Progress {
    fn new(len: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .expect("valid template"),
        );
        Progress(bar)
    }
}

impl Observer for Progress {
    fn observe(&mut self, s: &IterationState) {
        self.0.set_position(s.iteration as u64);
        let msg = if s.dual.is_nan() {
            format!("residual {:.2e}", s.residual)
        } else {
            format!("J {:.6}  dual {:.6}", s.objective, s.dual)
        };
        self.0.set_message(msg);
    }
}

/// One solve: what to solve and how to name it.
struct Job {
    name: String,
    problem: Problem,
    grid: Grid,
    cells: usize,
    exact: Option<f64>,
}

/// A solver chosen on the command line.
enum Method {
    Dual(DualOptions),
    Eulerian(EulerianOptions),
    Particles(ParticleOptions),
}

impl Method {
    fn solve(self, job: &Job) -> Result<Solution> {
        match self {
            Method::Dual(o) => with_progress(o.max_iterations, DualSolver::new(o), job),
            Method::Eulerian(o) => with_progress(o.max_iterations, EulerianSolver::new(o), job),
            Method::Particles(o) => with_progress(o.max_iterations, ParticleSolver::new(o), job),
        }
    }
}

fn with_progress(iterations: usize, solver: impl Solver, job: &Job) -> Result<Solution> {
    let mut progress = Progress::new(iterations);
    let solution = solver.solve(&job.problem, &job.grid, &mut progress);
    progress.0.finish_and_clear();
    solution
}

fn solve_and_write(
    job: &Job,
    method: Method,
    out: &Path,
    plot_figures: bool,
) -> Result<(Solution, serde_json::Value)> {
    let solution = method.solve(job)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    solution.write_fields(out)?;
    let summary = report::summary(&job.name, job.cells, &solution, job.exact);
    report::write_json(&out.join("summary.json"), &summary)?;
    if plot_figures {
        let title = format!("{}: density and characteristics", job.name);
        plot::densities(&solution, &title, &out.join("density.png"))?;
        plot::potentials(&solution, &out.join("potentials.png"))?;
    }
    Ok((solution, summary))
}

fn options(max_iterations: Option<usize>, tolerance: Option<f64>) -> Result<DualOptions> {
    let mut o = DualOptions::default();
    proxflow::config::SolverConfig {
        max_iterations,
        tolerance,
    }
    .apply(&mut o)?;
    Ok(o)
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
        Command::Solve {
            case,
            config,
            grid,
            method,
            max_iterations,
            tolerance,
            out,
            no_plot,
        } => {
            let (job, mut opts) = match (case, config) {
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
                    (job, DualOptions::default())
                }
                (None, Some(path)) => {
                    let mut cfg = SolveConfig::load(&path)?;
                    if let Some(n) = grid {
                        cfg.grid.cells = n;
                    }
                    let mut o = DualOptions::default();
                    cfg.solver.apply(&mut o)?;
                    let job = Job {
                        grid: cfg.grid()?,
                        name: path.display().to_string(),
                        cells: cfg.grid.cells,
                        problem: cfg.problem,
                        exact: None,
                    };
                    (job, o)
                }
                (None, None) => unreachable!("clap requires --case or --config"),
            };
            let overrides = options(max_iterations, tolerance)?;
            if max_iterations.is_some() {
                opts.max_iterations = overrides.max_iterations;
            }
            if tolerance.is_some() {
                opts.tolerance = overrides.tolerance;
            }
            let method = match method.as_str() {
                "eulerian" => {
                    let mut e = EulerianOptions::default();
                    e.max_iterations = max_iterations.unwrap_or(e.max_iterations);
                    e.tolerance = tolerance.unwrap_or(e.tolerance);
                    Method::Eulerian(e)
                }
                "particles" => {
                    let mut p = ParticleOptions::default();
                    p.max_iterations = max_iterations.unwrap_or(p.max_iterations);
                    p.tolerance = tolerance.unwrap_or(p.tolerance);
                    Method::Particles(p)
                }
                _ => Method::Dual(opts),
            };
            let (_, summary) = solve_and_write(&job, method, &out, !no_plot)?;
            print!("{}", report::table(&summary));
            println!("  wrote {}", out.display());
        }
        Command::Demo {
            out,
            grid,
            max_iterations,
        } => {
            let c = cases::builtin("pinwheel-2d")?;
            let job = Job {
                grid: c.grid(grid)?,
                name: c.name.into(),
                problem: c.problem.clone(),
                cells: grid,
                exact: None,
            };
            let opts = options(Some(max_iterations), None)?;
            let n = job.grid.n;
            println!("proxflow demo: {} on a {}x{} grid", c.summary, n[0], n[1]);
            let (_, summary) = solve_and_write(&job, Method::Dual(opts), &out, true)?;
            print!("{}", report::table(&summary));
            println!(
                "  figures: {0}/density.png, {0}/potentials.png",
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
