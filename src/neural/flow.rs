//! The generator and the objective of the neural flow (math.md section 4).
//!
//! The flow is `K = T/dt` forward-Euler steps `x <- x - dt grad_x U(x, t_k)/alpha`
//! from `x_0 ~ rho0`; its kinetic cost is
//! `alpha sum_k dt mean |grad_x U/alpha|^2 / 2` (the discrete
//! `alpha int int |v|^2/2 rho`). The divergence is estimated by
//! `mean phi(x_T) - Lambda_f(phi; Q)`, with
//! `Lambda_f(phi; Q) = inf_nu { nu + E_Q f*(phi - nu) }`: for KL the stable
//! log-mean-exp, for W1 the mean, otherwise `nu*` solved on the host and held
//! fixed (by the envelope theorem the gradient in phi is then exact).

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::divergence::FDivergence;
use crate::error::{Error, Result, require_positive};
use crate::neural::network::ScalarNetwork;

/// Time discretisation of the flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowSpec {
    /// Kinetic weight alpha > 0.
    pub alpha: f64,
    /// Horizon T > 0.
    pub horizon: f64,
    /// Number of Euler steps K.
    pub steps: usize,
}

impl FlowSpec {
    /// `K = T/dt` steps; `dt` must divide `T`.
    pub fn new(alpha: f64, horizon: f64, dt: f64) -> Result<Self> {
        require_positive("alpha", alpha)?;
        require_positive("T", horizon)?;
        require_positive("dt", dt)?;
        let steps = (horizon / dt).round();
        if steps < 1.0 || ((steps * dt - horizon).abs() > 1e-9 * horizon) {
            return Err(Error::invalid(
                "dt",
                dt,
                &format!("must divide T = {horizon} into whole steps"),
            ));
        }
        Ok(Self {
            alpha,
            horizon,
            steps: steps as usize,
        })
    }

    /// Step length `T/K`.
    pub fn dt(&self) -> f64 {
        self.horizon / self.steps as f64
    }

    /// The same flow with `K` doubled (the dt/2 check).
    pub fn halved(&self) -> Self {
        Self {
            steps: 2 * self.steps,
            ..*self
        }
    }
}

/// `[x, t]`: the potential's input at time `t`.
pub fn with_time(x: Tensor<2>, t: f64) -> Tensor<2> {
    let [n, _] = x.dims();
    let column = Tensor::full([n, 1], t, (&x.device(), x.dtype()));
    Tensor::cat(vec![x, column], 1)
}

/// Runs the flow from `x0`. Returns `x_T` and the kinetic cost; `each_step`
/// sees `t_k`, `x_k` and the full input gradient `[grad_x U, dU/dt]` there.
pub fn flow(
    potential: &impl ScalarNetwork,
    x0: Tensor<2>,
    spec: &FlowSpec,
    mut each_step: impl FnMut(f64, &Tensor<2>, &Tensor<2>),
) -> (Tensor<2>, Tensor<1>) {
    let [_, d] = x0.dims();
    let dt = spec.dt();
    let mut x = x0;
    let mut kinetic: Option<Tensor<1>> = None;
    for k in 0..spec.steps {
        let t = k as f64 * dt;
        let gradient = potential.input_gradient(with_time(x.clone(), t));
        each_step(t, &x, &gradient);
        let grad_x = gradient.narrow(1, 0, d);
        let step_cost = grad_x
            .clone()
            .square()
            .sum_dim(1)
            .mean()
            .mul_scalar(dt / (2.0 * spec.alpha));
        kinetic = Some(match kinetic {
            Some(k) => k + step_cost,
            None => step_cost,
        });
        x = x - grad_x.mul_scalar(dt / spec.alpha);
    }
    (x, kinetic.expect("at least one step"))
}

/// Row blocks `(start, len)` of `n` rows for `threads` workers.
pub fn row_blocks(n: usize, threads: usize) -> Vec<(usize, usize)> {
    let chunk = n.div_ceil(threads.clamp(1, n.max(1)));
    (0..n)
        .step_by(chunk.max(1))
        .map(|s| (s, chunk.min(n - s)))
        .collect()
}

/// Runs `work` on row blocks of `x` in parallel threads and returns the
/// results in block order. The CPU backend runs each operation of these sizes
/// on one core, so independent rows are the parallelism there is.
pub fn on_row_blocks<T: Send>(
    x: Tensor<2>,
    threads: usize,
    work: impl Fn(Tensor<2>) -> T + Sync,
) -> Vec<T> {
    let [n, _] = x.dims();
    let blocks = row_blocks(n, threads);
    if blocks.len() <= 1 {
        return vec![work(x)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .into_iter()
            .map(|(start, len)| {
                let part = x.clone().narrow(0, start, len);
                let work = &work;
                scope.spawn(move || work(part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

/// `x_T` of every row of `x0`, row blocks on `threads` threads.
pub fn terminal_points(
    potential: &impl ScalarNetwork,
    x0: Tensor<2>,
    spec: &FlowSpec,
    threads: usize,
) -> Tensor<2> {
    let parts = on_row_blocks(x0, threads, |x| flow(potential, x, spec, |_, _, _| {}).0);
    Tensor::cat(parts, 0)
}

/// Values of a tensor on the host, in f64.
pub fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.inner()
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("float tensors convert to f64")
}

/// `f*(y)` elementwise (finite where the host-solved shift keeps `y` in the domain).
fn conjugate(f: FDivergence, y: Tensor<2>) -> Tensor<2> {
    match f {
        FDivergence::Kl => y.exp().sub_scalar(1.0),
        FDivergence::ReverseKl => y.neg().log().neg().sub_scalar(1.0),
        FDivergence::Alpha(a) => relu(y.mul_scalar(a - 1.0))
            .powf_scalar(a / (a - 1.0))
            .add_scalar(1.0 / (a - 1.0))
            .div_scalar(a),
        FDivergence::JensenShannon => y.exp().neg().add_scalar(2.0).log().neg(),
        FDivergence::ChiSquared => {
            let c = y.clamp_min(-2.0);
            c.clone() + c.square().div_scalar(4.0)
        }
        FDivergence::W1 => y,
    }
}

/// `Lambda_f(phi; Q)` from the discriminator's values `phi_q` (`[n, 1]`) on a sample of Q.
pub fn log_partition(f: FDivergence, phi_q: Tensor<2>) -> Tensor<1> {
    match f {
        FDivergence::Kl => {
            let shift = phi_q.clone().max().detach();
            let [n, _] = phi_q.dims();
            let centred = phi_q - shift.clone().reshape([1, 1]).expand([n, 1]);
            centred.exp().mean().log() + shift
        }
        FDivergence::W1 => phi_q.mean(),
        _ => {
            let values = host_values(phi_q.clone());
            let weights = vec![1.0 / values.len() as f64; values.len()];
            let nu = f.lambda_nu(&values, &weights).1;
            conjugate(f, phi_q.sub_scalar(nu)).mean().add_scalar(nu)
        }
    }
}

/// `mean phi(x) - Lambda_f(phi; Q)`: the divergence estimate of a discriminator.
pub fn divergence_estimate(f: FDivergence, phi_p: Tensor<2>, phi_q: Tensor<2>) -> Tensor<1> {
    phi_p.mean() - log_partition(f, phi_q)
}

/// `mean relu(|grad phi(z)|^2 - L^2)`: the one-sided gradient penalty.
pub fn gradient_penalty(critic: &impl ScalarNetwork, z: Tensor<2>, lipschitz: f64) -> Tensor<1> {
    let g = critic.input_gradient(z);
    relu(g.square().sum_dim(1).sub_scalar(lipschitz * lipschitz)).mean()
}
