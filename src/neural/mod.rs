//! The neural W1–W2 generative flow (math.md section 4) on burn: a tanh
//! potential `U_theta(x, t)` whose explicit input gradient drives the flow
//! `x <- x - dt grad_x U/alpha`, and a ReLU discriminator `phi_w(x)`, trained
//! adversarially on `alpha KE + D_f^L(rho_T || Q)`. The model code is written
//! once; the backend (CPU or wgpu) is chosen at run time through the device.

pub mod adam;
pub mod checkpoint;
pub mod cnn;
pub mod compute;
pub mod figures;
pub mod flow;
pub mod judge;
pub mod mlp;
pub mod network;
pub mod target;
pub mod train;

pub use compute::{BackendKind, Compute, Precision};
pub use network::{Model, Network, ScalarNetwork};
pub use train::{
    Record, RunSummary, Silent, Status, TrainConfig, TrainObserver, TrainState, Trainer, Variant,
};
