//! `proxflow solve` and the demo's grid half: the chosen method with its
//! options, a progress bar, and the solution written out.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proxflow::error::{Error, Result, require_positive};
use proxflow::grid::Grid;
use proxflow::mfg::{IterationState, Method, MethodKind, Observer, Solution};
use proxflow::problem::Problem;
use proxflow::report::{GridSummary, write_solution};
use std::path::Path;

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
pub struct Job {
    pub name: String,
    pub problem: Problem,
    pub grid: Grid,
    pub cells: usize,
    pub exact: Option<f64>,
}

/// Solves with a progress bar, then writes fields, summary and figures.
pub fn solve_and_write(
    job: &Job,
    method: &Method,
    out: &Path,
    figures: bool,
) -> Result<(Solution, GridSummary)> {
    let mut progress = Progress::new(method.max_iterations());
    let solution = method.solve(&job.problem, &job.grid, &mut progress);
    progress.0.finish_and_clear();
    let solution = solution?;
    let summary = write_solution(out, &job.name, job.cells, &solution, job.exact, figures)?;
    Ok((solution, summary))
}

/// The method named on the command line, with a config's `[solver]` table
/// and the `--transport`, `--max-iterations` and `--tolerance` flags over
/// its defaults.
pub fn chosen_method(
    name: &str,
    settings: &toml::Table,
    transport: Option<&str>,
    max_iterations: Option<usize>,
    tolerance: Option<f64>,
) -> Result<Method> {
    let kind = MethodKind::parse(name)?;
    let mut settings = settings.clone();
    if let Some(t) = transport {
        if kind != MethodKind::Eulerian {
            return Err(Error::invalid(
                "--transport",
                t,
                &format!("only the eulerian method transports a density; `{kind}` does not"),
            ));
        }
        // the flag picks the scheme; the config's options for it still apply
        let mut table = match settings.remove("transport") {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        table.insert("kind".into(), toml::Value::String(t.into()));
        settings.insert("transport".into(), toml::Value::Table(table));
    }
    let mut method = Method::configure(kind, &settings)?;
    if let Some(n) = max_iterations {
        if n == 0 {
            return Err(Error::invalid("--max-iterations", n, "must be at least 1"));
        }
        method.set_max_iterations(n);
    }
    if let Some(t) = tolerance {
        method.set_tolerance(require_positive("--tolerance", t)?);
    }
    Ok(method)
}
