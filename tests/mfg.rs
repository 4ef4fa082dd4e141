//! The coupled solver against the closed forms of math.md section 3.

use proxflow::cases;
use proxflow::hj::{HopfLaxWorkspace, hopf_lax};
use proxflow::mfg::{DualOptions, DualSolver, Silent, Solution, Solver};
use proxflow::par::Parallelism;

fn solve(name: &str, cells: usize) -> (Solution, f64) {
    let case = cases::builtin(name).unwrap();
    let grid = case.grid(cells).unwrap();
    // a cap that keeps the suite short; the defaults allow more iterations
    let options = DualOptions {
        max_iterations: 300,
        ..Default::default()
    };
    let sol = DualSolver::new(options)
        .solve(&case.problem, &grid, &mut Silent)
        .unwrap();
    (sol, case.exact.unwrap().objective())
}

fn rel(sol: &Solution, exact: f64) -> f64 {
    (sol.diagnostics.objective - exact).abs() / exact
}

#[test]
fn singular_targets_match_their_closed_forms() {
    for (name, cells, tol) in [
        ("dirac-1d", 2048, 2e-3),
        ("dirac-2d", 128, 1e-2),
        ("line-2d", 128, 1e-2),
    ] {
        let (sol, exact) = solve(name, cells);
        let d = &sol.diagnostics;
        assert!(
            rel(&sol, exact) < tol,
            "{name}: J = {} vs {exact}",
            d.objective
        );
        // the grid-scale blur of the best response costs O(h^2) along a singular support
        assert!(
            d.duality_gap.abs() < tol * exact,
            "{name}: gap {}",
            d.duality_gap
        );
        // kinetic energy against case A
        let ke = cases::builtin(name).unwrap().exact.unwrap().kinetic();
        assert!(
            (d.kinetic_energy - ke).abs() < tol * ke,
            "{name}: KE {} vs {ke}",
            d.kinetic_energy
        );
        // speed limit |v| <= L/alpha and mass conservation
        assert!(
            d.max_speed <= d.speed_bound * (1.0 + 1e-9),
            "{name}: speed {}",
            d.max_speed
        );
        assert!(d.mass_error < 1e-12);
    }
}

#[test]
fn value_at_time_zero_is_the_hopf_lax_transform_of_the_discriminator() {
    // U(., 0) = psi^k (Huber c-transform) must equal HL_T(psi^L) = HL_T(phi*)
    let (sol, _) = solve("dirac-2d", 64);
    let mut ws = HopfLaxWorkspace::new(&sol.grid);
    let hl = hopf_lax(
        &sol.grid,
        &sol.phi,
        sol.alpha / (2.0 * sol.horizon),
        &mut ws,
        Parallelism::Rayon,
    )
    .value;
    let mut worst: f64 = 0.0;
    for ((i, j), m) in sol.rho0.indexed_iter() {
        if *m > 1e-8 {
            worst = worst.max((hl[[i, j]] - sol.value0[[i, j]]).abs());
        }
    }
    // they differ by the node restriction of the intermediate point (at most
    // alpha/(2T) h^2) and the scale ladder (at most (ln 1.1)^2/8 of the cost)
    let bound = sol.alpha / (2.0 * sol.horizon) * sol.grid.h * sol.grid.h + 1.2e-3 * 6.0;
    assert!(worst < bound, "max |HL_T(phi) - U0| = {worst} > {bound}");
}

#[test]
fn plain_kl_gaussian_case_is_solved_and_bracketed() {
    let (sol, exact) = solve("gauss-kl-1d", 256);
    let d = &sol.diagnostics;
    assert!(rel(&sol, exact) < 1e-2, "J = {} vs {exact}", d.objective);
    assert!(
        (d.dual_value - exact).abs() < 2e-3 * exact,
        "dual {} vs {exact}",
        d.dual_value
    );
}

#[test]
fn one_dimensional_cases_meet_the_fine_grid_tolerance() {
    for name in ["dirac-1d", "gauss-kl-1d"] {
        let (sol, exact) = solve(name, 2048);
        assert!(
            rel(&sol, exact) < 2e-3,
            "{name}: J = {} vs {exact}",
            sol.diagnostics.objective
        );
    }
}

#[test]
fn gaussian_translations_converge_under_refinement() {
    for name in ["shift-near-2d", "shift-2d"] {
        let (coarse, exact) = solve(name, 32);
        let (fine, _) = solve(name, 64);
        let (ec, ef) = (rel(&coarse, exact), rel(&fine, exact));
        assert!(
            ef < 1e-2 && ef < ec,
            "{name}: errors {ec} (32) -> {ef} (64)"
        );
        // the semi-discrete problem (shift-near-2d) sits above the continuum
        // by at most its quantisation (pixels sent to nodes)
        let d = &fine.diagnostics;
        assert!(
            d.dual_value <= exact * (1.0 + 2e-3) + d.quantisation,
            "{name}: dual {} above {exact} + {}",
            d.dual_value,
            d.quantisation
        );
    }
}

#[test]
fn gaussian_translation_dual_value_is_accurate() {
    let (sol, exact) = solve("shift-near-2d", 64);
    let d = &sol.diagnostics;
    // dual <= J*_h <= primal, J*_h within the quantisation of J*
    assert!(d.quantisation > 0.0 && d.quantisation < 5e-3 * exact);
    assert!(
        (d.dual_value - exact).abs() < 2e-3 * exact + d.quantisation,
        "dual {} vs {exact} (quantisation {})",
        d.dual_value,
        d.quantisation
    );
    assert!(
        d.objective > exact * (1.0 - 2e-3),
        "primal {} below {exact}",
        d.objective
    );
    assert!(d.max_speed <= d.speed_bound * (1.0 + 1e-9));
}

#[test]
fn hj_residual_falls_under_refinement_and_snapshots_are_consistent() {
    let (coarse, _) = solve("dirac-2d", 64);
    let (fine, _) = solve("dirac-2d", 128);
    let (rc, rf) = (coarse.diagnostics.hj_residual, fine.diagnostics.hj_residual);
    assert!(rf < 0.7 * rc, "HJ residual {rc} (64) -> {rf} (128)");
    // rho at any t: unit mass, and the stored snapshot at T/2 is the same field
    let mid = fine.density_at(0.5 * fine.horizon);
    assert!((mid.sum() - 1.0).abs() < 1e-12);
    let snap = fine
        .snapshots
        .iter()
        .find(|s| (s.t - 0.5 * fine.horizon).abs() < 1e-12)
        .expect("a snapshot at T/2");
    let diff: f64 = snap
        .rho
        .iter()
        .zip(mid.iter())
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(
        diff < 1e-12,
        "density_at(T/2) differs from the snapshot by {diff}"
    );
    // U at T is phi*, and U decreases backwards in time along the HJ equation
    let u_t = fine.value_at(fine.horizon);
    assert_eq!(u_t, fine.phi);
    let u0 = fine.value_at(0.0);
    assert!(
        u0.iter()
            .zip(fine.phi.iter())
            .all(|(a, b)| a <= &(b + 1e-12))
    );
}

#[test]
fn traced_characteristics_are_straight_and_respect_the_speed_limit() {
    use proxflow::mfg::trace::{quantile, trace};
    let mut medians = Vec::new();
    for cells in [64, 128] {
        let (sol, _) = solve("dirac-2d", cells);
        let grid = &sol.grid;
        let starts: Vec<[f64; 2]> = (0..grid.n[0])
            .step_by(grid.n[0] / 16)
            .flat_map(|i| (0..grid.n[1]).step_by(grid.n[1] / 16).map(move |j| (i, j)))
            .filter(|&(i, j)| {
                sol.rho0[[i, j]] > 1e-4 * sol.rho0.iter().fold(0.0f64, |a, b| a.max(*b))
            })
            .map(|(i, j)| grid.node(i, j))
            .collect();
        let paths = trace(&sol, &starts, 20);
        let median = quantile(paths.iter().map(|p| p.straightness), 0.5);
        let p99 = quantile(paths.iter().map(|p| p.straightness), 0.99);
        let bound = sol.diagnostics.speed_bound;
        let over = paths.iter().filter(|p| p.max_speed > bound * 1.05).count();
        eprintln!(
            "{cells}: {} agents, straightness median {median:.2e} p99 {p99:.2e}, over the speed bound {over}",
            paths.len()
        );
        assert!(
            median < 1e-2 && p99 < 0.1,
            "{cells}: median {median} p99 {p99}"
        );
        assert!(
            over * 20 <= paths.len(),
            "{cells}: {over} of {} agents above L/alpha",
            paths.len()
        );
        // the traced end points match the solver's straight-line map
        medians.push(median);
    }
    assert!(
        medians[1] <= medians[0] * 1.5 + 1e-4,
        "straightness grows under refinement: {medians:?}"
    );
}

#[test]
fn random_starting_potentials_reach_the_same_solution() {
    use proxflow::grid::l1_distance;
    use proxflow::mfg::InitialGuess;
    use rand::{Rng, SeedableRng};
    let case = cases::builtin("shift-near-2d").unwrap();
    let grid = case.grid(32).unwrap();
    let solutions: Vec<Solution> = (0..5u64)
        .map(|seed| {
            // a random smooth potential: a few plane waves
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let waves: Vec<[f64; 4]> = (0..4)
                .map(|_| {
                    [
                        rng.random_range(-1.0..1.0),
                        rng.random_range(-1.0..1.0),
                        rng.random_range(0.0..6.3),
                        rng.random_range(0.1..0.3),
                    ]
                })
                .collect();
            let psi = grid.evaluate(|x| {
                waves
                    .iter()
                    .map(|w| w[3] * (w[0] * x[0] + w[1] * x[1] + w[2]).sin())
                    .sum()
            });
            let options = DualOptions {
                max_iterations: 300,
                ..Default::default()
            };
            let guess = InitialGuess {
                potential: Some(psi),
            };
            DualSolver::new(options)
                .solve_from(&case.problem, &grid, &guess, &mut Silent)
                .unwrap()
        })
        .collect();
    let mut worst: f64 = 0.0;
    for a in 0..solutions.len() {
        for b in 0..a {
            worst = worst.max(l1_distance(
                &solutions[a].rho_terminal,
                &solutions[b].rho_terminal,
            ));
        }
    }
    assert!(worst < 1e-3, "max pairwise L1 distance of rho_T: {worst}");
}
