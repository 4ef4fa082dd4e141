//! Particle MFG solver (method `particles`): agents at the nodes of the grid,
//! weighted by rho0, each choosing its terminal position
//!
//! ```text
//! y_i = argmin_y  alpha/(2T) |y - x_i|^2 + phi(y),
//! phi = first variation of D_f^L(mu || Q) at mu = sum_i w_i delta_{y_i}
//! ```
//!
//! (mu deposited on the grid by cloud-in-cell, phi from the divergence
//! module). The first-order condition is the characteristic relation
//! `y = x - (T/alpha) grad phi(y)`. The agents take preconditioned gradient
//! steps on their cost, `y <- y - w_k s (alpha/T (y - x) + grad phi(y))` with
//! `s = min(T/alpha, max_step)` (for `s = T/alpha` a relaxation towards the
//! characteristic relation) and `w_k = max(2/(k+2), w_min)`, and travel the
//! straight segment from x to y. With `smoothing = b > 0` the misses, laid
//! out on the agents' grid nodes, pass through `(I + b L)^{-1}` first (L the
//! grid Laplacian): the miss's Jacobian is about `-s (alpha/T + |k|^2)` in
//! the label's wavenumber k, so `b = s` is a Newton-like preconditioner that
//! removes the discriminator's grid-scale noise. It serves smooth maps; where
//! agents collapse (points, lines, thin arms) it blurs the collapse.
//! As alpha -> 0 the cost no longer ties y to x, and where the agents end up
//! depends on where they started.

use super::characteristics::{hj_residual, push_forward, value_at};
use super::solution::{Diagnostics, Snapshot, Solution, StopReason};
use super::{IterationState, Observer};
use crate::divergence::PdhgMetric;
use crate::error::{Error, Result};
use crate::grid::{Grid, normalise_mass};
use crate::hj::HopfLaxWorkspace;
use crate::par::Parallelism;
use crate::problem::Problem;
use ndarray::Array2;

/// Options of the particle solver.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParticleOptions {
    /// Relaxation rounds at most.
    pub max_iterations: usize,
    /// Rounds before the tolerance may stop the solver (the discriminator
    /// converges along with the agents; an early small step can be a pause).
    pub min_iterations: usize,
    /// Stop when the mass-weighted mean length of the full step
    /// `s (alpha/T (y - x) + grad phi(y))` falls below `tolerance * h`.
    pub tolerance: f64,
    /// PDHG iterations per round for the discriminator.
    pub discriminator_iterations: usize,
    /// The metric of the discriminator's PDHG step (H1: grid-independent).
    pub discriminator_metric: PdhgMetric,
    /// Smallest relaxation weight `w_k`.
    pub relaxation_floor: f64,
    /// Largest step scale `s` (length per unit gradient).
    pub max_step: f64,
    /// Screening `b` of the update smoother `(I + b L)^{-1}` applied to the
    /// agents' misses (map layout); 0: none. For smooth maps (no collapse)
    /// `b = T/alpha` with `relaxation_floor = 0.5` and 50 H1 discriminator
    /// steps a round; it slows or stops collapsing maps.
    pub smoothing: f64,
    /// Number of snapshots in [0, T] (at least 2).
    pub snapshots: usize,
    /// Parallel sweeps.
    pub parallelism: Parallelism,
}

impl Default for ParticleOptions {
    fn default() -> Self {
        ParticleOptions {
            max_iterations: 200,
            min_iterations: 80,
            tolerance: 0.05,
            // with H1 steps 15 a round leave shift-near-2d's terminal law 4.5e-2
            // (node L1) from the dual solver's at 64^2 (100 a round: 2.4e-2);
            // the H1 budget that pays off here is not settled
            discriminator_iterations: 1000,
            discriminator_metric: PdhgMetric::Euclidean,
            relaxation_floor: 0.0,
            max_step: 2.0,
            smoothing: 0.0,
            snapshots: 5,
            parallelism: Parallelism::Rayon,
        }
    }
}

/// Optional starting positions of the agents (one per node, map layout).
#[derive(Debug, Clone, Default)]
pub struct AgentGuess {
    /// Initial terminal positions per node; the nodes themselves if `None`.
    pub positions: Option<[Array2<f64>; 2]>,
}

/// The particle solver.
#[derive(Debug, Clone, Default)]
pub struct ParticleSolver {
    /// Its options.
    pub options: ParticleOptions,
}

impl ParticleSolver {
    /// Solver with the given options.
    pub fn new(options: ParticleOptions) -> Self {
        ParticleSolver { options }
    }
}

/// The cost `half_pull |z - x|^2 + phi(z)` of an agent from `x` ending at `z`
/// (phi interpolated bilinearly, clipped by its L-Lipschitz envelope through
/// the nodes where L is finite).
struct AgentCost<'a> {
    grid: &'a Grid,
    phi: &'a Array2<f64>,
    half_pull: f64,
    lipschitz: Option<f64>,
}

impl AgentCost<'_> {
    fn at(&self, x: [f64; 2], z: [f64; 2]) -> f64 {
        let value = match self.lipschitz {
            Some(l) => self.grid.interpolate_lipschitz(self.phi, z, l),
            None => self.grid.interpolate(self.phi, z),
        };
        self.half_pull * ((z[0] - x[0]).powi(2) + (z[1] - x[1]).powi(2)) + value
    }

    fn clamp(&self, z: [f64; 2]) -> [f64; 2] {
        let (lo, hi) = (self.grid.lo, self.grid.hi());
        let second = if self.grid.dim == 2 {
            z[1].clamp(lo[1], hi[1])
        } else {
            0.0
        };
        [z[0].clamp(lo[0], hi[0]), second]
    }

    /// Compass search from `start` for a local minimum, from steps of h down
    /// to h/64, then [`AgentCost::snap`].
    fn local_minimum(&self, x: [f64; 2], start: [f64; 2]) -> [f64; 2] {
        const R: f64 = std::f64::consts::FRAC_1_SQRT_2;
        const DIRS: [[f64; 2]; 8] = [
            [1.0, 0.0],
            [-1.0, 0.0],
            [0.0, 1.0],
            [0.0, -1.0],
            [R, R],
            [-R, R],
            [R, -R],
            [-R, -R],
        ];
        let h = self.grid.h;
        let dirs = if self.grid.dim == 2 {
            &DIRS[..]
        } else {
            &DIRS[..2]
        };
        let mut z = self.clamp(start);
        let mut best = self.at(x, z);
        let mut step = h;
        let mut moves = 0;
        while step > h / 64.0 && moves < 64 {
            let next = dirs
                .iter()
                .map(|d| self.clamp([z[0] + step * d[0], z[1] + step * d[1]]))
                .map(|t| (self.at(x, t), t))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .expect("directions");
            if next.0 < best {
                (best, z) = next;
                moves += 1;
            } else {
                step *= 0.5;
            }
        }
        self.snap(x, z)
    }

    /// `z` with either coordinate moved to its nearest grid line if that
    /// costs no more. The kinks of phi lie on grid lines (the apex of a cone
    /// at a node, a valley along a node row), and an agent a fraction of a
    /// cell short of one would be deposited partly on the neighbouring nodes.
    fn snap(&self, x: [f64; 2], z: [f64; 2]) -> [f64; 2] {
        let g = self.grid;
        let line = |axis: usize, v: f64| g.lo[axis] + ((v - g.lo[axis]) / g.h).round() * g.h;
        let snapped = [line(0, z[0]), if g.dim == 2 { line(1, z[1]) } else { 0.0 }];
        let mut best = (self.at(x, z), z);
        for candidate in [[snapped[0], z[1]], [z[0], snapped[1]], snapped] {
            let c = self.at(x, candidate);
            if c <= best.0 {
                best = (c, candidate);
            }
        }
        best.1
    }

    /// Where an agent from `x`, now at `y`, aims: a step of scale `step`
    /// along minus the gradient `g` of phi plus the pull, then a local search
    /// on the cost itself (the interpolated gradient is smeared over two
    /// cells at a kink of phi, the cost's minimum is not).
    fn best_response(&self, g: &[Array2<f64>; 2], x: [f64; 2], y: [f64; 2], step: f64) -> [f64; 2] {
        let pull = 2.0 * self.half_pull;
        let aim = [
            y[0] - step * (pull * (y[0] - x[0]) + self.grid.interpolate(&g[0], y)),
            y[1] - step * (pull * (y[1] - x[1]) + self.grid.interpolate(&g[1], y)),
        ];
        self.local_minimum(x, aim)
    }
}

impl super::Solver for ParticleSolver {
    type Guess = AgentGuess;

    fn solve_from(
        &self,
        problem: &Problem,
        grid: &Grid,
        guess: &AgentGuess,
        observer: &mut dyn Observer,
    ) -> Result<Solution> {
        let o = &self.options;
        o.validate()?;
        let (start, rho0, q) = super::begin(problem, grid, super::MethodKind::Particles)?;
        let (alpha, horizon) = (problem.alpha, problem.horizon);
        let floor = 1e-12 * rho0.iter().fold(0.0f64, |a, b| a.max(*b));
        let agents: Vec<((usize, usize), f64)> = rho0
            .indexed_iter()
            .filter(|(_, m)| **m > floor)
            .map(|(ij, m)| (ij, *m))
            .collect();
        let weights: Vec<f64> = agents.iter().map(|a| a.1).collect();
        let starts: Vec<[f64; 2]> = agents.iter().map(|((i, j), _)| grid.node(*i, *j)).collect();
        let mut ends = match &guess.positions {
            Some(p) => {
                super::check_guess_shape("initial positions", &p[0], grid)?;
                super::check_guess_shape("initial positions", &p[1], grid)?;
                agents
                    .iter()
                    .map(|((i, j), _)| [p[0][[*i, *j]], p[1][[*i, *j]]])
                    .collect()
            }
            None => starts.clone(),
        };
        let mut critic =
            super::critic_for(grid, problem, &q, o.parallelism, o.discriminator_metric);
        let step = (horizon / alpha).min(o.max_step);
        let pull = alpha / horizon;
        let (mut residual, mut iterations) = (f64::INFINITY, 0);
        let mut smoother = None;
        while iterations < o.max_iterations {
            iterations += 1;
            let mu = grid.deposit_all(&ends, &weights);
            let (_, phi) = critic.update(grid, &mu, o.discriminator_iterations);
            let g = grid.gradient(phi);
            // a floor keeps late corrections of the critic from being damped
            // away (0 by default: on smooth targets it makes agents oscillate)
            let w = (2.0 / (iterations as f64 + 2.0)).max(o.relaxation_floor);
            let cost = AgentCost {
                grid,
                phi,
                half_pull: 0.5 * pull,
                lipschitz: problem.lipschitz,
            };
            let mut misses: Vec<[f64; 2]> = o.parallelism.map(ends.len(), |k| {
                let aim = cost.best_response(&g, starts[k], ends[k], step);
                [aim[0] - ends[k][0], aim[1] - ends[k][1]]
            });
            residual = misses
                .iter()
                .zip(&weights)
                .map(|(m, w)| w * (m[0] * m[0] + m[1] * m[1]).sqrt())
                .sum();
            if o.smoothing > 0.0 {
                let (poisson, field) = smoother.get_or_insert_with(|| {
                    (crate::poisson::ScreenedPoisson::new(grid), grid.zeros())
                });
                for axis in 0..2 {
                    // nodes without an agent hold no miss
                    field.fill(0.0);
                    for ((ij, _), m) in agents.iter().zip(&misses) {
                        field[*ij] = m[axis];
                    }
                    poisson.solve(1.0, o.smoothing, field, o.parallelism);
                    for ((ij, _), m) in agents.iter().zip(misses.iter_mut()) {
                        m[axis] = field[*ij];
                    }
                }
            }
            for (y, m) in ends.iter_mut().zip(&misses) {
                y[0] += w * m[0];
                y[1] += w * m[1];
            }
            if !residual.is_finite() {
                return Err(Error::Diverged {
                    method: "particles".into(),
                    iteration: iterations,
                    quantity: "agent positions".into(),
                    value: residual,
                });
            }
            observer.observe(&IterationState {
                iteration: iterations,
                objective: f64::NAN,
                dual: f64::NAN,
                smoothing: 0.0,
                residual,
            });
            if iterations >= o.min_iterations && residual < o.tolerance * grid.h {
                break;
            }
        }
        let converged = residual < o.tolerance * grid.h;
        let mut map = [
            Array2::from_shape_fn(grid.shape(), |(i, j)| grid.node(i, j)[0]),
            Array2::from_shape_fn(grid.shape(), |(i, j)| grid.node(i, j)[1]),
        ];
        let mut kinetic = 0.0;
        let mut max_speed = 0.0f64;
        for (((ij, m), x), y) in agents.iter().zip(&starts).zip(&ends) {
            map[0][*ij] = y[0];
            map[1][*ij] = y[1];
            let d2 = (y[0] - x[0]).powi(2) + (y[1] - x[1]).powi(2);
            kinetic += m * alpha / (2.0 * horizon) * d2;
            max_speed = max_speed.max(d2.sqrt() / horizon);
        }
        let rho_terminal = normalise_mass("terminal density", grid.deposit_all(&ends, &weights))?;
        let (terminal_cost, phi) = critic.update(grid, &rho_terminal, o.discriminator_iterations);
        let phi = phi.clone();
        let mut ws = HopfLaxWorkspace::new(grid);
        let par = o.parallelism;
        let value0 = value_at(grid, &phi, alpha, horizon, &mut ws, par);
        let dual = (&rho0 * &value0).sum()
            - problem.divergence.lambda(
                phi.as_slice().expect("layout"),
                q.as_slice().expect("layout"),
            );
        let n = o.snapshots.max(2);
        let snapshots = (0..n)
            .map(|k| {
                let theta = k as f64 / (n - 1) as f64;
                Snapshot {
                    t: theta * horizon,
                    rho: push_forward(grid, &rho0, &map, theta),
                    value: value_at(grid, &phi, alpha, (1.0 - theta) * horizon, &mut ws, par),
                }
            })
            .collect();
        let objective = kinetic + terminal_cost;
        let diagnostics = Diagnostics {
            objective,
            kinetic_energy: kinetic,
            terminal_cost,
            quantisation: 0.0,
            dual_value: dual,
            duality_gap: objective - dual,
            lower_bound_bias: f64::NAN,
            hj_residual: hj_residual(grid, &rho0, &phi, &map, alpha, horizon, &mut ws, par),
            max_speed,
            speed_bound: problem.lipschitz.map_or(f64::INFINITY, |l| l / alpha),
            iterations,
            converged,
            stop_reason: StopReason::new(converged, residual),
            mass_error: (rho_terminal.sum() - 1.0).abs(),
            wall_time_s: start.elapsed().as_secs_f64(),
            levels: Vec::new(),
        };
        Ok(Solution {
            method: super::MethodKind::Particles,
            grid: grid.clone(),
            horizon,
            alpha,
            rho0,
            target: q,
            rho_terminal,
            phi,
            value0,
            map: Some(map),
            snapshots,
            values: None,
            diagnostics,
        })
    }
}
