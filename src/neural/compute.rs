//! Where the network runs: the burn device (chosen at run time) and the float
//! type of every tensor. The model code is the same for all of them.

use burn::tensor::{DType, Device, DeviceType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, choose};

/// The execution backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (Flex), reproducible for a fixed seed.
    Cpu,
    /// wgpu on whatever adapter the machine offers (Vulkan, Metal, ...).
    Wgpu,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        choose(
            "backend",
            s,
            &[("cpu", BackendKind::Cpu), ("wgpu", BackendKind::Wgpu)],
        )
    }
}

/// The float type of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Single precision (the default; the only choice on wgpu).
    F32,
    /// Double precision (CPU only; used by the gradient checks).
    F64,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        choose(
            "precision",
            s,
            &[("f32", Precision::F32), ("f64", Precision::F64)],
        )
    }
}

/// A device and a float type: everything a tensor needs to be created.
#[derive(Debug, Clone)]
pub struct Compute {
    /// The burn device (without autodiff; tracked copies add it).
    pub device: Device,
    /// Float type of every tensor.
    pub dtype: DType,
    /// Which backend the device belongs to.
    pub backend: BackendKind,
}

impl Compute {
    /// Opens the backend once per run. wgpu needs an adapter and f32: on the
    /// software Vulkan adapter (lavapipe) f64 `tanh`/`exp` return wrong values.
    pub fn new(backend: BackendKind, precision: Precision) -> Result<Self> {
        let dtype = match precision {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        };
        let device = match backend {
            BackendKind::Cpu => Device::flex(),
            BackendKind::Wgpu => {
                if precision == Precision::F64 {
                    return Err(Error::invalid(
                        "precision",
                        "f64",
                        "the wgpu backend runs in f32 (f64 transcendental functions are wrong on some adapters)",
                    ));
                }
                match probe_wgpu(ADAPTER_TIMEOUT) {
                    Some(true) => {}
                    Some(false) => {
                        return Err(Error::invalid(
                            "backend",
                            "wgpu",
                            "no wgpu adapter found (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers)",
                        ));
                    }
                    None => {
                        return Err(Error::invalid(
                            "backend",
                            "wgpu",
                            &format!(
                                "the wgpu adapter request did not answer within {} s (a driver that hangs; try --backend cpu)",
                                ADAPTER_TIMEOUT.as_secs()
                            ),
                        ));
                    }
                }
                Device::wgpu(Default::default())
            }
        };
        Ok(Self {
            device,
            dtype,
            backend,
        })
    }

    /// The CPU backend in f32.
    pub fn cpu() -> Self {
        Self::new(BackendKind::Cpu, Precision::F32).expect("the CPU backend is always available")
    }
}

/// How long the wgpu adapter request may take before the run is refused.
pub const ADAPTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether wgpu finds any adapter (a GPU or a software one such as lavapipe).
pub fn wgpu_adapter_available() -> bool {
    probe_wgpu(ADAPTER_TIMEOUT) == Some(true)
}

/// Asks wgpu for its adapters on a thread of its own: `Some(found)`, or
/// `None` when the request has not answered within `timeout` (a driver
/// that hangs must not hang the run).
pub fn probe_wgpu(timeout: std::time::Duration) -> Option<bool> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let found =
            std::panic::catch_unwind(|| !Device::enumerate(DeviceType::Wgpu).into_vec().is_empty())
                .unwrap_or(false);
        let _ = send.send(found);
    });
    receive.recv_timeout(timeout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapter_probe_returns_within_its_timeout() {
        // a probe given no time answers at once, whatever the driver does
        let clock = std::time::Instant::now();
        let _ = probe_wgpu(std::time::Duration::ZERO);
        assert!(clock.elapsed() < std::time::Duration::from_secs(1));
    }
}
