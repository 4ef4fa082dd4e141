//! Checkpoints of a training run: both networks, both Adam states, the
//! position of the random stream and the history, in one file written
//! atomically (temporary file, fsync, rename) and verified by a checksum on
//! load. A run killed at any moment leaves the previous checkpoint intact.
//!
//! Layout: the magic `PROXFLOW-CKPT-1\n`, a little-endian u64 length and a
//! JSON header, a u64 count and that many f64 values, then the FNV-1a hash
//! (u64) of everything before it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::neural::flow::host_values;
use crate::neural::mlp::matrix;
use crate::neural::network::ScalarNetwork;
use crate::neural::train::{Record, TrainConfig, Trainer};

/// File name of the checkpoint inside a run folder.
pub const FILE: &str = "checkpoint.bin";
const MAGIC: &[u8] = b"PROXFLOW-CKPT-1\n";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    config: TrainConfig,
    iteration: usize,
    wall_seconds: f64,
    rng_word_position: u128,
    potential_adam_step: u64,
    critic_adam_step: u64,
    /// Shapes of the tensors, in the order potential, critic, the Adam
    /// moments (potential first, second; critic first, second), then the
    /// averaged potential where the run keeps one.
    shapes: Vec<[usize; 2]>,
    /// History rows in the CSV form, which keeps NaN (JSON cannot).
    history: Vec<String>,
}

/// A saved training state.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    header: Header,
    values: Vec<f64>,
    /// The run's settings.
    pub config: TrainConfig,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Checkpoint {
    /// The trainer's state after `wall_seconds` of training.
    pub fn capture(trainer: &Trainer, wall_seconds: f64) -> Self {
        let tensors = trainer
            .potential
            .parameters()
            .iter()
            .chain(trainer.critic.parameters())
            .chain(&trainer.potential_adam.first)
            .chain(&trainer.potential_adam.second)
            .chain(&trainer.critic_adam.first)
            .chain(&trainer.critic_adam.second)
            .chain(
                trainer
                    .averaged_potential
                    .iter()
                    .flat_map(|a| a.parameters()),
            );
        let mut shapes = Vec::new();
        let mut values = Vec::new();
        for t in tensors {
            shapes.push(t.dims());
            values.extend(host_values(t.clone()));
        }
        let header = Header {
            config: trainer.config.clone(),
            iteration: trainer.iteration,
            wall_seconds,
            rng_word_position: trainer.rng.get_word_pos(),
            potential_adam_step: trainer.potential_adam.step,
            critic_adam_step: trainer.critic_adam.step,
            shapes,
            history: trainer.history.iter().map(Record::csv_row).collect(),
        };
        Self {
            config: header.config.clone(),
            header,
            values,
        }
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = serde_json::to_vec(&self.header).expect("serialisable header");
        let mut bytes = Vec::with_capacity(MAGIC.len() + header.len() + 8 * self.values.len() + 24);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(self.values.len() as u64).to_le_bytes());
        for v in &self.values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let hash = fnv1a(&bytes);
        bytes.extend_from_slice(&hash.to_le_bytes());
        crate::io::write_atomically(path, &bytes)
    }

    /// Reads and verifies a checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |message: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if !bytes.starts_with(MAGIC) {
            return Err(bad("not a proxflow checkpoint (bad magic)".into()));
        }
        if bytes.len() < MAGIC.len() + 24 {
            return Err(bad(format!("truncated: {} bytes", bytes.len())));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let stored = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
        if fnv1a(body) != stored {
            return Err(bad(
                "checksum mismatch: the file is damaged or was cut short".into(),
            ));
        }
        let mut at = MAGIC.len();
        let word = |at: &mut usize| -> Result<u64> {
            let w = body
                .get(*at..*at + 8)
                .ok_or_else(|| bad("truncated".into()))?;
            *at += 8;
            Ok(u64::from_le_bytes(w.try_into().expect("8 bytes")))
        };
        // lengths read from the file are checked before any arithmetic
        let header_len = usize::try_from(word(&mut at)?).unwrap_or(usize::MAX);
        let header_end = at
            .checked_add(header_len)
            .ok_or_else(|| bad(format!("header length {header_len} overflows")))?;
        let header: Header = serde_json::from_slice(
            body.get(at..header_end)
                .ok_or_else(|| bad("truncated header".into()))?,
        )
        .map_err(|e| bad(format!("header: {e}")))?;
        at += header_len;
        let count = usize::try_from(word(&mut at)?).unwrap_or(usize::MAX);
        if count.checked_mul(8).and_then(|b| b.checked_add(at)) != Some(body.len()) {
            return Err(bad(format!(
                "expected {count} values, found {} bytes",
                body.len() - at
            )));
        }
        let values: Vec<f64> = body[at..]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let expected = header.shapes.iter().try_fold(0usize, |a, [r, c]| {
            r.checked_mul(*c).and_then(|n| a.checked_add(n))
        });
        if expected != Some(count) {
            let expected = expected.map_or_else(|| "more than 2^64".into(), |e| e.to_string());
            return Err(bad(format!(
                "shapes hold {expected} values, file has {count}"
            )));
        }
        Ok(Self {
            config: header.config.clone(),
            header,
            values,
        })
    }

    /// Iteration at which it was taken.
    pub fn iteration(&self) -> usize {
        self.header.iteration
    }

    /// Puts the saved state into a trainer built from the same settings.
    pub fn restore(&self, trainer: &mut Trainer) -> Result<()> {
        let h = &self.header;
        let bad = |message: String| Error::Checkpoint {
            path: "checkpoint".into(),
            message,
        };
        let mut slots: Vec<&mut Vec<burn::tensor::Tensor<2>>> = vec![
            trainer.potential.parameters_mut(),
            trainer.critic.parameters_mut(),
            &mut trainer.potential_adam.first,
            &mut trainer.potential_adam.second,
            &mut trainer.critic_adam.first,
            &mut trainer.critic_adam.second,
        ];
        slots.extend(
            trainer
                .averaged_potential
                .as_mut()
                .map(|a| a.parameters_mut()),
        );
        let mut shapes = h.shapes.iter();
        let mut at = 0;
        let (device, dtype) = (trainer.compute.device.clone(), trainer.compute.dtype);
        for slot in slots {
            for t in slot.iter_mut() {
                let shape = *shapes
                    .next()
                    .ok_or_else(|| bad("fewer tensors than the networks need".into()))?;
                if shape != t.dims() {
                    return Err(bad(format!(
                        "tensor of shape {shape:?} where the network has {:?}",
                        t.dims()
                    )));
                }
                let n = shape[0] * shape[1];
                *t = matrix(
                    self.values[at..at + n].to_vec(),
                    shape[0],
                    shape[1],
                    &device,
                    dtype,
                );
                at += n;
            }
        }
        if shapes.next().is_some() {
            return Err(bad("more tensors than the networks need".into()));
        }
        trainer.potential_adam.step = h.potential_adam_step;
        trainer.critic_adam.step = h.critic_adam_step;
        trainer.rng.set_word_pos(h.rng_word_position);
        trainer.iteration = h.iteration;
        trainer.history = h
            .history
            .iter()
            .map(|row| {
                Record::from_csv_row(row)
                    .ok_or_else(|| bad(format!("unreadable history row `{row}`")))
            })
            .collect::<Result<_>>()?;
        trainer.elapsed_before = h.wall_seconds;
        Ok(())
    }
}
