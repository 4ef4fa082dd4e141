//! The dual method's semi-discrete Newton ascent: a certified gap with no
//! discretisation bias, iterations that do not grow with the grid, second
//! order in h, and a finite Lipschitz bound that does not bind changing
//! nothing.

use proxflow::cases;
use proxflow::divergence::FDivergence;
use proxflow::grid::Grid;
use proxflow::mfg::{DualAlgorithm, DualOptions, DualSolver, Silent, Solution, Solver};
use proxflow::problem::{Distribution, Problem};

fn newton(tolerance: f64) -> DualSolver {
    DualSolver::new(DualOptions {
        algorithm: DualAlgorithm::Newton,
        tolerance,
        ..Default::default()
    })
}

fn solve_case(name: &str, cells: usize, tolerance: f64) -> Solution {
    let case = cases::builtin(name).unwrap();
    let grid = case.grid(cells).unwrap();
    newton(tolerance)
        .solve(&case.problem, &grid, &mut Silent)
        .unwrap()
}

/// N(0, 1) -> N(2, 1) in 1-D with Lipschitz bound `lipschitz`: the
/// unconstrained discriminator has slope 2/3.
fn shift_1d(lipschitz: Option<f64>) -> Problem {
    Problem {
        dim: 1,
        source: Distribution::standard_normal(1),
        target: Distribution::Gaussian {
            mean: vec![2.0],
            std: Some(1.0),
            cov: None,
        },
        horizon: 1.0,
        alpha: 0.5,
        lipschitz,
        divergence: FDivergence::Kl,
    }
}

#[test]
fn newton_certifies_the_gap_where_l_does_not_bind() {
    for (name, cells) in [("gauss-kl-1d", 2048), ("shift-near-2d", 64)] {
        let sol = solve_case(name, cells, 1e-5);
        let d = &sol.diagnostics;
        let scale = d.objective.abs().max(1.0);
        assert!(d.converged, "{name}: {:?}", d.stop_reason);
        // both bounds are bounds: the gap is never negative
        assert!(
            d.duality_gap >= -1e-12 * scale && d.duality_gap <= 1e-5 * scale,
            "{name}: gap {}",
            d.duality_gap
        );
        assert_eq!(d.lower_bound_bias, 0.0, "{name}");
        assert!(!d.levels.is_empty(), "{name}: no levels reported");
        let sum = d.kinetic_energy + d.quantisation + d.terminal_cost;
        assert!(
            (sum - d.objective).abs() < 1e-12,
            "{name}: {sum} vs {}",
            d.objective
        );
        assert!((sol.rho_terminal.sum() - 1.0).abs() < 1e-12);
        let exact = case_exact(name);
        assert!(
            ((d.objective - exact) / exact).abs() < 5e-3,
            "{name}: J {} vs {exact}",
            d.objective
        );
    }
}

fn case_exact(name: &str) -> f64 {
    cases::builtin(name).unwrap().exact.unwrap().objective()
}

#[test]
fn newton_iterations_do_not_grow_with_the_grid() {
    let coarse = solve_case("shift-near-2d", 32, 1e-5).diagnostics;
    let fine = solve_case("shift-near-2d", 128, 1e-5).diagnostics;
    assert!(coarse.converged && fine.converged);
    assert!(
        (fine.iterations as f64) <= 1.5 * coarse.iterations as f64,
        "iterations {} at 32 vs {} at 128",
        coarse.iterations,
        fine.iterations
    );
    // the finest level starts from the prolonged coarse solution
    let last = fine.levels.last().unwrap();
    assert_eq!(last.nodes, [130, 111]);
    assert!(last.iterations <= 3, "{:?}", fine.levels);
}

#[test]
fn newton_is_second_order_in_h() {
    let exact = case_exact("gauss-kl-1d");
    let errors: Vec<f64> = [512, 1024, 2048]
        .iter()
        .map(|&n| (solve_case("gauss-kl-1d", n, 4e-9).diagnostics.objective - exact).abs())
        .collect();
    for w in errors.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!(order >= 1.8, "errors {errors:?}");
    }
}

#[test]
fn a_lipschitz_bound_that_does_not_bind_changes_nothing() {
    // 1-D at 1,024 cells
    let grid = Grid::on_box(&[-6.0], &[8.0], 1024).unwrap();
    let solve = |p: &Problem| newton(1e-7).solve(p, &grid, &mut Silent).unwrap();
    let free = solve(&shift_1d(None)).diagnostics;
    let bounded = solve(&shift_1d(Some(1.0))).diagnostics;
    assert!(free.converged && bounded.converged);
    assert!(
        ((bounded.objective - free.objective) / free.objective).abs() < 1e-5,
        "{} vs {}",
        bounded.objective,
        free.objective
    );
    // where L binds (below the slope 2/3) the Newton ascent alone cannot
    // close the gap and says so
    let err = newton(1e-7)
        .solve(&shift_1d(Some(0.4)), &grid, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("binds"), "{err}");
    // 2-D at 128^2: shift-near-2d (L = 1) against the same problem with L = inf
    let case = cases::builtin("shift-near-2d").unwrap();
    let grid = case.grid(128).unwrap();
    let mut free_problem = case.problem.clone();
    free_problem.lipschitz = None;
    let free = newton(1e-7)
        .solve(&free_problem, &grid, &mut Silent)
        .unwrap()
        .diagnostics;
    let bounded = newton(1e-7)
        .solve(&case.problem, &grid, &mut Silent)
        .unwrap()
        .diagnostics;
    assert!(
        ((bounded.objective - free.objective) / free.objective).abs() < 1e-5,
        "{} vs {}",
        bounded.objective,
        free.objective
    );
}

#[test]
fn a_histogram_target_takes_flat_newton_steps_within_the_speed_limit() {
    // pinwheel-2d: every cell of the histogram's support holds source mass,
    // so the guarded Newton runs on the grid itself; its plan is that of
    // the L-Lipschitz envelope, whose agents keep to L / alpha (up to h)
    let case = cases::builtin("pinwheel-2d").unwrap();
    let mut iterations = Vec::new();
    for cells in [64, 128] {
        let grid = case.grid(cells).unwrap();
        let sol = DualSolver::default()
            .solve(&case.problem, &grid, &mut Silent)
            .unwrap();
        let d = &sol.diagnostics;
        assert!(d.converged, "{cells}: {:?}", d.stop_reason);
        assert!(
            d.duality_gap >= 0.0 && d.duality_gap <= 1e-5 * d.objective,
            "{cells}: gap {} of {}",
            d.duality_gap,
            d.objective
        );
        let slack = 2.0 * grid.h / case.problem.horizon;
        assert!(
            d.max_speed <= d.speed_bound + slack,
            "{cells}: speed {} against {}",
            d.max_speed,
            d.speed_bound
        );
        assert_eq!(d.levels.len(), 1, "{:?}", d.levels);
        iterations.push(d.iterations);
    }
    assert!(
        iterations[1] as f64 <= 1.5 * iterations[0] as f64,
        "{iterations:?}"
    );
}
