//! `proxflow train` and `proxflow sample`: the neural flow from the command line.

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proxflow::divergence::FDivergence;
use proxflow::error::{Error, Result};
use proxflow::neural::network::{ModelFamily, square_side};
use proxflow::neural::target::{Source, Target};
use proxflow::neural::train::write_samples;
use proxflow::neural::{
    BackendKind, Precision, RunSummary, Status, TrainConfig, TrainObserver, TrainState, Trainer,
    Variant,
};
use std::path::PathBuf;

/// Flags of `proxflow train`. Unset values follow the paper (math.md section 4).
#[derive(Args)]
pub struct TrainArgs {
    /// Target: pinwheel, moons, swiss-roll, circles, 8gaussians, checkerboard,
    /// two-spirals, dirac, subspace, shift, digits, mnist, npy:PATH, idx:PATH.
    #[arg(long, required_unless_present = "resume")]
    data: Option<String>,
    /// Dimension (2-D sets are zero-padded; images and files fix their own).
    #[arg(long)]
    dim: Option<usize>,
    /// none | w1 | w2 | w1w2 [default: w1w2].
    #[arg(long)]
    variant: Option<Variant>,
    /// kl | reverse-kl | alpha:<a> | js | chi2 | w1 [default: kl].
    #[arg(long = "f")]
    divergence: Option<FDivergence>,
    /// Generator iterations (with --resume: the new total).
    #[arg(long)]
    iterations: Option<usize>,
    /// cpu | wgpu [default: cpu].
    #[arg(long)]
    backend: Option<BackendKind>,
    /// f32 | f64 (f64 on cpu only) [default: f32].
    #[arg(long)]
    precision: Option<Precision>,
    /// Seed of every random draw [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Kinetic weight (default 0.5 in 2-D, 0.1 above).
    #[arg(long)]
    alpha: Option<f64>,
    /// Lipschitz bound L of the gradient penalty (`inf` allowed without it).
    #[arg(long)]
    lipschitz: Option<f64>,
    /// Gradient-penalty weight (default 0.1 in 2-D, 0.01 above).
    #[arg(long)]
    gp_weight: Option<f64>,
    /// Horizon T.
    #[arg(long = "T")]
    horizon: Option<f64>,
    /// Euler step (must divide T).
    #[arg(long)]
    dt: Option<f64>,
    /// Network family of U and phi: mlp | cnn [default: cnn for images, mlp otherwise].
    #[arg(long)]
    model: Option<ModelFamily>,
    /// Output channels of each CNN convolution stage, comma separated [default: 8,8 on 28x28 MNIST, 8 on the 8x8 digits].
    #[arg(long, value_delimiter = ',')]
    channels: Option<Vec<usize>>,
    /// Side of the CNN's square kernels, odd [default: 7].
    #[arg(long)]
    kernel: Option<usize>,
    /// Source law: normal | uniform:LOW,HIGH [default: uniform:0,0.5 for images, normal otherwise].
    #[arg(long)]
    source: Option<Source>,
    /// Hidden widths of the potential (the CNN's dense head), comma separated.
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Hidden widths of the discriminator, comma separated.
    #[arg(long, value_delimiter = ',')]
    critic_widths: Option<Vec<usize>>,
    /// Minibatch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Discriminator steps per generator step.
    #[arg(long)]
    critic_steps: Option<usize>,
    /// Adam learning rate of the potential.
    #[arg(long)]
    lr_potential: Option<f64>,
    /// Adam learning rate of the discriminator.
    #[arg(long)]
    lr_critic: Option<f64>,
    /// Final fraction of both learning rates (exponential decay; 1 = constant).
    #[arg(long)]
    lr_decay: Option<f64>,
    /// Decay of the running average of the potential's parameters that evaluation and samples use, in [0, 1) [default: 0, off].
    #[arg(long)]
    average: Option<f64>,
    /// Worker threads of the flows (part of the reproducible configuration).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop as diverged when the divergence estimate or the kinetic energy exceeds this.
    #[arg(long)]
    blowup: Option<f64>,
    /// Diagnostics every N iterations.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Checkpoint every N iterations.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Output folder [default: out/train].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run saved in this folder (writes into it).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let data = self.data.clone().expect("clap requires --data");
        let dim = Target::load(&data, self.dim, 1, 0)?.dim;
        let mut c = TrainConfig::paper(&data, dim);
        set(&mut c.iterations, self.iterations);
        self.apply(&mut c)?;
        c.validate()?;
        Ok(c)
    }

    /// Sets every flag given (all but `--data`, `--dim` and `--iterations`).
    fn apply(&self, c: &mut TrainConfig) -> Result<()> {
        let side = square_side(c.dim);
        let family = self.model.unwrap_or(c.model.family());
        c.model = c
            .model
            .with(family, self.channels.clone(), self.kernel, side)?;
        set(&mut c.source, self.source);
        set(&mut c.variant, self.variant);
        set(&mut c.divergence, self.divergence);
        set(&mut c.backend, self.backend);
        set(&mut c.precision, self.precision);
        set(&mut c.seed, self.seed);
        set(&mut c.alpha, self.alpha);
        if let Some(l) = self.lipschitz {
            // `--lipschitz inf` switches the W1 proximal off
            c.lipschitz = (l != f64::INFINITY).then_some(l);
        }
        set(&mut c.gp_weight, self.gp_weight);
        set(&mut c.horizon, self.horizon);
        set(&mut c.dt, self.dt);
        set(&mut c.potential_widths, self.widths.clone());
        set(&mut c.critic_widths, self.critic_widths.clone());
        set(&mut c.batch, self.batch);
        set(&mut c.critic_steps, self.critic_steps);
        set(&mut c.potential_learning_rate, self.lr_potential);
        set(&mut c.critic_learning_rate, self.lr_critic);
        set(&mut c.threads, self.threads);
        set(&mut c.lr_decay, self.lr_decay);
        set(&mut c.potential_average, self.average);
        set(&mut c.blowup, self.blowup);
        set(&mut c.eval_every, self.eval_every);
        set(&mut c.checkpoint_every, self.checkpoint_every);
        Ok(())
    }

    /// With `--resume DIR`: every other flag must agree with the stored run
    /// (a differing one would be silently ignored), `--out` included.
    fn refuse_contradictions(&self, stored: &TrainConfig, dir: &std::path::Path) -> Result<()> {
        let mut wanted = stored.clone();
        self.apply(&mut wanted)?;
        // the checkpoint header serialises the same struct: this cannot fail
        let as_map = |c: &TrainConfig| match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(m)) => m,
            other => panic!("a TrainConfig serialises to a JSON object, not {other:?}"),
        };
        let (before, after) = (as_map(stored), as_map(&wanted));
        let mut differing: Vec<String> = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, _)| k.replace('_', "-"))
            .collect();
        if self.data.as_ref().is_some_and(|d| *d != stored.data) {
            differing.push("data".into());
        }
        if self.dim.is_some_and(|d| d != stored.dim) {
            differing.push("dim".into());
        }
        if self.out.as_ref().is_some_and(|o| o != dir) {
            differing.push("out".into());
        }
        if differing.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            "resume",
            dir.display(),
            &format!(
                "the stored run has other values for {}; resume with --iterations alone",
                differing.join(", ")
            ),
        ))
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// A progress bar with the live divergence and kinetic energy.
struct TrainProgress(ProgressBar);

impl TrainObserver for TrainProgress {
    fn observe(&mut self, state: &TrainState) {
        self.0.set_position(state.iteration as u64);
        if let Some(r) = state.latest {
            let frechet = if r.frechet.is_nan() {
                String::new()
            } else {
                format!("  Frechet {:.2}", r.frechet)
            };
            self.0.set_message(format!(
                "D {:.4}  KE {:.4}  HJB {:.2e}{frechet}",
                r.divergence, r.kinetic, r.hjb_residual
            ));
        }
    }
}

/// Trains with a progress bar (live divergence and kinetic energy) on stderr.
pub fn run_with_progress(
    trainer: &mut Trainer,
    out: &std::path::Path,
    quiet: bool,
) -> Result<RunSummary> {
    let draw = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(trainer.config.iterations as u64), draw);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(trainer.iteration as u64);
    let mut progress = TrainProgress(bar);
    let summary = trainer.run(out, &mut progress)?;
    progress.0.finish_and_clear();
    Ok(summary)
}

/// `proxflow train`.
pub fn train(args: TrainArgs) -> Result<()> {
    let (mut trainer, out) = match &args.resume {
        Some(dir) => {
            let t = Trainer::resume(dir, args.iterations)?;
            args.refuse_contradictions(&t.config, dir)?;
            println!("resuming {} at iteration {}", dir.display(), t.iteration);
            (t, dir.clone())
        }
        None => (
            Trainer::new(args.config()?)?,
            args.out.clone().unwrap_or_else(|| "out/train".into()),
        ),
    };
    let c = &trainer.config;
    println!(
        "proxflow train: {} in {}-D ({} model, source {}), variant {}, f = {}, alpha {}, L {}, {} iterations on {:?} ({:?})",
        c.data,
        c.dim,
        c.model.name(),
        c.source,
        c.variant.name(),
        c.divergence,
        c.alpha,
        c.lipschitz.map_or("inf".to_string(), |l| l.to_string()),
        c.iterations,
        c.backend,
        c.precision
    );
    let summary = run_with_progress(&mut trainer, &out, args.quiet)?;
    if let Some(r) = &summary.final_diagnostics {
        println!(
            "  iteration {}: divergence {:.5}, kinetic {:.5}, objective {:.5}, HJB residual {:.2e}, terminal residual {:.2e}, divergence(dt/2) {:.5}, max speed {:.3} (bound {:.3}){}",
            r.iteration,
            r.divergence,
            r.kinetic,
            r.objective,
            r.hjb_residual,
            r.terminal_residual,
            r.divergence_half_dt,
            r.max_speed,
            r.speed_bound,
            if r.orthogonal.is_nan() {
                String::new()
            } else {
                format!(
                    ", mean |orthogonal| {:.4}, in-plane shift {:.4}",
                    r.orthogonal, r.in_plane_shift
                )
            }
        );
    }
    if let Some(e) = &summary.exact {
        println!(
            "  exact optimum: kinetic {:.5}, objective {:.5}",
            e.kinetic, e.objective
        );
    }
    if let Some(t) = &summary.terminal_law {
        println!(
            "  terminal law ({} points a side): energy distance {:.3e} (noise floor {:.1e}), MMD^2 {:.3e} (noise floor {:.1e})",
            t.samples, t.energy_distance, t.noise_floor_energy, t.mmd2, t.noise_floor_mmd2
        );
    }
    if let Some(j) = &summary.judge {
        println!("  {}", j.caption());
    }
    println!(
        "  {:.1} s, {:.1} iterations/s",
        summary.wall_seconds, summary.iterations_per_second
    );
    let figures = proxflow::neural::figures::run_figures(&out)?;
    println!("  figures: {}", names(&figures));
    match &summary.status {
        Status::Completed => println!("  status: completed; wrote {}", out.display()),
        Status::Diverged {
            iteration,
            quantity,
            value,
        } => println!(
            "  status: diverged at iteration {iteration} ({quantity} = {value:e}); last good checkpoint: {}; wrote {}",
            summary
                .last_checkpoint
                .map(|i| format!("iteration {i}"))
                .unwrap_or_else(|| "none".into()),
            out.display()
        ),
    }
    Ok(())
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Flags of `proxflow plot`.
#[derive(Args)]
pub struct PlotArgs {
    /// Run folders written by `proxflow train`; with several, the training
    /// curves of all of them share one chart per quantity (written into the first).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
}

/// `proxflow plot`.
pub fn plot(args: PlotArgs) -> Result<()> {
    use proxflow::neural::train::{read_history, read_run_config};
    if let [dir] = &args.dirs[..] {
        let figures = proxflow::neural::figures::run_figures(dir)?;
        println!("wrote {} in {}", names(&figures), dir.display());
        return Ok(());
    }
    let mut runs = Vec::new();
    for dir in &args.dirs {
        let c = read_run_config(dir)?;
        let label = format!(
            "{} ({})",
            c.variant.name(),
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        runs.push((label, read_history(&dir.join("history.csv"))?));
    }
    let figures = proxflow::neural::figures::training_curves(&runs, &args.dirs[0])?;
    println!("wrote {} in {}", names(&figures), args.dirs[0].display());
    Ok(())
}

/// Flags of `proxflow sample`.
#[derive(Args)]
pub struct SampleArgs {
    /// A run folder written by `proxflow train`.
    #[arg(long = "from")]
    from: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 5000)]
    n: usize,
    /// Euler step (default: the run's).
    #[arg(long)]
    dt: Option<f64>,
    /// Seed of the source points.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (default: FROM/samples_n<N>_dt<DT>.npy).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `proxflow sample`.
pub fn sample(args: SampleArgs) -> Result<()> {
    if args.n == 0 {
        return Err(Error::invalid("n", 0, "must be at least 1"));
    }
    let trainer = Trainer::resume(&args.from, None)?;
    let dt = args.dt.unwrap_or(trainer.config.dt);
    let (_, xt) = trainer.sample(args.n, args.seed, dt)?;
    let out = args
        .out
        .unwrap_or_else(|| args.from.join(format!("samples_n{}_dt{}.npy", args.n, dt)));
    write_samples(&out, &xt, trainer.config.dim)?;
    println!(
        "wrote {} samples ({}-D, dt {dt}, {} steps) from iteration {} to {}",
        args.n,
        trainer.config.dim,
        (trainer.config.horizon / dt).round(),
        trainer.iteration,
        out.display()
    );
    Ok(())
}
