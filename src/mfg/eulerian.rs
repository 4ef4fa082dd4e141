//! Eulerian MFG solver (method `eulerian`): nothing is assumed about the
//! trajectories. One round solves, for a guess of the terminal density,
//!
//! ```text
//! phi    = argmax_{L-Lip} sum rho_bar phi - Lambda_f(phi; Q)            (PDHG, divergence module)
//! -U_t + |grad U|^2 / (2 alpha) = 0,  U(., T) = phi                    (monotone finite differences)
//! rho_t + div(rho v) = 0,  v = -grad U / alpha,  rho(., 0) = rho0      (finite volumes)
//! ```
//!
//! and the rounds are coupled by fictitious play on the terminal density,
//! `rho_bar <- rho_bar + w_k (rho(., T) - rho_bar)` with `w_k = 2/(k+2)`
//! (recent rounds weigh more than with `1/(k+1)`, so the starting guess is
//! forgotten like `1/k^2`). U is stored on `slices + 1` time levels; between
//! levels the velocity is the mean of the two levels' `-grad U / alpha`.

use super::solution::{Diagnostics, Snapshot, Solution, StopReason, ValueSeries};
use super::{IterationState, Observer};
use crate::error::{Error, Result};
use crate::grid::{Grid, blur, l1_distance, normalise_mass};
use crate::hj::finite_difference::{FdOptions, solve_backward};
use crate::par::Parallelism;
use crate::problem::Problem;
use crate::transport::finite_volume::{FvOptions, advance};
use ndarray::Array2;
use std::time::Instant;

/// Options of the Eulerian solver.
#[derive(Debug, Clone)]
pub struct EulerianOptions {
    /// Fictitious-play rounds at most (the reported `objective` of each
    /// round's [`IterationState`] is its kinetic energy).
    pub max_iterations: usize,
    /// Stop when `|rho(., T) - rho_bar|_1` falls below this.
    pub tolerance: f64,
    /// Stored time levels of U minus one (even).
    pub slices: usize,
    /// PDHG iterations per round for the discriminator.
    pub discriminator_iterations: usize,
    /// PDHG iterations for the final discriminator.
    pub final_discriminator_iterations: usize,
    /// Hamilton–Jacobi scheme.
    pub hj: FdOptions,
    /// Continuity scheme.
    pub transport: FvOptions,
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
            max_iterations: 60,
            tolerance: 2e-3,
            slices: 40,
            discriminator_iterations: 1000,
            final_discriminator_iterations: 20_000,
            hj: FdOptions::default(),
            transport: FvOptions::default(),
            snapshots: 5,
            target_blur: false,
            parallelism: Parallelism::Rayon,
        }
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

/// U and rho on the time levels of one round, with what the round measured.
pub struct Sweep {
    /// U at the levels `t_m = m T / slices`.
    pub values: Vec<Array2<f64>>,
    /// rho at the same levels.
    pub densities: Vec<Array2<f64>>,
    /// `alpha/2 int int |v|^2 rho`.
    pub kinetic: f64,
    /// Largest |v| where rho carries mass.
    pub max_speed: f64,
}

impl Sweep {
    /// rho(., T).
    pub fn terminal(&self) -> &Array2<f64> {
        self.densities.last().expect("at least two levels")
    }
}

/// Backward HJ from the terminal condition `phi`, then forward continuity
/// from `rho0` (one best response of the agents to `phi`).
pub fn sweep(
    grid: &Grid,
    rho0: &Array2<f64>,
    phi: &Array2<f64>,
    problem: &Problem,
    o: &EulerianOptions,
) -> Sweep {
    let m = o.slices;
    let dt = problem.horizon / m as f64;
    let hj = FdOptions {
        parallelism: o.parallelism,
        ..o.hj
    };
    let mut values = vec![phi.clone()];
    for _ in 0..m {
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
    let grads: Vec<_> = values.iter().map(|u| grid.gradient(u)).collect();
    let mut densities = vec![rho0.clone()];
    let (mut kinetic, mut max_speed) = (0.0, 0.0f64);
    let floor = 1e-8 * rho0.iter().fold(0.0f64, |a, b| a.max(*b));
    for k in 0..m {
        let scale = -0.5 / problem.alpha;
        let v = [
            (&grads[k][0] + &grads[k + 1][0]) * scale,
            (&grads[k][1] + &grads[k + 1][1]) * scale,
        ];
        let mut rho = densities[k].clone();
        advance(grid, &mut rho, &v, dt, &o.transport);
        for (((i, j), &a), &b) in densities[k].indexed_iter().zip(rho.iter()) {
            let speed2 = v[0][[i, j]].powi(2) + v[1][[i, j]].powi(2);
            kinetic += dt * 0.5 * problem.alpha * speed2 * 0.5 * (a + b);
            if a.max(b) > floor {
                max_speed = max_speed.max(speed2.sqrt());
            }
        }
        densities.push(rho);
    }
    Sweep {
        values,
        densities,
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
        problem.validate()?;
        let o = &self.options;
        super::require_kinetic_weight(problem, "eulerian")?;
        if o.slices < 2 || o.slices % 2 == 1 {
            return Err(Error::invalid("slices", o.slices, "must be even and >= 2"));
        }
        let start = Instant::now();
        let (rho0, q) = problem.masses(grid)?;
        let q = if o.target_blur { blur(&q) } else { q };
        let mut bar = match &guess.density {
            Some(d) => {
                super::check_guess_shape("initial terminal density", d, grid)?;
                normalise_mass("initial terminal density", d.clone())?
            }
            None => rho0.clone(),
        };
        let mut critic = super::critic_for(grid, problem, &q, o.parallelism);
        let mut residual = f64::INFINITY;
        let mut iterations = 0;
        while iterations < o.max_iterations {
            iterations += 1;
            let (_, phi) = critic.update(grid, &bar, o.discriminator_iterations);
            let round = sweep(grid, &rho0, phi, problem, o);
            residual = l1_distance(round.terminal(), &bar);
            if !residual.is_finite() {
                return Err(Error::Diverged {
                    method: "eulerian".into(),
                    iteration: iterations,
                    quantity: "terminal density".into(),
                    value: residual,
                });
            }
            let w = 2.0 / (iterations as f64 + 2.0);
            bar.zip_mut_with(round.terminal(), |b, r| *b += w * (r - *b));
            observer.observe(&IterationState {
                iteration: iterations,
                objective: round.kinetic,
                dual: f64::NAN,
                smoothing: 0.0,
                residual,
            });
            if residual < o.tolerance {
                break;
            }
        }
        let converged = residual < o.tolerance;
        // the reported solution: one consistent round from the averaged density
        let phi = critic
            .update(grid, &bar, o.final_discriminator_iterations)
            .1
            .clone();
        let round = sweep(grid, &rho0, &phi, problem, o);
        let rho_terminal = normalise_mass("terminal density", round.terminal().clone())?;
        let (terminal_cost, _) = critic.update(grid, &rho_terminal, o.discriminator_iterations);
        let objective = round.kinetic + terminal_cost;
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
        let n = o.snapshots.max(2);
        let snapshots = (0..n)
            .map(|k| {
                let t = problem.horizon * k as f64 / (n - 1) as f64;
                let level = ((t / problem.horizon) * m as f64).round() as usize;
                Snapshot {
                    t: times[level],
                    rho: round.densities[level].clone(),
                    value: round.values[level].clone(),
                }
            })
            .collect();
        let diagnostics = Diagnostics {
            objective,
            kinetic_energy: round.kinetic,
            terminal_cost,
            dual_value: dual,
            duality_gap: objective - dual,
            hj_residual,
            max_speed: round.max_speed,
            speed_bound: problem
                .lipschitz
                .map_or(f64::INFINITY, |l| l / problem.alpha),
            iterations,
            converged,
            stop_reason: StopReason::new(converged, residual),
            mass_error: (round.terminal().sum() - 1.0).abs(),
            wall_time_s: start.elapsed().as_secs_f64(),
        };
        Ok(Solution {
            method: "eulerian".into(),
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

/// rho-weighted RMS of `dU/dt - |grad U|^2 / (2 alpha)` at the middle level.
fn hj_residual(grid: &Grid, round: &Sweep, times: &[f64], alpha: f64) -> f64 {
    let mid = times.len() / 2;
    let dt = times[mid + 1] - times[mid - 1];
    let g = grid.gradient(&round.values[mid]);
    let rho = &round.densities[mid];
    let mut acc = 0.0;
    for ((i, j), &w) in rho.indexed_iter() {
        let ut = (round.values[mid + 1][[i, j]] - round.values[mid - 1][[i, j]]) / dt;
        let r = ut - (g[0][[i, j]].powi(2) + g[1][[i, j]].powi(2)) / (2.0 * alpha);
        acc += w * r * r;
    }
    (acc / rho.sum()).sqrt()
}
