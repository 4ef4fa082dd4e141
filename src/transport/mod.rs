//! Transport of densities: the forward continuity equation
//! `rho_t + div(rho v) = 0` by conservative finite volumes, and the
//! semi-discrete transport of a pixel-wise source onto nodes (Laguerre cells).

pub mod finite_volume;
pub mod laguerre;

pub use finite_volume::{FvOptions, FvScheme, advance};
pub use laguerre::{LaguerreCells, LaguerreWorkspace, laguerre_cells};
