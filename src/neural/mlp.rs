//! Multilayer perceptrons with an explicit input gradient.
//!
//! For `h_0 = x`, `z_l = h_{l-1} W_l + b_l`, `h_l = sigma(z_l)` and the scalar
//! output `y = h_n W_out + b_out`, the input gradient is the backward pass
//! written as forward tensor operations:
//!
//! ```text
//! g_n = W_out^T,   g_{l-1} = (g_l * sigma'(z_l)) W_l^T,   grad_x y = g_0,
//! ```
//!
//! with `sigma' = 1 - h^2` for tanh and the mask `z > 0` for ReLU. Because
//! `grad_x y` is an ordinary expression in the weights, first-order reverse
//! mode differentiates losses that contain it (the kinetic energy, the gradient
//! penalty) with respect to the weights.

use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::Rng;

use crate::data::normal;
use crate::neural::network::ScalarNetwork;

/// Hidden-layer nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `tanh`, smooth (the potential U).
    Tanh,
    /// `max(0, x)` (the discriminator phi).
    Relu,
}

/// A scalar-output MLP. Parameters are stored as `[W_1, b_1, ..., W_out, b_out]`
/// with `W_l` of shape `[in, out]` and `b_l` of shape `[1, out]`.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Weights and biases, alternating.
    pub parameters: Vec<Tensor<2>>,
    /// Hidden nonlinearity.
    pub activation: Activation,
}

/// Layer sizes `[input, hidden..., 1]`.
pub fn layer_sizes(input: usize, hidden: &[usize]) -> Vec<usize> {
    let mut sizes = Vec::with_capacity(hidden.len() + 2);
    sizes.push(input);
    sizes.extend_from_slice(hidden);
    sizes.push(1);
    sizes
}

/// A host matrix as a tensor of the given dtype.
pub fn matrix(
    values: Vec<f64>,
    rows: usize,
    cols: usize,
    device: &Device,
    dtype: DType,
) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), (device, dtype))
}

/// `tanh z = 1 - 2 / (e^{2z} + 1)`: exact in exact arithmetic, saturating
/// correctly at both ends, and 2.5x faster than the CPU backend's `tanh`,
/// which dominated the flow's cost.
pub fn tanh(z: Tensor<2>) -> Tensor<2> {
    z.mul_scalar(2.0)
        .exp()
        .add_scalar(1.0)
        .recip()
        .mul_scalar(-2.0)
        .add_scalar(1.0)
}

impl Mlp {
    /// Glorot-normal weights (std `sqrt(2/(fan_in + fan_out))`), zero biases.
    pub fn glorot<R: Rng + ?Sized>(
        sizes: &[usize],
        activation: Activation,
        rng: &mut R,
        device: &Device,
        dtype: DType,
    ) -> Self {
        let mut parameters = Vec::with_capacity(2 * (sizes.len() - 1));
        for pair in sizes.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
            let w = (0..fan_in * fan_out).map(|_| std * normal(rng)).collect();
            parameters.push(matrix(w, fan_in, fan_out, device, dtype));
            parameters.push(matrix(vec![0.0; fan_out], 1, fan_out, device, dtype));
        }
        Self {
            parameters,
            activation,
        }
    }

    /// Number of layers (hidden + output).
    pub fn depth(&self) -> usize {
        self.parameters.len() / 2
    }

    /// Input dimension.
    pub fn input_dim(&self) -> usize {
        self.parameters[0].dims()[0]
    }

    fn sigma(&self, z: Tensor<2>) -> Tensor<2> {
        match self.activation {
            Activation::Tanh => tanh(z),
            Activation::Relu => relu(z),
        }
    }
}

impl ScalarNetwork for Mlp {
    fn parameters(&self) -> &[Tensor<2>] {
        &self.parameters
    }

    fn parameters_mut(&mut self) -> &mut Vec<Tensor<2>> {
        &mut self.parameters
    }

    /// `y(x)`, shape `[n, 1]`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut h = x;
        let last = self.depth() - 1;
        for l in 0..self.depth() {
            let z = h.matmul(self.parameters[2 * l].clone()) + self.parameters[2 * l + 1].clone();
            h = if l < last { self.sigma(z) } else { z };
        }
        h
    }

    /// `(y(x), grad_x y(x))`, shapes `[n, 1]` and `[n, input]`.
    fn forward_with_gradient(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let last = self.depth() - 1;
        // sigma'(z_l) of every hidden layer, kept for the backward sweep.
        let mut slopes = Vec::with_capacity(last);
        let mut h = x;
        for l in 0..last {
            let z = h.matmul(self.parameters[2 * l].clone()) + self.parameters[2 * l + 1].clone();
            let (next, slope) = match self.activation {
                Activation::Tanh => {
                    let t = tanh(z);
                    let slope = t.clone().square().neg().add_scalar(1.0);
                    (t, slope)
                }
                Activation::Relu => {
                    // The mask is a constant: its derivative is zero almost everywhere.
                    let mask = z.clone().greater_elem(0.0).float().cast(z.dtype());
                    (relu(z), mask)
                }
            };
            slopes.push(slope);
            h = next;
        }
        let w_out = self.parameters[2 * last].clone();
        let y = h.matmul(w_out.clone()) + self.parameters[2 * last + 1].clone();
        // g_n * sigma'(z_n) with g_n = W_out^T broadcast over the batch.
        let mut g = slopes.pop().expect("at least one hidden layer") * w_out.transpose();
        for l in (0..last).rev() {
            g = g.matmul(self.parameters[2 * l].clone().transpose());
            if l > 0 {
                g = g * slopes[l - 1].clone();
            }
        }
        (y, g)
    }
}
