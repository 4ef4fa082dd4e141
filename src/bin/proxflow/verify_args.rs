//! The arguments of `proxflow verify`: one subcommand a study, turned into a
//! library [`Study`] and its output folder.

use clap::Subcommand;
use proxflow::error::Result;
use proxflow::mfg::MethodKind;
use proxflow::studies::Study;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StudyArgs {
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
    /// The three methods against each other (and the closed form) under
    /// refinement: J, W1 and L1 of rho_T to the dual's, observed orders
    /// (writes summary.json, and per case a folder with its own and
    /// agreement.png).
    Agreement {
        /// Built-in cases (comma-separated; default: every 2-D case).
        #[arg(
            long = "case",
            default_value = "dirac-2d,line-2d,shift-2d,shift-near-2d,pinwheel-2d",
            value_delimiter = ','
        )]
        cases: Vec<String>,
        /// Grids (comma-separated cells on the longest axis).
        #[arg(long, default_value = "32,64,128,256", value_delimiter = ',')]
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
        /// Cells of the Eulerian and particle solvers' grid.
        #[arg(long, default_value_t = 128)]
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

fn kinds(names: &[String]) -> Result<Vec<MethodKind>> {
    names.iter().map(|n| MethodKind::parse(n.trim())).collect()
}

impl StudyArgs {
    /// The study and the folder it writes into.
    pub fn into_study(self) -> Result<(Study, PathBuf)> {
        Ok(match self {
            StudyArgs::Scaling { case, grids, out } => (Study::Scaling { case, grids }, out),
            StudyArgs::Agreement {
                cases,
                grids,
                methods,
                out,
            } => (
                Study::Agreement {
                    cases,
                    grids,
                    methods: kinds(&methods)?,
                },
                out,
            ),
            StudyArgs::Uniqueness {
                case,
                grid,
                coarse_grid,
                starts,
                methods,
                seed,
                out,
            } => (
                Study::Uniqueness {
                    case,
                    grid,
                    coarse_grid,
                    starts,
                    methods: kinds(&methods)?,
                    seed,
                },
                out,
            ),
            StudyArgs::Straightness {
                case,
                grids,
                methods,
                agents,
                steps,
                out,
            } => (
                Study::Straightness {
                    case,
                    grids,
                    methods: kinds(&methods)?,
                    agents,
                    steps,
                },
                out,
            ),
            StudyArgs::IllPosed {
                case,
                grids,
                rounds,
                alphas,
                coarse_grid,
                starts,
                out,
            } => (
                Study::IllPosed {
                    case,
                    grids,
                    rounds,
                    alphas,
                    coarse_grid,
                    starts,
                },
                out,
            ),
        })
    }
}
