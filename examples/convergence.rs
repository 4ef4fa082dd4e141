//! Error table of the `dual` solver against the closed forms under grid
//! refinement, with observed orders.
//!
//! ```sh
//! cargo run --release --example convergence -- dirac-1d,gauss-kl-1d 256,512,1024,2048
//! cargo run --release --example convergence -- shift-near-2d 32,64,128
//! cargo run --release --example convergence -- shift-2d 256 600        # iteration cap
//! cargo run --release --example convergence -- shift-near-2d 64 2000 2e-5  # and gap tolerance
//! cargo run --release --example convergence -- pinwheel-2d 128 2000 1e-5 interior-point  # and algorithm
//! ```

use proxflow::cases;
use proxflow::mfg::{DualSolver, Silent, Solver};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let names = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("dirac-1d,gauss-kl-1d");
    let grids: Vec<usize> = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("128,256,512")
        .split(',')
        .map(|s| s.parse().expect("grid sizes are integers"))
        .collect();
    println!(
        "| case | grid | J | exact | rel. error | order | dual | gap | iterations | time (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for name in names.split(',') {
        let case = cases::builtin(name).expect("a built-in case");
        let exact = case.exact.map(|e| e.objective()).unwrap_or(f64::NAN);
        let mut last: Option<(f64, f64)> = None;
        for &cells in &grids {
            let grid = case.grid(cells).expect("grid");
            let mut options = proxflow::mfg::DualOptions::default();
            if let Some(n) = args.get(3) {
                options.max_iterations = n.parse().expect("iterations");
            }
            if let Some(t) = args.get(4) {
                options.tolerance = t.parse().expect("tolerance");
            }
            if let Some(a) = args.get(5) {
                use proxflow::mfg::DualAlgorithm as A;
                options.algorithm = match a.as_str() {
                    "auto" => A::Auto,
                    "newton" => A::Newton,
                    "interior-point" => A::InteriorPoint,
                    "ladder" => A::Ladder,
                    _ => panic!("algorithm: auto, newton, interior-point or ladder"),
                };
            }
            let sol = DualSolver::new(options)
                .solve(&case.problem, &grid, &mut Silent)
                .expect("solve");
            let d = &sol.diagnostics;
            let err = (d.objective - exact).abs() / exact;
            let order = last
                .map(|(e0, h0)| format!("{:.2}", (e0 / err).ln() / (h0 / grid.h).ln()))
                .unwrap_or_else(|| "-".into());
            last = Some((err, grid.h));
            println!(
                "| {name} | {cells} | {:.6} | {exact:.6} | {err:.2e} | {order} | {:.6} | {:.1e} | {} | {:.1} |",
                d.objective, d.dual_value, d.duality_gap, d.iterations, d.wall_time_s
            );
        }
    }
}
