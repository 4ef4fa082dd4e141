//! Hamilton–Jacobi solvers for `-U_t + |grad U|^2/(2 alpha) = 0`, `U(., T) = g`:
//! the exact Hopf–Lax formula and monotone finite differences.

pub mod finite_difference;
pub mod hopf_lax;
pub mod huber;

pub use finite_difference::{FdOptions, FdScheme, solve_backward};
pub use hopf_lax::{HopfLax, HopfLaxWorkspace, hopf_lax, hopf_lax_into, lower_envelope};
pub use huber::{CTransform, HuberKernel, huber_transform, lipschitz_envelope};
