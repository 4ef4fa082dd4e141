//! The discriminator of `D_f^L(N(0, I) || delta_0) = L E|x|` at growing
//! grids, PDHG in the H1 (G-prox) and Euclidean metrics: wall time of a
//! fixed iteration budget, with the error of the L-Lipschitz envelope's value
//! printed once per grid. The same H1 budget reaching the same error on every
//! grid is the grid-independent step.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use proxflow::divergence::{FDivergence, PdhgMetric, PdhgOptions, PdhgState};
use proxflow::divergence::{dual_value, solve_lipschitz};
use proxflow::grid::Grid;
use proxflow::hj::{HopfLaxWorkspace, lipschitz_envelope};
use proxflow::par::Parallelism;
use std::time::Instant;

/// Runs `iterations` PDHG steps from zero; returns the error of the
/// enveloped discriminator's value against `L E|x|`.
fn dirac_error(cells: usize, metric: PdhgMetric, iterations: usize) -> f64 {
    let grid = Grid::on_box(&[-6.0, -6.0], &[6.0, 6.0], cells).unwrap();
    let mut p = grid.evaluate(|x| (-(x[0] * x[0] + x[1] * x[1]) / 2.0).exp());
    let total = p.sum();
    p /= total;
    let mut q = grid.zeros();
    q[[cells / 2, cells / 2]] = 1.0;
    let opts = PdhgOptions {
        metric,
        max_iterations: iterations,
        tolerance: 0.0,
        ..Default::default()
    };
    let mut state = PdhgState::new(&grid);
    solve_lipschitz(&grid, FDivergence::Kl, 1.0, &p, &q, &opts, &mut state);
    let mut ws = HopfLaxWorkspace::new(&grid);
    let phi = lipschitz_envelope(&grid, &state.phi, 1.0, 1.05, &mut ws, Parallelism::Rayon);
    dual_value(FDivergence::Kl, &p, &q, &phi) - (std::f64::consts::PI / 2.0).sqrt()
}

fn discriminator(c: &mut Criterion) {
    let runs = [
        (PdhgMetric::H1, 300, &[64usize, 128, 256, 512][..]),
        (PdhgMetric::Euclidean, 300, &[64, 128][..]),
        (PdhgMetric::Euclidean, 20_000, &[64, 128][..]),
    ];
    for (metric, iterations, grids) in runs {
        let mut group = c.benchmark_group(format!("discriminator_dirac_{metric:?}_{iterations}"));
        group.sample_size(10);
        for &cells in grids {
            let start = Instant::now();
            let error = dirac_error(cells, metric, iterations);
            eprintln!(
                "discriminator {metric:?} {cells}^2, {iterations} iterations: \
                 D - L E|x| = {error:.1e} ({:.1} s)",
                start.elapsed().as_secs_f64()
            );
            // one timed solve is enough at 512^2 (it takes seconds)
            if cells <= 256 {
                group.bench_with_input(BenchmarkId::from_parameter(cells), &cells, |b, _| {
                    b.iter(|| dirac_error(cells, metric, iterations))
                });
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = discriminator
}
criterion_main!(benches);
