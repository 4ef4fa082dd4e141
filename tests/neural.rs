//! The neural flow: explicit input gradients and their parameter gradients
//! against central finite differences (f64, CPU backend), determinism and
//! resume on the CPU backend, and the wgpu backend against the CPU one.

use burn::tensor::Tensor;
use proxflow::divergence::FDivergence;
use proxflow::neural::cnn::Cnn;
use proxflow::neural::flow::{
    FlowSpec, divergence_estimate, flow, gradient_penalty, host_values, log_partition,
};
use proxflow::neural::mlp::{Activation, Mlp, layer_sizes, matrix};
use proxflow::neural::network::ScalarNetwork;
use proxflow::neural::{
    BackendKind, Compute, Model, Precision, Silent, TrainConfig, Trainer, Variant,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn cpu64() -> Compute {
    Compute::new(BackendKind::Cpu, Precision::F64).unwrap()
}

fn points(n: usize, d: usize, seed: u64, c: &Compute) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = proxflow::neural::target::source_sample(n, d, &mut rng);
    matrix(v, n, d, &c.device, c.dtype)
}

fn scalar(t: Tensor<1>) -> f64 {
    host_values(t)[0]
}

/// Checks d loss / d parameter from autodiff against central differences, entry by entry.
fn check_parameter_gradients<N: ScalarNetwork>(
    net: &N,
    loss: impl Fn(&N) -> Tensor<1>,
    what: &str,
) {
    let c = cpu64();
    let tracked = net.tracked();
    let grads = loss(&tracked).backward();
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    let mut scale: f64 = 0.0;
    for (k, p) in net.parameters().iter().enumerate() {
        let auto = tracked.parameters()[k]
            .grad(&grads)
            .map(host_values)
            .unwrap_or_else(|| vec![0.0; p.dims()[0] * p.dims()[1]]);
        let base = host_values(p.clone());
        let [rows, cols] = p.dims();
        for i in 0..base.len() {
            let shifted = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                let mut params = net.parameters().to_vec();
                params[k] = matrix(v, rows, cols, &c.device, c.dtype);
                scalar(loss(&net.with_parameters(params)))
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
            worst = worst.max((fd - auto[i]).abs());
            scale = scale.max(fd.abs());
        }
    }
    assert!(
        scale > 1e-3,
        "{what}: the gradient vanishes (scale {scale:e}); the check would be empty"
    );
    assert!(
        worst <= 1e-6 * scale,
        "{what}: autodiff and finite differences differ by {worst:e} (scale {scale:e})"
    );
    eprintln!(
        "{what}: max |autodiff - FD| = {worst:.2e}, relative {:.2e}",
        worst / scale
    );
}

#[test]
fn explicit_input_gradients_match_finite_differences() {
    let c = cpu64();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for activation in [Activation::Tanh, Activation::Relu] {
        let net = Mlp::glorot(
            &layer_sizes(3, &[7, 6, 5]),
            activation,
            &mut rng,
            &c.device,
            c.dtype,
        );
        let x = points(9, 3, 2, &c);
        let g = host_values(net.input_gradient(x.clone()));
        let base = host_values(x.clone());
        let h = 1e-6;
        for i in 0..base.len() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                host_values(net.forward(matrix(v, 9, 3, &c.device, c.dtype)))[i / 3]
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-7, "{activation:?}: {fd} vs {}", g[i]);
        }
    }
}

#[test]
fn kinetic_penalty_and_generator_gradients_match_finite_differences() {
    let c = cpu64();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let potential = Mlp::glorot(
        &layer_sizes(3, &[6, 5, 4]),
        Activation::Tanh,
        &mut rng,
        &c.device,
        c.dtype,
    );
    let critic = Mlp::glorot(
        &layer_sizes(2, &[6, 5]),
        Activation::Relu,
        &mut rng,
        &c.device,
        c.dtype,
    );
    let x = points(11, 3, 4, &c);
    check_parameter_gradients(
        &potential,
        |u| {
            u.input_gradient(x.clone())
                .narrow(1, 0, 2)
                .square()
                .sum_dim(1)
                .mean()
        },
        "mean |grad_x U|^2",
    );
    let z = points(13, 2, 5, &c).mul_scalar(2.0);
    // L small enough that the penalty is active at most points.
    check_parameter_gradients(
        &critic,
        |phi| gradient_penalty(phi, z.clone(), 0.3),
        "gradient penalty",
    );
    let spec = FlowSpec::new(0.5, 1.0, 0.25).unwrap();
    let x0 = points(12, 2, 6, &c);
    check_parameter_gradients(
        &potential,
        |u| {
            let (xt, kinetic) = flow(u, x0.clone(), &spec, |_, _, _| {});
            critic.forward(xt).mean() + kinetic
        },
        "generator loss mean phi(x_T) + alpha KE",
    );
    let y = points(10, 2, 7, &c);
    for f in [
        FDivergence::Kl,
        FDivergence::ReverseKl,
        FDivergence::Alpha(2.0),
    ] {
        check_parameter_gradients(
            &critic,
            |phi| divergence_estimate(f, phi.forward(x0.clone()), phi.forward(y.clone())),
            &format!("divergence estimate ({f})"),
        );
    }
}

/// Uniform points in `[0, 1]^cols`, as `n` image rows (with a time column when `cols` is odd).
fn images(n: usize, cols: usize, seed: u64, c: &Compute) -> Tensor<2> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = (0..n * cols).map(|_| rng.random::<f64>()).collect();
    matrix(v, n, cols, &c.device, c.dtype)
}

#[test]
fn cnn_input_gradients_match_finite_differences() {
    // 8x8 images, two stages (8 -> 4 -> 2 pixels a side): the transposed
    // convolutions, the pooling masks and the time column all enter.
    let c = cpu64();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (time_input, kernel, channels) in [(true, 5, [3, 2]), (false, 3, [2, 4])] {
        let net = Cnn::glorot(
            8,
            &channels,
            kernel,
            &[6, 5],
            time_input,
            &mut rng,
            &c.device,
            c.dtype,
        );
        let cols = 64 + usize::from(time_input);
        let n = 4;
        let x = images(n, cols, 12, &c);
        let (y, g) = net.forward_with_gradient(x.clone());
        assert_eq!(host_values(y), host_values(net.forward(x.clone())));
        let g = host_values(g);
        let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "the input gradient vanishes ({scale:e})");
        let base = host_values(x);
        let h = 1e-6;
        let mut worst: f64 = 0.0;
        for i in 0..base.len() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                host_values(net.forward(matrix(v, n, cols, &c.device, c.dtype)))[i / cols]
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            worst = worst.max((fd - g[i]).abs());
        }
        eprintln!("cnn (time {time_input}): max |explicit - FD| = {worst:.2e}, scale {scale:.2e}");
        assert!(
            worst <= 1e-6 * scale,
            "time {time_input}: {worst:e} (scale {scale:e})"
        );
    }
}

#[test]
fn cnn_kinetic_and_penalty_parameter_gradients_match_finite_differences() {
    let c = cpu64();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let potential = Cnn::glorot(8, &[2, 2], 3, &[5, 4], true, &mut rng, &c.device, c.dtype);
    let critic = Cnn::glorot(8, &[2, 2], 5, &[5], false, &mut rng, &c.device, c.dtype);
    let x = images(5, 65, 14, &c);
    check_parameter_gradients(
        &potential,
        |u| {
            u.input_gradient(x.clone())
                .narrow(1, 0, 64)
                .square()
                .sum_dim(1)
                .mean()
        },
        "cnn: mean |grad_x U|^2",
    );
    let z = images(6, 64, 15, &c);
    check_parameter_gradients(
        &critic,
        |phi| gradient_penalty(phi, z.clone(), 0.05),
        "cnn: gradient penalty",
    );
}

#[test]
fn log_partitions_are_the_variational_forms() {
    // Lambda_f(phi; Q) = inf_nu nu + mean f*(phi - nu): compare with a brute-force scan over nu.
    let c = cpu64();
    let values = vec![0.3, -1.2, 0.8, 2.0, -0.4, 0.1];
    let phi = matrix(values.clone(), 6, 1, &c.device, c.dtype);
    for f in [
        FDivergence::Kl,
        FDivergence::ReverseKl,
        FDivergence::Alpha(3.0),
        FDivergence::ChiSquared,
        FDivergence::W1,
    ] {
        let lambda = scalar(log_partition(f, phi.clone()));
        let brute = (0..400_001)
            .map(|i| -10.0 + i as f64 * 5e-5)
            .map(|nu| nu + values.iter().map(|p| f.conj(p - nu)).sum::<f64>() / 6.0)
            .fold(f64::INFINITY, f64::min);
        assert!((lambda - brute).abs() < 1e-6, "{f}: {lambda} vs {brute}");
    }
    // Reverse KL really is reverse KL: with P and Q on three atoms, q = (0.6, 0.2, 0.2) and
    // p = (0.2, 0.4, 0.4), the optimal discriminator phi* = f'(p/q) = -q/p gives
    // E_P phi* - Lambda(phi*; Q) = D_{-log}(P||Q) = KL(Q||P) = 0.3819, not KL(P||Q) = 0.3348.
    let (q, p) = ([0.6, 0.2, 0.2], [0.2, 0.4, 0.4]);
    let phi_at = |atom: usize| -q[atom] / p[atom];
    let on = |atoms: &[usize]| {
        let v: Vec<f64> = atoms.iter().map(|&a| phi_at(a)).collect();
        matrix(v, atoms.len(), 1, &c.device, c.dtype)
    };
    let estimate = scalar(divergence_estimate(
        FDivergence::ReverseKl,
        on(&[0, 1, 1, 2, 2]),
        on(&[0, 0, 0, 1, 2]),
    ));
    let kl =
        |a: &[f64; 3], b: &[f64; 3]| -> f64 { (0..3).map(|i| a[i] * (a[i] / b[i]).ln()).sum() };
    assert!(
        (estimate - kl(&q, &p)).abs() < 1e-9,
        "{estimate} vs KL(Q||P) {}",
        kl(&q, &p)
    );
    assert!((estimate - kl(&p, &q)).abs() > 0.04);
}

fn tiny(data: &str, dim: usize, iterations: usize) -> TrainConfig {
    let mut c = TrainConfig::paper(data, dim);
    c.iterations = iterations;
    c.potential_widths = vec![16, 16];
    c.critic_widths = vec![16, 16];
    c.batch = 64;
    c.eval_every = 10;
    c.eval_samples = 256;
    c.test_size = 256;
    c.checkpoint_every = 10;
    c.final_samples = 300;
    c
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("proxflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A run of `total` iterations, the same run again, and a run stopped at
/// `total - 10` and resumed from its checkpoint end bit for bit alike.
fn check_reproducible_and_resumable(
    name: &str,
    config: impl Fn(usize) -> TrainConfig,
    total: usize,
) {
    let full_dir = temp_dir(&format!("{name}-full"));
    let mut full = Trainer::new(config(total)).unwrap();
    let summary = full.run(&full_dir, &mut Silent).unwrap();
    assert_eq!(summary.status, proxflow::neural::Status::Completed);
    assert_eq!(full.history.len(), total / 10 + 1);
    // Same seed, same numbers.
    let again_dir = temp_dir(&format!("{name}-again"));
    let mut again = Trainer::new(config(total)).unwrap();
    again.run(&again_dir, &mut Silent).unwrap();
    assert_eq!(
        host_values(full.potential.parameters()[0].clone()),
        host_values(again.potential.parameters()[0].clone())
    );
    // Interrupted 10 before the end, resumed to the end.
    let part_dir = temp_dir(&format!("{name}-part"));
    let mut part = Trainer::new(config(total - 10)).unwrap();
    part.run(&part_dir, &mut Silent).unwrap();
    let mut resumed = Trainer::resume(&part_dir, Some(total)).unwrap();
    assert_eq!(resumed.iteration, total - 10);
    resumed.run(&part_dir, &mut Silent).unwrap();
    for (a, b) in full
        .potential
        .parameters()
        .iter()
        .chain(full.critic.parameters())
        .zip(
            resumed
                .potential
                .parameters()
                .iter()
                .chain(resumed.critic.parameters()),
        )
    {
        assert_eq!(host_values(a.clone()), host_values(b.clone()));
    }
    assert_eq!(
        full.averaged_potential.is_some(),
        resumed.averaged_potential.is_some()
    );
    if let Some(average) = &full.averaged_potential {
        // the average lags the trained parameters
        assert_ne!(
            host_values(average.parameters()[0].clone()),
            host_values(full.potential.parameters()[0].clone())
        );
    }
    for (a, b) in full
        .sampling_potential()
        .parameters()
        .iter()
        .zip(resumed.sampling_potential().parameters())
    {
        assert_eq!(host_values(a.clone()), host_values(b.clone()));
    }
    for (a, b) in full.history.iter().zip(&resumed.history) {
        assert_eq!(
            (a.iteration, a.divergence, a.kinetic),
            (b.iteration, b.divergence, b.kinetic)
        );
        assert_eq!(a.frechet.to_bits(), b.frechet.to_bits());
    }
    let read = |d: &std::path::Path| std::fs::read(d.join("samples.npy")).unwrap();
    assert_eq!(read(&full_dir), read(&part_dir));
    for d in [full_dir, part_dir, again_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn training_is_reproducible_and_resumes_exactly() {
    // with a running average of the potential, which the checkpoint keeps
    let config = |n| TrainConfig {
        potential_average: 0.9,
        ..tiny("pinwheel", 2, n)
    };
    check_reproducible_and_resumable("mlp", config, 30);
}

#[test]
fn a_cnn_run_on_digits_resumes_bit_for_bit() {
    let config = |n| {
        let mut c = tiny("digits", 64, n);
        c.model = Model::Cnn {
            channels: vec![3, 3],
            kernel: 5,
        };
        c.eval_samples = 64;
        c.final_samples = 64;
        c
    };
    assert!(matches!(
        TrainConfig::paper("digits", 64).model,
        Model::Cnn { .. }
    ));
    check_reproducible_and_resumable("cnn", config, 20);
    // the judge reports on the generated digits
    let dir = temp_dir("cnn-judged");
    let summary = Trainer::new(config(10))
        .unwrap()
        .run(&dir, &mut Silent)
        .unwrap();
    let judge = summary.judge.expect("digits are labelled");
    assert!(judge.heldout_accuracy >= 0.9 && judge.samples == 64);
    let _ = std::fs::remove_dir_all(dir);
}

/// A checkpoint holds the running average only where the run keeps one; a
/// trainer built the other way refuses it instead of misreading tensors.
#[test]
fn a_checkpoint_restores_only_into_a_trainer_with_the_same_average() {
    use proxflow::neural::checkpoint::Checkpoint;
    let config = |average| TrainConfig {
        potential_average: average,
        ..tiny("moons", 2, 10)
    };
    for (saved, restored, message) in [(0.9, 0.0, "more tensors"), (0.0, 0.9, "fewer tensors")] {
        let dir = temp_dir(&format!("average-{saved}"));
        Trainer::new(config(saved))
            .unwrap()
            .run(&dir, &mut Silent)
            .unwrap();
        let checkpoint = Checkpoint::load(&dir.join("checkpoint.bin")).unwrap();
        let mut other = Trainer::new(config(restored)).unwrap();
        let err = checkpoint.restore(&mut other).unwrap_err().to_string();
        assert!(err.contains(message), "{err}");
        let mut same = Trainer::new(config(saved)).unwrap();
        checkpoint.restore(&mut same).unwrap();
        assert_eq!(same.iteration, 10);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_damaged_checkpoint_is_refused_and_a_partial_write_is_ignored() {
    let dir = temp_dir("damaged");
    let mut t = Trainer::new(tiny("moons", 2, 10)).unwrap();
    t.run(&dir, &mut Silent).unwrap();
    // A write cut short by a kill leaves only the temporary file behind.
    std::fs::write(dir.join("checkpoint.bin.tmp"), b"PROXFLOW-CKPT-1\npartial").unwrap();
    assert_eq!(Trainer::resume(&dir, Some(20)).unwrap().iteration, 10);
    let path = dir.join("checkpoint.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let e = Trainer::resume(&dir, None)
        .err()
        .expect("damaged")
        .to_string();
    assert!(e.contains("checksum"), "{e}");
    std::fs::write(&path, &bytes[..100]).unwrap();
    assert!(Trainer::resume(&dir, None).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn nan_stops_training_cleanly_as_diverged() {
    let dir = temp_dir("nan");
    let mut c = tiny("8gaussians", 2, 40);
    c.final_samples = 300;
    // A learning rate this large sends the critic to infinity within a few steps.
    c.critic_learning_rate = 1e12;
    c.variant = Variant::None;
    c.checkpoint_every = 1;
    let mut t = Trainer::new(c).unwrap();
    let s = t.run(&dir, &mut Silent).unwrap();
    let proxflow::neural::Status::Diverged { iteration, .. } = s.status else {
        panic!("expected divergence, got {:?}", s.status);
    };
    assert!(iteration < 40);
    assert_eq!(s.last_checkpoint, Some(iteration - 1).filter(|i| *i > 0));
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(text.contains("\"diverged\""), "{text}");
    if iteration > 1 {
        let ck = Trainer::resume(&dir, None).unwrap();
        assert_eq!(ck.iteration, iteration - 1);
        assert!(
            host_values(ck.critic.parameters()[0].clone())
                .iter()
                .all(|v| v.is_finite())
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn wgpu_matches_the_cpu_backend() {
    if !proxflow::neural::compute::wgpu_adapter_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no wgpu adapter: install mesa-vulkan-drivers (lavapipe)"
        );
        eprintln!("SKIPPED wgpu_matches_the_cpu_backend: no wgpu adapter on this machine");
        return;
    }
    let mut cpu_cfg = tiny("pinwheel", 2, 3);
    cpu_cfg.eval_every = 3;
    let mut gpu_cfg = cpu_cfg.clone();
    gpu_cfg.backend = BackendKind::Wgpu;
    let mut cpu = Trainer::new(cpu_cfg).unwrap();
    let mut gpu = Trainer::new(gpu_cfg).unwrap();
    let (a, b) = (cpu.evaluate(0.0), gpu.evaluate(0.0));
    for (x, y) in [
        (a.divergence, b.divergence),
        (a.kinetic, b.kinetic),
        (a.hjb_residual, b.hjb_residual),
    ] {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
            "before training: cpu {x} vs wgpu {y}"
        );
    }
    for _ in 0..3 {
        cpu.iterate();
        gpu.iterate();
    }
    let (a, b) = (cpu.evaluate(0.0), gpu.evaluate(0.0));
    for (x, y) in [(a.divergence, b.divergence), (a.kinetic, b.kinetic)] {
        assert!(
            (x - y).abs() <= 1e-3 * (1.0 + x.abs()),
            "after 3 iterations: cpu {x} vs wgpu {y}"
        );
    }
    eprintln!("wgpu ran on: {:?}", gpu.compute.device);
}

#[test]
fn a_run_without_lipschitz_bound_saves_and_resumes() {
    // no L (W2 only) must survive JSON, which has no infinity: it is "inf"
    let dir = temp_dir("inf");
    let mut c = tiny("circles", 2, 10);
    c.variant = Variant::W2;
    c.lipschitz = None;
    Trainer::new(c).unwrap().run(&dir, &mut Silent).unwrap();
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(text.contains("\"lipschitz\": \"inf\""), "{text}");
    let config = proxflow::neural::train::read_run_config(&dir).unwrap();
    assert_eq!(config.lipschitz, None);
    let resumed = Trainer::resume(&dir, Some(12)).unwrap();
    assert_eq!((resumed.iteration, resumed.config.lipschitz), (10, None));
    let _ = std::fs::remove_dir_all(dir);
}
