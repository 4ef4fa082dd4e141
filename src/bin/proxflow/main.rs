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
use proxflow::{plot, report, verify};
use std::path::{Path, PathBuf};

mod compare;
mod train;
mod validate;

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
        study: Study,
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

#[derive(Subcommand)]
enum Study {
    /// Iterations, wall time, gap and error of the dual method under grid
    /// refinement (writes summary.json and scaling.png).
    Scaling {
        /// Built-in case.
        #[arg(long, default_value = "shift-near-2d")]
        case: String,
        /// Grids (comma-separated cells on the longest axis).
        #[arg(long, default_value = "64,128,256,512", value_delimiter = ',')]
        grids: Vec<usize>,
        /// Output folder.
        #[arg(long, default_value = "out/verify-scaling")]
        out: PathBuf,
    },
    /// The three methods against each other (and the closed form) under refinement.
    Agreement {
        /// Built-in case.
        #[arg(long, default_value = "line-2d")]
        case: String,
        /// Grids (comma-separated cells on the longest axis).
        #[arg(long, default_value = "32,64,128", value_delimiter = ',')]
        grids: Vec<usize>,
        /// Methods (the dual solver is always the reference).
        #[arg(long, default_value = "dual,eulerian,particles", value_delimiter = ',')]
        methods: Vec<String>,
        /// Output folder.
        #[arg(long, default_value = "out/verify-agreement")]
        out: PathBuf,
    },
    /// Every method from random starts lands on the same rho_T and grad U(., 0).
    Uniqueness {
        /// Built-in case.
        #[arg(long, default_value = "line-2d")]
        case: String,
        /// Cells of the dual solver's grid.
        #[arg(long, default_value_t = 128)]
        grid: usize,
        /// Cells of the Eulerian and particle solvers' grid (slower methods).
        #[arg(long, default_value_t = 64)]
        coarse_grid: usize,
        /// Random starts per method.
        #[arg(long, default_value_t = 10)]
        starts: usize,
        /// Methods (comma-separated: dual, eulerian, particles).
        #[arg(long, default_value = "dual,eulerian,particles", value_delimiter = ',')]
        methods: Vec<String>,
        /// Seed of the random starts.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "out/verify-uniqueness")]
        out: PathBuf,
    },
    /// Characteristics traced through U (RK4) are straight and below L/alpha.
    Straightness {
        /// Built-in case.
        #[arg(long, default_value = "line-2d")]
        case: String,
        /// Grids (comma-separated cells on the longest axis).
        #[arg(long, default_value = "32,64,128", value_delimiter = ',')]
        grids: Vec<usize>,
        /// Methods whose U is traced.
        #[arg(long, default_value = "dual,eulerian", value_delimiter = ',')]
        methods: Vec<String>,
        /// Agents per axis of the tracer lattice.
        #[arg(long, default_value_t = 24)]
        agents: usize,
        /// RK4 steps per path.
        #[arg(long, default_value_t = 40)]
        steps: usize,
        /// Output folder.
        #[arg(long, default_value = "out/verify-straightness")]
        out: PathBuf,
    },
    /// Without W1 (L = inf) the terminal condition blows up like 1/h; without
    /// W2 (alpha -> 0) the paths depend on the start.
    IllPosed {
        /// Built-in case.
        #[arg(long, default_value = "line-2d")]
        case: String,
        /// Grids of the W1 study (add 512 for the finest; about 10 more minutes here).
        #[arg(long, default_value = "32,64,128,256", value_delimiter = ',')]
        grids: Vec<usize>,
        /// Fictitious-play rounds of the Eulerian solver per grid.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Kinetic weights of the W2 study.
        #[arg(long, default_value = "0.5,0.1,0.01,0.001", value_delimiter = ',')]
        alphas: Vec<f64>,
        /// Grid of the W2 study.
        #[arg(long, default_value_t = 48)]
        coarse_grid: usize,
        /// Random starts per kinetic weight.
        #[arg(long, default_value_t = 5)]
        starts: usize,
        /// Output folder.
        #[arg(long, default_value = "out/verify-ill-posed")]
        out: PathBuf,
    },
}

/// One line per finished solve, on stderr.
struct Lines;

impl verify::Progress for Lines {
    fn step(&mut self, message: &str) {
        eprintln!("  {message}");
    }
}

fn methods(names: &[String]) -> Result<Vec<verify::Method>> {
    names
        .iter()
        .map(|n| verify::Method::parse(n.trim()))
        .collect()
}

fn write_study(out: &Path, summary: &impl serde::Serialize) -> Result<serde_json::Value> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let value = serde_json::to_value(summary)
        .map_err(|e| Error::invalid("summary", e, "not serialisable"))?;
    report::write_json(&out.join("summary.json"), &value)?;
    Ok(value)
}

fn run_study(study: Study) -> Result<()> {
    use plot::{Axes, Series};
    match study {
        Study::Scaling { case, grids, out } => {
            let c = cases::builtin(&case)?;
            let r = verify::scaling(&c, &grids, &mut Lines)?;
            write_study(&out, &r)?;
            r.plot(&out.join("scaling.png"))?;
            print!("{}", r.table());
        }
        Study::Agreement {
            case,
            grids,
            methods: names,
            out,
        } => {
            let c = cases::builtin(&case)?;
            let list = methods(&names)?;
            let r = verify::agreement(&c, &list, &grids, &mut Lines)?;
            write_study(&out, &r)?;
            let series: Vec<Series> = list
                .iter()
                .filter(|m| **m != verify::Method::Dual)
                .map(|m| Series {
                    label: format!("{}: sliced W1 of rho_T to dual", m.name()),
                    points: r
                        .rows
                        .iter()
                        .filter(|row| row.method == *m)
                        .map(|row| (row.grid as f64, row.sliced_w1_to_dual))
                        .collect(),
                })
                .chain(list.iter().map(|m| {
                    Series {
                        label: format!("{}: relative error of J", m.name()),
                        points: r
                            .rows
                            .iter()
                            .filter(|row| row.method == *m)
                            .map(|row| {
                                (
                                    row.grid as f64,
                                    row.relative_error.unwrap_or(row.relative_to_dual),
                                )
                            })
                            .collect(),
                    }
                }))
                .collect();
            let title = format!("{case}: agreement of the methods under refinement");
            let axes = Axes {
                title: &title,
                x: "cells on the longest axis",
                y: "distance",
                log_x: true,
                log_y: true,
            };
            plot::lines(&series, &axes, &out.join("agreement.png"))?;
            println!(
                "| method | grid | J | rel. error | vs dual | L1 to dual | blurred | sliced W1 | time (s) |"
            );
            println!("|---|---|---|---|---|---|---|---|---|");
            for row in &r.rows {
                println!(
                    "| {} | {} | {:.6} | {} | {:.2e} | {:.2e} | {:.2e} | {:.2e} | {:.1} |",
                    row.method.name(),
                    row.grid,
                    row.objective,
                    row.relative_error
                        .map_or("-".into(), |e| format!("{e:.2e}")),
                    row.relative_to_dual,
                    row.l1_to_dual,
                    row.blurred_l1_to_dual,
                    row.sliced_w1_to_dual,
                    row.wall_time_s
                );
            }
        }
        Study::Uniqueness {
            case,
            grid,
            coarse_grid,
            starts,
            methods: names,
            seed,
            out,
        } => {
            let c = cases::builtin(&case)?;
            let list = methods(&names)?
                .into_iter()
                .map(|m| {
                    (
                        m,
                        if m == verify::Method::Dual {
                            grid
                        } else {
                            coarse_grid
                        },
                    )
                })
                .collect();
            let options = verify::UniquenessOptions {
                starts,
                seed,
                methods: list,
            };
            let r = verify::uniqueness(&c, &options, &mut Lines)?;
            write_study(&out, &r)?;
            let series: Vec<Series> = r
                .methods
                .iter()
                .map(|m| Series {
                    label: format!("{} (grid {})", m.method.name(), m.grid),
                    points: m.l1_by_starts.iter().map(|&(n, d)| (n as f64, d)).collect(),
                })
                .collect();
            let title = format!("{case}: uniqueness across random starts");
            let axes = Axes {
                title: &title,
                x: "number of starts",
                y: "max pairwise L1 of rho_T",
                log_x: false,
                log_y: true,
            };
            plot::lines(&series, &axes, &out.join("uniqueness.png"))?;
            println!("uniqueness of {case}: {starts} random starts per method");
            for m in &r.methods {
                println!(
                    "  {:<10} grid {:>4}  max pairwise L1 {:.3e} (blurred {:.3e})  max |grad U0 diff| {:.3e}  {:.0} s",
                    m.method.name(),
                    m.grid,
                    m.max_pairwise_l1,
                    m.max_pairwise_blurred_l1,
                    m.max_pairwise_grad_u,
                    m.wall_time_s
                );
            }
        }
        Study::Straightness {
            case,
            grids,
            methods: names,
            agents,
            steps,
            out,
        } => {
            let c = cases::builtin(&case)?;
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            let mut figure = |m: verify::Method,
                              s: &Solution,
                              paths: &[proxflow::mfg::trace::Path]| {
                let title = format!("{case} ({}): density and traced characteristics", m.name());
                plot::densities_traced(
                    s,
                    paths,
                    &title,
                    &out.join(format!("characteristics-{}.png", m.name())),
                )
            };
            let list = methods(&names)?;
            let r =
                verify::straightness(&c, &list, &grids, agents, steps, &mut Lines, &mut figure)?;
            write_study(&out, &r)?;
            let series: Vec<Series> = list
                .iter()
                .map(|m| Series {
                    label: format!("{} median", m.name()),
                    points: r
                        .rows
                        .iter()
                        .filter(|row| row.method == *m)
                        .map(|row| (row.grid as f64, row.straightness_median))
                        .collect(),
                })
                .collect();
            let title = format!("{case}: straightness (length / chord - 1) under refinement");
            let axes = Axes {
                title: &title,
                x: "cells on the longest axis",
                y: "median straightness",
                log_x: true,
                log_y: true,
            };
            plot::lines(&series, &axes, &out.join("straightness.png"))?;
            for row in &r.rows {
                println!(
                    "  {:<10} grid {:>4}  agents {:>4}  straightness median {:.2e}  p99 {:.2e}  speed violations {:.3}",
                    row.method.name(),
                    row.grid,
                    row.agents,
                    row.straightness_median,
                    row.straightness_p99,
                    row.speed_violation_fraction
                );
            }
        }
        Study::IllPosed {
            case,
            grids,
            rounds,
            alphas,
            coarse_grid,
            starts,
            out,
        } => {
            let c = cases::builtin(&case)?;
            let r =
                verify::ill_posed(&c, &grids, rounds, &alphas, coarse_grid, starts, &mut Lines)?;
            write_study(&out, &r)?;
            let series: Vec<Series> = [true, false]
                .iter()
                .map(|&inf| Series {
                    label: if inf {
                        "L = inf (no W1 proximal)".into()
                    } else {
                        "L = 1".into()
                    },
                    points: r
                        .rows
                        .iter()
                        .filter(|row| row.lipschitz_bound.is_string() == inf)
                        .map(|row| (row.h, row.lipschitz_terminal))
                        .collect(),
                })
                .collect();
            let title = format!("{case}: Lipschitz constant of U(., T) under refinement");
            let axes = Axes {
                title: &title,
                x: "grid spacing h",
                y: "Lip(U(., T))",
                log_x: true,
                log_y: true,
            };
            plot::lines(&series, &axes, &out.join("lipschitz.png"))?;
            let spread = vec![
                Series {
                    label: "trajectory spread".into(),
                    points: r
                        .no_w2
                        .iter()
                        .map(|w| (w.alpha, w.trajectory_spread))
                        .collect(),
                },
                Series {
                    label: "terminal-law spread (blurred L1)".into(),
                    points: r
                        .no_w2
                        .iter()
                        .map(|w| (w.alpha, w.terminal_spread))
                        .collect(),
                },
            ];
            let title = format!("{case}: random starts as alpha -> 0 (grid {coarse_grid})");
            let axes = Axes {
                title: &title,
                x: "kinetic weight alpha",
                y: "largest pairwise spread",
                log_x: true,
                log_y: true,
            };
            plot::lines(&spread, &axes, &out.join("no-w2.png"))?;
            println!(
                "W1 study (growth order of Lip(U(., T)) in 1/h without W1: {:.2})",
                r.lipschitz_growth_order
            );
            for row in &r.rows {
                println!(
                    "  grid {:>4}  L = {:<5} Lip {:>10.3}  J {:<10}  KE {:.4}  max speed {:.3}",
                    row.grid,
                    row.lipschitz_bound.to_string().trim_matches('"'),
                    row.lipschitz_terminal,
                    row.objective.to_string().trim_matches('"'),
                    row.kinetic_energy,
                    row.max_speed
                );
            }
            for w in &r.no_w2 {
                println!(
                    "  alpha {:<6} trajectory spread {:.3e}  terminal spread {:.3e}",
                    w.alpha, w.trajectory_spread, w.terminal_spread
                );
            }
        }
    }
    println!("  wrote summary.json and figures");
    Ok(())
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
        Command::Verify { study } => run_study(study)?,
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
            let opts = options(Some(max_iterations), None)?;
            let n = job.grid.n;
            println!("proxflow demo: {} on a {}x{} grid", c.summary, n[0], n[1]);
            let (solution, summary) = solve_and_write(&job, Method::Dual(opts), &out, true)?;
            print!("{}", report::table(&summary));
            println!("neural flow on the same problem: {iterations} iterations on the CPU backend");
            let mut config = proxflow::compare::train_config_for(&c.problem, "pinwheel")?;
            config.iterations = iterations;
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
