//! Wall time of a full `dirac-2d` solve at 128^2 and 256^2 (the issue's
//! target: under 60 s at 256^2, goal 10 s).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use proxflow::cases;
use proxflow::mfg::{DualSolver, Silent, Solver};

fn solve(c: &mut Criterion) {
    let case = cases::builtin("dirac-2d").unwrap();
    let mut group = c.benchmark_group("solve_dirac_2d");
    group.sample_size(10);
    for cells in [128usize, 256] {
        let grid = case.grid(cells).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(cells), &cells, |b, _| {
            b.iter(|| {
                DualSolver::default()
                    .solve(&case.problem, &grid, &mut Silent)
                    .unwrap()
            })
        });
    }
    group.finish();
}

// the HTML plots would need system fonts (plotters here draws with an
// embedded font only), so criterion reports numbers alone
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = solve
}
criterion_main!(benches);
