//! Eulerian MFG solver (method `eulerian`): nothing is assumed about the
//! trajectories. One round solves, for a guess of the terminal density,
//!
//! ```text
//! phi    = argmax_{L-Lip} sum rho_bar phi - Lambda_f(phi; Q)            (PDHG, divergence module)
//! -U_t + |grad U|^2 / (2 alpha) = 0,  U(., T) = phi                    (monotone finite differences)
//! rho_t + div(rho v) = 0,  v = -grad U / alpha,  rho(., 0) = rho0      (semi-Lagrangian or finite volumes)
//! ```
//!
//! and the rounds are coupled by fictitious play: the agents' flows are
//! averaged, `(rho, m)_bar <- (rho, m)_bar + w_k ((rho, m)_k - (rho, m)_bar)`
//! with `w_k = 2/(k+1)` (recent rounds weigh more than with `1/k`; the first
//! round replaces the starting guess, which acts only through the first
//! discriminator). The continuity equation is linear in `(rho, m = rho v)`, so
//! the average is a flow from rho0 too, with kinetic energy
//! `alpha/2 int int |m_bar|^2 / rho_bar` no larger than the rounds' mean: the
//! averaged flow is the answer, while single best responses may stay rough.
//! The best response minimises `K + <phi, rho_T>` with `phi = D'(rho_bar_T)`,
//! so the Frank–Wolfe gap `K(bar) + <phi, bar_T> - K(br) - <phi, br_T>`
//! bounds `J(bar) - J*` (up to the discriminator's inexactness). The rounds
//! stop when the L1 change of `rho_bar_T` is small, or when the gap is
//! (by default on point and line targets, see [`SINGULAR_GAP_PER_CELL`]).
//! U is stored on `slices + 1` time levels and is linear in time between
//! them. The default transport ([`Transport::SemiLagrangian`]) moves each
//! node's mass to the foot of its characteristic over `steps` transport
//! steps (default one: the Hopf–Lax minimiser of U at the step's end, which
//! for one step is phi itself, so a round marches the FD U back only as far
//! as the transport reads it, and for one step not at all; the FD U from the
//! final phi gives the snapshots' values and grad U(., 0), and the `rk2`
//! foot reads grad U at the step's start and middle) and splats it
//! bilinearly, which keeps collapses onto points and
//! lines sharp; finite volumes ([`Transport::FiniteVolume`]) take the mean
//! of the two levels' face velocities and smear a collapse over a few cells.

use super::solution::{Diagnostics, Snapshot, Solution, StopReason, ValueSeries};
use super::{IterationState, Observer};
use crate::divergence::PdhgMetric;
use crate::error::{Error, Result};
use crate::grid::{Grid, blur, l1_distance, normalise_mass};
use crate::hj::finite_difference::{FdOptions, solve_backward};
use crate::par::Parallelism;
use crate::problem::Problem;
use crate::transport::finite_volume::{advance_faces, face_velocities};
use crate::transport::semi_lagrangian::{
    self, Deposits, FootRule, HopfLax, Rk2, SlOptions, ValueSlab,
};
use crate::transport::{FvOptions, Transport};
use ndarray::Array2;

/// Options of the Eulerian solver.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EulerianOptions {
    /// Fictitious-play rounds at most (each round's [`IterationState`]
    /// reports the averaged flow's objective and, as `dual`, the objective
    /// less its Frank–Wolfe gap).
    pub max_iterations: usize,
    /// Stop when `|rho(., T) - rho_bar|_1` falls below this.
    pub tolerance: f64,
    /// Stop also when the Frank–Wolfe gap of the averaged flow falls below
    /// this fraction of its objective (0: the L1 residual alone decides).
    /// Unset: a gap of [`SINGULAR_GAP_PER_CELL`] `L h` on point and line
    /// targets with the W1 proximal on, the L1 residual alone otherwise.
    pub gap_tolerance: Option<f64>,
    /// Stored time levels of U minus one (even).
    pub slices: usize,
    /// PDHG iterations per round for the discriminator.
    pub discriminator_iterations: usize,
    /// The metric of the discriminator's PDHG step (H1: grid-independent).
    pub discriminator_metric: PdhgMetric,
    /// PDHG iterations for the final discriminator.
    pub final_discriminator_iterations: usize,
    /// Hamilton–Jacobi scheme.
    pub hj: FdOptions,
    /// Continuity scheme.
    pub transport: Transport,
    /// Number of snapshots in [0, T] (at least 2).
    pub snapshots: usize,
    /// Represent the target at the grid scale (5-point binomial blur of its
    /// masses): a singular Q on a node row then has a density profile across
    /// the support, as a PDE discretisation of a singular target sees it.
    pub target_blur: bool,
    /// Parallel sweeps.
    pub parallelism: Parallelism,
}

impl Default for EulerianOptions {
    fn default() -> Self {
        EulerianOptions {
            // the semi-Lagrangian best responses keep their sharp features,
            // and the averaged flow settles in 100-300 rounds (shift-near-2d
            // at 128^2: node L1 to the dual solver 9.8e-2 after 60 rounds,
            // 1.8e-3 after 300)
            max_iterations: 300,
            tolerance: 2e-3,
            gap_tolerance: None,
            slices: 40,
            // the H1 step needs few iterations per warm-started round
            discriminator_iterations: 15,
            discriminator_metric: PdhgMetric::H1,
            final_discriminator_iterations: 300,
            hj: FdOptions::default(),
            transport: Transport::default(),
            snapshots: 5,
            target_blur: false,
            parallelism: Parallelism::Rayon,
        }
    }
}

/// The Frank–Wolfe gap that stops the rounds by default on point and line
/// targets, in units of `L h`. There agreement is measured in W1 (the node
/// masses of a collapse do not converge), and J is off by about `L W1`, so a
/// gap tied to `L h` keeps the error in step with the grid, while the L1
/// residual takes 2 to 5 times more rounds to settle node masses that do not
/// converge anyway. On absolutely continuous targets J is flat at the optimum
/// and a gap of 1e-4 J still leaves node L1 6.2e-2 to the dual (shift-2d at
/// 128^2), so the L1 residual decides there; without the W1 proximal J may be
/// infinite and the gap means nothing.
pub const SINGULAR_GAP_PER_CELL: f64 = 1e-3;

/// The Frank–Wolfe gap below which the rounds stop (0: never).
fn gap_threshold(o: &EulerianOptions, problem: &Problem, grid: &Grid, objective: f64) -> f64 {
    match (o.gap_tolerance, problem.lipschitz) {
        (Some(g), _) => g * objective.abs(),
        (None, Some(l)) if problem.target.is_singular(problem.dim) => {
            SINGULAR_GAP_PER_CELL * l * grid.h
        }
        (None, _) => 0.0,
    }
}

/// Optional starting point (used by uniqueness studies).
#[derive(Debug, Clone, Default)]
pub struct TerminalGuess {
    /// Initial terminal density (masses); rho0 if `None`.
    pub density: Option<Array2<f64>>,
}

/// The Eulerian solver.
#[derive(Debug, Clone, Default)]
pub struct EulerianSolver {
    /// Its options.
    pub options: EulerianOptions,
}

/// The agents' flow of one round: rho and its momentum on the time levels.
pub struct Flow {
    /// rho at the levels `t_m = m T / slices` (`None`: a level inside a
    /// semi-Lagrangian step that the solver does not report, which its
    /// rounds skip).
    pub densities: Vec<Option<Array2<f64>>>,
    /// Momentum `rho v` at the levels (finite volumes: `v = -grad U /
    /// alpha` at every level; semi-Lagrangian: each step's mean velocity at
    /// the levels it starts from, `None` at the others).
    pub momenta: Vec<Option<[Array2<f64>; 2]>>,
    /// The time weight of each momentum (trapezoid over the levels, or the
    /// step length): `kinetic = alpha/2 sum_k w_k sum |m_k|^2 / rho_k`.
    pub momentum_weights: Vec<f64>,
    /// `alpha/2 int int |v|^2 rho`.
    pub kinetic: f64,
    /// Largest |v| where rho carries mass.
    pub max_speed: f64,
}

impl Flow {
    /// rho(., T).
    pub fn terminal(&self) -> &Array2<f64> {
        terminal_of(&self.densities)
    }

    /// rho at a level, where it was deposited.
    pub fn density(&self, level: usize) -> Option<&Array2<f64>> {
        self.densities.get(level).and_then(Option::as_ref)
    }
}

/// The last level of `densities`, which every flow keeps.
fn terminal_of(densities: &[Option<Array2<f64>>]) -> &Array2<f64> {
    densities
        .last()
        .and_then(Option::as_ref)
        .expect("the terminal level is always kept")
}

/// U on every time level with the flow it drives (one best response).
pub struct Sweep {
    /// U at the levels `t_m = m T / slices`.
    pub values: Vec<Array2<f64>>,
    /// rho and its momentum at the same levels.
    pub flow: Flow,
}

/// U on the time levels `first..=slices` (index 0 is level `first`): the
/// backward HJ from `phi`, marched only as far back as `first`.
fn backward(
    grid: &Grid,
    phi: &Array2<f64>,
    problem: &Problem,
    o: &EulerianOptions,
    first: usize,
) -> Vec<Array2<f64>> {
    let dt = problem.horizon / o.slices as f64;
    let hj = FdOptions {
        parallelism: o.parallelism,
        ..o.hj
    };
    let mut values = vec![phi.clone()];
    for _ in first..o.slices {
        let next = solve_backward(
            grid,
            values.last().expect("one level"),
            problem.alpha,
            dt,
            &hj,
        )
        .0;
        values.push(next);
    }
    values.reverse();
    values
}

/// The earliest level of U the transport reads: the Hopf–Lax foot reads U
/// at its steps' ends only (for the default single step, phi itself, so a
/// round needs no HJ sweep at all); the `rk2` foot and finite volumes read
/// every level from 0.
fn first_level_read(o: &EulerianOptions) -> usize {
    match o.transport {
        Transport::SemiLagrangian(sl) if sl.foot == FootRule::HopfLax => {
            sl.slices_per_step(o.slices).expect("validated")
        }
        _ => 0,
    }
}

/// The levels of the snapshots in [0, T].
fn snapshot_levels(o: &EulerianOptions) -> Vec<usize> {
    let n = o.snapshots.max(2);
    (0..n)
        .map(|k| (k as f64 / (n - 1) as f64 * o.slices as f64).round() as usize)
        .collect()
}

/// The levels the solver reports, the snapshots' and the middle one (the
/// HJ residual's): the only levels inside a semi-Lagrangian step that its
/// rounds deposit (a single default step would otherwise splat every node
/// on 39 levels a round, only to report 3 of them).
fn reported_levels(o: &EulerianOptions) -> Vec<bool> {
    let mut keep = vec![false; o.slices + 1];
    keep[o.slices / 2] = true;
    for level in snapshot_levels(o) {
        keep[level] = true;
    }
    keep
}

/// Backward HJ from the terminal condition `phi`, then forward continuity
/// from `rho0` (one best response of the agents to `phi`), with U and rho
/// on every level. Fails on options that [`EulerianOptions::validate`]
/// refuses.
pub fn sweep(
    grid: &Grid,
    rho0: &Array2<f64>,
    phi: &Array2<f64>,
    problem: &Problem,
    o: &EulerianOptions,
) -> Result<Sweep> {
    o.validate()?;
    let values = backward(grid, phi, problem, o, 0);
    let every = vec![true; o.slices + 1];
    let flow = forward(grid, rho0, &values, 0, &every, problem, o);
    Ok(Sweep { values, flow })
}

/// The agents' best response to `phi` with options already validated (the
/// solver checks them once, not every round): U only on the levels the
/// transport reads, rho only on those it reports.
fn best_response(
    grid: &Grid,
    rho0: &Array2<f64>,
    phi: &Array2<f64>,
    problem: &Problem,
    o: &EulerianOptions,
) -> Flow {
    let first = first_level_read(o);
    let values = backward(grid, phi, problem, o, first);
    forward(grid, rho0, &values, first, &reported_levels(o), problem, o)
}

/// Forward continuity from `rho0` through U given on the levels
/// `first..=slices`; inside a semi-Lagrangian step rho only on the levels
/// marked in `keep` (finite volumes compute every level anyway).
fn forward(
    grid: &Grid,
    rho0: &Array2<f64>,
    values: &[Array2<f64>],
    first: usize,
    keep: &[bool],
    problem: &Problem,
    o: &EulerianOptions,
) -> Flow {
    match o.transport {
        Transport::SemiLagrangian(sl) => {
            let levels = Levels { values, first };
            let par = o.parallelism;
            forward_semi_lagrangian(grid, rho0, &levels, keep, problem, (sl, o.slices), par)
        }
        Transport::FiniteVolume(fv) => {
            debug_assert_eq!(first, 0, "finite volumes read every level");
            forward_finite_volume(grid, rho0, values, problem, &fv)
        }
    }
}

/// U on the levels `first..=slices`, read by level.
struct Levels<'a> {
    values: &'a [Array2<f64>],
    first: usize,
}

impl Levels<'_> {
    fn at(&self, level: usize) -> &Array2<f64> {
        &self.values[level - self.first]
    }
}

/// The mass floor below which a node's speed does not count.
fn speed_floor(rho0: &Array2<f64>) -> f64 {
    1e-8 * rho0.iter().fold(0.0f64, |a, b| a.max(*b))
}

/// One semi-Lagrangian step per `slices_per_step` slices, the levels
/// inside a step marked in `keep` filled by deposits along its chords. A
/// step's momentum sits at its start level with the step's length as time
/// weight (the other levels weigh nothing).
fn forward_semi_lagrangian(
    grid: &Grid,
    rho0: &Array2<f64>,
    values: &Levels,
    keep: &[bool],
    problem: &Problem,
    (sl, slices): (SlOptions, usize),
    parallelism: Parallelism,
) -> Flow {
    let dt = problem.horizon / slices as f64;
    let stride = sl
        .slices_per_step(slices)
        .expect("validated: the steps divide the slices");
    let tau = stride as f64 * dt;
    let floor = speed_floor(rho0);
    let mut out = Flow {
        densities: vec![Some(rho0.clone())],
        momenta: Vec::with_capacity(slices + 1),
        momentum_weights: Vec::with_capacity(slices + 1),
        kinetic: 0.0,
        max_speed: 0.0,
    };
    for k in (0..slices).step_by(stride) {
        let mut end = grid.zeros();
        let mut inside: Vec<_> = (k + 1..k + stride)
            .map(|level| keep[level].then(|| grid.zeros()))
            .collect();
        let deposits = Deposits {
            end: &mut end,
            inside: &mut inside,
        };
        let rho = out.density(k).expect("a step starts on the last one's end");
        let (alpha, par) = (problem.alpha, parallelism);
        let step = match sl.foot {
            FootRule::HopfLax => {
                let rule = HopfLax::new(grid, values.at(k + stride), alpha);
                semi_lagrangian::advance(grid, rho, &rule, alpha, tau, floor, deposits, par)
            }
            FootRule::Rk2 => {
                let slab = ValueSlab {
                    start: values.at(k),
                    middle: values.at(k + stride / 2),
                    alpha,
                };
                semi_lagrangian::advance(grid, rho, &Rk2(slab), alpha, tau, floor, deposits, par)
            }
        };
        out.kinetic += step.kinetic;
        out.max_speed = out.max_speed.max(step.max_speed);
        out.momenta.push(Some(step.momentum));
        out.momentum_weights.push(tau);
        for _ in 1..stride {
            out.momenta.push(None);
            out.momentum_weights.push(0.0);
        }
        out.densities.extend(inside);
        out.densities.push(Some(end));
    }
    out.momenta.push(None);
    out.momentum_weights.push(0.0);
    out
}

/// One finite-volume step per slice, with the velocity averaged over the
/// slice's two levels.
fn forward_finite_volume(
    grid: &Grid,
    rho0: &Array2<f64>,
    values: &[Array2<f64>],
    problem: &Problem,
    fv: &FvOptions,
) -> Flow {
    let m = values.len() - 1;
    let dt = problem.horizon / m as f64;
    let grads: Vec<_> = values.iter().map(|u| grid.gradient(u)).collect();
    let faces: Vec<_> = values
        .iter()
        .map(|u| face_velocities(grid, u, problem.alpha))
        .collect();
    let mut densities = vec![rho0.clone()];
    let (mut kinetic, mut max_speed) = (0.0, 0.0f64);
    let floor = speed_floor(rho0);
    for k in 0..m {
        let scale = -0.5 / problem.alpha;
        let v = [
            (&grads[k][0] + &grads[k + 1][0]) * scale,
            (&grads[k][1] + &grads[k + 1][1]) * scale,
        ];
        let mut rho = densities[k].clone();
        let (f0, f1) = (&faces[k], &faces[k + 1]);
        let vf = [(&f0[0] + &f1[0]) * 0.5, (&f0[1] + &f1[1]) * 0.5];
        advance_faces(grid, &mut rho, &vf, dt, fv);
        for (((i, j), &a), &b) in densities[k].indexed_iter().zip(rho.iter()) {
            let speed2 = v[0][[i, j]].powi(2) + v[1][[i, j]].powi(2);
            kinetic += dt * 0.5 * problem.alpha * speed2 * 0.5 * (a + b);
            if a.max(b) > floor {
                max_speed = max_speed.max(speed2.sqrt());
            }
        }
        densities.push(rho);
    }
    let momenta = densities
        .iter()
        .zip(&grads)
        .map(|(rho, g)| {
            Some([
                rho * &g[0] * (-1.0 / problem.alpha),
                rho * &g[1] * (-1.0 / problem.alpha),
            ])
        })
        .collect();
    let momentum_weights = (0..=m)
        .map(|k| if k == 0 || k == m { 0.5 * dt } else { dt })
        .collect();
    Flow {
        densities: densities.into_iter().map(Some).collect(),
        momenta,
        momentum_weights,
        kinetic,
        max_speed,
    }
}

impl EulerianSolver {
    /// Solver with the given options.
    pub fn new(options: EulerianOptions) -> Self {
        EulerianSolver { options }
    }
}

impl super::Solver for EulerianSolver {
    type Guess = TerminalGuess;

    /// From a guess of the terminal density (rho0 by default).
    fn solve_from(
        &self,
        problem: &Problem,
        grid: &Grid,
        guess: &TerminalGuess,
        observer: &mut dyn Observer,
    ) -> Result<Solution> {
        let o = &self.options;
        o.validate()?;
        let (start, rho0, q) = super::begin(problem, grid, super::MethodKind::Eulerian)?;
        let q = if o.target_blur { blur(&q) } else { q };
        let mut bar = match &guess.density {
            Some(d) => {
                super::check_guess_shape("initial terminal density", d, grid)?;
                normalise_mass("initial terminal density", d.clone())?
            }
            None => rho0.clone(),
        };
        let mut critic =
            super::critic_for(grid, problem, &q, o.parallelism, o.discriminator_metric);
        let mut residual = f64::INFINITY;
        let (mut iterations, mut converged) = (0, false);
        let mut mixture: Option<Mixture> = None;
        while iterations < o.max_iterations {
            iterations += 1;
            let (divergence, phi) = critic.update(grid, &bar, o.discriminator_iterations);
            let round = best_response(grid, &rho0, phi, problem, o);
            let (objective, gap) = match &mixture {
                Some(mix) => mix.frank_wolfe_gap(&round, phi, divergence, problem.alpha),
                None => (f64::NAN, f64::NAN),
            };
            residual = l1_distance(round.terminal(), &bar);
            if !residual.is_finite() {
                return Err(Error::Diverged {
                    method: "eulerian".into(),
                    iteration: iterations,
                    quantity: "terminal density".into(),
                    value: residual,
                });
            }
            let w = 2.0 / (iterations as f64 + 1.0);
            let mix = mixture.get_or_insert_with(|| Mixture::from(&round));
            mix.blend(&round, w);
            bar.assign(mix.terminal());
            observer.observe(&IterationState {
                iteration: iterations,
                objective,
                dual: objective - gap,
                smoothing: 0.0,
                residual,
            });
            let threshold = gap_threshold(o, problem, grid, objective);
            let closed = threshold > 0.0 && gap < threshold;
            converged = closed || residual < o.tolerance;
            if converged {
                break;
            }
        }
        let Some(mixture) = mixture else {
            return Err(Error::invalid(
                "max_iterations",
                o.max_iterations,
                "the Eulerian solver needs at least one round",
            ));
        };
        // the reported solution: the averaged flow, and U from the
        // discriminator of its terminal density
        let phi = critic
            .update(grid, &bar, o.final_discriminator_iterations)
            .1
            .clone();
        // U from the final phi; the densities are the averaged flow's
        let (kinetic, max_speed) = mixture.kinetic(problem.alpha);
        let round = Sweep {
            values: backward(grid, &phi, problem, o, 0),
            flow: Flow {
                densities: mixture.densities,
                momenta: mixture.momenta,
                momentum_weights: mixture.weights,
                kinetic,
                max_speed,
            },
        };
        let rho_terminal = normalise_mass("terminal density", round.flow.terminal().clone())?;
        let (terminal_cost, _) = critic.update(grid, &rho_terminal, o.discriminator_iterations);
        let objective = round.flow.kinetic + terminal_cost;
        let dual = (&rho0 * &round.values[0]).sum()
            - problem.divergence.lambda(
                phi.as_slice().expect("layout"),
                q.as_slice().expect("layout"),
            );
        let m = o.slices;
        let times: Vec<f64> = (0..=m)
            .map(|k| problem.horizon * k as f64 / m as f64)
            .collect();
        let hj_residual = hj_residual(grid, &round, &times, problem.alpha);
        let series = ValueSeries {
            times: times.clone(),
            fields: round.values.clone(),
        };
        let snapshots = snapshot_levels(o)
            .into_iter()
            .map(|level| Snapshot {
                t: times[level],
                rho: round
                    .flow
                    .density(level)
                    .expect("snapshot levels are reported")
                    .clone(),
                value: round.values[level].clone(),
            })
            .collect();
        let diagnostics = Diagnostics {
            objective,
            kinetic_energy: round.flow.kinetic,
            terminal_cost,
            quantisation: 0.0,
            dual_value: dual,
            duality_gap: objective - dual,
            lower_bound_bias: f64::NAN,
            hj_residual,
            max_speed: round.flow.max_speed,
            speed_bound: problem
                .lipschitz
                .map_or(f64::INFINITY, |l| l / problem.alpha),
            iterations,
            converged,
            stop_reason: StopReason::new(converged, residual),
            mass_error: (round.flow.terminal().sum() - 1.0).abs(),
            wall_time_s: start.elapsed().as_secs_f64(),
            levels: Vec::new(),
        };
        Ok(Solution {
            method: super::MethodKind::Eulerian,
            grid: grid.clone(),
            horizon: problem.horizon,
            alpha: problem.alpha,
            rho0,
            target: q,
            rho_terminal,
            phi,
            value0: round.values[0].clone(),
            map: None,
            snapshots,
            values: Some(series),
            diagnostics,
        })
    }
}

/// The average of the rounds' flows (densities and momenta at the levels
/// every round keeps).
struct Mixture {
    densities: Vec<Option<Array2<f64>>>,
    momenta: Vec<Option<[Array2<f64>; 2]>>,
    weights: Vec<f64>,
}

impl Mixture {
    fn from(round: &Flow) -> Self {
        Mixture {
            densities: round.densities.clone(),
            momenta: round.momenta.clone(),
            weights: round.momentum_weights.clone(),
        }
    }

    fn terminal(&self) -> &Array2<f64> {
        terminal_of(&self.densities)
    }

    /// `self <- self + w (round - self)` (every round keeps the same levels).
    fn blend(&mut self, round: &Flow, w: f64) {
        let mix =
            |a: &mut Array2<f64>, b: &Array2<f64>| a.zip_mut_with(b, |x, y| *x += w * (y - *x));
        for (a, b) in self.densities.iter_mut().zip(&round.densities) {
            if let (Some(a), Some(b)) = (a, b) {
                mix(a, b);
            }
        }
        for (a, b) in self.momenta.iter_mut().zip(&round.momenta) {
            if let (Some([a0, a1]), Some([b0, b1])) = (a, b) {
                mix(a0, b0);
                mix(a1, b1);
            }
        }
    }

    /// The objective `J(bar) = K(bar) + D(bar_T)` of the average and its
    /// Frank–Wolfe gap against the best response to `phi = D'(bar_T)`,
    /// `K(bar) + <phi, bar_T> - K(round) - <phi, round_T>`: the best response
    /// minimises `K + <phi, rho_T>`, so by convexity `J* >= J(bar) - gap`.
    fn frank_wolfe_gap(
        &self,
        round: &Flow,
        phi: &Array2<f64>,
        divergence: f64,
        alpha: f64,
    ) -> (f64, f64) {
        let bar = self.terminal();
        let kinetic = self.kinetic(alpha).0;
        let linear = |rho: &Array2<f64>| (rho * phi).sum();
        let gap = kinetic + linear(bar) - round.kinetic - linear(round.terminal());
        (kinetic + divergence, gap)
    }

    /// `alpha/2 sum_k w_k sum |m_k|^2 / rho_k` and the largest `|m| / rho`
    /// where rho carries mass.
    fn kinetic(&self, alpha: f64) -> (f64, f64) {
        let floor = speed_floor(self.densities[0].as_ref().expect("rho0 is kept"));
        let (mut kinetic, mut top) = (0.0, 0.0f64);
        for ((rho, m), w) in self.densities.iter().zip(&self.momenta).zip(&self.weights) {
            let Some(m) = m else { continue };
            let rho = rho.as_ref().expect("a momentum's level is kept");
            let mut level = 0.0;
            for ((i, j), &r) in rho.indexed_iter() {
                if r <= 0.0 {
                    continue;
                }
                let m2 = m[0][[i, j]].powi(2) + m[1][[i, j]].powi(2);
                level += m2 / r;
                if r > floor {
                    top = top.max(m2.sqrt() / r);
                }
            }
            kinetic += w * 0.5 * alpha * level;
        }
        (kinetic, top)
    }
}

/// rho-weighted RMS of `dU/dt - |grad U|^2 / (2 alpha)` at the middle level.
fn hj_residual(grid: &Grid, round: &Sweep, times: &[f64], alpha: f64) -> f64 {
    let mid = times.len() / 2;
    let dt = times[mid + 1] - times[mid - 1];
    let g = grid.gradient(&round.values[mid]);
    let rho = round
        .flow
        .density(mid)
        .expect("the middle level is reported");
    let mut acc = 0.0;
    for ((i, j), &w) in rho.indexed_iter() {
        let ut = (round.values[mid + 1][[i, j]] - round.values[mid - 1][[i, j]]) / dt;
        let r = ut - (g[0][[i, j]].powi(2) + g[1][[i, j]].powi(2)) / (2.0 * alpha);
        acc += w * r * r;
    }
    (acc / rho.sum()).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases;
    use crate::transport::semi_lagrangian::SlOptions;

    /// A round marches U back only to the first level its transport reads
    /// (none at all for the default single Hopf–Lax step); its flow must be
    /// the full sweep's, bit for bit, for every foot and step count.
    #[test]
    fn a_round_reads_only_the_levels_it_needs_and_moves_as_the_full_sweep() {
        let case = cases::builtin("dirac-2d").unwrap();
        let grid = case.grid(16).unwrap();
        let (rho0, _) = case.problem.masses(&grid).unwrap();
        let phi = grid.evaluate(|x| x[0].hypot(x[1] - 0.3));
        let sl = |foot, steps| Transport::SemiLagrangian(SlOptions { foot, steps });
        // rho is kept at the snapshots' levels, the middle one and the
        // steps' ends (finite volumes: everywhere)
        let fifths: Vec<usize> = (0..=40).step_by(5).collect();
        for (transport, snapshots, first, reported) in [
            (Transport::default(), 5, 40, vec![0, 10, 20, 30, 40]),
            (Transport::default(), 3, 40, vec![0, 20, 40]),
            (Transport::default(), 4, 40, vec![0, 13, 20, 27, 40]),
            (sl(FootRule::HopfLax, 8), 3, 5, fifths),
            (sl(FootRule::Rk2, 4), 2, 0, vec![0, 10, 20, 30, 40]),
            (
                Transport::FiniteVolume(FvOptions::default()),
                2,
                0,
                (0..=40).collect(),
            ),
        ] {
            let o = EulerianOptions {
                transport,
                snapshots,
                ..Default::default()
            };
            assert_eq!(first_level_read(&o), first, "{transport:?}");
            let round = best_response(&grid, &rho0, &phi, &case.problem, &o);
            let full = sweep(&grid, &rho0, &phi, &case.problem, &o).unwrap();
            assert_eq!(full.values.len(), o.slices + 1);
            assert!(full.flow.densities.iter().all(Option::is_some));
            let kept: Vec<usize> = (0..=o.slices)
                .filter(|&l| round.density(l).is_some())
                .collect();
            assert_eq!(kept, reported, "{transport:?}");
            for &level in &kept {
                assert_eq!(round.density(level), full.flow.density(level));
            }
            assert_eq!(round.momenta, full.flow.momenta, "{transport:?}");
            assert_eq!(round.kinetic, full.flow.kinetic, "{transport:?}");
        }
    }
}
