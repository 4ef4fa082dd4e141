//! The choice among the MFG methods: [`MethodKind`] names one, [`Method`]
//! holds it with its options. A config's `[solver]` table is read into the
//! chosen method's options, so a key that method does not take is an error
//! that names it, never a setting dropped in silence.
//!
//! ```
//! use proxflow::mfg::{Method, MethodKind};
//! let settings: toml::Table = toml::from_str("max_iterations = 40\nslices = 20").unwrap();
//! let eulerian = Method::configure(MethodKind::Eulerian, &settings).unwrap();
//! assert_eq!(eulerian.max_iterations(), 40);
//! // `slices` belongs to the Eulerian solver only
//! let err = Method::configure(MethodKind::Dual, &settings).unwrap_err();
//! assert!(err.to_string().contains("slices"));
//! ```

use super::{
    DualOptions, DualSolver, EulerianOptions, EulerianSolver, Observer, ParticleOptions,
    ParticleSolver, Solution, Solver,
};
use crate::error::{Error, Result, require_non_negative, require_positive};
use crate::grid::Grid;
use crate::problem::Problem;
use serde::{Deserialize, Serialize};

/// The MFG methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// Exact characteristics and the dual ascent (`mfg::dual`).
    Dual,
    /// Finite-difference HJ and finite-volume continuity, fictitious play
    /// (`mfg::eulerian`).
    Eulerian,
    /// Agents relaxing to their characteristic relation (`mfg::particles`).
    Particles,
}

impl MethodKind {
    /// All methods.
    pub const ALL: [MethodKind; 3] = [
        MethodKind::Dual,
        MethodKind::Eulerian,
        MethodKind::Particles,
    ];

    /// The name used on the command line and in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Dual => "dual",
            MethodKind::Eulerian => "eulerian",
            MethodKind::Particles => "particles",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Result<MethodKind> {
        MethodKind::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| Error::UnknownName {
                kind: "method".into(),
                name: name.into(),
                known: MethodKind::ALL.map(MethodKind::name).join(", "),
            })
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A method with its options.
#[derive(Debug, Clone)]
pub enum Method {
    /// The dual ascent.
    Dual(DualOptions),
    /// The Eulerian solver.
    Eulerian(EulerianOptions),
    /// The particle solver.
    Particles(ParticleOptions),
}

impl Method {
    /// The method with its default options.
    pub fn default_for(kind: MethodKind) -> Method {
        match kind {
            MethodKind::Dual => Method::Dual(DualOptions::default()),
            MethodKind::Eulerian => Method::Eulerian(EulerianOptions::default()),
            MethodKind::Particles => Method::Particles(ParticleOptions::default()),
        }
    }

    /// The method with a `[solver]` table applied over its defaults; a key
    /// the method does not take, or a value out of range, is an error
    /// naming it.
    pub fn configure(kind: MethodKind, settings: &toml::Table) -> Result<Method> {
        fn read<T: serde::de::DeserializeOwned>(kind: MethodKind, t: &toml::Table) -> Result<T> {
            toml::Value::Table(t.clone()).try_into().map_err(|e| {
                Error::invalid(
                    "solver",
                    format!("[{}]", t.keys().cloned().collect::<Vec<_>>().join(", ")),
                    &format!("for method `{kind}`: {}", e.message().trim()),
                )
            })
        }
        let method = match kind {
            MethodKind::Dual => Method::Dual(read(kind, settings)?),
            MethodKind::Eulerian => Method::Eulerian(read(kind, settings)?),
            MethodKind::Particles => Method::Particles(read(kind, settings)?),
        };
        method.validate()?;
        Ok(method)
    }

    /// Which method this is.
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Dual(_) => MethodKind::Dual,
            Method::Eulerian(_) => MethodKind::Eulerian,
            Method::Particles(_) => MethodKind::Particles,
        }
    }

    /// Iterations at most.
    pub fn max_iterations(&self) -> usize {
        match self {
            Method::Dual(o) => o.max_iterations,
            Method::Eulerian(o) => o.max_iterations,
            Method::Particles(o) => o.max_iterations,
        }
    }

    /// Sets the iteration cap (every method has one).
    pub fn set_max_iterations(&mut self, n: usize) {
        match self {
            Method::Dual(o) => o.max_iterations = n,
            Method::Eulerian(o) => o.max_iterations = n,
            Method::Particles(o) => o.max_iterations = n,
        }
    }

    /// Sets the stopping tolerance (every method has one; its meaning is
    /// the method's residual).
    pub fn set_tolerance(&mut self, t: f64) {
        match self {
            Method::Dual(o) => o.tolerance = t,
            Method::Eulerian(o) => o.tolerance = t,
            Method::Particles(o) => o.tolerance = t,
        }
    }

    /// Checks every option, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Method::Dual(o) => o.validate(),
            Method::Eulerian(o) => o.validate(),
            Method::Particles(o) => o.validate(),
        }
    }

    /// Solves `problem` on `grid` from the method's default start.
    pub fn solve(
        &self,
        problem: &Problem,
        grid: &Grid,
        observer: &mut dyn Observer,
    ) -> Result<Solution> {
        match self {
            Method::Dual(o) => DualSolver::new(o.clone()).solve(problem, grid, observer),
            Method::Eulerian(o) => EulerianSolver::new(o.clone()).solve(problem, grid, observer),
            Method::Particles(o) => ParticleSolver::new(o.clone()).solve(problem, grid, observer),
        }
    }
}

/// The options every method has, checked alike.
fn common(max_iterations: usize, tolerance: f64, snapshots: usize) -> Result<()> {
    at_least("solver.max_iterations", max_iterations, 1)?;
    require_positive("solver.tolerance", tolerance)?;
    at_least("solver.snapshots", snapshots, 2)
}

impl DualOptions {
    /// Checks every option, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let o = self;
        common(o.max_iterations, o.tolerance, o.snapshots)?;
        if !(o.ladder_ratio > 1.0 && o.ladder_ratio.is_finite()) {
            return Err(Error::invalid(
                "solver.ladder_ratio",
                o.ladder_ratio,
                "must be a finite number > 1",
            ));
        }
        require_positive("solver.smoothing", o.smoothing)?;
        require_positive("solver.smoothing_min", o.smoothing_min)?;
        at_least("solver.stage_iterations", o.stage_iterations, 1)?;
        require_non_negative("solver.local_smoothing", o.local_smoothing)?;
        require_non_negative("solver.edge_floor", o.edge_floor)?;
        require_non_negative("solver.stiffness", o.stiffness)?;
        Ok(())
    }
}

impl EulerianOptions {
    /// Checks every option, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let o = self;
        common(o.max_iterations, o.tolerance, o.snapshots)?;
        if o.slices < 2 || !o.slices.is_multiple_of(2) {
            return Err(Error::invalid(
                "solver.slices",
                o.slices,
                "must be even and >= 2",
            ));
        }
        at_least(
            "solver.discriminator_iterations",
            o.discriminator_iterations,
            1,
        )?;
        at_least(
            "solver.final_discriminator_iterations",
            o.final_discriminator_iterations,
            1,
        )?;
        if let Some(gap) = o.gap_tolerance {
            require_non_negative("solver.gap_tolerance", gap)?;
        }
        courant("solver.hj.cfl", o.hj.cfl)?;
        match o.transport {
            crate::transport::Transport::FiniteVolume(fv) => {
                courant("solver.transport.cfl", fv.cfl)
            }
            crate::transport::Transport::SemiLagrangian(sl) => match sl.slices_per_step(o.slices) {
                Some(_) => Ok(()),
                None => Err(Error::invalid(
                    "solver.transport.steps",
                    sl.steps,
                    &format!(
                        "must divide solver.slices = {} into whole steps (of an even number of slices for the rk2 foot)",
                        o.slices
                    ),
                )),
            },
        }
    }
}

impl ParticleOptions {
    /// Checks every option, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let o = self;
        common(o.max_iterations, o.tolerance, o.snapshots)?;
        at_least(
            "solver.discriminator_iterations",
            o.discriminator_iterations,
            1,
        )?;
        if !(o.recency >= 1.0 && o.recency.is_finite()) {
            return Err(Error::invalid(
                "solver.recency",
                o.recency,
                "must be a finite number of at least 1",
            ));
        }
        if !(0.0..1.0).contains(&o.relaxation_floor) {
            return Err(Error::invalid(
                "solver.relaxation_floor",
                o.relaxation_floor,
                "must lie in [0, 1)",
            ));
        }
        require_non_negative("solver.smoothing", o.smoothing)?;
        require_positive("solver.max_step", o.max_step).map(drop)
    }
}

fn at_least(field: &str, value: usize, least: usize) -> Result<()> {
    if value < least {
        return Err(Error::invalid(
            field,
            value,
            &format!("must be at least {least}"),
        ));
    }
    Ok(())
}

fn courant(field: &str, value: f64) -> Result<()> {
    if !(value > 0.0 && value <= 0.5) {
        return Err(Error::invalid(field, value, "a Courant number in (0, 0.5]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn every_method_takes_the_common_keys() {
        for kind in MethodKind::ALL {
            let m = Method::configure(kind, &table("max_iterations = 7\ntolerance = 0.1")).unwrap();
            assert_eq!(m.kind(), kind);
            assert_eq!(m.max_iterations(), 7);
            assert_eq!(MethodKind::parse(kind.name()).unwrap(), kind);
        }
        assert!(MethodKind::parse("spectral").is_err());
    }

    #[test]
    fn a_key_of_another_method_is_named() {
        for (kind, key) in [
            (MethodKind::Dual, "slices = 4"),
            (MethodKind::Eulerian, "ladder_ratio = 1.2"),
            (MethodKind::Particles, "algorithm = \"newton\""),
            (MethodKind::Dual, "max_iteration = 3"),
        ] {
            let name = key.split(' ').next().unwrap();
            let msg = Method::configure(kind, &table(key))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(name) && msg.contains(kind.name()), "{msg}");
        }
    }

    #[test]
    fn values_out_of_range_are_named() {
        for (kind, text, field) in [
            (
                MethodKind::Dual,
                "max_iterations = 0",
                "solver.max_iterations",
            ),
            (MethodKind::Dual, "tolerance = -1.0", "solver.tolerance"),
            (
                MethodKind::Dual,
                "ladder_ratio = 1.0",
                "solver.ladder_ratio",
            ),
            (MethodKind::Eulerian, "slices = 3", "solver.slices"),
            (
                MethodKind::Eulerian,
                "transport = { kind = \"finite-volume\", cfl = 0.9 }",
                "solver.transport.cfl",
            ),
            (
                MethodKind::Eulerian,
                "transport = { kind = \"semi-lagrangian\", steps = 3 }",
                "solver.transport.steps",
            ),
            (
                MethodKind::Eulerian,
                "transport = { kind = \"semi-lagrangian\", foot = \"rk2\", steps = 8 }",
                "solver.transport.steps",
            ),
            (MethodKind::Particles, "max_step = 0.0", "solver.max_step"),
            (
                MethodKind::Particles,
                "smoothing = -1.0",
                "solver.smoothing",
            ),
            (MethodKind::Particles, "snapshots = 1", "solver.snapshots"),
            (MethodKind::Particles, "recency = 0.5", "solver.recency"),
            (MethodKind::Particles, "recency = nan", "solver.recency"),
        ] {
            let msg = Method::configure(kind, &table(text))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(field), "`{msg}` lacks {field}");
        }
    }

    #[test]
    fn nested_options_and_enums_read_by_name() {
        let m = Method::configure(
            MethodKind::Eulerian,
            &table("hj = { scheme = \"godunov\" }\ndiscriminator_metric = \"euclidean\""),
        )
        .unwrap();
        let Method::Eulerian(o) = m else {
            panic!("an Eulerian method")
        };
        assert_eq!(o.hj.scheme, crate::hj::FdScheme::Godunov);
        assert_eq!(o.hj.cfl, crate::hj::FdOptions::default().cfl);
        assert!(
            Method::configure(MethodKind::Eulerian, &table("hj = { sceme = \"eno2\" }")).is_err()
        );
        // the transport is an enum by `kind`; an option its scheme ignores is refused
        use crate::transport::{FvScheme, Transport};
        let fv = "transport = { kind = \"finite-volume\", scheme = \"upwind\" }";
        let Method::Eulerian(o) = Method::configure(MethodKind::Eulerian, &table(fv)).unwrap()
        else {
            panic!("an Eulerian method")
        };
        let Transport::FiniteVolume(fv) = o.transport else {
            panic!("finite volumes chosen")
        };
        assert_eq!(fv.scheme, FvScheme::Upwind);
        let sl = "transport = { kind = \"semi-lagrangian\", cfl = 0.3 }";
        let msg = Method::configure(MethodKind::Eulerian, &table(sl))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("cfl"), "{msg}");
    }
}
