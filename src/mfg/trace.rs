//! Characteristics traced through a solution's value function:
//!
//! ```text
//! dx/dt = -grad U(x, t) / alpha,   x(0) = x0,
//! ```
//!
//! integrated with classical RK4, `grad U` by central differences and bilinear
//! interpolation of `U(., t) = Solution::value_at(t)` at the RK4 stage times.
//! Nothing assumes straight lines, so the paths test that claim of the theory:
//! straightness `length / |x_T - x0| - 1`, largest distance from the chord, and
//! speed against the bound `L / alpha`.

use super::Solution;

/// One traced agent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Path {
    /// Start.
    pub start: [f64; 2],
    /// End at t = T.
    pub end: [f64; 2],
    /// Arc length.
    pub length: f64,
    /// `length / |end - start| - 1` (NaN for agents that barely move).
    pub straightness: f64,
    /// Largest distance from the chord start-end.
    pub max_deviation: f64,
    /// Largest speed along the path.
    pub max_speed: f64,
    /// Positions at the step times `k T / steps`.
    #[serde(skip)]
    pub points: Vec<[f64; 2]>,
}

/// Traces the characteristics from `starts` with `steps` RK4 steps over [0, T].
pub fn trace(solution: &Solution, starts: &[[f64; 2]], steps: usize) -> Vec<Path> {
    let grid = &solution.grid;
    let steps = steps.max(1);
    let dt = solution.horizon / steps as f64;
    // grad U at the 2 steps + 1 stage times t = k dt / 2
    let fields: Vec<_> = (0..=2 * steps)
        .map(|k| grid.gradient(&solution.value_at(0.5 * k as f64 * dt)))
        .collect();
    let velocity = |x: [f64; 2], stage: usize| -> [f64; 2] {
        let g = &fields[stage];
        [
            -grid.interpolate(&g[0], x) / solution.alpha,
            -grid.interpolate(&g[1], x) / solution.alpha,
        ]
    };
    starts
        .iter()
        .map(|&start| {
            let mut x = start;
            let mut points = vec![x];
            let mut max_speed: f64 = 0.0;
            for k in 0..steps {
                let add = |a: [f64; 2], b: [f64; 2], s: f64| [a[0] + s * b[0], a[1] + s * b[1]];
                let k1 = velocity(x, 2 * k);
                let k2 = velocity(add(x, k1, 0.5 * dt), 2 * k + 1);
                let k3 = velocity(add(x, k2, 0.5 * dt), 2 * k + 1);
                let k4 = velocity(add(x, k3, dt), 2 * k + 2);
                for v in [k1, k2, k3, k4] {
                    max_speed = max_speed.max((v[0] * v[0] + v[1] * v[1]).sqrt());
                }
                x = [
                    x[0] + dt / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
                    x[1] + dt / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
                ];
                points.push(x);
            }
            summarise(points, max_speed, grid.h)
        })
        .collect()
}

fn summarise(points: Vec<[f64; 2]>, max_speed: f64, h: f64) -> Path {
    let (start, end) = (points[0], *points.last().expect("at least one point"));
    let dist = |a: [f64; 2], b: [f64; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let length: f64 = points.windows(2).map(|w| dist(w[0], w[1])).sum();
    let chord = dist(start, end);
    let max_deviation = points
        .iter()
        .map(|p| {
            if chord == 0.0 {
                return dist(*p, start);
            }
            let (dx, dy) = ((end[0] - start[0]) / chord, (end[1] - start[1]) / chord);
            ((p[0] - start[0]) * dy - (p[1] - start[1]) * dx).abs()
        })
        .fold(0.0, f64::max);
    Path {
        start,
        end,
        length,
        straightness: if chord > h {
            length / chord - 1.0
        } else {
            f64::NAN
        },
        max_deviation,
        max_speed,
        points,
    }
}

/// The `p`-quantile of the finite values.
pub fn quantile(values: impl Iterator<Item = f64>, p: f64) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(((v.len() - 1) as f64) * p).round() as usize]
}
