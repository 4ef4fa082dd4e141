use proxflow::divergence::*;
use proxflow::grid::Grid;
use proxflow::problem::*;
use std::time::Instant;
fn gauss(m: f64) -> Distribution { Distribution::Gaussian { mean: vec![m, 0.0], std: Some(1.0), cov: None } }
fn main() {
    for &(mp, mq, exact) in &[(2.0, 5.0, 2.5), (4.0/3.0, 2.0, 2.0/9.0)] {
        for &n in &[64usize, 128] {
            let grid = Grid::on_box(&[-6.0, -6.0], &[11.0, 6.0], n).unwrap();
            let p = Problem { dim: 2, source: gauss(mp), target: gauss(mq), horizon: 1.0, alpha: 0.5, lipschitz: Some(1.0), divergence: FDivergence::Kl };
            let (rho, q) = p.masses(&grid).unwrap();
            for ratio in [None, Some(1e3), Some(1e5)] {
                for iters in [1000usize, 5000] {
                    let t = Instant::now();
                    let opts = PdhgOptions { max_iterations: iters, tolerance: 1e-9, step_ratio: ratio, ..Default::default() };
                    let (rep, _) = lipschitz_divergence(&grid, FDivergence::Kl, Some(1.0), &rho, &q, &opts);
                    println!("mp {mp:.2} n {n} ratio {ratio:?} it {iters}: value {:.5} exact {exact:.5} res {:.1e} viol {:.1e} {:.2}s", rep.value, rep.residual, rep.lipschitz_violation, t.elapsed().as_secs_f64());
                }
            }
        }
    }
}
