//! Adam on a list of parameter tensors (Kingma and Ba, in the form of
//! TensorFlow 1, which the paper's reference code used):
//!
//! ```text
//! m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
//! p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
//! ```
//!
//! The moments are plain tensors, so a checkpoint stores them exactly.

use burn::tensor::Tensor;

/// Adam hyper-parameters and moments.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Learning rate.
    pub learning_rate: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Denominator guard.
    pub epsilon: f64,
    /// Number of updates so far.
    pub step: u64,
    /// First moments, one per parameter.
    pub first: Vec<Tensor<2>>,
    /// Second moments, one per parameter.
    pub second: Vec<Tensor<2>>,
}

impl Adam {
    /// Zero moments shaped like `parameters`.
    pub fn new(learning_rate: f64, betas: (f64, f64), parameters: &[Tensor<2>]) -> Self {
        let zeros = || parameters.iter().map(|p| p.zeros_like()).collect();
        Self {
            learning_rate,
            beta1: betas.0,
            beta2: betas.1,
            epsilon: 1e-8,
            step: 0,
            first: zeros(),
            second: zeros(),
        }
    }

    /// One update of `parameters` (without autodiff) from their gradients.
    pub fn update(&mut self, parameters: &mut [Tensor<2>], gradients: Vec<Tensor<2>>) {
        self.step += 1;
        let t = self.step as i32;
        let rate =
            self.learning_rate * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t));
        for (i, g) in gradients.into_iter().enumerate() {
            let m = self.first[i].clone().mul_scalar(self.beta1)
                + g.clone().mul_scalar(1.0 - self.beta1);
            let v = self.second[i].clone().mul_scalar(self.beta2)
                + g.square().mul_scalar(1.0 - self.beta2);
            let step = m.clone() / v.clone().sqrt().add_scalar(self.epsilon);
            parameters[i] = parameters[i].clone() - step.mul_scalar(rate);
            self.first[i] = m;
            self.second[i] = v;
        }
    }
}
