//! Throughput of the exact Hopf–Lax transform (grid cells per second), and
//! its parallel speed-up measured in the same run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use proxflow::grid::Grid;
use proxflow::hj::{HopfLaxWorkspace, hopf_lax, hopf_lax_into};
use proxflow::par::Parallelism;

fn transform(c: &mut Criterion) {
    let mut group = c.benchmark_group("hopf_lax");
    group.sample_size(10);
    for cells in [256usize, 512, 1024, 2048] {
        let grid = Grid::on_box(&[-6.0, -6.0], &[6.0, 6.0], cells).unwrap();
        let g = grid.evaluate(|x| (x[0] * x[0] + x[1] * x[1]).sqrt() + 0.3 * (2.0 * x[0]).sin());
        let mut ws = HopfLaxWorkspace::new(&grid);
        let mut out = hopf_lax(&grid, &g, 0.25, &mut ws, Parallelism::Rayon);
        group.throughput(Throughput::Elements(grid.len() as u64));
        for par in [Parallelism::Sequential, Parallelism::Rayon] {
            group.bench_with_input(
                BenchmarkId::new(format!("{par:?}"), cells),
                &cells,
                |b, _| b.iter(|| hopf_lax_into(&grid, &g, 0.25, &mut ws, par, &mut out)),
            );
        }
    }
    group.finish();
}

// the HTML plots would need system fonts (plotters here draws with an
// embedded font only), so criterion reports numbers alone
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = transform
}
criterion_main!(benches);
