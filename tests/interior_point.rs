//! The dual method where the W1 proximal binds: the primal-dual
//! interior-point ascent certifies its gap, its iterations hardly grow with
//! the grid, and it is second order in h on smooth targets (2-D against the
//! closed form, 1-D against Richardson extrapolation).

use proxflow::cases;
use proxflow::divergence::FDivergence;
use proxflow::grid::Grid;
use proxflow::mfg::InitialGuess;
use proxflow::mfg::{DualAlgorithm, DualOptions, DualSolver, Silent, Solution, Solver};
use proxflow::problem::{Component, Distribution, Problem};
use proxflow::verify::random_potential;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn solve(problem: &Problem, grid: &Grid, algorithm: DualAlgorithm, tolerance: f64) -> Solution {
    DualSolver::new(DualOptions {
        algorithm,
        tolerance,
        ..Default::default()
    })
    .solve(problem, grid, &mut Silent)
    .unwrap()
}

fn solve_case(name: &str, cells: usize) -> Solution {
    let case = cases::builtin(name).unwrap();
    let grid = case.grid(cells).unwrap();
    solve(&case.problem, &grid, DualAlgorithm::Auto, 1e-5)
}

#[test]
fn every_built_in_2d_case_closes_its_gap_at_64() {
    for name in [
        "shift-2d",
        "shift-near-2d",
        "pinwheel-2d",
        "dirac-2d",
        "line-2d",
    ] {
        let sol = solve_case(name, 64);
        let d = &sol.diagnostics;
        assert!(d.converged, "{name}: {:?}", d.stop_reason);
        let relative = d.duality_gap / d.objective.abs();
        if cases::builtin(name).unwrap().problem.target.is_singular(2) {
            // the ladder: a negative gap, within the bias it states
            assert!(
                d.duality_gap.abs() <= d.lower_bound_bias,
                "{name}: gap {} beyond the stated bias {}",
                d.duality_gap,
                d.lower_bound_bias
            );
        } else {
            assert!(
                (0.0..=1e-4).contains(&relative) && d.lower_bound_bias == 0.0,
                "{name}: relative gap {relative}, bias {}",
                d.lower_bound_bias
            );
        }
    }
}

#[test]
fn interior_point_is_second_order_on_shift_2d() {
    let case = cases::builtin("shift-2d").unwrap();
    let exact = case.exact.as_ref().unwrap().objective();
    let error = |cells: usize| {
        let sol = solve_case("shift-2d", cells);
        assert!(sol.diagnostics.duality_gap >= 0.0);
        (sol.diagnostics.objective - exact).abs() / exact
    };
    let (coarse, fine) = (error(64), error(128));
    let order = (coarse / fine).log2();
    assert!(fine < 5e-4, "relative error {fine} at 128^2");
    assert!(order >= 1.7, "order {order} ({coarse} -> {fine})");
}

#[test]
fn interior_point_iterations_hardly_grow_with_the_grid() {
    let its = |cells: usize| {
        let sol = solve_case("shift-2d", cells);
        let d = &sol.diagnostics;
        assert!(d.converged);
        let finest = d.levels.last().map(|l| l.iterations).unwrap();
        (d.iterations, finest)
    };
    let ((coarse, _), (fine, finest)) = (its(32), its(128));
    assert!(
        fine as f64 <= 1.5 * coarse as f64,
        "{coarse} iterations at 32^2, {fine} at 128^2"
    );
    assert!(finest <= 20, "{finest} iterations on the finest level");
}

/// N(0, 1) -> 0.3 N(-1.5, 0.5^2) + 0.7 N(2.5, 0.7^2) on [-8, 8], L = 0.3:
/// the W1 leg carries most of the terminal cost.
fn mixture_1d() -> Problem {
    let gaussian = |mean: f64, std: f64| Distribution::Gaussian {
        mean: vec![mean],
        std: Some(std),
        cov: None,
    };
    Problem {
        dim: 1,
        source: Distribution::standard_normal(1),
        target: Distribution::Mixture {
            components: vec![
                Component {
                    weight: 0.3,
                    distribution: gaussian(-1.5, 0.5),
                },
                Component {
                    weight: 0.7,
                    distribution: gaussian(2.5, 0.7),
                },
            ],
        },
        horizon: 1.0,
        alpha: 0.5,
        lipschitz: Some(0.3),
        divergence: FDivergence::Kl,
    }
}

#[test]
fn binding_l_is_second_order_on_a_1d_mixture() {
    let problem = mixture_1d();
    let value = |cells: usize| {
        let grid = Grid::on_box(&[-8.0], &[8.0], cells).unwrap();
        let sol = solve(&problem, &grid, DualAlgorithm::Auto, 1e-9);
        let d = &sol.diagnostics;
        assert!(d.converged, "{cells}: {:?}", d.stop_reason);
        assert!(d.terminal_cost > 0.2, "L must bind: {}", d.terminal_cost);
        d.objective
    };
    let (j1, j2, j3) = (value(768), value(1536), value(3072));
    // Richardson on the two finer grids, assuming second order
    let reference = j3 - (j2 - j3) / 3.0;
    let order = ((j1 - reference) / (j2 - reference)).abs().log2();
    assert!(
        order >= 1.7,
        "order {order}: J {j1} / {j2} / {j3}, reference {reference}"
    );
    // the differences themselves fall at second order
    let ratio = (j1 - j2) / (j2 - j3);
    assert!((3.2..5.0).contains(&ratio), "difference ratio {ratio}");
}

#[test]
fn interior_point_needs_a_finite_l() {
    let case = cases::builtin("shift-near-2d").unwrap();
    let mut problem = case.problem.clone();
    problem.lipschitz = None;
    let grid = case.grid(32).unwrap();
    let err = DualSolver::new(DualOptions {
        algorithm: DualAlgorithm::InteriorPoint,
        ..Default::default()
    })
    .solve(&problem, &grid, &mut Silent)
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("interior-point") && err.contains("finite L"),
        "{err}"
    );
}

#[test]
fn interior_point_alone_agrees_with_auto_on_pinwheel() {
    let case = cases::builtin("pinwheel-2d").unwrap();
    let grid = case.grid(48).unwrap();
    let auto = solve(&case.problem, &grid, DualAlgorithm::Auto, 1e-6);
    let interior = solve(&case.problem, &grid, DualAlgorithm::InteriorPoint, 1e-6);
    let (a, b) = (&auto.diagnostics, &interior.diagnostics);
    assert!(a.converged && b.converged);
    assert!(b.duality_gap >= 0.0 && b.duality_gap <= 1e-4 * b.objective);
    assert_eq!(b.lower_bound_bias, 0.0);
    // the P1 constraint and the Lipschitz bound between nodes differ by O(h^2) here
    let difference = (a.objective - b.objective).abs() / a.objective;
    assert!(difference < 1e-3, "J {} vs {}", a.objective, b.objective);
}

#[test]
fn a_spent_budget_keeps_the_interior_points_certified_answer() {
    // from this random start at 64 Newton needs 128 iterations: with a cap of
    // 100 it stops short, the interior point gets no iterations and the
    // ladder none either; the answer must be the interior point's first plan (a
    // ladder run without iterations once returned J = 4.18 against 0.0436)
    let case = cases::builtin("pinwheel-2d").unwrap();
    let grid = case.grid(64).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let guess = InitialGuess {
        potential: Some(random_potential(&grid, 1.0, &mut rng)),
    };
    let capped = |algorithm, max_iterations| {
        DualSolver::new(DualOptions {
            algorithm,
            max_iterations,
            ..Default::default()
        })
        .solve_from(&case.problem, &grid, &guess, &mut Silent)
        .unwrap()
        .diagnostics
    };
    let auto = capped(DualAlgorithm::Auto, 100);
    let interior = capped(DualAlgorithm::InteriorPoint, 1);
    assert!(!auto.converged && auto.iterations == 100);
    assert!(
        (auto.objective - interior.objective).abs() <= 1e-12 * interior.objective
            && (auto.dual_value - interior.dual_value).abs() <= 1e-12,
        "auto J {} dual {}, interior point J {} dual {}",
        auto.objective,
        auto.dual_value,
        interior.objective,
        interior.dual_value
    );
    let full = solve(&case.problem, &grid, DualAlgorithm::Auto, 1e-5).diagnostics;
    assert!(auto.dual_value <= full.objective && full.objective <= auto.objective);
}
