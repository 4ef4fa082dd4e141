//! f-divergences and their Lipschitz regularisation (the W1 proximal).

pub mod fdiv;
pub mod lipschitz;

pub use fdiv::FDivergence;
pub use lipschitz::{
    Discriminator, PdhgMetric, PdhgOptions, PdhgReport, PdhgState, dual_value, lipschitz_constant,
    lipschitz_divergence, plain_divergence, solve_lipschitz,
};
