//! f-divergences and their Lipschitz regularisation (the W1 proximal):
//!
//! ```text
//! D_f(P || Q)   = sum_i q_i f(p_i / q_i),
//! D_f^L(P || Q) = sup_{phi L-Lipschitz} sum_i phi_i p_i - Lambda_f(phi; Q),
//! Lambda_f(phi; Q) = inf_nu nu + sum_i q_i f*(phi_i - nu)
//! ```
//!
//! (Lambda_KL = log sum_i q_i e^{phi_i}); the maximiser phi* is the optimal
//! discriminator and the terminal condition of the Hamilton–Jacobi equation.

pub mod fdiv;
pub mod lipschitz;

pub use fdiv::FDivergence;
pub use lipschitz::{
    Discriminator, PdhgMetric, PdhgOptions, PdhgReport, PdhgState, dual_value, extend_from_support,
    lipschitz_constant, lipschitz_divergence, plain_divergence, solve_lipschitz,
};
