//! Targets Q of the neural flow, as samplers: the 2-D data sets of math.md
//! section 5 zero-padded to d dimensions, the exact cases of math.md section 3
//! (`dirac`: Q = delta_0; `subspace`: case B, Q = N(0, I_2) x delta_0;
//! `shift`: case C, Q = N(2 e_1, I)), the shipped image sets (`digits`, 8x8;
//! `mnist`, 28x28), and point clouds from `npy:PATH` or `idx:PATH` files.
//! The source is always N(0, I_d).
//!
//! Finite data sets are split once: a held-out test set that training never
//! sees, and the rest, from which minibatches are drawn with replacement.

use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{DataSet, normal};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Points stored row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSet {
    /// `len * dim` coordinates.
    pub values: Vec<f64>,
    /// Coordinates per point.
    pub dim: usize,
    /// The class of each point, where the data has them (the shipped images).
    pub labels: Option<Vec<u8>>,
}

impl PointSet {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Point `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Names accepted by [`Target::load`] besides `npy:PATH` and `idx:PATH`.
pub fn target_names() -> String {
    let mut names: Vec<&str> = DataSet::ALL.iter().map(|(n, _)| *n).collect();
    names.extend([
        "dirac", "subspace", "shift", "digits", "mnist", "npy:PATH", "idx:PATH",
    ]);
    names.join(", ")
}

#[derive(Debug, Clone)]
enum Kind {
    Sampler(DataSet),
    Dirac,
    Subspace,
    Shift,
    Points(PointSet),
}

/// A target distribution Q in `dim` dimensions with its held-out test set.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name it was loaded by.
    pub name: String,
    /// Dimension d.
    pub dim: usize,
    /// Side of a square image, for image data.
    pub image_side: Option<usize>,
    kind: Kind,
    test: PointSet,
}

/// Mean of the `shift` target (case C): `2 e_1`.
pub const SHIFT_DISTANCE: f64 = 2.0;

impl Target {
    /// Loads a target by name. `dim` is the requested dimension (samplers
    /// default to 2; files and images fix their own and must agree).
    /// `test_size` bounds the held-out set; `seed` fixes the split.
    pub fn load(name: &str, dim: Option<usize>, test_size: usize, seed: u64) -> Result<Self> {
        let mut split_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_7e57);
        let mut fixed = |points: PointSet, side: Option<usize>| -> Result<Self> {
            if let Some(d) = dim
                && d != points.dim
            {
                return Err(Error::DimensionMismatch {
                    field: format!("--dim for data `{name}`"),
                    expected: points.dim,
                    found: d,
                });
            }
            Ok(Self::from_points(
                name,
                points,
                side,
                test_size,
                &mut split_rng,
            ))
        };
        if let Some(path) = name.strip_prefix("npy:") {
            return fixed(read_npy_points(Path::new(path))?, None);
        }
        if let Some(path) = name.strip_prefix("idx:") {
            let (points, side) = read_idx_images(Path::new(path))?;
            return fixed(points, Some(side));
        }
        match name {
            "digits" => return fixed(shipped_images(DIGITS, 64, 16.0)?, Some(8)),
            "mnist" => return fixed(shipped_images(MNIST, 784, 255.0)?, Some(28)),
            _ => {}
        }
        let kind = match name {
            "dirac" => Kind::Dirac,
            "subspace" => Kind::Subspace,
            "shift" => Kind::Shift,
            _ => Kind::Sampler(DataSet::from_name(name).map_err(|_| Error::UnknownName {
                kind: "data".into(),
                name: name.into(),
                known: target_names(),
            })?),
        };
        let dim = dim.unwrap_or(2);
        let least = if matches!(kind, Kind::Dirac | Kind::Shift) {
            1
        } else {
            2
        };
        if dim < least {
            return Err(Error::invalid(
                "dim",
                dim,
                &format!("data `{name}` needs dim >= {least}"),
            ));
        }
        let mut target = Self {
            name: name.into(),
            dim,
            image_side: None,
            kind,
            test: PointSet {
                values: Vec::new(),
                dim,
                labels: None,
            },
        };
        let values = target.sample(test_size, &mut split_rng);
        target.test = PointSet {
            values,
            dim,
            labels: None,
        };
        Ok(target)
    }

    fn from_points<R: Rng>(
        name: &str,
        points: PointSet,
        image_side: Option<usize>,
        test_size: usize,
        rng: &mut R,
    ) -> Self {
        let n = points.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        // A tenth of the data, at most `test_size`, at least one point when there are two.
        let n_test = (n / 10).clamp(usize::from(n >= 2), test_size.max(1));
        let gather = |idx: &[usize]| PointSet {
            values: idx
                .iter()
                .flat_map(|&i| points.row(i).iter().copied())
                .collect(),
            dim: points.dim,
            labels: points
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
        };
        Self {
            name: name.into(),
            dim: points.dim,
            image_side,
            test: gather(&order[..n_test]),
            kind: Kind::Points(gather(&order[n_test..])),
        }
    }

    /// Whether Q is a finite point set (images, files) rather than a sampler.
    pub fn is_finite(&self) -> bool {
        matches!(self.kind, Kind::Points(_))
    }

    /// The held-out test set.
    pub fn test(&self) -> &PointSet {
        &self.test
    }

    /// The training part of finite data (`None` for samplers).
    pub fn training(&self) -> Option<&PointSet> {
        match &self.kind {
            Kind::Points(points) => Some(points),
            _ => None,
        }
    }

    /// Whether Q lives in the first two coordinates (zero-padded 2-D data and
    /// case B), so the orthogonal coordinates of generated samples should vanish.
    pub fn embedded(&self) -> bool {
        self.dim > 2 && matches!(self.kind, Kind::Sampler(_) | Kind::Subspace)
    }

    /// `n` points of Q (row-major `n x dim`), drawn with replacement from the
    /// training part of finite data.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; n * d];
        for row in out.chunks_mut(d) {
            match &self.kind {
                Kind::Sampler(set) => row[..2].copy_from_slice(&set.sample2(rng)),
                Kind::Dirac => {}
                Kind::Subspace => {
                    row[0] = normal(rng);
                    row[1] = normal(rng);
                }
                Kind::Shift => {
                    for v in row.iter_mut() {
                        *v = normal(rng);
                    }
                    row[0] += SHIFT_DISTANCE;
                }
                Kind::Points(points) => {
                    row.copy_from_slice(points.row(rng.random_range(0..points.len())));
                }
            }
        }
        out
    }
}

/// The source law rho0 of the neural flow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// The standard normal N(0, I).
    Normal,
    /// Independent coordinates uniform on `[low, high]` (the paper's image
    /// source is U(0, 0.5)).
    Uniform {
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
    },
}

impl Source {
    /// `n` points (row-major `n x dim`).
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, dim: usize, rng: &mut R) -> Vec<f64> {
        match *self {
            Source::Normal => source_sample(n, dim, rng),
            Source::Uniform { low, high } => (0..n * dim)
                .map(|_| low + (high - low) * rng.random::<f64>())
                .collect(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Normal => write!(f, "normal"),
            Source::Uniform { low, high } => write!(f, "uniform:{low},{high}"),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = Error;
    /// `normal` or `uniform:LOW,HIGH` with `LOW < HIGH`, both finite.
    fn from_str(s: &str) -> Result<Self> {
        if s == "normal" {
            return Ok(Source::Normal);
        }
        let bad = |why: &str| Error::invalid("source", s, why);
        let Some(ends) = s.strip_prefix("uniform:") else {
            return Err(bad("expected `normal` or `uniform:LOW,HIGH`"));
        };
        let parsed: Vec<f64> = ends
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("LOW and HIGH must be numbers"))?;
        match parsed[..] {
            [low, high] if low.is_finite() && high.is_finite() && low < high => {
                Ok(Source::Uniform { low, high })
            }
            [_, _] => Err(bad("need finite LOW < HIGH")),
            _ => Err(bad("expected two numbers, `uniform:LOW,HIGH`")),
        }
    }
}

/// `n` points of the source N(0, I_dim).
pub fn source_sample<R: Rng + ?Sized>(n: usize, dim: usize, rng: &mut R) -> Vec<f64> {
    (0..n * dim).map(|_| normal(rng)).collect()
}

const DIGITS: &[u8] = include_bytes!("../../data/digits.csv.gz");
const MNIST: &[u8] = include_bytes!("../../data/mnist_5k.csv.gz");

/// A shipped gzip CSV (pixels then a label per row), pixels divided by `scale`.
fn shipped_images(gz: &[u8], pixels: usize, scale: f64) -> Result<PointSet> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("<shipped image data>", e))?;
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Vec<&str> = line.split(',').collect();
        assert_eq!(
            row.len(),
            pixels + 1,
            "shipped data has {pixels} pixels and a label"
        );
        values.extend(
            row[..pixels]
                .iter()
                .map(|v| v.trim().parse::<f64>().expect("integer pixel") / scale),
        );
        labels.push(row[pixels].trim().parse::<u8>().expect("label 0..9"));
    }
    Ok(PointSet {
        values,
        dim: pixels,
        labels: Some(labels),
    })
}

/// Points from a `.npy` file: a 2-D `f64` or `f32` array, one point per row,
/// all values finite.
pub fn read_npy_points(path: &Path) -> Result<PointSet> {
    let bad = |message: String| Error::ArrayFile {
        path: path.to_path_buf(),
        message,
    };
    crate::io::check_npy(path)?;
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    let array: ndarray::ArrayD<f64> = match ndarray_npy::ReadNpyExt::read_npy(open()?) {
        Ok(a) => a,
        Err(first) => {
            let single: ndarray::ArrayD<f32> = ndarray_npy::ReadNpyExt::read_npy(open()?)
                .map_err(|_| bad(format!("{first} (expected a float64 or float32 array)")))?;
            single.mapv(f64::from)
        }
    };
    if array.ndim() != 2 {
        return Err(bad(format!(
            "expected a 2-D array (points x dimension), found shape {:?}",
            array.shape()
        )));
    }
    let (n, dim) = (array.shape()[0], array.shape()[1]);
    if n < 2 || dim == 0 {
        return Err(bad(format!(
            "need at least 2 points of dimension >= 1, found shape [{n}, {dim}]"
        )));
    }
    let values: Vec<f64> = array.iter().copied().collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "non-finite value at point {}, coordinate {}",
            i / dim,
            i % dim
        )));
    }
    Ok(PointSet {
        values,
        dim,
        labels: None,
    })
}

/// Images from an IDX file (the MNIST format, optionally gzipped): magic
/// `0x00000803` (unsigned bytes, 3 dimensions), then count, rows, columns
/// as big-endian u32. Pixels are scaled to [0, 1]. Returns the images and
/// the side length (rows must equal columns).
pub fn read_idx_images(path: &Path) -> Result<(PointSet, usize)> {
    let bad = |message: String| Error::ArrayFile {
        path: path.to_path_buf(),
        message,
    };
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("gzip: {e}")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 16 {
        return Err(bad(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    let word = |i: usize| {
        u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize
    };
    if word(0) != 0x0803 {
        return Err(bad(format!(
            "magic number {:#010x} is not 0x00000803 (unsigned-byte images of 3 dimensions; label files are 0x00000801)",
            word(0)
        )));
    }
    let (count, rows, cols) = (word(1), word(2), word(3));
    if rows != cols || rows == 0 {
        return Err(bad(format!(
            "images are {rows}x{cols}; square images expected"
        )));
    }
    let want = 16 + count * rows * cols;
    if bytes.len() != want {
        return Err(bad(format!(
            "header promises {count} images of {rows}x{cols} ({want} bytes), file has {} bytes",
            bytes.len()
        )));
    }
    if count < 2 {
        return Err(bad(format!("need at least 2 images, found {count}")));
    }
    let values = bytes[16..].iter().map(|&b| f64::from(b) / 255.0).collect();
    Ok((
        PointSet {
            values,
            dim: rows * cols,
            labels: None,
        },
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_images_have_their_shapes_and_range() {
        let digits = Target::load("digits", None, 500, 1).unwrap();
        assert_eq!((digits.dim, digits.image_side), (64, Some(8)));
        let Kind::Points(train) = &digits.kind else {
            panic!("points")
        };
        assert_eq!(train.len() + digits.test().len(), 1797);
        assert_eq!(digits.test().len(), 179);
        assert!(
            train
                .values
                .iter()
                .chain(&digits.test().values)
                .all(|v| (0.0..=1.0).contains(v))
        );
        assert!(train.values.contains(&1.0));
        let mnist = Target::load("mnist", Some(784), 500, 1).unwrap();
        assert_eq!((mnist.dim, mnist.test().len()), (784, 500));
        assert!(matches!(
            Target::load("mnist", Some(7), 500, 1),
            Err(Error::DimensionMismatch {
                expected: 784,
                found: 7,
                ..
            })
        ));
    }

    #[test]
    fn held_out_points_are_never_sampled() {
        let dir = std::env::temp_dir().join(format!("proxflow-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.npy");
        let a = ndarray::Array2::from_shape_fn((50, 3), |(i, j)| (i * 3 + j) as f64);
        ndarray_npy::write_npy(&path, &a).unwrap();
        let t = Target::load(&format!("npy:{}", path.display()), None, 100, 3).unwrap();
        assert_eq!((t.dim, t.test().len()), (3, 5));
        let test_rows: Vec<&[f64]> = (0..5).map(|i| t.test().row(i)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let s = t.sample(2000, &mut rng);
        for row in s.chunks(3) {
            assert!(!test_rows.contains(&row), "a held-out point was drawn");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exact_cases_sample_their_laws() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let sub = Target::load("subspace", Some(7), 10, 0).unwrap();
        assert!(sub.embedded());
        let s = sub.sample(4000, &mut rng);
        assert!(s.chunks(7).all(|r| r[2..].iter().all(|v| *v == 0.0)));
        let var0 = s.chunks(7).map(|r| r[0] * r[0]).sum::<f64>() / 4000.0;
        assert!((var0 - 1.0).abs() < 0.1, "{var0}");
        let shift = Target::load("shift", Some(2), 10, 0).unwrap();
        let m = shift
            .sample(4000, &mut rng)
            .chunks(2)
            .map(|r| r[0])
            .sum::<f64>()
            / 4000.0;
        assert!((m - SHIFT_DISTANCE).abs() < 0.1, "{m}");
        assert!(
            Target::load("dirac", Some(5), 10, 0)
                .unwrap()
                .sample(3, &mut rng)
                .iter()
                .all(|v| *v == 0.0)
        );
        assert!(matches!(
            Target::load("nope", None, 10, 0),
            Err(Error::UnknownName { .. })
        ));
        assert!(matches!(
            Target::load("pinwheel", Some(1), 10, 0),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn idx_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("proxflow-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut good = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        good.extend([0, 255, 51, 102, 255, 0, 0, 0]);
        let path = dir.join("ok.idx");
        std::fs::write(&path, &good).unwrap();
        let (p, side) = read_idx_images(&path).unwrap();
        assert_eq!((p.len(), side, p.values[1], p.values[2]), (2, 2, 1.0, 0.2));
        let cases: [(&[u8], &str); 3] = [
            (&good[..10], "too short"),
            (&[0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2], "magic"),
            (&good[..20], "header promises"),
        ];
        for (bytes, what) in cases {
            std::fs::write(&path, bytes).unwrap();
            let e = read_idx_images(&path).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
