//! One training iteration of the neural flow (5 discriminator steps and one
//! generator step, batch 200, widths 64) on the CPU backend, in 2-D and 7-D,
//! and the parts that explain it: the flow of the 1000 discriminator points on
//! one and two threads, and the element-wise and matrix operations it is made of.
//! The reference implementation needs about 30 ms an iteration on this machine.
//! `cnn_iteration` times the paper's image model on the digits and MNIST.

use criterion::{Criterion, criterion_group, criterion_main};
use proxflow::neural::flow::{FlowSpec, host_values, terminal_points};
use proxflow::neural::mlp::{Activation, Mlp, layer_sizes, matrix, tanh};
use proxflow::neural::{BackendKind, Compute, TrainConfig, Trainer};
use rand::SeedableRng;

fn iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_iteration");
    group.sample_size(30);
    for (data, dim) in [("pinwheel", 2), ("pinwheel", 7)] {
        let mut config = TrainConfig::paper(data, dim);
        config.potential_widths = vec![64; 5];
        config.critic_widths = vec![64; 3];
        let mut trainer = Trainer::new(config).expect("valid config");
        group.bench_function(format!("{data}_{dim}d_width64"), |b| {
            b.iter(|| trainer.iterate())
        });
    }
    group.finish();
}

/// One iteration of the paper's image model (CNN, batch 200, 5 critic
/// steps) on the 8x8 digits and on MNIST: CPU on one and two threads, and
/// wgpu (digits only) where an adapter exists (said on stderr when there is none).
fn cnn_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("cnn_iteration");
    group.sample_size(10);
    let wgpu = proxflow::neural::compute::wgpu_adapter_available();
    if !wgpu {
        eprintln!("SKIPPED cnn_iteration on wgpu: no wgpu adapter on this machine");
    }
    for (data, dim) in [("digits", 64), ("mnist", 784)] {
        let mut runs = vec![(BackendKind::Cpu, 1), (BackendKind::Cpu, 2)];
        // lavapipe needs seconds an MNIST iteration: digits only there
        if wgpu && dim < 100 {
            runs.push((BackendKind::Wgpu, 1));
        }
        for (backend, threads) in runs {
            let mut config = TrainConfig::paper(data, dim);
            config.backend = backend;
            config.threads = threads;
            let mut trainer = Trainer::new(config).expect("valid config");
            let name = format!("{data}_{backend:?}_{threads}_threads").to_lowercase();
            group.bench_function(name, |b| b.iter(|| trainer.iterate()));
        }
    }
    group.finish();
}

fn parts(c: &mut Criterion) {
    let compute = Compute::cpu();
    let (device, dtype) = (&compute.device, compute.dtype);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let potential = Mlp::glorot(
        &layer_sizes(3, &[64; 5]),
        Activation::Tanh,
        &mut rng,
        device,
        dtype,
    );
    let spec = FlowSpec::new(0.5, 1.0, 0.2).expect("valid");
    let x0 = matrix(
        proxflow::neural::target::source_sample(1000, 2, &mut rng),
        1000,
        2,
        device,
        dtype,
    );
    let a = matrix(vec![0.3; 64_000], 1000, 64, device, dtype);
    let w = matrix(vec![0.01; 4096], 64, 64, device, dtype);
    let mut group = c.benchmark_group("train_parts");
    group.sample_size(30);
    for threads in [1, 2] {
        group.bench_function(format!("flow_1000_points_{threads}_threads"), |b| {
            b.iter(|| host_values(terminal_points(&potential, x0.clone(), &spec, threads).sum()))
        });
    }
    group.bench_function("burn_tanh_1000x64", |b| {
        b.iter(|| host_values(a.clone().tanh().sum()))
    });
    group.bench_function("tanh_via_exp_1000x64", |b| {
        b.iter(|| host_values(tanh(a.clone()).sum()))
    });
    group.bench_function("exp_1000x64", |b| {
        b.iter(|| host_values(a.clone().exp().sum()))
    });
    group.bench_function("product_1000x64", |b| {
        b.iter(|| host_values((a.clone() * a.clone()).sum()))
    });
    group.bench_function("matmul_1000x64x64", |b| {
        b.iter(|| host_values(a.clone().matmul(w.clone()).sum()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = iteration, cnn_iteration, parts
}
criterion_main!(benches);
