//! Transport of densities: the forward continuity equation
//! `rho_t + div(rho v) = 0` by conservative finite volumes.

pub mod finite_volume;

pub use finite_volume::{FvOptions, FvScheme, advance};
