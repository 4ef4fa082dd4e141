//! The verification studies as values: a [`Study`] names what to run, and
//! [`Study::run`] runs it through [`crate::verify`], writes `summary.json`
//! and the figures into a folder and returns the printed summary. The
//! command line and `proxflow validate` both call it.

use crate::cases;
use crate::chart::{self, Axes, Series};
use crate::error::{Error, Result};
use crate::mfg::{MethodKind, Solution};
use crate::verify::{
    Progress, UniquenessOptions, agreement, ill_posed, scaling, straightness, uniqueness,
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
    /// The methods against each other (and the closed form) under refinement.
    Agreement {
        /// Built-in case.
        case: String,
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
                case,
                grids,
                methods,
            } => {
                let c = cases::builtin(&case)?;
                let list = methods;
                let r = agreement(&c, &list, &grids, progress)?;
                summary = write_summary(out, &r)?;
                let series: Vec<Series> = list
                    .iter()
                    .filter(|m| **m != MethodKind::Dual)
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
                chart::lines(&series, &axes, &out.join("agreement.png"))?;
                say!(
                    text,
                    "| method | grid | J | rel. error | vs dual | L1 to dual | blurred | sliced W1 | time (s) |"
                );
                say!(text, "|---|---|---|---|---|---|---|---|---|");
                for row in &r.rows {
                    say!(
                        text,
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
                chart::lines(&series, &axes, &out.join("uniqueness.png"))?;
                say!(
                    text,
                    "uniqueness of {case}: {starts} random starts per method"
                );
                for m in &r.methods {
                    say!(
                        text,
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
