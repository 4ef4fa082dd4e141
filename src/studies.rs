//! The verification studies as values: a [`Study`] names what to run, and
//! [`Study::run`] runs it through [`crate::verify`], writes `summary.json`
//! and the figures into a folder and returns the printed summary. The
//! command line and `proxflow validate` both call it.

use crate::cases;
use crate::chart::{self, Axes, Series};
use crate::error::{Error, Result};
use crate::mfg::{MethodKind, Solution};
use crate::verify::{
    AgreementReport, AgreementRow, Progress, UniquenessOptions, agreement, ill_posed, scaling,
    straightness, uniqueness,
};
use std::path::Path;

/// Appends a formatted line to a `String`.
macro_rules! say {
    ($text:ident, $($arg:tt)*) => {{
        $text.push_str(&format!($($arg)*));
        $text.push('\n');
    }};
}

/// A verification study and its parameters (see `proxflow verify --help`).
#[derive(Debug, Clone)]
pub enum Study {
    /// Iterations, wall time, gap and error of the dual method under grid
    /// refinement.
    Scaling {
        /// Built-in case.
        case: String,
        /// Cells on the longest axis, one solve each.
        grids: Vec<usize>,
    },
    /// The methods against each other (and the closed form) under
    /// refinement, case by case (each into a subfolder named after it).
    Agreement {
        /// Built-in cases.
        cases: Vec<String>,
        /// Cells on the longest axis.
        grids: Vec<usize>,
        /// Methods (the dual method is always the reference).
        methods: Vec<MethodKind>,
    },
    /// Every method from random starts lands on the same rho_T and grad U(., 0).
    Uniqueness {
        /// Built-in case.
        case: String,
        /// Cells of the dual method's grid.
        grid: usize,
        /// Cells of the Eulerian and particle solvers' grid.
        coarse_grid: usize,
        /// Random starts per method.
        starts: usize,
        /// Methods.
        methods: Vec<MethodKind>,
        /// Seed of the random starts.
        seed: u64,
    },
    /// Characteristics traced through U are straight and below L/alpha.
    Straightness {
        /// Built-in case.
        case: String,
        /// Cells on the longest axis.
        grids: Vec<usize>,
        /// Methods whose U is traced.
        methods: Vec<MethodKind>,
        /// Agents per axis of the tracer lattice.
        agents: usize,
        /// RK4 steps per path.
        steps: usize,
    },
    /// Without W1 the terminal condition blows up like 1/h; without W2 the
    /// paths depend on the start.
    IllPosed {
        /// Built-in case.
        case: String,
        /// Grids of the W1 study.
        grids: Vec<usize>,
        /// Fictitious-play rounds of the Eulerian solver per grid.
        rounds: usize,
        /// Kinetic weights of the W2 study.
        alphas: Vec<f64>,
        /// Grid of the W2 study.
        coarse_grid: usize,
        /// Random starts per kinetic weight.
        starts: usize,
    },
}

/// What a finished study hands back: its `summary.json` as a value and the
/// text printed on the terminal.
#[derive(Debug, Clone)]
pub struct StudyOutcome {
    /// The typed report, serialised (the content of `summary.json`).
    pub summary: serde_json::Value,
    /// The human-readable summary.
    pub text: String,
}

fn write_summary(out: &Path, report: &impl serde::Serialize) -> Result<serde_json::Value> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let value = serde_json::to_value(report)
        .map_err(|e| Error::invalid("summary", e, "not serialisable"))?;
    crate::io::write_json(&out.join("summary.json"), &value)?;
    Ok(value)
}

impl Study {
    /// Runs the study, then writes `summary.json` and its figures into
    /// `out` (created only once the study has run, so a refused parameter
    /// leaves nothing behind).
    pub fn run(&self, out: &Path, progress: &mut dyn Progress) -> Result<StudyOutcome> {
        let mut text = String::new();
        let summary;
        match self.clone() {
            Study::Scaling { case, grids } => {
                let c = cases::builtin(&case)?;
                let r = scaling(&c, &grids, progress)?;
                summary = write_summary(out, &r)?;
                r.plot(&out.join("scaling.png"))?;
                text.push_str(&r.table());
            }
            Study::Agreement {
                cases,
                grids,
                methods,
            } => {
                let mut reports = Vec::new();
                for case in &cases {
                    let c = cases::builtin(case)?;
                    let r = agreement(&c, &methods, &grids, progress)?;
                    let dir = out.join(case);
                    write_summary(&dir, &r)?;
                    agreement_figure(&r, &methods, &dir.join("agreement.png"))?;
                    text.push_str(&agreement_table(&r));
                    reports.push(r);
                }
                summary = write_summary(out, &reports)?;
            }
            Study::Uniqueness {
                case,
                grid,
                coarse_grid,
                starts,
                methods,
                seed,
            } => {
                let c = cases::builtin(&case)?;
                let list = methods
                    .iter()
                    .copied()
                    .map(|m| {
                        (
                            m,
                            if m == MethodKind::Dual {
                                grid
                            } else {
                                coarse_grid
                            },
                        )
                    })
                    .collect();
                let options = UniquenessOptions {
                    starts,
                    seed,
                    methods: list,
                };
                let r = uniqueness(&c, &options, progress)?;
                summary = write_summary(out, &r)?;
                let series: Vec<Series> = r
                    .methods
                    .iter()
                    .map(|m| Series {
                        label: format!("{} (grid {})", m.method.name(), m.grid),
                        points: m
                            .w1_by_starts
                            .iter()
                            .map(|&(n, d)| (n as f64, d / m.cell_width))
                            .collect(),
                    })
                    .collect();
                let title = format!("{case}: uniqueness across random starts");
                let axes = Axes {
                    title: &title,
                    x: "number of starts",
                    y: "max pairwise W1 of rho_T / h",
                    log_x: false,
                    log_y: true,
                };
                chart::lines(&series, &axes, &out.join("uniqueness.png"))?;
                say!(
                    text,
                    "uniqueness of {case}: {starts} random starts per method"
                );
                for m in &r.methods {
                    say!(
                        text,
                        "  {:<10} grid {:>4}  max pairwise W1 {:.3e} ({:.3} h)  L1 {:.3e}  grad U0: RMS {:.3e}, max on 5% support {:.3e}  converged {}/{}  {:.0} s",
                        m.method.name(),
                        m.grid,
                        m.max_pairwise_w1,
                        m.max_pairwise_w1 / m.cell_width,
                        m.max_pairwise_l1,
                        m.max_pairwise_grad_u_rms,
                        m.max_pairwise_grad_u,
                        m.converged.iter().filter(|c| **c).count(),
                        m.converged.len(),
                        m.wall_time_s
                    );
                }
            }
            Study::Straightness {
                case,
                grids,
                methods,
                agents,
                steps,
            } => {
                let c = cases::builtin(&case)?;
                let mut figure =
                    |m: MethodKind, s: &Solution, paths: &[crate::mfg::trace::Path]| {
                        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
                        let title =
                            format!("{case} ({}): density and traced characteristics", m.name());
                        crate::plot::densities_traced(
                            s,
                            paths,
                            &title,
                            &out.join(format!("characteristics-{}.png", m.name())),
                        )
                    };
                let list = methods;
                let r = straightness(&c, &list, &grids, agents, steps, progress, &mut figure)?;
                summary = write_summary(out, &r)?;
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
                chart::lines(&series, &axes, &out.join("straightness.png"))?;
                for row in &r.rows {
                    say!(
                        text,
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
            } => {
                let c = cases::builtin(&case)?;
                let r = ill_posed(&c, &grids, rounds, &alphas, coarse_grid, starts, progress)?;
                summary = write_summary(out, &r)?;
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
                chart::lines(&series, &axes, &out.join("lipschitz.png"))?;
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
                chart::lines(&spread, &axes, &out.join("no-w2.png"))?;
                say!(
                    text,
                    "W1 study (growth order of Lip(U(., T)) in 1/h without W1: {:.2})",
                    r.lipschitz_growth_order
                );
                for row in &r.rows {
                    say!(
                        text,
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
                    say!(
                        text,
                        "  alpha {:<6} trajectory spread {:.3e}  terminal spread {:.3e}",
                        w.alpha,
                        w.trajectory_spread,
                        w.terminal_spread
                    );
                }
            }
        }
        Ok(StudyOutcome { summary, text })
    }
}

/// W1 (singular targets) or L1 to the dual's rho_T, and the error of J,
/// against the grid.
fn agreement_figure(r: &AgreementReport, methods: &[MethodKind], path: &Path) -> Result<()> {
    let (distance, label) = if r.singular {
        ("w1", "W1 of rho_T to dual / h")
    } else {
        ("l1", "L1 of rho_T to dual")
    };
    let points = |m: MethodKind, value: &dyn Fn(&AgreementRow) -> f64| -> Vec<(f64, f64)> {
        r.rows
            .iter()
            .filter(|row| row.method == m)
            .map(|row| (row.grid as f64, value(row)))
            .collect()
    };
    let series: Vec<Series> = methods
        .iter()
        .filter(|m| **m != MethodKind::Dual)
        .map(|&m| Series {
            label: format!("{}: {label}", m.name()),
            points: points(m, &|row| {
                if distance == "w1" {
                    row.w1_to_dual / row.cell_width
                } else {
                    row.l1_to_dual
                }
            }),
        })
        .chain(methods.iter().map(|&m| Series {
            label: format!("{}: relative error of J", m.name()),
            points: points(m, &|row| row.relative_error.unwrap_or(row.relative_to_dual)),
        }))
        .collect();
    let title = format!("{}: agreement of the methods under refinement", r.case);
    let axes = Axes {
        title: &title,
        x: "cells on the longest axis",
        y: "distance",
        log_x: true,
        log_y: true,
    };
    chart::lines(&series, &axes, path)
}

/// A markdown table: the header, then one line per row of cells.
fn markdown_table(text: &mut String, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    say!(text, "| {} |", header.join(" | "));
    say!(text, "|{}", "---|".repeat(header.len()));
    for cells in rows {
        say!(text, "| {} |", cells.join(" | "));
    }
}

/// The agreement table of one case, then its observed orders.
fn agreement_table(r: &AgreementReport) -> String {
    let mut text = String::new();
    let metric = if r.singular {
        "singular target: agreement in W1"
    } else {
        "absolutely continuous target: agreement in L1"
    };
    say!(text, "\n{} ({metric})\n", r.case);
    let header = [
        "method",
        "grid",
        "J",
        "rel. error",
        "vs dual",
        "W1 to dual",
        "W1 / h",
        "L1 to dual",
        "sliced W1",
        "time (s)",
    ];
    let rows = r.rows.iter().map(|row| {
        vec![
            row.method.name().to_string(),
            row.grid.to_string(),
            format!("{:.6}", row.objective),
            row.relative_error
                .map_or("-".into(), |e| format!("{e:.2e}")),
            format!("{:.2e}", row.relative_to_dual),
            format!("{:.2e}", row.w1_to_dual),
            format!("{:.3}", row.w1_to_dual / row.cell_width),
            format!("{:.2e}", row.l1_to_dual),
            format!("{:.2e}", row.sliced_w1_to_dual),
            format!("{:.1}", row.wall_time_s),
        ]
    });
    markdown_table(&mut text, &header, rows);
    let order = |o: Option<f64>| o.map_or("-".into(), |v| format!("{v:.2}"));
    say!(text, "");
    let header = [
        "method",
        "grids",
        "order of J error",
        "order of W1",
        "order of L1",
    ];
    let rows = r.orders.iter().map(|o| {
        vec![
            o.method.name().to_string(),
            format!("{} -> {}", o.from, o.to),
            order(o.objective),
            order(o.w1),
            order(o.l1),
        ]
    });
    markdown_table(&mut text, &header, rows);
    text
}
