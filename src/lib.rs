//! # proxflow
//!
//! Wasserstein-proximal generative flows and the mean-field game behind them.
//!
//! Given a source `rho0`, a target `Q` (possibly singular), a horizon `T`, a
//! kinetic weight `alpha` (the W2 proximal) and a Lipschitz bound `L` (the W1
//! proximal), proxflow solves
//!
//! ```text
//! min_v alpha int_0^T int |v|^2/2 rho + D_f^L(rho_T || Q),   rho_t + div(rho v) = 0,
//! ```
//!
//! whose optimality system is the backward Hamilton–Jacobi equation
//! `-U_t + |grad U|^2/(2 alpha) = 0`, `U(., T) = phi*` (the optimal
//! discriminator), coupled to the forward continuity equation with
//! `v = -grad U / alpha`. With both proximals the solution is unique and agents
//! move on straight lines.
//!
//! Modules: [`problem`] (the data), [`grid`], [`divergence`] (f, f*, Lambda_f and
//! the Lipschitz-regularised divergence), [`hj`] (Hopf–Lax and finite
//! differences), [`mfg`] (coupled solvers returning a [`mfg::Solution`]),
//! [`exact`] and [`cases`] (closed-form test problems), [`data`] (samplers),
//! [`chart`] (generic line charts), [`plot`] (figures of a solution), [`poisson`] (DCT screened-Poisson solves), [`report`] (summaries), [`transport`] (finite-volume
//! continuity equation), [`neural`] (the neural flow on burn, CPU and wgpu),
//! [`metrics`] (energy distance, MMD), [`io`] (file checks before allocation).
//!
//! ```
//! use proxflow::{cases, mfg::{DualSolver, Silent, Solver}};
//! let case = cases::builtin("shift-near-2d").unwrap();
//! let grid = case.grid(64).unwrap();
//! let solution = DualSolver::default().solve(&case.problem, &grid, &mut Silent).unwrap();
//! println!("J = {:.6}, gap {:.1e}", solution.diagnostics.objective, solution.diagnostics.duality_gap);
//! // J against the closed form of math.md section 3 (second order in h: 3e-3 at 64^2)
//! let exact = case.exact.unwrap().objective();
//! assert!((solution.diagnostics.objective - exact).abs() < 4e-3 * exact);
//! ```

#![warn(missing_docs)]

pub mod cases;
pub mod chart;
pub mod compare;
pub mod config;
pub mod data;
pub mod divergence;
pub mod error;
pub mod exact;
pub mod grid;
pub mod hj;
pub mod io;
pub mod metrics;
pub mod mfg;
pub mod neural;
pub mod par;
pub mod plot;
pub mod poisson;
pub mod problem;
pub mod report;
pub mod studies;
pub mod transport;
pub mod verify;
pub mod wasserstein;

pub use error::{Error, Result};
