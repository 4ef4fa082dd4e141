//! Wall time of full `dual` solves, each to the default relative gap 1e-5:
//! `dirac-2d` (the ladder, exact in a few iterations) at 128^2 and 256^2; the
//! semi-discrete Newton ascent with its coarse-to-fine start on
//! `shift-near-2d` at 128^2, 256^2 and 512^2 and `gauss-kl-1d` at 2,048 and
//! 8,192 cells; the interior-point ascent where L binds on `shift-2d` at
//! 128^2 and 256^2; the guarded Newton on the `pinwheel-2d` histogram at
//! 128^2 and 256^2 (docs/grid-solvers.md).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use proxflow::cases;
use proxflow::mfg::{DualSolver, Silent, Solver};

fn solve(c: &mut Criterion) {
    let runs: [(&str, &[usize]); 5] = [
        ("dirac-2d", &[128, 256]),
        ("shift-near-2d", &[128, 256, 512]),
        ("gauss-kl-1d", &[2048, 8192]),
        ("shift-2d", &[128, 256]),
        ("pinwheel-2d", &[128, 256]),
    ];
    for (name, grids) in runs {
        let case = cases::builtin(name).unwrap();
        let mut group = c.benchmark_group(format!("solve_{}", name.replace('-', "_")));
        group.sample_size(10);
        for &cells in grids {
            let grid = case.grid(cells).unwrap();
            group.bench_with_input(BenchmarkId::from_parameter(cells), &cells, |b, _| {
                b.iter(|| {
                    let sol = DualSolver::default()
                        .solve(&case.problem, &grid, &mut Silent)
                        .unwrap();
                    assert!(sol.diagnostics.converged, "{name} at {cells}");
                    sol
                })
            });
        }
        group.finish();
    }
}

// the HTML plots would need system fonts (plotters here draws with an
// embedded font only), so criterion reports numbers alone
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = solve
}
criterion_main!(benches);
