//! The convex functions `f` (with `f(1) = 0`), their Legendre conjugates `f*`,
//! and `Lambda_f(phi; Q) = inf_nu { nu + E_Q f*(phi - nu) }` (math.md section 1).

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The f of an f-divergence `D_f(P||Q) = E_Q f(dP/dQ)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FDivergence {
    /// `f(x) = x log x - x + 1`, `f*(y) = e^y - 1`.
    Kl,
    /// `f(x) = -log x`, `f*(y) = -1 - log(-y)` for `y < 0`.
    ReverseKl,
    /// `f(x) = (x^a - 1)/(a(a-1))`, `a > 1`.
    Alpha(f64),
    /// `f(x) = x log x - (1+x) log((1+x)/2)`, `f*(y) = -log(2 - e^y)`.
    JensenShannon,
    /// Pearson: `f(x) = (x-1)^2`, `f*(y) = y + y^2/4` (y >= -2), else -1.
    ChiSquared,
    /// The integral-probability-metric limit: `f*(y) = y`, `Lambda = E_Q phi`.
    W1,
}

impl FDivergence {
    /// All names accepted by [`FromStr`].
    pub const NAMES: &'static str = "kl, reverse-kl, alpha:<a> (a > 1), js, chi2, w1";

    /// `f(x)` for `x >= 0` (+inf outside the domain).
    pub fn f(&self, x: f64) -> f64 {
        match *self {
            FDivergence::Kl => {
                if x > 0.0 {
                    x * x.ln() - x + 1.0
                } else {
                    1.0
                }
            }
            FDivergence::ReverseKl => -x.ln(),
            FDivergence::Alpha(a) => (x.powf(a) - 1.0) / (a * (a - 1.0)),
            FDivergence::JensenShannon => {
                let xl = if x > 0.0 { x * x.ln() } else { 0.0 };
                xl - (1.0 + x) * ((1.0 + x) / 2.0).ln()
            }
            FDivergence::ChiSquared => (x - 1.0).powi(2),
            FDivergence::W1 => {
                if x == 1.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            }
        }
    }

    /// `f'(x)`, the first variation of the plain divergence (`phi* = f'(dP/dQ)`).
    pub fn f_prime(&self, x: f64) -> f64 {
        match *self {
            FDivergence::Kl => x.ln(),
            FDivergence::ReverseKl => -1.0 / x,
            FDivergence::Alpha(a) => x.powf(a - 1.0) / (a - 1.0),
            FDivergence::JensenShannon => (2.0 * x / (1.0 + x)).ln(),
            FDivergence::ChiSquared => 2.0 * (x - 1.0),
            FDivergence::W1 => 0.0,
        }
    }

    /// `lim f(x)/x` as `x -> inf`: the cost of mass where Q has none.
    pub fn recession(&self) -> f64 {
        match *self {
            FDivergence::ReverseKl => 0.0,
            FDivergence::JensenShannon => std::f64::consts::LN_2,
            _ => f64::INFINITY,
        }
    }

    /// Supremum of the domain of `f*` (the conjugate is +inf at and above it).
    pub fn conj_domain_sup(&self) -> f64 {
        match *self {
            FDivergence::ReverseKl => 0.0,
            FDivergence::JensenShannon => std::f64::consts::LN_2,
            _ => f64::INFINITY,
        }
    }

    /// `f*(y)`.
    pub fn conj(&self, y: f64) -> f64 {
        match *self {
            FDivergence::Kl => y.exp_m1(),
            FDivergence::ReverseKl => {
                if y < 0.0 {
                    -1.0 - (-y).ln()
                } else {
                    f64::INFINITY
                }
            }
            FDivergence::Alpha(a) => {
                let yp = ((a - 1.0) * y).max(0.0);
                (yp.powf(a / (a - 1.0)) + 1.0 / (a - 1.0)) / a
            }
            FDivergence::JensenShannon => {
                if y < std::f64::consts::LN_2 {
                    -(2.0 - y.exp()).ln()
                } else {
                    f64::INFINITY
                }
            }
            FDivergence::ChiSquared => {
                if y >= -2.0 {
                    y + y * y / 4.0
                } else {
                    -1.0
                }
            }
            FDivergence::W1 => y,
        }
    }

    /// `(f*)'(y) >= 0`: the density ratio `dgamma/dQ` that `y` induces.
    pub fn conj_d1(&self, y: f64) -> f64 {
        match *self {
            FDivergence::Kl => y.exp(),
            FDivergence::ReverseKl => -1.0 / y,
            FDivergence::Alpha(a) => ((a - 1.0) * y).max(0.0).powf(1.0 / (a - 1.0)),
            FDivergence::JensenShannon => {
                let e = y.exp();
                e / (2.0 - e)
            }
            FDivergence::ChiSquared => (1.0 + y / 2.0).max(0.0),
            FDivergence::W1 => 1.0,
        }
    }

    /// `(f*)''(y) >= 0`.
    pub fn conj_d2(&self, y: f64) -> f64 {
        match *self {
            FDivergence::Kl => y.exp(),
            FDivergence::ReverseKl => 1.0 / (y * y),
            FDivergence::Alpha(a) => {
                let z = ((a - 1.0) * y).max(0.0);
                if z == 0.0 {
                    if a < 2.0 { 0.0 } else { f64::INFINITY }
                } else {
                    z.powf((2.0 - a) / (a - 1.0))
                }
            }
            FDivergence::JensenShannon => {
                let e = y.exp();
                2.0 * e / ((2.0 - e) * (2.0 - e))
            }
            FDivergence::ChiSquared => {
                if y >= -2.0 {
                    0.5
                } else {
                    0.0
                }
            }
            FDivergence::W1 => 0.0,
        }
    }

    /// Proximal map of `s f*`: the root of `s (f*)'(x) + x - w = 0`.
    ///
    /// `(f*)'` is non-negative and non-decreasing, so the root is unique and
    /// lies below `w`; Newton from the right is safeguarded by bisection.
    pub fn prox_conj(&self, s: f64, w: f64) -> f64 {
        if s <= 0.0 {
            return w;
        }
        match *self {
            FDivergence::W1 => return w - s,
            FDivergence::ChiSquared => {
                // piecewise linear derivative: solve on the quadratic branch first
                let x = (w - s) / (1.0 + s / 2.0);
                return if x >= -2.0 { x } else { w.min(-2.0) };
            }
            _ => {}
        }
        let sup = self.conj_domain_sup();
        let g = |x: f64| s * self.conj_d1(x) + x - w;
        // upper bracket g(hi) >= 0: w itself, or a point just inside the domain
        let mut hi = w.min(sup);
        if hi >= sup {
            let mut gap = 1.0;
            hi = sup - gap;
            while g(hi) < 0.0 {
                gap *= 0.5;
                hi = sup - gap;
            }
        }
        // lower bracket: g(lo) <= 0
        let d_hi = self.conj_d1(hi).min(1e300);
        let mut lo = hi - s * d_hi - 1.0;
        let mut step = 1.0;
        while g(lo) > 0.0 {
            step *= 2.0;
            lo -= step;
        }
        // good start for KL: x = w - W(s e^w)
        let mut x = if *self == FDivergence::Kl {
            let ln_z = s.ln() + w;
            let wl = if ln_z > 1.0 {
                ln_z - ln_z.ln()
            } else {
                let z = ln_z.exp();
                z / (1.0 + z)
            };
            (w - wl).clamp(lo, hi)
        } else {
            hi
        };
        for _ in 0..100 {
            let gx = g(x);
            if gx > 0.0 {
                hi = x;
            } else {
                lo = x;
            }
            let dg = s * self.conj_d2(x) + 1.0;
            let step = if dg.is_finite() { gx / dg } else { f64::NAN };
            if step.abs() <= 1e-15 * (1.0 + x.abs()) {
                return x - step;
            }
            let mut next = x - step;
            if !(next >= lo && next <= hi && next.is_finite()) {
                next = 0.5 * (lo + hi);
            }
            if hi - lo <= 1e-15 * (1.0 + x.abs()) {
                return next;
            }
            x = next;
        }
        x
    }

    /// `Lambda_f(phi; Q) = inf_nu { nu + sum_i q_i f*(phi_i - nu) }` for masses q.
    pub fn lambda(&self, phi: &[f64], q: &[f64]) -> f64 {
        self.lambda_nu(phi, q).0
    }

    /// Gradient of `Lambda_f(.; Q)` at phi: the masses `q_i f*'(phi_i - nu*)`
    /// (for KL the Gibbs measure `q e^phi / E_Q e^phi`).
    pub fn lambda_gradient(&self, phi: &[f64], q: &[f64]) -> Vec<f64> {
        let nu = self.lambda_nu(phi, q).1;
        phi.iter()
            .zip(q)
            .map(|(p, qi)| {
                if *qi > 0.0 {
                    qi * self.conj_d1(p - nu)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// `Lambda_f(phi; Q)` with its gradient `q f*'(phi - nu*)` (the Gibbs
    /// measure of phi) and the diagonal of its Hessian `q f*''(phi - nu*)`,
    /// both zero off the support of Q.
    pub fn lambda_derivatives(&self, phi: &[f64], q: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let (lambda, nu) = self.lambda_nu(phi, q);
        let (gibbs, curvature) = phi
            .iter()
            .zip(q)
            .map(|(p, qi)| {
                if *qi > 0.0 {
                    (qi * self.conj_d1(p - nu), qi * self.conj_d2(p - nu))
                } else {
                    (0.0, 0.0)
                }
            })
            .unzip();
        (lambda, gibbs, curvature)
    }

    /// `Lambda_f(phi; Q)` and the minimising shift `nu*`.
    pub fn lambda_nu(&self, phi: &[f64], q: &[f64]) -> (f64, f64) {
        let support = || phi.iter().zip(q).filter(|(_, qi)| **qi > 0.0);
        match *self {
            FDivergence::Kl => {
                let m = support().map(|(p, _)| *p).fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = support().map(|(p, qi)| qi * (p - m).exp()).sum();
                let v = m + s.ln();
                (v, v)
            }
            FDivergence::W1 => (support().map(|(p, qi)| p * qi).sum(), 0.0),
            _ => {
                // h(nu) = nu + E_Q f*(phi - nu) is convex; h'(nu) = 1 - E_Q f*'(phi - nu)
                // rises from -inf (or < 0) to 1, so bisect on the sign of h'.
                let slope = |nu: f64| {
                    1.0 - support()
                        .map(|(p, qi)| qi * self.conj_d1(p - nu))
                        .sum::<f64>()
                };
                let pmax = support().map(|(p, _)| *p).fold(f64::NEG_INFINITY, f64::max);
                let pmin = support().map(|(p, _)| *p).fold(f64::INFINITY, f64::min);
                let sup = self.conj_domain_sup();
                let mut hi = if sup.is_finite() {
                    pmax - sup + 1.0
                } else {
                    pmax + 1.0
                };
                let mut step = 1.0;
                while slope(hi) < 0.0 {
                    hi += step;
                    step *= 2.0;
                }
                let mut lo = if sup.is_finite() {
                    pmax - sup
                } else {
                    pmin - 1.0
                };
                step = 1.0;
                while !sup.is_finite() && slope(lo) > 0.0 {
                    lo -= step;
                    step *= 2.0;
                }
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if slope(mid) > 0.0 {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                let nu = hi;
                let v = nu + support().map(|(p, qi)| qi * self.conj(p - nu)).sum::<f64>();
                (v, nu)
            }
        }
    }

    /// The plain divergence `sum_i q_i f(p_i/q_i)` of two mass vectors.
    pub fn divergence(&self, p: &[f64], q: &[f64]) -> f64 {
        p.iter()
            .zip(q)
            .map(|(&pi, &qi)| {
                if qi > 0.0 {
                    qi * self.f(pi / qi)
                } else if pi > 0.0 {
                    pi * self.recession()
                } else {
                    0.0
                }
            })
            .sum()
    }
}

impl fmt::Display for FDivergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FDivergence::Kl => write!(f, "kl"),
            FDivergence::ReverseKl => write!(f, "reverse-kl"),
            FDivergence::Alpha(a) => write!(f, "alpha:{a}"),
            FDivergence::JensenShannon => write!(f, "js"),
            FDivergence::ChiSquared => write!(f, "chi2"),
            FDivergence::W1 => write!(f, "w1"),
        }
    }
}

impl FromStr for FDivergence {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let unknown = || Error::UnknownName {
            kind: "divergence".into(),
            name: s.into(),
            known: Self::NAMES.into(),
        };
        match s.to_ascii_lowercase().as_str() {
            "kl" => Ok(FDivergence::Kl),
            "reverse-kl" | "reverse_kl" | "rkl" => Ok(FDivergence::ReverseKl),
            "js" | "jensen-shannon" => Ok(FDivergence::JensenShannon),
            "chi2" | "chi-squared" => Ok(FDivergence::ChiSquared),
            "w1" => Ok(FDivergence::W1),
            other => {
                let a: f64 = other
                    .strip_prefix("alpha:")
                    .ok_or_else(unknown)?
                    .parse()
                    .map_err(|_| unknown())?;
                if !(a.is_finite() && a > 1.0) {
                    return Err(Error::invalid("f", s, "alpha divergences need a > 1"));
                }
                Ok(FDivergence::Alpha(a))
            }
        }
    }
}

impl serde::Serialize for FDivergence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for FDivergence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [FDivergence; 6] = [
        FDivergence::Kl,
        FDivergence::ReverseKl,
        FDivergence::Alpha(1.5),
        FDivergence::Alpha(3.0),
        FDivergence::JensenShannon,
        FDivergence::ChiSquared,
    ];

    #[test]
    fn conjugate_is_the_legendre_transform() {
        // f*(y) = sup_x { x y - f(x) } checked by brute force on a fine x grid
        for f in ALL {
            for &y in &[-3.0, -0.7, -0.1, 0.2, 0.5] {
                if y >= f.conj_domain_sup() {
                    continue;
                }
                let brute = (0..400_000)
                    .map(|k| k as f64 * 1e-4)
                    .map(|x| x * y - f.f(x))
                    .fold(f64::NEG_INFINITY, f64::max);
                let c = f.conj(y);
                assert!((brute - c).abs() < 1e-5, "{f} at y={y}: {brute} vs {c}");
                assert!(f.f(1.0).abs() < 1e-15, "{f}: f(1) != 0");
            }
        }
    }

    #[test]
    fn prox_solves_its_optimality_condition() {
        for f in ALL {
            for &s in &[1e-6, 0.3, 10.0, 1e4] {
                for &w in &[-50.0, -2.0, 0.0, 0.3, 5.0, 80.0] {
                    let x = f.prox_conj(s, w);
                    assert!(x.is_finite() && x < f.conj_domain_sup(), "{f} s={s} w={w}");
                    let r = s * f.conj_d1(x) + x - w;
                    assert!(
                        r.abs() < 1e-8 * (1.0 + w.abs() + s),
                        "{f} s={s} w={w}: r={r}"
                    );
                }
            }
        }
    }

    #[test]
    fn lambda_matches_donsker_varadhan_and_its_variational_form() {
        let q = [0.1, 0.4, 0.3, 0.2];
        let phi = [0.3, -1.0, 2.0, 0.5];
        let dv: f64 = q
            .iter()
            .zip(&phi)
            .map(|(q, p)| q * f64::exp(*p))
            .sum::<f64>()
            .ln();
        assert!((FDivergence::Kl.lambda(&phi, &q) - dv).abs() < 1e-14);
        // every f: Lambda is the inf over nu, so no nu on a fine grid beats it
        for f in ALL {
            let lam = f.lambda(&phi, &q);
            let brute = (0..40_000)
                .map(|k| -10.0 + k as f64 * 5e-4)
                .map(|nu| {
                    nu + q
                        .iter()
                        .zip(&phi)
                        .map(|(q, p)| q * f.conj(p - nu))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            assert!(
                lam <= brute + 1e-9 && brute - lam < 1e-5,
                "{f}: {lam} vs {brute}"
            );
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_fail() {
        for f in ALL.iter().chain(&[FDivergence::W1]) {
            assert_eq!(f.to_string().parse::<FDivergence>().unwrap(), *f);
        }
        assert!("alpha:0.5".parse::<FDivergence>().is_err());
        assert!("hellinger".parse::<FDivergence>().is_err());
    }
}
