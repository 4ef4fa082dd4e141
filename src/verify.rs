//! Verification studies of the claims of math.md section 2, each as numbers
//! (a serialisable report) that `proxflow verify` writes with its figures:
//!
//! - uniqueness: from random starting guesses every method lands on the same
//!   `(rho_T, grad U(., 0))`;
//! - straightness: characteristics traced through U (not assumed straight)
//!   are straight, at speeds below `L / alpha`;
//! - ill-posedness: without the W1 proximal the terminal condition's
//!   Lipschitz constant grows like 1/h; without the W2 proximal the agents'
//!   paths depend on the start while the terminal law does not.

use crate::cases::Case;
use crate::divergence::lipschitz_constant;
use crate::error::{Error, Result};
use crate::grid::{Grid, blurred_l1_distance, l1_distance, sliced_w1};
pub use crate::mfg::Silent;
use crate::mfg::trace::{quantile, trace};
use crate::mfg::{
    AgentGuess, DualOptions, DualSolver, EulerianOptions, EulerianSolver, InitialGuess, MethodKind,
    Observer, ParticleOptions, ParticleSolver, Solution, Solver, TerminalGuess,
};
use crate::par::Parallelism;
use crate::problem::Problem;
use crate::wasserstein::grid_w1;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Reports progress of a long study (one line per finished solve; studies
/// that solve in parallel report from their threads, one at a time).
pub trait Progress: Send {
    /// Called after each solve.
    fn observe(&mut self, message: &str);
}

/// The mfg observer that says nothing says nothing of studies either.
impl Progress for Silent {
    fn observe(&mut self, _: &str) {}
}

/// Nodes where rho0 carries at least this fraction of its largest mass (1%:
/// within 3 standard deviations of a Gaussian) start the traced agents.
const SUPPORT_FLOOR: f64 = 1e-2;

/// Nodes where rho0 carries at least this fraction of its largest mass (5%:
/// within 2.4 standard deviations of a Gaussian) are where the sup-distance
/// of grad U(., 0) is taken. Further out rho0 is too thin to pin phi* down,
/// and the rho0-weighted RMS is the theory's norm there.
const GRAD_SUPPORT_FLOOR: f64 = 5e-2;

fn support(rho0: &Array2<f64>, floor: f64) -> Vec<(usize, usize)> {
    let top = rho0.iter().fold(0.0f64, |a, b| a.max(*b));
    rho0.indexed_iter()
        .filter(|(_, m)| **m >= floor * top)
        .map(|(ij, _)| ij)
        .collect()
}

/// A random L-Lipschitz potential: a sum of four plane waves whose amplitudes
/// times frequencies add up to `0.9 L`.
pub fn random_potential(grid: &Grid, lipschitz: f64, rng: &mut StdRng) -> Array2<f64> {
    let waves: Vec<([f64; 2], f64, f64)> = (0..4)
        .map(|_| {
            let angle = rng.random_range(0.0..std::f64::consts::TAU);
            let freq = rng.random_range(0.3..1.5);
            let dir = if grid.dim == 1 {
                [freq, 0.0]
            } else {
                [freq * angle.cos(), freq * angle.sin()]
            };
            (
                dir,
                rng.random_range(0.0..1.0),
                rng.random_range(0.0..std::f64::consts::TAU),
            )
        })
        .collect();
    let total: f64 = waves.iter().map(|(w, a, _)| a * w[0].hypot(w[1])).sum();
    let scale = 0.9 * lipschitz / total.max(1e-12);
    grid.evaluate(|x| {
        waves
            .iter()
            .map(|(w, a, p)| scale * a * (w[0] * x[0] + w[1] * x[1] + p).cos())
            .sum()
    })
}

/// A random smooth density: three Gaussian bumps in the middle half of the box.
pub fn random_density(grid: &Grid, rng: &mut StdRng) -> Array2<f64> {
    let hi = grid.hi();
    let bumps: Vec<([f64; 2], f64, f64)> = (0..3)
        .map(|_| {
            let at = |a: usize, rng: &mut StdRng| {
                let (lo, hi) = (grid.lo[a], hi[a]);
                let mid = 0.5 * (lo + hi);
                mid + 0.25 * (hi - lo) * rng.random_range(-1.0..1.0)
            };
            let c = [at(0, rng), if grid.dim == 2 { at(1, rng) } else { 0.0 }];
            (c, rng.random_range(0.5..2.0), rng.random_range(0.2..1.0))
        })
        .collect();
    let mut d = grid.evaluate(|x| {
        bumps
            .iter()
            .map(|(c, s, w)| {
                w * (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2)) / (2.0 * s * s)).exp()
            })
            .sum()
    });
    let total = d.sum();
    d /= total;
    d
}

/// Random terminal positions: each node displaced uniformly in a disc of
/// radius `radius`.
pub fn random_positions(grid: &Grid, radius: f64, rng: &mut StdRng) -> [Array2<f64>; 2] {
    let mut p = [grid.zeros(), grid.zeros()];
    for ((i, j), _) in grid.zeros().indexed_iter() {
        let x = grid.node(i, j);
        let r = radius * rng.random_range(0.0f64..1.0).sqrt();
        let a = rng.random_range(0.0..std::f64::consts::TAU);
        p[0][[i, j]] = x[0] + r * a.cos();
        p[1][[i, j]] = if grid.dim == 2 {
            x[1] + r * a.sin()
        } else {
            0.0
        };
    }
    p
}

/// The L1 residual at which the Eulerian solver stops from a random start
/// on a point or line target (in place of its Frank–Wolfe gap).
const RANDOM_START_RESIDUAL: f64 = 5e-3;

/// A method's starting guess, drawn at random.
#[derive(Debug, Clone)]
enum RandomStart {
    /// The dual solver's terminal potential.
    Potential(Array2<f64>),
    /// The Eulerian solver's terminal density.
    Density(Array2<f64>),
    /// The particle solver's terminal positions.
    Positions([Array2<f64>; 2]),
}

/// Draws a random start for `method` from `rng`.
fn random_start(
    method: MethodKind,
    problem: &Problem,
    grid: &Grid,
    rng: &mut StdRng,
) -> RandomStart {
    let lipschitz = problem.lipschitz.unwrap_or(1.0);
    match method {
        MethodKind::Dual => RandomStart::Potential(random_potential(grid, lipschitz, rng)),
        MethodKind::Eulerian => RandomStart::Density(random_density(grid, rng)),
        MethodKind::Particles => {
            let reach = lipschitz * problem.horizon / problem.alpha;
            let radius = reach.min(0.25 * (grid.hi()[0] - grid.lo[0]));
            RandomStart::Positions(random_positions(grid, radius, rng))
        }
    }
}

/// Solves `problem` on `grid` with `method` from a random start drawn from
/// `rng` (`None`: the method's default start).
pub fn solve_from_random(
    method: MethodKind,
    problem: &Problem,
    grid: &Grid,
    rng: Option<&mut StdRng>,
    observer: &mut dyn Observer,
) -> Result<Solution> {
    let start = rng.map(|r| random_start(method, problem, grid, r));
    solve_from_start(method, problem, grid, start, Parallelism::Rayon, observer)
}

/// Solves from `start` (`None`: the method's default start), the kernels
/// swept with `parallelism`.
fn solve_from_start(
    method: MethodKind,
    problem: &Problem,
    grid: &Grid,
    start: Option<RandomStart>,
    parallelism: Parallelism,
    observer: &mut dyn Observer,
) -> Result<Solution> {
    let random = start.is_some();
    let (mut potential, mut density, mut positions) = (None, None, None);
    match start {
        Some(RandomStart::Potential(p)) => potential = Some(p),
        Some(RandomStart::Density(d)) => density = Some(d),
        Some(RandomStart::Positions(x)) => positions = Some(x),
        None => {}
    }
    match method {
        MethodKind::Dual => {
            // from a random start, a tight gap: a gap of 2e-4 J still lets
            // terminal densities differ by about 1e-2 in L1
            let (max_iterations, tolerance) = if random {
                (1000, 1e-6)
            } else {
                (300, DualOptions::default().tolerance)
            };
            let options = DualOptions {
                max_iterations,
                tolerance,
                parallelism,
                ..Default::default()
            };
            let guess = InitialGuess { potential };
            DualSolver::new(options).solve_from(problem, grid, &guess, observer)
        }
        MethodKind::Eulerian => {
            // from a random start on a singular target, the L1 residual
            // decides: the default stop on the Frank–Wolfe gap comes after
            // about 100 rounds on line-2d at 128^2, with a residual of 0.14
            // and grad U(., 0) of ten starts 1.2e-2 apart (rho0-weighted
            // RMS); at 5e-3 (210 to 250 rounds) 1.7e-3 (docs/verification.md)
            let singular = problem.target.is_singular(problem.dim);
            let plain = EulerianOptions {
                parallelism,
                ..Default::default()
            };
            let options = if random && singular {
                EulerianOptions {
                    gap_tolerance: Some(0.0),
                    tolerance: RANDOM_START_RESIDUAL,
                    ..plain
                }
            } else {
                plain
            };
            let guess = TerminalGuess { density };
            EulerianSolver::new(options).solve_from(problem, grid, &guess, observer)
        }
        MethodKind::Particles => {
            let options = ParticleOptions {
                max_iterations: 100,
                parallelism,
                ..Default::default()
            };
            let guess = AgentGuess { positions };
            ParticleSolver::new(options).solve_from(problem, grid, &guess, observer)
        }
    }
}

/// `|grad U_a(x, 0) - grad U_b(x, 0)|` from the two runs' gradients: its
/// largest value over `nodes` and its rho0-weighted RMS over the grid.
fn grad_distances(
    [ga, gb]: [&[Array2<f64>; 2]; 2],
    rho0: &Array2<f64>,
    nodes: &[(usize, usize)],
) -> (f64, f64) {
    let gap = |ij: (usize, usize)| (ga[0][ij] - gb[0][ij]).hypot(ga[1][ij] - gb[1][ij]);
    let largest = nodes.iter().map(|&ij| gap(ij)).fold(0.0, f64::max);
    let (mut weighted, mut mass) = (0.0, 0.0);
    for (ij, &w) in rho0.indexed_iter() {
        weighted += w * gap(ij).powi(2);
        mass += w;
    }
    (largest, (weighted / mass).sqrt())
}

/// The spread of one method across random starts.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSpread {
    /// The method.
    pub method: MethodKind,
    /// Cells on the longest axis.
    pub grid: usize,
    /// Objectives J of the runs.
    pub objectives: Vec<f64>,
    /// Whether each run met its tolerance.
    pub converged: Vec<bool>,
    /// Largest pairwise L1 distance of the terminal masses.
    pub max_pairwise_l1: f64,
    /// The same after a 5-point blur (grid-scale distance).
    pub max_pairwise_blurred_l1: f64,
    /// Largest pairwise W1 of the terminal masses ([`grid_w1`]).
    pub max_pairwise_w1: f64,
    /// The grid's cell width h.
    pub cell_width: f64,
    /// Largest pairwise sup-distance of grad U(., 0) where rho0 holds at
    /// least 5% of its peak.
    pub max_pairwise_grad_u: f64,
    /// Largest pairwise rho0-weighted RMS distance of grad U(., 0).
    pub max_pairwise_grad_u_rms: f64,
    /// `max_pairwise_l1` among the first n starts, for n = 2, 3, ...
    pub l1_by_starts: Vec<(usize, f64)>,
    /// `max_pairwise_w1` among the first n starts.
    pub w1_by_starts: Vec<(usize, f64)>,
    /// Wall time of all runs.
    pub wall_time_s: f64,
}

/// Uniqueness study of one case.
#[derive(Debug, Clone, Serialize)]
pub struct UniquenessReport {
    /// The case.
    pub case: String,
    /// Random starts per method.
    pub starts: usize,
    /// Seed of the starts.
    pub seed: u64,
    /// Largest `max_pairwise_l1` over the methods.
    pub max_pairwise_l1: f64,
    /// Largest `max_pairwise_w1` over the methods.
    pub max_pairwise_w1: f64,
    /// Largest `max_pairwise_grad_u` over the methods.
    pub max_pairwise_grad_u: f64,
    /// Largest `max_pairwise_grad_u_rms` over the methods.
    pub max_pairwise_grad_u_rms: f64,
    /// One entry per method.
    pub methods: Vec<MethodSpread>,
}

/// What a uniqueness study runs.
#[derive(Debug, Clone)]
pub struct UniquenessOptions {
    /// Random starts per method (at least 2).
    pub starts: usize,
    /// Seed.
    pub seed: u64,
    /// Methods, each with its grid (cells on the longest axis).
    pub methods: Vec<(MethodKind, usize)>,
}

/// Runs every method from `starts` random guesses and measures how far the
/// results lie apart.
pub fn uniqueness(
    case: &Case,
    options: &UniquenessOptions,
    progress: &mut dyn Progress,
) -> Result<UniquenessReport> {
    check_starts(options.starts)?;
    let methods: Vec<MethodKind> = options.methods.iter().map(|m| m.0).collect();
    check_methods(&methods)?;
    let grids: Vec<usize> = options.methods.iter().map(|m| m.1).collect();
    check_grids(case, &grids)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut methods = Vec::new();
    for &(method, cells) in &options.methods {
        let grid = case.grid(cells)?;
        let clock = Instant::now();
        let starts: Vec<RandomStart> = (0..options.starts)
            .map(|_| random_start(method, &case.problem, &grid, &mut rng))
            .collect();
        // one start per thread, each with sequential kernels: a round's
        // serial parts leave a second core idle, and the results are the
        // same bit for bit (line-2d @128 Eulerian, 150 rounds: two starts
        // side by side 1.26x faster than one after the other); each thread
        // takes the next start when it finishes one (the starts' round
        // counts differ)
        let parallelism = if starts.len() > 1 && rayon::current_num_threads() > 1 {
            Parallelism::Sequential
        } else {
            Parallelism::Rayon
        };
        let finished = AtomicUsize::new(0);
        let shared = Mutex::new(&mut *progress);
        let runs = starts
            .into_par_iter()
            .with_max_len(1)
            .map(|start| {
                let s = solve_from_start(
                    method,
                    &case.problem,
                    &grid,
                    Some(start),
                    parallelism,
                    &mut Silent,
                )?;
                let k = finished.fetch_add(1, Ordering::Relaxed) + 1;
                let message = format!(
                    "{} @{cells}: start {k}/{} done  J {:.6}",
                    method.name(),
                    options.starts,
                    s.diagnostics.objective
                );
                shared
                    .lock()
                    .expect("no panic while reporting")
                    .observe(&message);
                Ok(s)
            })
            .collect::<Result<Vec<Solution>>>()?;
        let nodes = support(&runs[0].rho0, GRAD_SUPPORT_FLOOR);
        let gradients: Vec<[Array2<f64>; 2]> =
            runs.iter().map(Solution::initial_gradient).collect();
        // the pairs' distances in parallel (45 exact W1 at 128^2 take
        // about 80 s one after the other), then gathered in order
        let pairs: Vec<(usize, usize)> = (1..runs.len())
            .flat_map(|b| (0..b).map(move |a| (a, b)))
            .collect();
        let distances = pairs
            .par_iter()
            .map(|&(a, b)| {
                let (ra, rb) = (&runs[a].rho_terminal, &runs[b].rho_terminal);
                let pair = [&gradients[a], &gradients[b]];
                let (sup, rms) = grad_distances(pair, &runs[a].rho0, &nodes);
                let w1 = grid_w1(&grid, ra, rb)?;
                Ok([
                    l1_distance(ra, rb),
                    blurred_l1_distance(ra, rb),
                    w1,
                    sup,
                    rms,
                ])
            })
            .collect::<Result<Vec<[f64; 5]>>>()?;
        let (mut l1, mut blurred, mut w1) = (0.0f64, 0.0f64, 0.0f64);
        let (mut grad, mut grad_rms) = (0.0f64, 0.0f64);
        let (mut l1_by_starts, mut w1_by_starts) = (Vec::new(), Vec::new());
        for (&(a, b), d) in pairs.iter().zip(&distances) {
            l1 = l1.max(d[0]);
            blurred = blurred.max(d[1]);
            w1 = w1.max(d[2]);
            grad = grad.max(d[3]);
            grad_rms = grad_rms.max(d[4]);
            if a + 1 == b {
                l1_by_starts.push((b + 1, l1));
                w1_by_starts.push((b + 1, w1));
            }
        }
        methods.push(MethodSpread {
            method,
            grid: cells,
            objectives: runs.iter().map(|s| s.diagnostics.objective).collect(),
            converged: runs.iter().map(|s| s.diagnostics.converged).collect(),
            max_pairwise_l1: l1,
            max_pairwise_blurred_l1: blurred,
            max_pairwise_w1: w1,
            cell_width: grid.h,
            max_pairwise_grad_u: grad,
            max_pairwise_grad_u_rms: grad_rms,
            l1_by_starts,
            w1_by_starts,
            wall_time_s: clock.elapsed().as_secs_f64(),
        });
    }
    Ok(UniquenessReport {
        case: case.name.into(),
        starts: options.starts,
        seed: options.seed,
        max_pairwise_l1: methods
            .iter()
            .map(|m| m.max_pairwise_l1)
            .fold(0.0, f64::max),
        max_pairwise_w1: methods
            .iter()
            .map(|m| m.max_pairwise_w1)
            .fold(0.0, f64::max),
        max_pairwise_grad_u: methods
            .iter()
            .map(|m| m.max_pairwise_grad_u)
            .fold(0.0, f64::max),
        max_pairwise_grad_u_rms: methods
            .iter()
            .map(|m| m.max_pairwise_grad_u_rms)
            .fold(0.0, f64::max),
        methods,
    })
}

/// Straightness statistics of the paths traced through one solution.
#[derive(Debug, Clone, Serialize)]
pub struct StraightnessRow {
    /// The method.
    pub method: MethodKind,
    /// Cells on the longest axis.
    pub grid: usize,
    /// Traced agents (those moving more than one cell).
    pub agents: usize,
    /// Median of `length / |x_T - x_0| - 1`.
    pub straightness_median: f64,
    /// 99th percentile of the same.
    pub straightness_p99: f64,
    /// 99th percentile of the largest distance from the chord.
    pub max_deviation_p99: f64,
    /// Fraction of agents whose speed exceeds `SPEED_TOLERANCE L / alpha`.
    pub speed_violation_fraction: f64,
    /// Largest traced speed.
    pub max_speed: f64,
    /// `L / alpha`.
    pub speed_bound: f64,
}

/// A traced speed counts as a violation above this multiple of `L / alpha`
/// (central differences of a Lipschitz field can exceed L by O(h)).
pub const SPEED_TOLERANCE: f64 = 1.05;

/// Starting points on a sub-lattice of the support of rho0 (about
/// `per_axis^2` agents).
pub fn tracer_starts(solution: &Solution, per_axis: usize) -> Vec<[f64; 2]> {
    let grid = &solution.grid;
    let stride = (grid.n[0] / per_axis.max(1)).max(1);
    let top = solution.rho0.iter().fold(0.0f64, |a, b| a.max(*b));
    let mut starts = Vec::new();
    for i in (stride / 2..grid.n[0]).step_by(stride) {
        for j in (stride / 2..grid.n[1]).step_by(stride.min(grid.n[1])) {
            if solution.rho0[[i, j]] >= SUPPORT_FLOOR * top {
                starts.push(grid.node(i, j));
            }
        }
    }
    starts
}

/// Traces the characteristics of `solution` and summarises them.
pub fn straightness_of(
    method: MethodKind,
    cells: usize,
    solution: &Solution,
    paths: &[crate::mfg::trace::Path],
) -> StraightnessRow {
    let bound = solution.diagnostics.speed_bound;
    let moving: Vec<_> = paths
        .iter()
        .filter(|p| p.straightness.is_finite())
        .collect();
    let violations = paths
        .iter()
        .filter(|p| p.max_speed > SPEED_TOLERANCE * bound)
        .count();
    StraightnessRow {
        method,
        grid: cells,
        agents: moving.len(),
        straightness_median: quantile(moving.iter().map(|p| p.straightness), 0.5),
        straightness_p99: quantile(moving.iter().map(|p| p.straightness), 0.99),
        max_deviation_p99: quantile(moving.iter().map(|p| p.max_deviation), 0.99),
        speed_violation_fraction: violations as f64 / paths.len().max(1) as f64,
        max_speed: paths.iter().map(|p| p.max_speed).fold(0.0, f64::max),
        speed_bound: bound,
    }
}

/// Straightness study of one case.
#[derive(Debug, Clone, Serialize)]
pub struct StraightnessReport {
    /// The case.
    pub case: String,
    /// Worst median over the methods at the finest grid.
    pub straightness_median: f64,
    /// Worst 99th percentile over the methods at the finest grid.
    pub straightness_p99: f64,
    /// Worst violation fraction over the methods at the finest grid.
    pub speed_violation_fraction: f64,
    /// RK4 steps per path.
    pub steps: usize,
    /// One row per method and grid.
    pub rows: Vec<StraightnessRow>,
}

/// Checks every grid of a study (and that there is one) before any solve.
fn check_grids(case: &Case, grids: &[usize]) -> Result<()> {
    if grids.is_empty() {
        return Err(Error::invalid("grids", "[]", "list at least one grid"));
    }
    grids
        .iter()
        .try_for_each(|&cells| case.grid(cells).map(drop))
}

/// Checks that a study has at least two random starts to compare.
fn check_starts(starts: usize) -> Result<()> {
    if starts < 2 {
        return Err(Error::invalid(
            "starts",
            starts,
            "need at least 2 starts to compare",
        ));
    }
    Ok(())
}

/// Checks that a study has a method to run.
fn check_methods(methods: &[MethodKind]) -> Result<()> {
    if methods.is_empty() {
        return Err(Error::invalid("methods", "[]", "list at least one method"));
    }
    Ok(())
}

/// Receives each method's finest solution with its traced paths (figures).
pub type FinestHook<'a> =
    dyn FnMut(MethodKind, &Solution, &[crate::mfg::trace::Path]) -> Result<()> + 'a;

/// Solves with each method on each grid, traces ~`per_axis^2` agents with
/// `steps` RK4 steps, and hands each finest solution with its paths to
/// `finest` (for figures).
pub fn straightness(
    case: &Case,
    methods: &[MethodKind],
    grids: &[usize],
    per_axis: usize,
    steps: usize,
    progress: &mut dyn Progress,
    finest: &mut FinestHook,
) -> Result<StraightnessReport> {
    check_grids(case, grids)?;
    check_methods(methods)?;
    if per_axis < 2 {
        return Err(Error::invalid(
            "agents",
            per_axis,
            "the tracer lattice needs at least 2 agents per axis",
        ));
    }
    if steps == 0 {
        return Err(Error::invalid("steps", steps, "must be at least 1"));
    }
    let mut rows = Vec::new();
    let top = *grids.iter().max().expect("non-empty");
    for &method in methods {
        for &cells in grids {
            let grid = case.grid(cells)?;
            let s = solve_from_random(method, &case.problem, &grid, None, &mut Silent)?;
            let paths = trace(&s, &tracer_starts(&s, per_axis), steps);
            let row = straightness_of(method, cells, &s, &paths);
            progress.observe(&format!(
                "{} @{cells}: straightness median {:.2e}, p99 {:.2e}",
                method.name(),
                row.straightness_median,
                row.straightness_p99
            ));
            rows.push(row);
            if cells == top {
                finest(method, &s, &paths)?;
            }
        }
    }
    let at_top: Vec<&StraightnessRow> = rows.iter().filter(|r| r.grid == top).collect();
    let worst = |f: fn(&StraightnessRow) -> f64| at_top.iter().map(|r| f(r)).fold(0.0, f64::max);
    Ok(StraightnessReport {
        case: case.name.into(),
        straightness_median: worst(|r| r.straightness_median),
        straightness_p99: worst(|r| r.straightness_p99),
        speed_violation_fraction: worst(|r| r.speed_violation_fraction),
        steps,
        rows,
    })
}

/// One grid and Lipschitz setting of the W1 study.
#[derive(Debug, Clone, Serialize)]
pub struct IllPosedRow {
    /// The solver of this row.
    pub method: MethodKind,
    /// Cells on the longest axis.
    pub grid: usize,
    /// Grid spacing.
    pub h: f64,
    /// L (a number) or the string "inf".
    pub lipschitz_bound: serde_json::Value,
    /// Discrete Lipschitz constant of the terminal condition U(., T): the
    /// discriminator phi* (L finite) or `f'(rho_T / q)` on the support of Q,
    /// extended by its largest value (L = inf).
    pub lipschitz_terminal: f64,
    /// Objective J (the string "inf" when the terminal law charges nodes
    /// outside the support of Q, where `D_f` is infinite).
    pub objective: serde_json::Value,
    /// Kinetic energy.
    pub kinetic_energy: f64,
    /// Largest speed: `|grad U| / alpha` where the density carries mass
    /// (Eulerian), `|x_T - x_0| / T` (dual).
    pub max_speed: f64,
}

/// One kinetic weight of the W2 study.
#[derive(Debug, Clone, Serialize)]
pub struct NoW2Row {
    /// Kinetic weight alpha.
    pub alpha: f64,
    /// Random starts.
    pub starts: usize,
    /// Largest pairwise rho0-weighted mean distance between the end points
    /// y*(x) of two starts: the spread of the trajectories.
    pub trajectory_spread: f64,
    /// Largest pairwise blurred L1 distance of the terminal laws.
    pub terminal_spread: f64,
    /// Mean objective.
    pub objective: f64,
}

/// Ill-posedness study of one case.
#[derive(Debug, Clone, Serialize)]
pub struct IllPosedReport {
    /// The case.
    pub case: String,
    /// The W1 study: one row per grid and Lipschitz setting.
    pub rows: Vec<IllPosedRow>,
    /// Observed order of growth of the terminal Lipschitz constant in 1/h
    /// (slope of log Lip against log(1/h)) without the W1 proximal.
    pub lipschitz_growth_order: f64,
    /// The W2 study on a coarse grid (particle solver, random agent starts).
    pub no_w2: Vec<NoW2Row>,
    /// Its grid.
    pub no_w2_grid: usize,
}

/// The W1 study on `grids`. L = inf: the Eulerian solver for `rounds`
/// rounds, which meets the terminal condition `f'(rho_T / q)` as a PDE or
/// neural solver does, with Q represented at the grid scale (a 5-point blur:
/// on a node row a singular Q would otherwise give `f'(rho_T / q)` no profile
/// across the support at all). L = the case's bound (or 1): the dual solver,
/// exact on the grid. Then the W2 study for `alphas` on `coarse`
/// cells: the particle solver from `starts` random agent positions.
pub fn ill_posed(
    case: &Case,
    grids: &[usize],
    rounds: usize,
    alphas: &[f64],
    coarse: usize,
    starts: usize,
    progress: &mut dyn Progress,
) -> Result<IllPosedReport> {
    // every parameter first: a bad one must not cost the grid study
    for &alpha in alphas {
        Problem {
            alpha,
            ..case.problem.clone()
        }
        .validate()
        .map_err(|_| Error::invalid("alphas", alpha, "each alpha must be a finite number > 0"))?;
    }
    check_starts(starts)?;
    if rounds == 0 {
        return Err(Error::invalid("rounds", rounds, "must be at least 1"));
    }
    check_grids(case, grids)?;
    case.grid(coarse)?;
    if alphas.is_empty() {
        return Err(Error::invalid("alphas", "[]", "list at least one alpha"));
    }
    let bound = case.problem.lipschitz.unwrap_or(1.0);
    let mut rows = Vec::new();
    for &cells in grids {
        let grid = case.grid(cells)?;
        for lipschitz in [None, Some(bound)] {
            let problem = Problem {
                lipschitz,
                ..case.problem.clone()
            };
            // L = inf: the Eulerian solver meets f'(rho_T / q) as a PDE or
            // neural solver does; L finite: the exact dual solver
            let (method, s) = match lipschitz {
                None => {
                    let options = EulerianOptions {
                        max_iterations: rounds,
                        target_blur: true,
                        ..Default::default()
                    };
                    let s = EulerianSolver::new(options).solve(&problem, &grid, &mut Silent)?;
                    (MethodKind::Eulerian, s)
                }
                Some(_) => {
                    let s =
                        solve_from_random(MethodKind::Dual, &problem, &grid, None, &mut Silent)?;
                    (MethodKind::Dual, s)
                }
            };
            let number = |v: f64| {
                if v.is_finite() {
                    serde_json::json!(v)
                } else {
                    serde_json::json!("inf")
                }
            };
            let row = IllPosedRow {
                method,
                grid: cells,
                h: grid.h,
                lipschitz_bound: lipschitz
                    .map_or(serde_json::json!("inf"), |l| serde_json::json!(l)),
                lipschitz_terminal: lipschitz_constant(&grid, &s.phi),
                objective: number(s.diagnostics.objective),
                kinetic_energy: s.diagnostics.kinetic_energy,
                max_speed: s.diagnostics.max_speed,
            };
            progress.observe(&format!(
                "W1 study @{cells}, L = {}: Lip(U(., T)) {:.3}, J {}, max speed {:.3}",
                row.lipschitz_bound, row.lipschitz_terminal, row.objective, row.max_speed
            ));
            rows.push(row);
        }
    }
    let growth: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.lipschitz_bound.is_string())
        .map(|r| ((1.0 / r.h).ln(), r.lipschitz_terminal.ln()))
        .collect();
    let lipschitz_growth_order = slope(&growth);
    let grid = case.grid(coarse)?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut no_w2 = Vec::new();
    for &alpha in alphas {
        let problem = Problem {
            alpha,
            ..case.problem.clone()
        };
        let runs: Vec<Solution> = (0..starts)
            .map(|_| {
                solve_from_random(
                    MethodKind::Particles,
                    &problem,
                    &grid,
                    Some(&mut rng),
                    &mut Silent,
                )
            })
            .collect::<Result<_>>()?;
        let (mut spread, mut terminal) = (0.0f64, 0.0f64);
        for b in 1..runs.len() {
            for a in 0..b {
                spread = spread.max(map_distance(&runs[a], &runs[b]));
                terminal = terminal.max(blurred_l1_distance(
                    &runs[a].rho_terminal,
                    &runs[b].rho_terminal,
                ));
            }
        }
        let row = NoW2Row {
            alpha,
            starts,
            trajectory_spread: spread,
            terminal_spread: terminal,
            objective: runs.iter().map(|s| s.diagnostics.objective).sum::<f64>() / starts as f64,
        };
        progress.observe(&format!(
            "W2 study alpha {alpha}: trajectory spread {:.3e}, terminal spread {:.3e}",
            row.trajectory_spread, row.terminal_spread
        ));
        no_w2.push(row);
    }
    Ok(IllPosedReport {
        case: case.name.into(),
        rows,
        lipschitz_growth_order,
        no_w2,
        no_w2_grid: coarse,
    })
}

/// rho0-weighted mean of `|y*_a(x) - y*_b(x)|`.
fn map_distance(a: &Solution, b: &Solution) -> f64 {
    match (&a.map, &b.map) {
        (Some(ma), Some(mb)) => a
            .rho0
            .indexed_iter()
            .map(|(ij, m)| m * (ma[0][ij] - mb[0][ij]).hypot(ma[1][ij] - mb[1][ij]))
            .sum(),
        _ => f64::NAN,
    }
}

/// Least-squares slope of y against x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

/// One method on one grid, held against the dual solver on the same grid.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementRow {
    /// The method.
    pub method: MethodKind,
    /// Cells on the longest axis.
    pub grid: usize,
    /// Objective J.
    pub objective: f64,
    /// `|J - J_exact| / J_exact` where the case has a closed form.
    pub relative_error: Option<f64>,
    /// `|J - J_dual| / J_dual` on the same grid.
    pub relative_to_dual: f64,
    /// L1 distance of the terminal masses to the dual solver's.
    pub l1_to_dual: f64,
    /// The same after a 5-point blur.
    pub blurred_l1_to_dual: f64,
    /// Sliced W1 distance (16 directions) to the dual solver's terminal masses.
    pub sliced_w1_to_dual: f64,
    /// W1 distance to the dual solver's terminal masses on the grid
    /// ([`grid_w1`]): the metric of agreement on singular targets.
    pub w1_to_dual: f64,
    /// The grid's cell width h.
    pub cell_width: f64,
    /// Kinetic energy.
    pub kinetic_energy: f64,
    /// Terminal cost.
    pub terminal_cost: f64,
    /// Whether the method met its tolerance.
    pub converged: bool,
    /// Wall time.
    pub wall_time_s: f64,
}

/// Observed orders of one method between two successive grids:
/// `log(e_coarse / e_fine) / log(n_fine / n_coarse)`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRow {
    /// The method.
    pub method: MethodKind,
    /// The coarse grid.
    pub from: usize,
    /// The fine grid.
    pub to: usize,
    /// Order of the error of J (against the closed form, or the dual's J
    /// on the finest grid where there is none); `None` for the reference.
    pub objective: Option<f64>,
    /// Order of the W1 distance to the dual solver's rho_T.
    pub w1: Option<f64>,
    /// Order of the L1 distance to it.
    pub l1: Option<f64>,
}

/// Agreement study of one case.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementReport {
    /// The case.
    pub case: String,
    /// Whether the target is singular (agreement is then measured in W1).
    pub singular: bool,
    /// Closed-form objective, if any.
    pub exact_objective: Option<f64>,
    /// One row per method and grid.
    pub rows: Vec<AgreementRow>,
    /// Observed orders between successive grids.
    pub orders: Vec<OrderRow>,
}

/// The order of decay from `coarse` to `fine` over the refinement `ratio`
/// (`None` where either error is zero or not finite).
fn observed_order(coarse: f64, fine: f64, ratio: f64) -> Option<f64> {
    let order = (coarse / fine).ln() / ratio.ln();
    (coarse > 0.0 && fine > 0.0 && order.is_finite()).then_some(order)
}

/// Observed orders of every method between successive grids of `rows`.
fn orders(rows: &[AgreementRow], methods: &[MethodKind], exact: Option<f64>) -> Vec<OrderRow> {
    // without a closed form, J is measured against the dual's on the finest grid
    let finest = rows.iter().map(|r| r.grid).max().unwrap_or(0);
    let reference = exact.or_else(|| {
        rows.iter()
            .find(|r| r.grid == finest && r.method == MethodKind::Dual)
            .map(|r| r.objective)
    });
    let mut out = Vec::new();
    for &method in methods {
        let mine: Vec<&AgreementRow> = rows.iter().filter(|r| r.method == method).collect();
        for pair in mine.windows(2) {
            let (c, f) = (pair[0], pair[1]);
            let ratio = f.grid as f64 / c.grid as f64;
            let is_reference = method == MethodKind::Dual;
            let j_error = |r: &AgreementRow| reference.map(|j| (r.objective - j).abs());
            let objective = match (j_error(c), j_error(f)) {
                (Some(a), Some(b)) => observed_order(a, b, ratio),
                _ => None,
            };
            out.push(OrderRow {
                method,
                from: c.grid,
                to: f.grid,
                objective,
                w1: (!is_reference)
                    .then(|| observed_order(c.w1_to_dual, f.w1_to_dual, ratio))
                    .flatten(),
                l1: (!is_reference)
                    .then(|| observed_order(c.l1_to_dual, f.l1_to_dual, ratio))
                    .flatten(),
            });
        }
    }
    out
}

/// Solves the case with the dual solver and each other method on each grid
/// and compares objectives and terminal densities.
pub fn agreement(
    case: &Case,
    methods: &[MethodKind],
    grids: &[usize],
    progress: &mut dyn Progress,
) -> Result<AgreementReport> {
    check_grids(case, grids)?;
    check_methods(methods)?;
    let exact = case.exact.as_ref().map(|e| e.objective());
    let mut rows = Vec::new();
    for &cells in grids {
        let grid = case.grid(cells)?;
        let reference =
            solve_from_random(MethodKind::Dual, &case.problem, &grid, None, &mut Silent)?;
        for &method in methods {
            let s = if method == MethodKind::Dual {
                reference.clone()
            } else {
                solve_from_random(method, &case.problem, &grid, None, &mut Silent)?
            };
            let d = &s.diagnostics;
            let j_dual = reference.diagnostics.objective;
            let row = AgreementRow {
                method,
                grid: cells,
                objective: d.objective,
                relative_error: exact.map(|e| (d.objective - e).abs() / e.abs()),
                relative_to_dual: (d.objective - j_dual).abs() / j_dual.abs(),
                l1_to_dual: l1_distance(&s.rho_terminal, &reference.rho_terminal),
                blurred_l1_to_dual: blurred_l1_distance(&s.rho_terminal, &reference.rho_terminal),
                sliced_w1_to_dual: sliced_w1(&grid, &s.rho_terminal, &reference.rho_terminal, 16),
                w1_to_dual: grid_w1(&grid, &s.rho_terminal, &reference.rho_terminal)?,
                cell_width: grid.h,
                kinetic_energy: d.kinetic_energy,
                terminal_cost: d.terminal_cost,
                converged: d.converged,
                wall_time_s: d.wall_time_s,
            };
            progress.observe(&format!(
                "{} @{cells}: J {:.6} (vs dual {:.2e}), W1 to dual {:.2e} = {:.3} h, L1 {:.2e}",
                method.name(),
                row.objective,
                row.relative_to_dual,
                row.w1_to_dual,
                row.w1_to_dual / grid.h,
                row.l1_to_dual,
            ));
            rows.push(row);
        }
    }
    Ok(AgreementReport {
        case: case.name.into(),
        singular: case.problem.target.is_singular(case.problem.dim),
        exact_objective: exact,
        orders: orders(&rows, methods, exact),
        rows,
    })
}

/// One grid of a scaling study.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingRow {
    /// Cells on the longest axis.
    pub grid: usize,
    /// Grid nodes in all.
    pub nodes: usize,
    /// Iterations, all levels and algorithms together.
    pub iterations: usize,
    /// Newton or interior-point iterations on the finest level (0 where the ladder solved it).
    pub finest_iterations: usize,
    /// Wall time of the solve.
    pub wall_time_s: f64,
    /// `(J - dual) / max(|J|, 0.01)`.
    pub relative_gap: f64,
    /// See [`crate::mfg::Diagnostics::lower_bound_bias`].
    pub lower_bound_bias: f64,
    /// Objective J.
    pub objective: f64,
    /// `|J - J_exact| / J_exact` where the case has a closed form.
    pub relative_error: Option<f64>,
    /// Whether the solve met its tolerance.
    pub converged: bool,
}

/// How the dual method's cost grows with the grid.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingReport {
    /// The case.
    pub case: String,
    /// One row per grid, coarsest first.
    pub rows: Vec<ScalingRow>,
}

impl ScalingReport {
    /// The markdown table printed by `proxflow verify scaling`.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| case | grid | nodes | iterations | finest level | time (s) | rel. gap | bias | J | rel. error |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.2} | {:.1e} | {:.1e} | {:.6} | {} |\n",
                self.case,
                r.grid,
                r.nodes,
                r.iterations,
                r.finest_iterations,
                r.wall_time_s,
                r.relative_gap,
                r.lower_bound_bias,
                r.objective,
                r.relative_error.map_or("-".into(), |e| format!("{e:.2e}"))
            ));
        }
        s
    }

    /// Log-log figure of iterations and wall time against nodes.
    pub fn plot(&self, path: &std::path::Path) -> Result<()> {
        let series = |label: &str, f: &dyn Fn(&ScalingRow) -> f64| crate::chart::Series {
            label: label.into(),
            points: self.rows.iter().map(|r| (r.nodes as f64, f(r))).collect(),
        };
        let title = format!("{}: the dual method under refinement", self.case);
        crate::chart::lines(
            &[
                series("iterations (all levels)", &|r| r.iterations as f64),
                series("wall time (s)", &|r| r.wall_time_s.max(1e-3)),
            ],
            &crate::chart::Axes {
                title: &title,
                x: "grid nodes",
                y: "iterations / seconds",
                log_x: true,
                log_y: true,
            },
            path,
        )
    }
}

/// Solves `case` with the default dual method on each grid.
pub fn scaling(case: &Case, grids: &[usize], progress: &mut dyn Progress) -> Result<ScalingReport> {
    check_grids(case, grids)?;
    let exact = case.exact.as_ref().map(|e| e.objective());
    // every grid is built before the first solve
    let built: Vec<Grid> = grids.iter().map(|&c| case.grid(c)).collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for (grid, &cells) in built.iter().zip(grids) {
        let sol = DualSolver::default().solve(&case.problem, grid, &mut Silent)?;
        let d = &sol.diagnostics;
        let row = ScalingRow {
            grid: cells,
            nodes: grid.len(),
            iterations: d.iterations,
            finest_iterations: d.levels.last().map_or(0, |l| l.iterations),
            wall_time_s: d.wall_time_s,
            relative_gap: d.duality_gap / d.objective.abs().max(1e-2),
            lower_bound_bias: d.lower_bound_bias,
            objective: d.objective,
            relative_error: exact.map(|e| (d.objective - e).abs() / e.abs()),
            converged: d.converged,
        };
        progress.observe(&format!(
            "{} @{cells}: {} iterations, {:.2} s, relative gap {:.1e}",
            case.name, row.iterations, row.wall_time_s, row.relative_gap
        ));
        rows.push(row);
    }
    Ok(ScalingReport {
        case: case.name.into(),
        rows,
    })
}
