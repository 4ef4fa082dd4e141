//! The Eulerian solver (finite-difference HJ + finite-volume continuity,
//! fictitious play) against the exact-characteristics solver and the closed
//! forms. Nothing in the Eulerian path assumes straight trajectories.

use proxflow::cases;
use proxflow::grid::{blurred_l1_distance, l1_distance};
use proxflow::mfg::eulerian::{Sweep, sweep};
use proxflow::mfg::{
    DualOptions, DualSolver, EulerianOptions, EulerianSolver, ParticleOptions, ParticleSolver,
    Silent, Solution, Solver,
};

fn dual(name: &str, cells: usize) -> Solution {
    let case = cases::builtin(name).unwrap();
    let grid = case.grid(cells).unwrap();
    let options = DualOptions {
        max_iterations: 300,
        ..Default::default()
    };
    DualSolver::new(options)
        .solve(&case.problem, &grid, &mut Silent)
        .unwrap()
}

/// One FD/FV sweep through the dual solver's terminal condition.
fn sweep_through_dual(name: &str, cells: usize) -> (Solution, Sweep) {
    let case = cases::builtin(name).unwrap();
    let d = dual(name, cells);
    let s = sweep(
        &d.grid,
        &d.rho0,
        &d.phi,
        &case.problem,
        &EulerianOptions::default(),
    );
    (d, s)
}

/// With the dual solver's terminal condition phi*, one backward FD sweep and
/// one forward FV sweep must land on the dual solver's terminal density and
/// kinetic energy, and get closer under refinement.
#[test]
fn pde_sweep_through_the_exact_terminal_condition_reproduces_the_flow() {
    let mut distances = Vec::new();
    for cells in [64, 128] {
        let (d, s) = sweep_through_dual("shift-near-2d", cells);
        let ke = d.diagnostics.kinetic_energy;
        assert!(
            (s.kinetic - ke).abs() < 1e-3 * ke,
            "{cells}: KE {} vs {ke}",
            s.kinetic
        );
        assert!((s.terminal().sum() - 1.0).abs() < 1e-12);
        assert!(s.terminal().iter().all(|m| *m >= 0.0));
        assert!(s.max_speed <= 1.05 * d.diagnostics.speed_bound);
        distances.push(l1_distance(s.terminal(), &d.rho_terminal));
    }
    eprintln!("shift-near-2d: L1(rho_T) FD/FV vs dual at 64, 128: {distances:?}");
    assert!(distances[0] < 3e-2, "{distances:?}");
    assert!(distances[1] < 0.6 * distances[0], "{distances:?}");
}

/// The far regime (the W1 branch: every agent at the speed bound).
#[test]
fn pde_sweep_agrees_in_the_far_regime() {
    let (d, s) = sweep_through_dual("shift-2d", 64);
    let dist = l1_distance(s.terminal(), &d.rho_terminal);
    eprintln!(
        "shift-2d @64: L1 {dist:.3e}, KE {} vs {}",
        s.kinetic, d.diagnostics.kinetic_energy
    );
    assert!(dist < 6e-2, "{dist}");
    assert!((s.kinetic - 1.0).abs() < 2e-3, "KE {}", s.kinetic);
}

/// The full Eulerian solver, discriminator by PDHG and fictitious play, lands
/// on the closed form and on the dual solver's terminal density.
#[test]
fn fictitious_play_matches_the_dual_solver_and_the_closed_form() {
    let case = cases::builtin("shift-near-2d").unwrap();
    let grid = case.grid(64).unwrap();
    let e = EulerianSolver::default()
        .solve(&case.problem, &grid, &mut Silent)
        .unwrap();
    let d = dual("shift-near-2d", 64);
    let exact = case.exact.unwrap().objective();
    let de = &e.diagnostics;
    eprintln!(
        "eulerian @64: J {} (exact {exact}, dual {}), KE {}, D {}, rounds {}, {}, L1 {:.3e}, blurred {:.3e}",
        de.objective,
        d.diagnostics.objective,
        de.kinetic_energy,
        de.terminal_cost,
        de.iterations,
        de.stop_reason,
        l1_distance(&e.rho_terminal, &d.rho_terminal),
        blurred_l1_distance(&e.rho_terminal, &d.rho_terminal)
    );
    assert!((de.objective - exact).abs() < 1e-2 * exact);
    assert!((de.objective - d.diagnostics.objective).abs() < 1e-2 * exact);
    assert!(l1_distance(&e.rho_terminal, &d.rho_terminal) < 3e-2);
    assert!(de.mass_error < 1e-12);
    assert!(e.rho_terminal.iter().all(|m| *m >= 0.0));
    // U is stored in time: the tracer's value_at interpolates it
    let u = e.value_at(0.5);
    assert_eq!(u.dim(), grid.shape());
    assert!(u.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_options_are_refused_with_the_field_named() {
    let case = cases::builtin("shift-near-2d").unwrap();
    let grid = case.grid(16).unwrap();
    let odd = EulerianSolver::new(EulerianOptions {
        slices: 7,
        ..Default::default()
    });
    let err = odd.solve(&case.problem, &grid, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("slices"), "{err}");
    let mut problem = case.problem.clone();
    problem.alpha = 0.0;
    let err = EulerianSolver::default()
        .solve(&problem, &grid, &mut Silent)
        .unwrap_err();
    assert!(err.to_string().contains("alpha"), "{err}");
}

/// The particle solver (agents relaxing to `y = x - (T/alpha) grad phi(y)`
/// with the PDHG discriminator) on the regular target of case C.
#[test]
fn particles_match_the_dual_solver_and_the_closed_form() {
    let case = cases::builtin("shift-near-2d").unwrap();
    let grid = case.grid(64).unwrap();
    let solver = ParticleSolver::new(ParticleOptions {
        max_iterations: 120,
        ..Default::default()
    });
    let p = solver.solve(&case.problem, &grid, &mut Silent).unwrap();
    let d = dual("shift-near-2d", 64);
    let exact = case.exact.unwrap().objective();
    let dp = &p.diagnostics;
    let dist = l1_distance(&p.rho_terminal, &d.rho_terminal);
    eprintln!(
        "particles @64: J {} (exact {exact}), KE {}, D {}, {}, L1 to dual {dist:.3e}",
        dp.objective, dp.kinetic_energy, dp.terminal_cost, dp.stop_reason
    );
    assert!((dp.objective - exact).abs() < 1e-2 * exact);
    assert!(dist < 3e-2, "{dist}");
    assert!(dp.max_speed <= 1.05 * dp.speed_bound);
    assert!(dp.mass_error < 1e-12);
}
