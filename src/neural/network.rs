//! The scalar networks of the flow behind one interface: `y(x)` and its
//! explicit input gradient `grad_x y(x)`, written as forward tensor
//! operations so that reverse mode differentiates losses containing it.
//! [`Network`] is the run-time choice between the dense [`Mlp`] and the
//! convolutional [`Cnn`]; both keep their parameters as one list of 2-D
//! tensors, so Adam and the checkpoint treat them alike.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::neural::cnn::Cnn;
use crate::neural::mlp::Mlp;

/// A scalar-output network with an explicit input gradient.
pub trait ScalarNetwork: Clone + Sync {
    /// The parameter tensors, in a fixed order.
    fn parameters(&self) -> &[Tensor<2>];
    /// The parameter tensors, to update in place.
    fn parameters_mut(&mut self) -> &mut Vec<Tensor<2>>;
    /// The same network with new parameter tensors.
    fn with_parameters(&self, parameters: Vec<Tensor<2>>) -> Self {
        let mut copy = self.clone();
        *copy.parameters_mut() = parameters;
        copy
    }
    /// `y(x)`, shape `[n, 1]`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2>;
    /// `(y(x), grad_x y(x))`, shapes `[n, 1]` and `[n, input]`.
    fn forward_with_gradient(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>);

    /// `grad_x y(x)`, shape `[n, input]`.
    fn input_gradient(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_with_gradient(x).1
    }

    /// A copy whose parameters record gradients (autodiff on, `require_grad`).
    fn tracked(&self) -> Self {
        self.with_parameters(
            self.parameters()
                .iter()
                .map(|p| p.clone().autodiff().require_grad())
                .collect(),
        )
    }
}

/// Which network family a run uses for U and phi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Model {
    /// Dense layers on the flattened point (tanh potential, ReLU critic).
    Mlp,
    /// Convolution stages on a square one-channel image (the paper's image
    /// model): per stage a `kernel x kernel` convolution with "same"
    /// padding, ReLU and 2x2 max-pooling; then dense ReLU layers.
    Cnn {
        /// Output channels of each convolution stage.
        channels: Vec<usize>,
        /// Side of the square convolution kernel (odd).
        kernel: usize,
    },
}

/// The side of a square image of `dim` pixels (image data are square: the
/// loaders reject other shapes), for configs that know only `dim`.
pub fn square_side(dim: usize) -> usize {
    (dim as f64).sqrt().round() as usize
}

impl Model {
    /// The paper's image model: stages of 8 channels with 7x7 kernels (at
    /// most the image side), two where the pooled image keeps at least 4x4
    /// positions (MNIST, 28 -> 14 -> 7), else one (8x8 digits: a second
    /// stage would leave 2x2 positions, 32 features for the whole image;
    /// one stage raised the share of confidently judged digits from 51% to
    /// 62-66%, docs/neural-flow.md).
    pub fn paper_cnn(side: usize) -> Self {
        // the largest odd side up to 7 that fits the image
        let kernel = side.clamp(1, 7) - usize::from(side < 7 && side.is_multiple_of(2));
        let stages = if side.is_multiple_of(4) && side / 4 >= 4 {
            2
        } else {
            1
        };
        Model::Cnn {
            channels: vec![8; stages],
            kernel,
        }
    }

    /// The model's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Model::Mlp => "mlp",
            Model::Cnn { .. } => "cnn",
        }
    }

    /// Checks the model against the data: a CNN needs a square image whose
    /// side halves evenly at every stage.
    pub fn check(&self, image_side: Option<usize>) -> Result<()> {
        let Model::Cnn { channels, kernel } = self else {
            return Ok(());
        };
        let Some(side) = image_side else {
            return Err(Error::invalid(
                "model",
                "cnn",
                "needs image data (digits, mnist, idx:PATH); use --model mlp",
            ));
        };
        if channels.is_empty() || channels.contains(&0) {
            return Err(Error::invalid(
                "channels",
                format!("{channels:?}"),
                "need at least one convolution stage, all channel counts >= 1",
            ));
        }
        if kernel % 2 == 0 || *kernel > side {
            return Err(Error::invalid(
                "kernel",
                kernel,
                &format!("must be odd and at most the image side {side}"),
            ));
        }
        let stages = channels.len() as u32;
        if !side.is_multiple_of(1 << stages) {
            return Err(Error::invalid(
                "channels",
                format!("{channels:?}"),
                &format!(
                    "{stages} pooling stages need an image side divisible by {}, not {side}",
                    1 << stages
                ),
            ));
        }
        Ok(())
    }
}

/// The family alone, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// [`Model::Mlp`].
    Mlp,
    /// [`Model::Cnn`].
    Cnn,
}

impl std::str::FromStr for ModelFamily {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        crate::error::choose(
            "model",
            s,
            &[("mlp", ModelFamily::Mlp), ("cnn", ModelFamily::Cnn)],
        )
    }
}

impl Model {
    /// The family of this model.
    pub fn family(&self) -> ModelFamily {
        match self {
            Model::Mlp => ModelFamily::Mlp,
            Model::Cnn { .. } => ModelFamily::Cnn,
        }
    }

    /// `family` with the CNN's stages and kernel overridden where given
    /// (the rest kept from `self`, or the paper's for `side`). Convolution
    /// settings for the MLP are refused: it would ignore them.
    pub fn with(
        &self,
        family: ModelFamily,
        channels: Option<Vec<usize>>,
        kernel: Option<usize>,
        side: usize,
    ) -> Result<Self> {
        match family {
            ModelFamily::Mlp => {
                if channels.is_some() || kernel.is_some() {
                    return Err(Error::invalid(
                        "model",
                        "mlp",
                        "--channels and --kernel set the cnn model's convolutions; the mlp has none",
                    ));
                }
                Ok(Model::Mlp)
            }
            ModelFamily::Cnn => {
                let base = match self {
                    Model::Cnn { .. } => self.clone(),
                    Model::Mlp => Model::paper_cnn(side),
                };
                let Model::Cnn {
                    channels: c0,
                    kernel: k0,
                } = base
                else {
                    unreachable!("base is a cnn")
                };
                Ok(Model::Cnn {
                    channels: channels.unwrap_or(c0),
                    kernel: kernel.unwrap_or(k0),
                })
            }
        }
    }
}

/// A network of either family, chosen at run time.
#[derive(Debug, Clone)]
pub enum Network {
    /// Dense.
    Mlp(Mlp),
    /// Convolutional.
    Cnn(Cnn),
}

impl ScalarNetwork for Network {
    fn parameters(&self) -> &[Tensor<2>] {
        match self {
            Network::Mlp(n) => n.parameters(),
            Network::Cnn(n) => n.parameters(),
        }
    }

    fn parameters_mut(&mut self) -> &mut Vec<Tensor<2>> {
        match self {
            Network::Mlp(n) => n.parameters_mut(),
            Network::Cnn(n) => n.parameters_mut(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Network::Mlp(n) => n.forward(x),
            Network::Cnn(n) => n.forward(x),
        }
    }

    fn forward_with_gradient(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        match self {
            Network::Mlp(n) => n.forward_with_gradient(x),
            Network::Cnn(n) => n.forward_with_gradient(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_cnn_fits_its_image_and_checks_its_stages() {
        let kernel = |side| match Model::paper_cnn(side) {
            Model::Cnn { kernel, .. } => kernel,
            Model::Mlp => unreachable!(),
        };
        assert_eq!([kernel(28), kernel(8), kernel(6), kernel(5)], [7, 7, 5, 5]);
        let stages = |side| match Model::paper_cnn(side) {
            Model::Cnn { channels, .. } => channels.len(),
            Model::Mlp => unreachable!(),
        };
        assert_eq!([stages(28), stages(16), stages(8), stages(4)], [2, 2, 1, 1]);
        assert!(Model::paper_cnn(28).check(Some(28)).is_ok());
        assert!(Model::paper_cnn(4).check(Some(4)).is_ok());
        assert!(Model::paper_cnn(28).check(None).is_err());
        let three = Model::Cnn {
            channels: vec![8; 3],
            kernel: 7,
        };
        // 28 halves twice, not three times
        assert!(three.check(Some(28)).is_err());
        assert!(Model::Mlp.check(None).is_ok());
        let cnn = Model::Mlp
            .with(ModelFamily::Cnn, None, Some(3), 28)
            .unwrap();
        assert_eq!(
            cnn,
            Model::Cnn {
                channels: vec![8, 8],
                kernel: 3
            }
        );
        assert!(cnn.with(ModelFamily::Mlp, None, Some(3), 28).is_err());
        assert_eq!(
            cnn.with(ModelFamily::Mlp, None, None, 28).unwrap(),
            Model::Mlp
        );
    }
}
