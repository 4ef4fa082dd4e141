//! Transport of densities: the forward continuity equation
//! `rho_t + div(rho v) = 0` by forward semi-Lagrangian splatting or by
//! conservative finite volumes, and the semi-discrete transport of a
//! pixel-wise source onto nodes (Laguerre cells).

pub mod finite_volume;
pub mod laguerre;
pub mod semi_lagrangian;

pub use finite_volume::{FvOptions, FvScheme, advance};
pub use laguerre::{LaguerreCells, LaguerreWorkspace, laguerre_cells};
pub use semi_lagrangian::{
    Foot, FootRule, HopfLax, Rk2, SlOptions, SlStep, ValueSlab, VelocityField,
};

/// The scheme of the forward continuity equation, read from a config as
/// `transport = { kind = "semi-lagrangian" }` or
/// `transport = { kind = "finite-volume", scheme = "muscl", cfl = 0.45 }`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Transport {
    /// Forward semi-Lagrangian splatting (mass on characteristics, bilinear
    /// deposit): keeps collapses sharp.
    SemiLagrangian(SlOptions),
    /// Conservative finite volumes (cell averages).
    FiniteVolume(FvOptions),
}

impl Default for Transport {
    fn default() -> Self {
        Transport::SemiLagrangian(SlOptions::default())
    }
}

impl Transport {
    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::SemiLagrangian(_) => "semi-lagrangian",
            Transport::FiniteVolume(_) => "finite-volume",
        }
    }
}
