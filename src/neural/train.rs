//! Adversarial training of the potential U and the discriminator phi
//! (math.md section 4). Each iteration makes `critic_steps` discriminator
//! steps on
//!
//! ```text
//! -mean phi(x_T) + Lambda_f(phi; y) + lambda_gp mean relu(|grad phi(z)|^2 - L^2),
//! z = u y + (1 - u) x_T,
//! ```
//!
//! then one generator step on `mean phi(x_T) + alpha KE`. The variant decides
//! whether the gradient penalty (W1 proximal) and the kinetic term (W2
//! proximal) are present. Every minibatch is fresh, drawn from one seeded
//! ChaCha stream whose position is checkpointed, so a resumed run repeats an
//! uninterrupted one on the CPU backend.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::divergence::FDivergence;
use crate::error::{Error, Result, require_positive};
use crate::neural::adam::Adam;
use crate::neural::checkpoint::{self, Checkpoint};
use crate::neural::cnn::Cnn;
use crate::neural::compute::{BackendKind, Compute, Precision};
use crate::neural::flow::{
    FlowSpec, divergence_estimate, flow, gradient_penalty, host_values, on_row_blocks,
    terminal_points, with_time,
};
use crate::neural::judge::{Judge, JudgeReport};
use crate::neural::mlp::{Activation, Mlp, layer_sizes};
use crate::neural::network::{Model, Network, ScalarNetwork, square_side};
use crate::neural::target::{Source, Target};

/// Which proximal terms the losses contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// No gradient penalty, no kinetic energy.
    None,
    /// Gradient penalty only (W1 proximal).
    W1,
    /// Kinetic energy only (W2 proximal).
    W2,
    /// Both (the paper's method).
    W1w2,
}

impl Variant {
    /// All variants with their names.
    pub const ALL: [(&'static str, Variant); 4] = [
        ("none", Variant::None),
        ("w1", Variant::W1),
        ("w2", Variant::W2),
        ("w1w2", Variant::W1w2),
    ];

    /// Whether the discriminator loss has the gradient penalty.
    pub fn penalised(self) -> bool {
        matches!(self, Variant::W1 | Variant::W1w2)
    }

    /// Whether the generator loss has the kinetic energy.
    pub fn kinetic(self) -> bool {
        matches!(self, Variant::W2 | Variant::W1w2)
    }

    /// The variant's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .expect("listed")
            .0
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        crate::error::choose("variant", s, &Self::ALL)
    }
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Target name (see [`crate::neural::target::target_names`]).
    pub data: String,
    /// Dimension d.
    pub dim: usize,
    /// Proximal terms.
    pub variant: Variant,
    /// The f of the divergence.
    pub divergence: FDivergence,
    /// Generator iterations.
    pub iterations: usize,
    /// Execution backend.
    pub backend: BackendKind,
    /// Float type.
    pub precision: Precision,
    /// Seed of every random draw.
    pub seed: u64,
    /// Kinetic weight alpha.
    pub alpha: f64,
    /// Lipschitz bound L of the gradient penalty (`None`, in JSON `"inf"`,
    /// without the W1 proximal), as in [`crate::problem::Problem`].
    #[serde(with = "crate::io::optional_bound")]
    pub lipschitz: Option<f64>,
    /// Weight of the gradient penalty.
    pub gp_weight: f64,
    /// Horizon T.
    pub horizon: f64,
    /// Euler step dt (must divide T).
    pub dt: f64,
    /// The source law rho0.
    #[serde(default = "normal_source")]
    pub source: Source,
    /// The network family of U and phi.
    #[serde(default = "dense_model")]
    pub model: Model,
    /// Hidden widths of the potential (tanh for the MLP; the CNN's dense
    /// head is ReLU, as in the paper).
    pub potential_widths: Vec<usize>,
    /// Hidden widths of the discriminator (ReLU).
    pub critic_widths: Vec<usize>,
    /// Minibatch size.
    pub batch: usize,
    /// Worker threads for the flows (row blocks); results depend on it only
    /// through rounding, so it is part of the reproducible configuration.
    pub threads: usize,
    /// Discriminator steps per generator step.
    pub critic_steps: usize,
    /// Adam learning rate of the discriminator.
    pub critic_learning_rate: f64,
    /// Adam learning rate of the potential.
    pub potential_learning_rate: f64,
    /// Adam betas.
    pub betas: (f64, f64),
    /// Both learning rates are multiplied by `lr_decay^(k/iterations)` at
    /// iteration k (1: constant, as in the paper).
    #[serde(default = "no_decay")]
    pub lr_decay: f64,
    /// Decay of the running (exponential) average of the potential's
    /// parameters that evaluation and sampling use; 0 samples the trained
    /// parameters themselves. The weight of the newest parameters after
    /// iteration k is `1 - min(decay, (1 + k)/(10 + k))`, so early
    /// iterates do not linger.
    #[serde(default)]
    pub potential_average: f64,
    /// Diagnostics every this many iterations.
    pub eval_every: usize,
    /// Source points of each evaluation.
    pub eval_samples: usize,
    /// Generated points in `samples.npy` and in the final comparison with Q.
    pub final_samples: usize,
    /// Size bound of the held-out target set.
    pub test_size: usize,
    /// Checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// A divergence estimate or kinetic energy above this, or a NaN anywhere,
    /// stops training as diverged (the losses themselves are only checked
    /// for NaN: the critic's values are defined up to a constant).
    #[serde(with = "crate::io::maybe_infinite")]
    pub blowup: f64,
}

fn no_decay() -> f64 {
    1.0
}

fn normal_source() -> Source {
    Source::Normal
}

fn dense_model() -> Model {
    Model::Mlp
}

/// Whether `data` names square images (the CNN's domain).
pub fn is_image_data(data: &str) -> bool {
    matches!(data, "digits" | "mnist") || data.starts_with("idx:")
}

impl TrainConfig {
    /// The paper's settings for `data` in `dim` dimensions: alpha 0.5 and GP
    /// weight 0.1 in 2-D, alpha 0.1 and 0.01 above; L = 1, T = 1, dt = 0.2.
    /// Images get the paper's image settings ([`TrainConfig::paper_images`]).
    pub fn paper(data: &str, dim: usize) -> Self {
        if is_image_data(data) {
            return Self::paper_images(data, dim);
        }
        let low = dim <= 2;
        Self {
            data: data.into(),
            dim,
            variant: Variant::W1w2,
            divergence: FDivergence::Kl,
            iterations: 25_000,
            backend: BackendKind::Cpu,
            precision: Precision::F32,
            seed: 0,
            alpha: if low { 0.5 } else { 0.1 },
            lipschitz: Some(1.0),
            gp_weight: if low { 0.1 } else { 0.01 },
            horizon: 1.0,
            dt: 0.2,
            source: Source::Normal,
            model: Model::Mlp,
            potential_widths: vec![48; 5],
            critic_widths: vec![48; 3],
            batch: 200,
            threads: 2,
            critic_steps: 5,
            critic_learning_rate: 2e-5,
            potential_learning_rate: 1e-4,
            betas: (0.5, 0.9),
            lr_decay: 1.0,
            potential_average: 0.0,
            eval_every: 250,
            eval_samples: 2000,
            final_samples: 5000,
            test_size: 2000,
            checkpoint_every: 1000,
            blowup: 100.0,
        }
    }

    /// The paper's MNIST settings for square images of `dim` pixels: source
    /// U(0, 0.5), T = 5, dt = 1, alpha = 0.05, L = 1, GP weight 0.1, the CNN
    /// with dense heads 512 x 3 (U) and 256 x 3 (phi), Adam rates 5e-4 (U)
    /// and 1e-4 (phi), 5,000 iterations.
    pub fn paper_images(data: &str, dim: usize) -> Self {
        Self {
            alpha: 0.05,
            gp_weight: 0.1,
            horizon: 5.0,
            dt: 1.0,
            source: Source::Uniform {
                low: 0.0,
                high: 0.5,
            },
            model: Model::paper_cnn(square_side(dim)),
            potential_widths: vec![512; 3],
            critic_widths: vec![256; 3],
            iterations: 5000,
            critic_learning_rate: 1e-4,
            potential_learning_rate: 5e-4,
            eval_every: 100,
            eval_samples: 500,
            final_samples: 1000,
            checkpoint_every: 100,
            ..Self::paper("", dim)
        }
        .with_data(data, dim)
    }

    fn with_data(mut self, data: &str, dim: usize) -> Self {
        self.data = data.into();
        self.dim = dim;
        self
    }

    /// Checks every value and names the first bad one.
    pub fn validate(&self) -> Result<()> {
        FlowSpec::new(self.alpha, self.horizon, self.dt)?;
        match self.lipschitz {
            None if self.variant.penalised() => {
                return Err(Error::invalid(
                    "lipschitz",
                    "inf",
                    "the gradient penalty needs a finite L",
                ));
            }
            None => {}
            Some(l) => {
                require_positive("lipschitz", l)?;
            }
        }
        if !(self.gp_weight >= 0.0 && self.gp_weight.is_finite()) {
            return Err(Error::invalid(
                "gp-weight",
                self.gp_weight,
                "must be finite and >= 0",
            ));
        }
        require_positive("critic learning rate", self.critic_learning_rate)?;
        require_positive("potential learning rate", self.potential_learning_rate)?;
        require_positive("blowup", self.blowup)?;
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(Error::invalid(
                "lr-decay",
                self.lr_decay,
                "must lie in (0, 1] (the final fraction of the learning rates)",
            ));
        }
        if !(0.0..1.0).contains(&self.potential_average) {
            return Err(Error::invalid(
                "average",
                self.potential_average,
                "must lie in [0, 1) (0: no running average)",
            ));
        }
        for (name, b) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(name, b, "must lie in [0, 1)"));
            }
        }
        for (name, v) in [
            ("iterations", self.iterations),
            ("dim", self.dim),
            ("batch", self.batch),
            ("threads", self.threads),
            ("critic-steps", self.critic_steps),
            ("eval-every", self.eval_every),
            ("eval-samples", self.eval_samples),
            ("final-samples", self.final_samples),
            ("test-size", self.test_size),
            ("checkpoint-every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(Error::invalid(name, v, "must be at least 1"));
            }
        }
        for (name, widths) in [
            ("potential widths", &self.potential_widths),
            ("critic widths", &self.critic_widths),
        ] {
            if widths.is_empty() || widths.contains(&0) {
                return Err(Error::invalid(
                    name,
                    format!("{widths:?}"),
                    "need at least one hidden layer, all widths >= 1",
                ));
            }
        }
        // the critic steps carry `batch` source and `batch` target points
        // through the flow with its backward pass; evaluation holds a few
        // copies of its points (a lower bound: it refuses only the absurd)
        crate::error::check_memory(
            "batch",
            self.batch,
            self.batch.saturating_mul(2),
            self.point_bytes(),
        )?;
        for (name, v) in [
            ("eval-samples", self.eval_samples),
            ("final-samples", self.final_samples),
        ] {
            crate::error::check_memory(name, v, v, 32 * self.dim)?;
        }
        Ok(())
    }

    /// Bytes one point of a batch needs through the flow: its activations at
    /// every layer and every Euler step (f64, with the backward pass's copy).
    pub fn point_bytes(&self) -> usize {
        // a CNN's first stage holds `channels` copies of the image
        let conv = match &self.model {
            Model::Mlp => 0,
            Model::Cnn { channels, .. } => channels.iter().max().map_or(0, |c| c * self.dim),
        };
        let widest = self
            .potential_widths
            .iter()
            .chain(&self.critic_widths)
            .fold(self.dim.max(conv), |a, w| a.max(*w));
        let layers = self.potential_widths.len().max(self.critic_widths.len()) + 2;
        let steps = (self.horizon / self.dt).round().clamp(1.0, 1e6) as usize + 1;
        16usize
            .saturating_mul(widest)
            .saturating_mul(layers)
            .saturating_mul(steps)
    }

    /// The target with its held-out set, as this run splits it.
    pub fn target(&self) -> Result<Target> {
        Target::load(&self.data, Some(self.dim), self.test_size, self.seed)
    }

    /// The flow's time discretisation.
    pub fn flow_spec(&self) -> Result<FlowSpec> {
        FlowSpec::new(self.alpha, self.horizon, self.dt)
    }
}

/// Diagnostics at one iteration (a row of `history.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Generator iterations done.
    pub iteration: usize,
    /// Wall time since the run started (including earlier sessions of a resumed run).
    pub wall_seconds: f64,
    /// `mean phi(x_T) - Lambda_f(phi; Q_test)` on held-out target points.
    pub divergence: f64,
    /// `alpha sum_k dt mean |grad U/alpha|^2/2`.
    pub kinetic: f64,
    /// `kinetic + divergence`.
    pub objective: f64,
    /// RMS of `dU/dt - |grad U|^2/(2 alpha)` along the flow.
    pub hjb_residual: f64,
    /// RMS of `grad phi(x_T) - grad_x U(x_T, T)`.
    pub terminal_residual: f64,
    /// The divergence estimate with dt/2.
    pub divergence_half_dt: f64,
    /// Mean |orthogonal coordinate|: the mean of `|x_T,i|` over samples and the
    /// coordinates `i >= 2` (NaN unless the target is embedded; 0.80 for the
    /// source, 0 for the exact solution).
    pub orthogonal: f64,
    /// Mean in-plane movement: the mean of `|x_T,i - x_0,i|` over samples and
    /// `i = 0, 1` (NaN unless embedded; 0 for the exact solution of case B).
    pub in_plane_shift: f64,
    /// Largest `|grad U|/alpha` along the flow.
    pub max_speed: f64,
    /// `L/alpha`.
    pub speed_bound: f64,
    /// The digit judge's Fréchet distance of `x_T` to held-out images (NaN
    /// unless the data are labelled images).
    pub frechet: f64,
}

impl Record {
    const HEADER: &'static str = "iteration,wall_seconds,divergence,kinetic,objective,hjb_residual,terminal_residual,divergence_half_dt,orthogonal,in_plane_shift,max_speed,speed_bound,frechet";

    fn fields(&self) -> [f64; 12] {
        [
            self.wall_seconds,
            self.divergence,
            self.kinetic,
            self.objective,
            self.hjb_residual,
            self.terminal_residual,
            self.divergence_half_dt,
            self.orthogonal,
            self.in_plane_shift,
            self.max_speed,
            self.speed_bound,
            self.frechet,
        ]
    }

    /// One CSV row; `{:e}` is the shortest form that reads back bit for bit.
    pub(crate) fn csv_row(&self) -> String {
        let mut row = self.iteration.to_string();
        for v in self.fields() {
            row.push_str(&format!(",{v:e}"));
        }
        row
    }

    /// Parses a row written by `csv_row` (NaN and infinities included; rows
    /// of runs before the `frechet` column read it as NaN).
    pub(crate) fn from_csv_row(row: &str) -> Option<Self> {
        let mut parts = row.split(',');
        let iteration = parts.next()?.parse().ok()?;
        let mut v: Vec<f64> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
        if v.len() == 11 {
            v.push(f64::NAN);
        }
        let [
            wall_seconds,
            divergence,
            kinetic,
            objective,
            hjb_residual,
            terminal_residual,
            divergence_half_dt,
            orthogonal,
            in_plane_shift,
            max_speed,
            speed_bound,
            frechet,
        ] = v[..]
        else {
            return None;
        };
        Some(Self {
            iteration,
            wall_seconds,
            divergence,
            kinetic,
            objective,
            hjb_residual,
            terminal_residual,
            divergence_half_dt,
            orthogonal,
            in_plane_shift,
            max_speed,
            speed_bound,
            frechet,
        })
    }

    /// The values that must stay finite and below `bound`.
    fn watched(&self, bound: f64) -> [(&'static str, f64, f64); 3] {
        [
            ("divergence estimate", self.divergence, bound),
            ("kinetic energy", self.kinetic, bound),
            ("divergence estimate (dt/2)", self.divergence_half_dt, bound),
        ]
    }
}

/// First iteration of the window of [`mean_kinetic`]: the paper's figure
/// averages over iterations 100 to the end, past the initial transient.
pub const KINETIC_WINDOW_START: usize = 100;

/// Mean kinetic energy over the evaluations from iteration
/// [`KINETIC_WINDOW_START`] on (the initial network's is not the method's);
/// NaN when there are none.
pub fn mean_kinetic(history: &[Record]) -> f64 {
    let (sum, count) = history
        .iter()
        .filter(|r| r.iteration >= KINETIC_WINDOW_START)
        .fold((0.0, 0usize), |(sum, count), r| {
            (sum + r.kinetic, count + 1)
        });
    sum / count as f64
}

/// Writes `history.csv` through a temporary file and a rename.
pub fn write_history(path: &Path, history: &[Record]) -> Result<()> {
    let mut text = String::from(Record::HEADER);
    text.push('\n');
    for r in history {
        text.push_str(&r.csv_row());
        text.push('\n');
    }
    crate::io::write_atomically(path, text.as_bytes())
}

/// Reads a `history.csv` written by [`write_history`].
pub fn read_history(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, row)| {
            Record::from_csv_row(row).ok_or_else(|| Error::ArrayFile {
                path: path.to_path_buf(),
                message: format!("row {} is not a history row: `{row}`", i + 2),
            })
        })
        .collect()
}

/// The configuration stored in a run folder's `summary.json`.
pub fn read_run_config(dir: &Path) -> Result<TrainConfig> {
    let path = dir.join("summary.json");
    let value = crate::io::read_json::<serde_json::Value>(&path)?;
    serde_json::from_value(value["config"].clone()).map_err(|e| Error::Config {
        path,
        message: format!("config: {e}"),
    })
}

/// The judge's report stored in a run folder's `summary.json`, if any.
pub fn read_run_judge(dir: &Path) -> Result<Option<JudgeReport>> {
    let path = dir.join("summary.json");
    let value = crate::io::read_json::<serde_json::Value>(&path)?;
    match value.get("judge") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(j) => serde_json::from_value(j.clone())
            .map(Some)
            .map_err(|e| Error::Config {
                path,
                message: format!("judge: {e}"),
            }),
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// All iterations done.
    Completed,
    /// A loss or diagnostic became NaN or exceeded the blow-up bound.
    Diverged {
        /// The iteration at which it was detected.
        iteration: usize,
        /// What blew up.
        quantity: String,
        /// Its value.
        value: f64,
    },
}

/// Watches training (progress bars, logging).
pub trait TrainObserver {
    /// After every generator iteration, with the latest diagnostics.
    fn observe(&mut self, state: &TrainState);
}

/// State of one generator iteration, passed to observers.
#[derive(Debug, Clone, Copy)]
pub struct TrainState<'a> {
    /// Iterations done.
    pub iteration: usize,
    /// The diagnostics recorded at this iteration, if it evaluated.
    pub latest: Option<&'a Record>,
}

/// An observer that does nothing.
pub struct Silent;

impl TrainObserver for Silent {
    fn observe(&mut self, _: &TrainState) {}
}

/// The state of a training run: networks, optimisers, random stream, history.
pub struct Trainer {
    /// The run's settings.
    pub config: TrainConfig,
    /// Device and float type.
    pub compute: Compute,
    /// The target Q with its held-out set.
    pub target: Target,
    /// The potential U(x, t).
    pub potential: Network,
    /// The discriminator phi(x).
    pub critic: Network,
    /// The running average of the potential's parameters (with
    /// `potential_average > 0`), which evaluation and sampling use.
    pub averaged_potential: Option<Network>,
    pub(crate) potential_adam: Adam,
    pub(crate) critic_adam: Adam,
    pub(crate) rng: ChaCha8Rng,
    /// Generator iterations done.
    pub iteration: usize,
    /// Diagnostics so far.
    pub history: Vec<Record>,
    /// Wall time of earlier sessions of this run.
    pub(crate) elapsed_before: f64,
    spec: FlowSpec,
    /// The digit judge for labelled image data, trained on first use (a
    /// run's first evaluation), so `sample` and `resume` do not pay for it.
    judge: std::sync::OnceLock<Option<Judge>>,
}

/// Seed offsets of the independent streams (evaluation points, samples).
const EVAL_STREAM: u64 = 0xe7a1;
const SAMPLE_STREAM: u64 = 0x5a3b;
const COMPARE_STREAM: u64 = 0xc0de;

impl Trainer {
    /// A fresh run: networks initialised from the seed.
    pub fn new(config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let compute = Compute::new(config.backend, config.precision)?;
        Self::on(config, compute)
    }

    /// A fresh run on an already opened device.
    pub fn on(config: TrainConfig, compute: Compute) -> Result<Self> {
        config.validate()?;
        let target = config.target()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        config.model.check(target.image_side)?;
        let (potential, critic) = networks(&config, target.image_side, &mut rng, &compute);
        let potential_adam = Adam::new(
            config.potential_learning_rate,
            config.betas,
            potential.parameters(),
        );
        let critic_adam = Adam::new(
            config.critic_learning_rate,
            config.betas,
            critic.parameters(),
        );
        let spec = config.flow_spec()?;
        let averaged_potential = (config.potential_average > 0.0).then(|| potential.clone());
        Ok(Self {
            config,
            compute,
            target,
            potential,
            critic,
            averaged_potential,
            potential_adam,
            critic_adam,
            rng,
            iteration: 0,
            history: Vec::new(),
            elapsed_before: 0.0,
            spec,
            judge: std::sync::OnceLock::new(),
        })
    }

    /// Continues the run saved in `dir/checkpoint.bin`; `iterations` may
    /// extend it.
    pub fn resume(dir: &Path, iterations: Option<usize>) -> Result<Self> {
        let ck = Checkpoint::load(&dir.join(checkpoint::FILE))?;
        let mut config = ck.config.clone();
        if let Some(n) = iterations {
            config.iterations = n;
        }
        let mut trainer = Self::new(config)?;
        ck.restore(&mut trainer)?;
        if trainer.iteration > trainer.config.iterations {
            return Err(Error::invalid(
                "iterations",
                trainer.config.iterations,
                &format!(
                    "the run in {} has done {} already; give the new total",
                    dir.display(),
                    trainer.iteration
                ),
            ));
        }
        Ok(trainer)
    }

    fn matrix(&self, values: Vec<f64>, rows: usize) -> Tensor<2> {
        crate::neural::mlp::matrix(
            values,
            rows,
            self.config.dim,
            &self.compute.device,
            self.compute.dtype,
        )
    }

    fn source(&mut self, n: usize) -> Tensor<2> {
        let x = self.config.source.sample(n, self.config.dim, &mut self.rng);
        self.matrix(x, n)
    }

    /// One generator iteration (critic steps, then a potential step).
    /// Returns the last critic loss and the generator loss.
    pub fn iterate(&mut self) -> (f64, f64) {
        let c = &self.config;
        let (b, steps, f) = (c.batch, c.critic_steps, c.divergence);
        let factor = c
            .lr_decay
            .powf(self.iteration as f64 / c.iterations.max(1) as f64);
        self.critic_adam.learning_rate = c.critic_learning_rate * factor;
        self.potential_adam.learning_rate = c.potential_learning_rate * factor;
        // The generator is fixed during the critic steps, so all their flows run at once.
        let x0 = self.source(b * steps);
        let terminal = terminal_points(&self.potential, x0, &self.spec, self.config.threads);
        let mut critic_loss = f64::NAN;
        for j in 0..steps {
            let xt = terminal.clone().narrow(0, j * b, b);
            let y = self.target.sample(b, &mut self.rng);
            let y = self.matrix(y, b);
            let critic = self.critic.tracked();
            let mut loss =
                divergence_estimate(f, critic.forward(xt.clone()), critic.forward(y.clone())).neg();
            if self.config.variant.penalised() {
                let u: Vec<f64> = (0..b).map(|_| self.rng.random::<f64>()).collect();
                let u =
                    crate::neural::mlp::matrix(u, b, 1, &self.compute.device, self.compute.dtype);
                let z = y * u.clone() + xt * u.neg().add_scalar(1.0);
                loss = loss
                    + gradient_penalty(&critic, z, self.config.lipschitz.unwrap_or(f64::INFINITY))
                        .mul_scalar(self.config.gp_weight);
            }
            let grads = loss.backward();
            let g = gradients(&critic, &self.critic, &grads);
            self.critic_adam.update(self.critic.parameters_mut(), g);
            if j + 1 == steps {
                critic_loss = host_values(loss)[0];
            }
        }
        // The generator loss is a mean over the batch: each block adds its share.
        let x0 = self.source(b);
        let (kinetic_term, critic, potential, spec) = (
            self.config.variant.kinetic(),
            &self.critic,
            &self.potential,
            &self.spec,
        );
        let parts = on_row_blocks(x0, self.config.threads, |x| {
            let share = x.dims()[0] as f64 / b as f64;
            let tracked = potential.tracked();
            let (xt, kinetic) = flow(&tracked, x, spec, |_, _, _| {});
            let mut loss = critic.forward(xt).mean();
            if kinetic_term {
                loss = loss + kinetic;
            }
            let loss = loss.mul_scalar(share);
            let grads = loss.backward();
            (gradients(&tracked, potential, &grads), host_values(loss)[0])
        });
        let mut potential_loss = 0.0;
        let mut total: Option<Vec<Tensor<2>>> = None;
        for (g, l) in parts {
            potential_loss += l;
            total = Some(match total {
                None => g,
                Some(t) => t.into_iter().zip(g).map(|(a, b)| a + b).collect(),
            });
        }
        self.potential_adam.update(
            self.potential.parameters_mut(),
            total.expect("at least one block"),
        );
        if let Some(average) = &mut self.averaged_potential {
            let k = self.iteration as f64;
            let keep = self.config.potential_average.min((1.0 + k) / (10.0 + k));
            for (a, p) in average
                .parameters_mut()
                .iter_mut()
                .zip(self.potential.parameters())
            {
                *a = a.clone().mul_scalar(keep) + p.clone().mul_scalar(1.0 - keep);
            }
        }
        self.iteration += 1;
        (critic_loss, potential_loss)
    }

    /// The digit judge, for labelled image data (trained on the first call;
    /// deterministic in the seed, so a resumed run gets the same judge).
    pub fn judge(&self) -> Option<&Judge> {
        self.judge
            .get_or_init(|| {
                let training = self.target.training()?;
                training.labels.as_ref()?;
                let judge = Judge::train(training, self.target.test(), self.config.seed);
                Some(judge.expect("labelled training and held-out images"))
            })
            .as_ref()
    }

    /// The potential that evaluation and sampling use: the running average
    /// where there is one, else the trained parameters.
    pub fn sampling_potential(&self) -> &Network {
        self.averaged_potential.as_ref().unwrap_or(&self.potential)
    }

    /// The evaluation source points (the same at every evaluation).
    fn eval_source(&self, n: usize) -> Tensor<2> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ EVAL_STREAM);
        let x = self.config.source.sample(n, self.config.dim, &mut rng);
        self.matrix(x, n)
    }

    /// Diagnostics on the evaluation points and the held-out target set.
    pub fn evaluate(&self, wall_seconds: f64) -> Record {
        let c = &self.config;
        let (d, alpha, f) = (c.dim, c.alpha, c.divergence);
        let x0 = self.eval_source(c.eval_samples);
        let mut hjb = Vec::new();
        let mut speeds = Vec::new();
        let potential = self.sampling_potential();
        let (xt, kinetic) = flow(potential, x0.clone(), &self.spec, |_, _, g| {
            let grad_sq = g.clone().narrow(1, 0, d).square().sum_dim(1);
            let residual = g.clone().narrow(1, d, 1) - grad_sq.clone().div_scalar(2.0 * alpha);
            hjb.push(residual.square().mean());
            speeds.push(grad_sq.max().sqrt().div_scalar(alpha));
        });
        let test = self.target.test();
        let y = self.matrix(test.values.clone(), test.len());
        let phi_y = self.critic.forward(y);
        let divergence = divergence_estimate(f, self.critic.forward(xt.clone()), phi_y.clone());
        let (xt_half, _) = flow(potential, x0.clone(), &self.spec.halved(), |_, _, _| {});
        let divergence_half = divergence_estimate(f, self.critic.forward(xt_half), phi_y);
        let grad_u = potential
            .input_gradient(with_time(xt.clone(), c.horizon))
            .narrow(1, 0, d);
        let mismatch = self.critic.input_gradient(xt.clone()) - grad_u;
        let frechet = self
            .judge()
            .map_or(f64::NAN, |j| j.frechet(&host_values(xt.clone())));
        let terminal_residual = host_values(mismatch.square().sum_dim(1).mean().sqrt())[0];
        let (orthogonal, in_plane_shift) = if self.target.embedded() {
            let plane = xt.clone().narrow(1, 0, 2) - x0.clone().narrow(1, 0, 2);
            (
                host_values(xt.narrow(1, 2, d - 2).abs().mean())[0],
                host_values(plane.abs().mean())[0],
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        let steps = hjb.len() as f64;
        let hjb_residual = (host_values(Tensor::cat(hjb, 0)).iter().sum::<f64>() / steps).sqrt();
        let max_speed = host_values(Tensor::cat(speeds, 0))
            .into_iter()
            .fold(0.0, f64::max);
        let divergence = host_values(divergence)[0];
        let kinetic = host_values(kinetic)[0];
        Record {
            iteration: self.iteration,
            wall_seconds,
            divergence,
            kinetic,
            objective: kinetic + divergence,
            hjb_residual,
            terminal_residual,
            divergence_half_dt: host_values(divergence_half)[0],
            orthogonal,
            in_plane_shift,
            max_speed,
            speed_bound: c.lipschitz.map_or(f64::INFINITY, |l| l / alpha),
            frechet,
        }
    }

    /// Pushes `x0` (row-major, `n x dim`) through the learned flow with step `dt`.
    pub fn generate(&self, x0: Vec<f64>, dt: f64) -> Result<Vec<f64>> {
        let spec = FlowSpec::new(self.config.alpha, self.config.horizon, dt)?;
        let n = x0.len() / self.config.dim;
        let (xt, _) = flow(
            self.sampling_potential(),
            self.matrix(x0, n),
            &spec,
            |_, _, _| {},
        );
        Ok(host_values(xt))
    }

    /// `n` fresh source points (from the sample stream of `seed`) and their images.
    pub fn sample(&self, n: usize, seed: u64, dt: f64) -> Result<(Vec<f64>, Vec<f64>)> {
        crate::error::check_memory("n", n, n, 32 * self.config.dim)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SAMPLE_STREAM);
        let x0 = self.config.source.sample(n, self.config.dim, &mut rng);
        let xt = self.generate(x0.clone(), dt)?;
        Ok((x0, xt))
    }

    /// Generated points against fresh target points (the held-out set for
    /// finite data); above 64 dimensions at most 1000 points a side.
    pub fn compare_with_target(&self, generated: &[f64]) -> TerminalLaw {
        let d = self.config.dim;
        let cap = if d > 64 { 1000 } else { usize::MAX };
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ COMPARE_STREAM);
        let finite = self.target.is_finite();
        let target = if finite {
            self.target.test().values.clone()
        } else {
            self.target.sample(generated.len() / d, &mut rng)
        };
        let n = (generated.len() / d).min(target.len() / d).min(cap);
        let (x, y) = (&generated[..n * d], &target[..n * d]);
        let bw = &crate::metrics::MMD_BANDWIDTHS;
        // The noise floor: RMS over three pairs of independent target samples.
        let (noise_floor_energy, noise_floor_mmd2) = if finite {
            (f64::NAN, f64::NAN)
        } else {
            let pairs: Vec<(f64, f64)> = (0..3)
                .map(|_| {
                    let (a, b) = (
                        self.target.sample(n, &mut rng),
                        self.target.sample(n, &mut rng),
                    );
                    (
                        crate::metrics::energy_distance(&a, &b, d),
                        crate::metrics::mmd2(&a, &b, d, bw),
                    )
                })
                .collect();
            use crate::metrics::rms;
            (
                rms(pairs.iter().map(|p| p.0)),
                rms(pairs.iter().map(|p| p.1)),
            )
        };
        TerminalLaw {
            samples: n,
            energy_distance: crate::metrics::energy_distance(x, y, d),
            mmd2: crate::metrics::mmd2(x, y, d, bw),
            noise_floor_energy,
            noise_floor_mmd2,
        }
    }

    /// Trains until `config.iterations`, writing `history.csv`, checkpoints,
    /// `samples.npy` and `summary.json` into `out`.
    pub fn run(&mut self, out: &Path, observer: &mut dyn TrainObserver) -> Result<RunSummary> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let started = Instant::now();
        let wall = |s: &Self| s.elapsed_before + started.elapsed().as_secs_f64();
        let first_iteration = self.iteration;
        let mut status = Status::Completed;
        let mut last_checkpoint = (self.iteration > 0).then_some(self.iteration);
        if self.history.is_empty() {
            let r = self.evaluate(0.0);
            self.history.push(r);
        }
        while self.iteration < self.config.iterations {
            let (critic_loss, potential_loss) = self.iterate();
            let it = self.iteration;
            let mut watched = vec![
                ("critic loss", critic_loss, f64::INFINITY),
                ("generator loss", potential_loss, f64::INFINITY),
            ];
            let evaluate =
                it.is_multiple_of(self.config.eval_every) || it == self.config.iterations;
            if evaluate {
                let r = self.evaluate(wall(self));
                watched.extend(r.watched(self.config.blowup));
                self.history.push(r);
                write_history(&out.join("history.csv"), &self.history)?;
            }
            if let Some((quantity, value, _)) = watched
                .into_iter()
                .find(|(_, v, bound)| !v.is_finite() || v.abs() > *bound)
            {
                status = Status::Diverged {
                    iteration: it,
                    quantity: quantity.into(),
                    value,
                };
                observer.observe(&TrainState {
                    iteration: it,
                    latest: self.history.last(),
                });
                break;
            }
            observer.observe(&TrainState {
                iteration: it,
                latest: if evaluate { self.history.last() } else { None },
            });
            if it.is_multiple_of(self.config.checkpoint_every) || it == self.config.iterations {
                Checkpoint::capture(self, wall(self)).save(&out.join(checkpoint::FILE))?;
                last_checkpoint = Some(it);
            }
        }
        write_history(&out.join("history.csv"), &self.history)?;
        let wall_seconds = wall(self);
        let done = self.iteration - first_iteration;
        let (samples, terminal_law, judge) = if status == Status::Completed {
            let (_, xt) =
                self.sample(self.config.final_samples, self.config.seed, self.config.dt)?;
            let path = out.join("samples.npy");
            write_samples(&path, &xt, self.config.dim)?;
            let judge = self.judge().map(|j| j.assess(&xt));
            (Some(path), Some(self.compare_with_target(&xt)), judge)
        } else {
            (None, None, None)
        };
        let summary = RunSummary {
            config: self.config.clone(),
            status,
            iterations_done: self.iteration,
            wall_seconds,
            iterations_per_second: done as f64 / started.elapsed().as_secs_f64().max(1e-9),
            last_checkpoint,
            final_diagnostics: self.history.last().cloned(),
            samples,
            terminal_law,
            judge,
            exact: exact_optimum(&self.config),
        };
        let value = serde_json::to_value(&summary).expect("serialisable");
        crate::io::write_json(&out.join("summary.json"), &value)?;
        Ok(summary)
    }
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// The settings.
    pub config: TrainConfig,
    /// Completed or diverged.
    pub status: Status,
    /// Generator iterations done in total.
    pub iterations_done: usize,
    /// Wall time of the whole run.
    pub wall_seconds: f64,
    /// Generator iterations per second in this session.
    pub iterations_per_second: f64,
    /// Iteration of the last complete checkpoint.
    pub last_checkpoint: Option<usize>,
    /// The last diagnostics.
    pub final_diagnostics: Option<Record>,
    /// Generated samples (`n x dim`, f64).
    pub samples: Option<PathBuf>,
    /// Generated samples against the target.
    pub terminal_law: Option<TerminalLaw>,
    /// The digit judge on the generated images (labelled image data).
    #[serde(default)]
    pub judge: Option<JudgeReport>,
    /// The closed-form optimum where one exists (`dirac`, `subspace`, `shift`).
    pub exact: Option<ExactOptimum>,
}

/// Kinetic energy and objective of the exact solution (math.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExactOptimum {
    /// `alpha/(2T) E|y*(x0) - x0|^2`.
    pub kinetic: f64,
    /// `J = kinetic + D_f^L(rho_T || Q)`.
    pub objective: f64,
}

/// The closed form of a run's problem, when the W1+W2 problem has one:
/// case A (`dirac`, radial in all d coordinates), case B (`subspace`, radial in
/// the d - 2 orthogonal ones), case C (`shift`, KL only).
pub fn exact_optimum(config: &TrainConfig) -> Option<ExactOptimum> {
    use crate::exact::{DiracCase, ShiftCase};
    let lipschitz = config
        .lipschitz
        .filter(|_| config.variant == Variant::W1w2)?;
    let radial = |dim: usize| {
        let case = DiracCase {
            dim,
            alpha: config.alpha,
            horizon: config.horizon,
            lipschitz,
        };
        ExactOptimum {
            kinetic: case.kinetic(),
            objective: case.objective(),
        }
    };
    match config.data.as_str() {
        "dirac" => Some(radial(config.dim)),
        "subspace" if config.dim > 2 => Some(radial(config.dim - 2)),
        "shift" if config.divergence == FDivergence::Kl => {
            let case = ShiftCase {
                sigma: 1.0,
                source_mean: [0.0, 0.0],
                target_mean: [crate::neural::target::SHIFT_DISTANCE, 0.0],
                alpha: config.alpha,
                horizon: config.horizon,
                lipschitz,
            };
            Some(ExactOptimum {
                kinetic: case.kinetic(),
                objective: case.objective(),
            })
        }
        _ => None,
    }
}

/// Generated samples against target samples, with the noise floor of two
/// target samples of the same size (samplers only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerminalLaw {
    /// Points on each side.
    pub samples: usize,
    /// Energy distance, generated against target.
    pub energy_distance: f64,
    /// Unbiased MMD^2 (bandwidths 0.1, 0.3, 1.0), generated against target.
    pub mmd2: f64,
    /// RMS energy distance of three pairs of independent target samples (NaN for finite data).
    pub noise_floor_energy: f64,
    /// RMS MMD^2 of the same pairs (NaN for finite data).
    pub noise_floor_mmd2: f64,
}

/// The gradients of a tracked copy's parameters, in the order of `master`
/// (zero for parameters the loss does not depend on, such as U's output bias).
fn gradients<N: ScalarNetwork>(
    tracked: &N,
    master: &N,
    grads: &burn::tensor::Gradients,
) -> Vec<Tensor<2>> {
    tracked
        .parameters()
        .iter()
        .zip(master.parameters())
        .map(|(p, m)| p.grad(grads).unwrap_or_else(|| m.zeros_like()))
        .collect()
}

/// Fresh U (input `[x, t]`) and phi of the configured model, drawn from `rng`.
fn networks<R: Rng + ?Sized>(
    config: &TrainConfig,
    image_side: Option<usize>,
    rng: &mut R,
    compute: &Compute,
) -> (Network, Network) {
    let (device, dtype, d) = (&compute.device, compute.dtype, config.dim);
    match &config.model {
        Model::Mlp => (
            Network::Mlp(Mlp::glorot(
                &layer_sizes(d + 1, &config.potential_widths),
                Activation::Tanh,
                rng,
                device,
                dtype,
            )),
            Network::Mlp(Mlp::glorot(
                &layer_sizes(d, &config.critic_widths),
                Activation::Relu,
                rng,
                device,
                dtype,
            )),
        ),
        Model::Cnn { channels, kernel } => {
            let side = image_side.expect("Model::check admits image data only");
            let mut build = |widths: &[usize], time_input: bool| {
                Network::Cnn(Cnn::glorot(
                    side, channels, *kernel, widths, time_input, rng, device, dtype,
                ))
            };
            let potential = build(&config.potential_widths, true);
            (potential, build(&config.critic_widths, false))
        }
    }
}

/// Writes points as an `n x dim` f64 `.npy` file.
pub fn write_samples(path: &Path, values: &[f64], dim: usize) -> Result<()> {
    let array = ndarray::Array2::from_shape_vec((values.len() / dim, dim), values.to_vec())
        .expect("whole rows");
    crate::io::write_npy(path, &array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_default_to_the_paper_settings() {
        let c = TrainConfig::paper("mnist", 784);
        assert_eq!((c.alpha, c.lipschitz, c.gp_weight), (0.05, Some(1.0), 0.1));
        assert_eq!((c.horizon, c.dt, c.iterations), (5.0, 1.0, 5000));
        assert_eq!(c.source.to_string(), "uniform:0,0.5");
        assert_eq!(c.model, Model::paper_cnn(28));
        let rates = (
            c.potential_learning_rate,
            c.critic_learning_rate,
            c.lr_decay,
        );
        assert_eq!(rates, (5e-4, 1e-4, 1.0));
        assert_eq!(TrainConfig::paper("pinwheel", 2).lr_decay, 1.0);
    }

    #[test]
    fn the_mean_kinetic_energy_starts_at_iteration_100() {
        let record = |iteration: usize, kinetic: f64| {
            Record::from_csv_row(&format!("{iteration},0,0,{kinetic},0,0,0,0,0,0,0,0,0"))
                .expect("a well-formed row")
        };
        let history = [
            record(0, 9.0),
            record(50, 9.0),
            record(100, 1.0),
            record(200, 3.0),
        ];
        assert_eq!(mean_kinetic(&history), 2.0);
        assert!(mean_kinetic(&history[..2]).is_nan());
    }
}
