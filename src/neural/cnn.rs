//! A convolutional scalar network on square one-channel images, with its
//! input gradient written out as the [`Mlp`]'s is.
//!
//! Stage `l` maps `a_{l-1}` (`c_{l-1}` channels, side `s`) to
//! `z_l = K_l * a_{l-1}` (a `k x k` convolution with "same" padding and no
//! bias), `r_l = relu(z_l)` and `a_l = maxpool_2(r_l)` (side `s/2`). The
//! flattened `a_m`, with the time `t` appended for the potential, enters a
//! dense ReLU head `y = h(a_m, t)`. Backwards, with `g = grad h`,
//!
//! ```text
//! g_{r_l} = M_l * up(g_{a_l}),   g_{a_{l-1}} = K_l^T * g_{r_l}   (transposed convolution),
//! ```
//!
//! where `up` repeats each pooled value over its 2x2 window and the constant
//! mask `M_l` is 1 where `r_l` attains its window's maximum and `z_l > 0`.
//! `grad_x y = g_{a_0}`, and `dy/dt` is the head's last input component.

use burn::tensor::activation::relu;
use burn::tensor::module::{conv_transpose2d, conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Tensor};
use rand::Rng;

use crate::data::normal;
use crate::neural::mlp::{Activation, Mlp, layer_sizes, matrix};
use crate::neural::network::ScalarNetwork;

/// Convolution stages and a dense ReLU head. Parameters are stored as
/// `[K_1, ..., K_m, head...]`, with `K_l` of shape `[c_l, c_{l-1} k^2]`.
#[derive(Debug, Clone)]
pub struct Cnn {
    /// Kernels, then the head's weights and biases.
    pub parameters: Vec<Tensor<2>>,
    /// Image side.
    pub side: usize,
    /// Output channels of each stage.
    pub channels: Vec<usize>,
    /// Kernel side (odd).
    pub kernel: usize,
    /// Whether the last input column is a time appended to the features.
    pub time_input: bool,
}

impl Cnn {
    /// Glorot-normal kernels and weights, zero biases; `head` are the hidden
    /// widths of the dense part.
    #[allow(clippy::too_many_arguments)]
    pub fn glorot<R: Rng + ?Sized>(
        side: usize,
        channels: &[usize],
        kernel: usize,
        head: &[usize],
        time_input: bool,
        rng: &mut R,
        device: &Device,
        dtype: DType,
    ) -> Self {
        let mut parameters = Vec::new();
        let mut c_in = 1;
        for &c_out in channels {
            let (fan_in, fan_out) = (c_in * kernel * kernel, c_out * kernel * kernel);
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
            let k = (0..fan_in * c_out).map(|_| std * normal(rng)).collect();
            parameters.push(matrix(k, c_out, fan_in, device, dtype));
            c_in = c_out;
        }
        let features = c_in * (side >> channels.len()).pow(2);
        let dense = Mlp::glorot(
            &layer_sizes(features + usize::from(time_input), head),
            Activation::Relu,
            rng,
            device,
            dtype,
        );
        parameters.extend(dense.parameters);
        Self {
            parameters,
            side,
            channels: channels.to_vec(),
            kernel,
            time_input,
        }
    }

    fn stages(&self) -> usize {
        self.channels.len()
    }

    /// Kernel `l` as `[c_out, c_in, k, k]`.
    fn kernel_tensor(&self, l: usize) -> Tensor<4> {
        let c_out = self.channels[l];
        let c_in = if l == 0 { 1 } else { self.channels[l - 1] };
        self.parameters[l]
            .clone()
            .reshape([c_out, c_in, self.kernel, self.kernel])
    }

    fn head(&self) -> Mlp {
        Mlp {
            parameters: self.parameters[self.stages()..].to_vec(),
            activation: Activation::Relu,
        }
    }

    fn pixels(&self) -> usize {
        self.side * self.side
    }

    /// The convolution stages on the image part of `x`: the flattened
    /// features `[n, F]` and, if `masks`, each stage's mask `M_l`.
    fn features(&self, x: &Tensor<2>, masks: bool) -> (Tensor<2>, Vec<Tensor<4>>) {
        let n = x.dims()[0];
        let pad = self.kernel / 2;
        let mut a = x
            .clone()
            .narrow(1, 0, self.pixels())
            .reshape([n, 1, self.side, self.side]);
        let mut kept = Vec::new();
        for l in 0..self.stages() {
            let z = conv2d(
                a,
                self.kernel_tensor(l),
                None,
                ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
            );
            let r = relu(z.clone());
            a = max_pool2d(r.clone(), MaxPoolOptions::new([2, 2]));
            if masks {
                let dtype = z.dtype();
                let at_max = r.equal(upsample(a.clone())).float().cast(dtype);
                let active = z.greater_elem(0.0).float().cast(dtype);
                kept.push(at_max * active);
            }
        }
        let [_, c, s, _] = a.dims();
        (a.reshape([n, c * s * s]), kept)
    }

    /// The head's input: the features with the time column appended.
    fn head_input(&self, x: &Tensor<2>, features: Tensor<2>) -> Tensor<2> {
        if self.time_input {
            let t = x.clone().narrow(1, self.pixels(), 1);
            Tensor::cat(vec![features, t], 1)
        } else {
            features
        }
    }
}

/// Repeats every value of `[n, c, h, w]` over a 2x2 block: `[n, c, 2h, 2w]`.
fn upsample(a: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = a.dims();
    a.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

impl ScalarNetwork for Cnn {
    fn parameters(&self) -> &[Tensor<2>] {
        &self.parameters
    }

    fn parameters_mut(&mut self) -> &mut Vec<Tensor<2>> {
        &mut self.parameters
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let (features, _) = self.features(&x, false);
        self.head().forward(self.head_input(&x, features))
    }

    fn forward_with_gradient(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let n = x.dims()[0];
        let (features, masks) = self.features(&x, true);
        let width = features.dims()[1];
        let (y, g_head) = self
            .head()
            .forward_with_gradient(self.head_input(&x, features));
        let c = *self.channels.last().expect("at least one stage");
        let s = self.side >> self.stages();
        let pad = self.kernel / 2;
        let mut g = g_head.clone().narrow(1, 0, width).reshape([n, c, s, s]);
        for l in (0..self.stages()).rev() {
            g = upsample(g) * masks[l].clone();
            g = conv_transpose2d(
                g,
                self.kernel_tensor(l),
                None,
                ConvTransposeOptions::new([1, 1], [pad, pad], [0, 0], [1, 1], 1),
            );
        }
        let grad_x = g.reshape([n, self.pixels()]);
        let gradient = if self.time_input {
            Tensor::cat(vec![grad_x, g_head.narrow(1, width, 1)], 1)
        } else {
            grad_x
        };
        (y, gradient)
    }
}
