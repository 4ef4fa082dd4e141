use proxflow::{cases, mfg::*};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let names: Vec<&str> = args[1].split(',').collect();
    let grids: Vec<usize> = args[2].split(',').map(|s| s.parse().unwrap()).collect();
    for name in names {
        let case = cases::builtin(name).unwrap();
        for &n in &grids {
            let grid = case.grid(n).unwrap();
            let t = Instant::now();
            let mut o = DualOptions::default();
            if let Ok(v) = std::env::var("THETA") { o.local_smoothing = v.parse().unwrap(); }
            if let Ok(v) = std::env::var("MAXIT") { o.max_iterations = v.parse().unwrap(); }
            if let Ok(v) = std::env::var("STIFF") { o.stiffness = v.parse().unwrap(); }
            if let Ok(v) = std::env::var("EFLOOR") { o.edge_floor = v.parse().unwrap(); }
            if let Ok(v) = std::env::var("SMOOTH") { o.smoothing = v.parse().unwrap(); }
            let sol = DualSolver::new(o).solve(&case.problem, &grid, &mut Printer)
                .unwrap();
            let d = &sol.diagnostics;
            let ex = case.exact.map(|e| e.objective()).unwrap_or(f64::NAN);
            println!(
                "{name} n={n}: J={:.6} exact={:.6} rel={:.2e} ke={:.4} term={:.4} dual={:.6} gap={:.1e} it={} conv={} vmax={:.3} hj={:.2e} {:.2}s",
                d.objective,
                ex,
                (d.objective - ex) / ex,
                d.kinetic_energy,
                d.terminal_cost,
                d.dual_value,
                d.duality_gap,
                d.iterations,
                d.converged,
                d.max_speed,
                d.hj_residual,
                t.elapsed().as_secs_f64()
            );
        }
    }
}
pub struct Printer;
impl Observer for Printer {
    fn observe(&mut self, s: &IterationState) {
        if std::env::var("TRACE").is_ok() {
            eprintln!(
                "it {} obj {:.6} dual {:.6} eps {:.1e}",
                s.iteration, s.objective, s.dual, s.smoothing
            );
        }
    }
}
