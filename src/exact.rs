//! Closed-form solutions of math.md section 3, used by tests, examples and the
//! validation report. Every number is derived here from the formulas; none is
//! pasted.
//!
//! - A: Dirac target, `phi* = L|x - a|`, soft-thresholding map, explicit U.
//! - B: target on a flat subspace: case A across it, identity along it.
//! - C: Gaussian translation with Lipschitz-KL (Huber divergence).
//! - D: plain KL between 1-D Gaussians (affine map).

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Composite Simpson rule on `[a, b]` with `n` (even) panels.
pub fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let n = n + n % 2;
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for k in 1..n {
        s += f(a + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

/// Density of the chi distribution with `k` degrees of freedom (|N(0, I_k)|).
pub fn chi_density(k: usize, r: f64) -> f64 {
    let kf = k as f64;
    r.powf(kf - 1.0) * (-0.5 * r * r).exp() / (2f64.powf(kf / 2.0 - 1.0) * libm::tgamma(kf / 2.0))
}

/// `E g(|Z|)` for `Z ~ N(0, I_k)`, split at `kink` for accuracy.
pub fn chi_expectation(k: usize, kink: f64, g: impl Fn(f64) -> f64) -> f64 {
    let top = 40.0;
    let inner = |r: f64| chi_density(k, r) * g(r);
    let kink = kink.clamp(0.0, top);
    simpson(inner, 0.0, kink, 200_000) + simpson(inner, kink, top, 200_000)
}

/// Case A: `rho0 = N(0, I_k)` (k = `dim`), `Q = delta_a`, any f.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DiracCase {
    /// Dimension k of the radial variable.
    pub dim: usize,
    /// Kinetic weight.
    pub alpha: f64,
    /// Horizon.
    pub horizon: f64,
    /// Lipschitz bound.
    pub lipschitz: f64,
}

impl DiracCase {
    /// The numbers of math.md section 3 A: `alpha = 0.5`, `T = 1`, `L = 1`
    /// (`c = 2`), with `rho0 = N(0, I_dim)`.
    pub fn example(dim: usize) -> Self {
        DiracCase {
            dim,
            alpha: 0.5,
            horizon: 1.0,
            lipschitz: 1.0,
        }
    }

    /// `c = L T / alpha`.
    pub fn reach(&self) -> f64 {
        self.lipschitz * self.horizon / self.alpha
    }

    /// Terminal distance to `a` of an agent starting at distance `r`.
    pub fn terminal_radius(&self, r: f64) -> f64 {
        (r - self.reach()).max(0.0)
    }

    /// Kinetic energy `alpha/(2T) E min(r, c)^2`.
    pub fn kinetic(&self) -> f64 {
        let c = self.reach();
        let w = self.alpha / (2.0 * self.horizon);
        chi_expectation(self.dim, c, |r| w * r.min(c).powi(2))
    }

    /// Terminal cost `L E (r - c)_+`.
    pub fn terminal(&self) -> f64 {
        let c = self.reach();
        chi_expectation(self.dim, c, |r| self.lipschitz * (r - c).max(0.0))
    }

    /// Optimal objective J.
    pub fn objective(&self) -> f64 {
        self.kinetic() + self.terminal()
    }

    /// Fraction of agents that reach the point `a`.
    pub fn fraction_at_target(&self) -> f64 {
        simpson(|r| chi_density(self.dim, r), 0.0, self.reach(), 200_000)
    }

    /// `U(x, t)` as a function of `r = |x - a|`.
    pub fn value(&self, r: f64, t: f64) -> f64 {
        let s = self.horizon - t;
        let l = self.lipschitz;
        if s <= 0.0 {
            return l * r;
        }
        if r >= l * s / self.alpha {
            l * r - l * l * s / (2.0 * self.alpha)
        } else {
            self.alpha * r * r / (2.0 * s)
        }
    }
}

/// Case C: `N(m0, s^2 I) -> N(mq, s^2 I)` with Lipschitz-regularised KL.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ShiftCase {
    /// Common standard deviation s.
    pub sigma: f64,
    /// Source mean.
    pub source_mean: [f64; 2],
    /// Target mean.
    pub target_mean: [f64; 2],
    /// Kinetic weight.
    pub alpha: f64,
    /// Horizon.
    pub horizon: f64,
    /// Lipschitz bound.
    pub lipschitz: f64,
}

impl ShiftCase {
    /// The Huber divergence `D^L(N(m, s^2) || N(mq, s^2))` at `r = |m - mq|`.
    pub fn huber(&self, r: f64) -> f64 {
        let (l, s2) = (self.lipschitz, self.sigma * self.sigma);
        if r <= l * s2 {
            r * r / (2.0 * s2)
        } else {
            l * r - l * l * s2 / 2.0
        }
    }

    /// Terminal mean.
    pub fn terminal_mean(&self) -> [f64; 2] {
        let d = [
            self.target_mean[0] - self.source_mean[0],
            self.target_mean[1] - self.source_mean[1],
        ];
        let r0 = (d[0] * d[0] + d[1] * d[1]).sqrt();
        if r0 == 0.0 {
            return self.source_mean;
        }
        let s2 = self.sigma * self.sigma;
        let reach = self.lipschitz * self.horizon / self.alpha;
        let moved = if r0 >= self.lipschitz * s2 + reach {
            reach
        } else {
            r0 - r0 * self.alpha * s2 / (self.alpha * s2 + self.horizon)
        };
        [
            self.source_mean[0] + moved * d[0] / r0,
            self.source_mean[1] + moved * d[1] / r0,
        ]
    }

    /// Kinetic energy of the translation.
    pub fn kinetic(&self) -> f64 {
        let m = self.terminal_mean();
        let d2 = (m[0] - self.source_mean[0]).powi(2) + (m[1] - self.source_mean[1]).powi(2);
        self.alpha / (2.0 * self.horizon) * d2
    }

    /// Terminal cost.
    pub fn terminal(&self) -> f64 {
        let m = self.terminal_mean();
        self.huber(
            ((m[0] - self.target_mean[0]).powi(2) + (m[1] - self.target_mean[1]).powi(2)).sqrt(),
        )
    }

    /// Optimal objective J.
    pub fn objective(&self) -> f64 {
        self.kinetic() + self.terminal()
    }
}

/// Case D: plain KL from `N(m0, s0^2)` to `N(mq, sq^2)` in 1-D.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GaussKlCase {
    /// Source mean and std.
    pub source: (f64, f64),
    /// Target mean and std.
    pub target: (f64, f64),
    /// Kinetic weight.
    pub alpha: f64,
    /// Horizon.
    pub horizon: f64,
}

impl GaussKlCase {
    /// Terminal mean and std.
    pub fn terminal(&self) -> (f64, f64) {
        let tau = self.horizon / self.alpha;
        let (m0, s0) = self.source;
        let (mq, sq) = self.target;
        let q2 = sq * sq;
        let m = (tau * mq + q2 * m0) / (tau + q2);
        let s = (q2 * s0 + (q2 * q2 * s0 * s0 + 4.0 * tau * q2 * (tau + q2)).sqrt())
            / (2.0 * (tau + q2));
        (m, s)
    }

    /// Kinetic energy of the affine map.
    pub fn kinetic(&self) -> f64 {
        let (m, s) = self.terminal();
        self.alpha / (2.0 * self.horizon)
            * ((m - self.source.0).powi(2) + (s - self.source.1).powi(2))
    }

    /// `KL(N(m_T, s_T^2) || Q)`.
    pub fn terminal_cost(&self) -> f64 {
        let (m, s) = self.terminal();
        let (mq, sq) = self.target;
        (sq / s).ln() + (s * s + (m - mq).powi(2)) / (2.0 * sq * sq) - 0.5
    }

    /// Optimal objective J.
    pub fn objective(&self) -> f64 {
        self.kinetic() + self.terminal_cost()
    }

    /// The optimal affine map.
    pub fn map(&self, x: f64) -> f64 {
        let (m, s) = self.terminal();
        m + s / self.source.1 * (x - self.source.0)
    }
}

/// A closed-form solution of one built-in case.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Exact {
    /// Case A with the point `a` (first `dim` entries used).
    Dirac {
        /// The parameters of case A.
        case: DiracCase,
        /// Where the point mass sits.
        at: [f64; 2],
    },
    /// Case B: identity on the first `free` coordinates, case A on the rest.
    Subspace {
        /// How many leading coordinates are free.
        free: usize,
        /// Case A across the other coordinates.
        across: DiracCase,
    },
    /// Case C.
    Shift(ShiftCase),
    /// Case D.
    GaussKl(GaussKlCase),
}

/// The soft-thresholding map of case A in any dimension.
fn soft_threshold(reach: f64, x: &[f64], a: &[f64]) -> Vec<f64> {
    let r = x
        .iter()
        .zip(a)
        .map(|(u, v)| (u - v).powi(2))
        .sum::<f64>()
        .sqrt();
    let keep = if r > 0.0 {
        (1.0 - reach / r).max(0.0)
    } else {
        0.0
    };
    x.iter().zip(a).map(|(u, v)| v + (u - v) * keep).collect()
}

impl Exact {
    /// Optimal objective J.
    pub fn objective(&self) -> f64 {
        self.kinetic() + self.terminal()
    }

    /// Kinetic energy of the optimum.
    pub fn kinetic(&self) -> f64 {
        match self {
            Exact::Dirac { case, .. } => case.kinetic(),
            Exact::Subspace { across, .. } => across.kinetic(),
            Exact::Shift(c) => c.kinetic(),
            Exact::GaussKl(c) => c.kinetic(),
        }
    }

    /// Terminal divergence of the optimum.
    pub fn terminal(&self) -> f64 {
        match self {
            Exact::Dirac { case, .. } => case.terminal(),
            Exact::Subspace { across, .. } => across.terminal(),
            Exact::Shift(c) => c.terminal(),
            Exact::GaussKl(c) => c.terminal_cost(),
        }
    }

    /// The optimal map `y*(x)` (x has the problem's dimension).
    pub fn map(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Exact::Dirac { case, at } => soft_threshold(case.reach(), x, &at[..x.len()]),
            Exact::Subspace { free, across } => {
                let zeros = vec![0.0; x.len() - free];
                let tail = soft_threshold(across.reach(), &x[*free..], &zeros);
                x[..*free].iter().copied().chain(tail).collect()
            }
            Exact::Shift(c) => {
                let m = c.terminal_mean();
                x.iter()
                    .enumerate()
                    .map(|(k, v)| v + m[k] - c.source_mean[k])
                    .collect()
            }
            Exact::GaussKl(c) => vec![c.map(x[0])],
        }
    }

    /// `U(x, t)` where it has a closed form (cases A and B), up to a constant.
    pub fn value(&self, x: &[f64], t: f64) -> Option<f64> {
        let radius = |v: &[f64], a: &[f64]| {
            v.iter()
                .zip(a)
                .map(|(u, w)| (u - w).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        match self {
            Exact::Dirac { case, at } => Some(case.value(radius(x, &at[..x.len()]), t)),
            Exact::Subspace { free, across } => {
                Some(across.value(radius(&x[*free..], &vec![0.0; x.len() - free]), t))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn case_a_matches_its_closed_forms_in_2d() {
        // math.md: fraction 1 - e^-2, terminal sqrt(2 pi)(1 - Phi(2)), kinetic (2 - 2e^-2)/4
        let c = DiracCase::example(2);
        assert!((c.fraction_at_target() - (1.0 - (-2.0f64).exp())).abs() < 1e-10);
        assert!((c.terminal() - (2.0 * PI).sqrt() * (1.0 - normal_cdf(2.0))).abs() < 1e-10);
        assert!((c.kinetic() - (2.0 - 2.0 * (-2.0f64).exp()) / 4.0).abs() < 1e-10);
    }

    #[test]
    fn case_a_in_1d_is_half_normal_soft_thresholding() {
        // independent check by integrating over x in R instead of r >= 0
        let c = DiracCase::example(1);
        let w = 0.25;
        let direct = simpson(
            |x| {
                let r: f64 = x.abs();
                (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
                    * (w * r.min(2.0).powi(2) + (r - 2.0).max(0.0))
            },
            -40.0,
            40.0,
            800_000,
        );
        assert!((c.objective() - direct).abs() < 1e-8);
    }

    #[test]
    fn case_c_optimum_beats_every_other_translation() {
        for target in [[5.0, 0.0], [2.0, 0.0]] {
            let c = ShiftCase {
                sigma: 1.0,
                source_mean: [0.0, 0.0],
                target_mean: target,
                alpha: 0.5,
                horizon: 1.0,
                lipschitz: 1.0,
            };
            let j = |m: f64| 0.25 * m * m + c.huber((target[0] - m).abs());
            let best = (0..100_000)
                .map(|k| j(k as f64 * 1e-4 * target[0]))
                .fold(f64::INFINITY, f64::min);
            assert!(
                (c.objective() - best).abs() < 1e-6,
                "{} vs {best}",
                c.objective()
            );
        }
    }

    #[test]
    fn case_d_solves_the_static_problem() {
        let c = GaussKlCase {
            source: (0.0, 1.0),
            target: (1.0, 0.5),
            alpha: 0.5,
            horizon: 1.0,
        };
        assert!((c.terminal().1 - 0.530222).abs() < 1e-6);
        // brute-force minimisation over (m, s)
        let j = |m: f64, s: f64| {
            0.25 * (m * m + (s - 1.0).powi(2)) + (0.5 / s).ln() + (s * s + (m - 1.0).powi(2)) / 0.5
                - 0.5
        };
        let mut best = f64::INFINITY;
        for a in 0..400 {
            for b in 1..400 {
                best = best.min(j(0.7 + a as f64 * 1e-3, 0.4 + b as f64 * 5e-4));
            }
        }
        assert!(c.objective() <= best + 1e-12 && best - c.objective() < 1e-5);
    }

    #[test]
    fn value_function_is_continuous_and_terminal() {
        let c = DiracCase::example(2);
        for t in [0.0, 0.5, 0.9] {
            let r = c.lipschitz * (1.0 - t) / c.alpha;
            assert!((c.value(r - 1e-9, t) - c.value(r + 1e-9, t)).abs() < 1e-8);
        }
        assert_eq!(c.value(1.3, 1.0), 1.3);
    }
}
