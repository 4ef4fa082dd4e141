//! The digit judge: does a generated image look like a digit?
//!
//! A one-hidden-layer classifier `p(c | x) = softmax(relu(x W_1 + b_1) W_2 + b_2)`
//! is trained at run time (cross-entropy, Adam, burn autodiff) on the
//! labelled training part of the shipped images and scored on the held-out
//! part. For generated images it reports the fraction classified with
//! confidence `max_c p(c | x) >= 0.9`, the class histogram, the Fréchet
//! distance between Gaussians fitted to the hidden features `h(x)`,
//!
//! ```text
//! FD = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_r^{1/2} S_g S_r^{1/2})^{1/2}),
//! ```
//!
//! against held-out images (with the floor of a real set of the same size),
//! and the mean distance to the nearest training image (a memorisation check,
//! set against the held-out images' own).

use burn::tensor::activation::{log_softmax, relu, softmax};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::neural::adam::Adam;
use crate::neural::compute::Compute;
use crate::neural::flow::host_values;
use crate::neural::mlp::{Activation, Mlp, layer_sizes, matrix};
use crate::neural::network::ScalarNetwork;
use crate::neural::target::PointSet;

/// Number of classes (digits 0-9).
pub const CLASSES: usize = 10;
/// Confidence at which an image counts as a recognised digit.
pub const CONFIDENT: f64 = 0.9;
/// Share of the images a class needs to count as present.
pub const PRESENT: f64 = 0.03;
const HIDDEN: usize = 64;
const STEPS: usize = 1500;
const BATCH: usize = 64;
const LEARNING_RATE: f64 = 2e-3;

/// What the judge says of a set of generated images (`summary.json`, `judge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeReport {
    /// Accuracy of the classifier on the held-out real images.
    pub heldout_accuracy: f64,
    /// Generated images judged.
    pub samples: usize,
    /// Share of generated images classified with confidence >= 0.9.
    pub confident_fraction: f64,
    /// Share of generated images in each class.
    pub class_histogram: Vec<f64>,
    /// Classes holding at least 3% of the generated images.
    pub classes_present: usize,
    /// Fréchet distance of the hidden features, generated against held-out.
    pub frechet: f64,
    /// The same for a real training subset of the held-out set's size.
    pub frechet_floor: f64,
    /// Mean distance of a generated image to its nearest training image.
    pub nearest_train_distance: f64,
    /// Mean distance of a held-out image to its nearest training image.
    pub heldout_nearest_train_distance: f64,
}

/// A trained classifier with its reference sets.
pub struct Judge {
    classifier: Mlp,
    compute: Compute,
    training: PointSet,
    heldout: PointSet,
    heldout_features: Vec<f64>,
    /// Accuracy on the held-out images.
    pub heldout_accuracy: f64,
    frechet_floor: f64,
    heldout_nearest: f64,
}

impl Judge {
    /// Trains on `training` and scores on `heldout` (both labelled); `seed`
    /// fixes the initialisation and the minibatches.
    pub fn train(training: &PointSet, heldout: &PointSet, seed: u64) -> Result<Self> {
        let (Some(labels), Some(heldout_labels)) = (&training.labels, &heldout.labels) else {
            return Err(Error::invalid(
                "judge",
                "unlabelled data",
                "the digit judge needs labelled images (the shipped digits or mnist)",
            ));
        };
        let compute = Compute::cpu();
        let (device, dtype, d) = (&compute.device, compute.dtype, training.dim);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1d9e);
        let mut classifier = Mlp::glorot(
            &layer_sizes(d, &[HIDDEN]),
            Activation::Relu,
            &mut rng,
            device,
            dtype,
        );
        // the output layer is [HIDDEN, 1]; widen it to the classes
        let out_w = (0..HIDDEN * CLASSES)
            .map(|_| (2.0 / (HIDDEN + CLASSES) as f64).sqrt() * crate::data::normal(&mut rng))
            .collect();
        classifier.parameters[2] = matrix(out_w, HIDDEN, CLASSES, device, dtype);
        classifier.parameters[3] = matrix(vec![0.0; CLASSES], 1, CLASSES, device, dtype);
        let mut adam = Adam::new(LEARNING_RATE, (0.9, 0.999), classifier.parameters());
        let n = training.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut at = n;
        for _ in 0..STEPS {
            if at + BATCH > n {
                order.shuffle(&mut rng);
                at = 0;
            }
            let rows = &order[at..at + BATCH.min(n)];
            at += BATCH;
            let x: Vec<f64> = rows
                .iter()
                .flat_map(|&i| training.row(i).to_vec())
                .collect();
            let mut onehot = vec![0.0; rows.len() * CLASSES];
            for (k, &i) in rows.iter().enumerate() {
                onehot[k * CLASSES + usize::from(labels[i])] = 1.0;
            }
            let tracked = classifier.tracked();
            let logits = tracked.forward(matrix(x, rows.len(), d, device, dtype));
            let target = matrix(onehot, rows.len(), CLASSES, device, dtype);
            let loss = (log_softmax(logits, 1) * target).sum_dim(1).mean().neg();
            let grads = loss.backward();
            let g = tracked
                .parameters()
                .iter()
                .map(|p| p.grad(&grads).expect("every parameter enters the loss"))
                .collect();
            adam.update(&mut classifier.parameters, g);
        }
        let mut judge = Self {
            classifier,
            compute,
            training: training.clone(),
            heldout: heldout.clone(),
            heldout_features: Vec::new(),
            heldout_accuracy: 0.0,
            frechet_floor: f64::NAN,
            heldout_nearest: f64::NAN,
        };
        let (probabilities, features) = judge.classify(&heldout.values);
        let correct = probabilities
            .chunks(CLASSES)
            .zip(heldout_labels)
            .filter(|(p, l)| argmax(p) == usize::from(**l))
            .count();
        judge.heldout_accuracy = correct as f64 / heldout.len() as f64;
        judge.heldout_features = features;
        // the floor: a real (training) set of the held-out set's size
        let m = heldout.len().min(training.len());
        let real: Vec<f64> = training.values[..m * d].to_vec();
        judge.frechet_floor = judge.frechet(&real);
        judge.heldout_nearest = mean_nearest_distance(&heldout.values, &training.values, d);
        Ok(judge)
    }

    /// Class probabilities `[n, 10]` and hidden features `[n, 64]`, row-major.
    fn classify(&self, images: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.training.dim;
        let n = images.len() / d;
        let (device, dtype) = (&self.compute.device, self.compute.dtype);
        let p = &self.classifier.parameters;
        let x = matrix(images.to_vec(), n, d, device, dtype);
        let hidden = relu(x.matmul(p[0].clone()) + p[1].clone());
        let logits = hidden.clone().matmul(p[2].clone()) + p[3].clone();
        (host_values(softmax(logits, 1)), host_values(hidden))
    }

    /// Fréchet distance of `images`' hidden features to the held-out images'
    /// (at most as many images as the held-out set has are used).
    pub fn frechet(&self, images: &[f64]) -> f64 {
        let d = self.training.dim;
        let n = (images.len() / d).min(self.heldout.len());
        let (_, features) = self.classify(&images[..n * d]);
        frechet_distance(&features, &self.heldout_features, HIDDEN)
    }

    /// The full report on generated images (row-major, pixels in [0, 1]).
    pub fn assess(&self, generated: &[f64]) -> JudgeReport {
        let d = self.training.dim;
        let n = generated.len() / d;
        let (probabilities, _) = self.classify(generated);
        let mut histogram = vec![0.0; CLASSES];
        let mut confident = 0;
        for p in probabilities.chunks(CLASSES) {
            let c = argmax(p);
            histogram[c] += 1.0 / n as f64;
            if p[c] >= CONFIDENT {
                confident += 1;
            }
        }
        JudgeReport {
            heldout_accuracy: self.heldout_accuracy,
            samples: n,
            confident_fraction: confident as f64 / n as f64,
            classes_present: histogram.iter().filter(|&&h| h >= PRESENT).count(),
            class_histogram: histogram,
            frechet: self.frechet(generated),
            frechet_floor: self.frechet_floor,
            nearest_train_distance: mean_nearest_distance(generated, &self.training.values, d),
            heldout_nearest_train_distance: self.heldout_nearest,
        }
    }
}

impl JudgeReport {
    /// One line for a figure caption or the console.
    pub fn caption(&self) -> String {
        format!(
            "judge (held-out accuracy {:.1}%): {:.0}% confident, {} classes >= 3%, Frechet {:.2} (floor {:.2}), nearest-train {:.2} (held-out {:.2})",
            100.0 * self.heldout_accuracy,
            100.0 * self.confident_fraction,
            self.classes_present,
            self.frechet,
            self.frechet_floor,
            self.nearest_train_distance,
            self.heldout_nearest_train_distance
        )
    }
}

fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Mean and covariance of `n x k` row-major samples.
fn moments(x: &[f64], k: usize) -> (Vec<f64>, DMatrix<f64>) {
    let n = x.len() / k;
    let mut mean = vec![0.0; k];
    for row in x.chunks(k) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f64;
        }
    }
    let mut cov = DMatrix::zeros(k, k);
    for row in x.chunks(k) {
        let c: Vec<f64> = row.iter().zip(&mean).map(|(v, m)| v - m).collect();
        for i in 0..k {
            for j in 0..k {
                cov[(i, j)] += c[i] * c[j] / (n.max(2) - 1) as f64;
            }
        }
    }
    (mean, cov)
}

/// The symmetric square root of a symmetric positive semi-definite matrix
/// (negative round-off eigenvalues clipped to zero).
fn sqrt_psd(m: DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(m);
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// Fréchet distance between Gaussians fitted to two row-major sample sets of width `k`.
pub fn frechet_distance(x: &[f64], y: &[f64], k: usize) -> f64 {
    let (mx, sx) = moments(x, k);
    let (my, sy) = moments(y, k);
    let shift: f64 = mx.iter().zip(&my).map(|(a, b)| (a - b).powi(2)).sum();
    let root_y = sqrt_psd(sy.clone());
    let middle = &root_y * &sx * &root_y;
    let middle = (&middle + middle.transpose()) * 0.5;
    let cross: f64 = SymmetricEigen::new(middle)
        .eigenvalues
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    (shift + sx.trace() + sy.trace() - 2.0 * cross).max(0.0)
}

/// Mean over the rows of `x` of the Euclidean distance to the nearest row of `reference`.
pub fn mean_nearest_distance(x: &[f64], reference: &[f64], d: usize) -> f64 {
    let n = x.len() / d;
    let total: f64 = x
        .par_chunks(d)
        .map(|row| {
            reference
                .chunks(d)
                .map(|r| {
                    row.iter()
                        .zip(r)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .sum();
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frechet_distance_of_gaussians_with_known_moments() {
        // two point sets whose sample means differ by (3, 4) and whose
        // covariances are equal: FD = 25 exactly
        let x = vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let y: Vec<f64> = x.chunks(2).flat_map(|r| [r[0] + 3.0, r[1] + 4.0]).collect();
        assert!((frechet_distance(&x, &y, 2) - 25.0).abs() < 1e-9);
        // scaling one set by 2 (same mean 0): FD = tr(S + 4S - 2 * 2S) = tr S
        let centred: Vec<f64> = x.iter().map(|v| v - 0.5).collect();
        let doubled: Vec<f64> = centred.iter().map(|v| 2.0 * v).collect();
        let trace = 2.0 * (4.0 * 0.25) / 3.0;
        assert!((frechet_distance(&centred, &doubled, 2) - trace).abs() < 1e-9);
    }

    #[test]
    fn nearest_distances() {
        let reference = vec![0.0, 0.0, 3.0, 4.0];
        let x = vec![0.0, 1.0, 3.0, 4.0];
        assert!((mean_nearest_distance(&x, &reference, 2) - 0.5).abs() < 1e-12);
    }
}
