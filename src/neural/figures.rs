//! Figures of training runs (PNG, plotters): the training curves of the
//! paper's figure (divergence, kinetic energy, HJB residual and terminal
//! residual against iteration, one chart per quantity, one line per run),
//! generated against target samples, learned paths against the exact
//! straight lines, the density of the orthogonal coordinates of embedded data,
//! and a grid of generated images.

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::chart::{Axes, Series, legend_corner, lines, plot_error, register_font};
use crate::error::Result;
use crate::neural::train::Record;

/// One chart per quantity (`curves-<quantity>.png` in `dir`), one line per
/// run; log axes where the values are positive and span more than a decade.
pub fn training_curves(runs: &[(String, Vec<Record>)], dir: &Path) -> Result<Vec<PathBuf>> {
    type Pick = fn(&Record) -> f64;
    let quantities: [(&str, &str, Pick); 5] = [
        ("divergence", "divergence estimate", |r| r.divergence),
        ("kinetic", "kinetic energy", |r| r.kinetic),
        ("hjb", "RMS HJB residual", |r| r.hjb_residual),
        ("terminal", "RMS terminal residual", |r| r.terminal_residual),
        ("frechet", "judge's Frechet distance", |r| r.frechet),
    ];
    let mut written = Vec::new();
    for (name, label, pick) in quantities {
        // the Fréchet distance exists only for labelled images
        let judged = runs.iter().flat_map(|(_, h)| h).any(|r| !pick(r).is_nan());
        if !judged {
            continue;
        }
        let series: Vec<Series> = runs
            .iter()
            .map(|(run, history)| Series {
                label: run.clone(),
                points: history
                    .iter()
                    .map(|r| (r.iteration as f64, pick(r)))
                    .collect(),
            })
            .collect();
        let values: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .collect();
        // Log axes when nearly all values are positive and span two decades
        // (the few non-positive ones, such as an untrained critic's estimate, are dropped).
        let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
        let (lo, hi) = min_max(positive.iter().copied());
        let log_y = positive.len() as f64 >= 0.9 * values.len() as f64 && hi > 100.0 * lo;
        let title = format!("{label} during training");
        let path = dir.join(format!("curves-{name}.png"));
        lines(
            &series,
            &Axes {
                title: &title,
                x: "generator iteration",
                y: label,
                log_x: false,
                log_y,
            },
            &path,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Smallest and largest of the finite values (infinities when there are none).
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        })
}

fn bounds(points: impl Iterator<Item = (f64, f64)> + Clone) -> (f64, f64, f64, f64) {
    let finite = points.filter(|(x, y)| x.is_finite() && y.is_finite());
    let (x0, x1) = min_max(finite.clone().map(|p| p.0));
    let (y0, y1) = min_max(finite.map(|p| p.1));
    let pad = 0.05 * (x1 - x0).max(y1 - y0).max(1e-9);
    (x0 - pad, x1 + pad, y0 - pad, y1 + pad)
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Pixel size and label-area widths of a chart.
struct Canvas {
    size: (u32, u32),
    label_areas: (u32, u32),
}

/// A square chart of the plane.
const PLANE: Canvas = Canvas {
    size: (800, 800),
    label_areas: (40, 50),
};

/// A chart with axes `[x0, x1] x [y0, y1]` (`bounds`) and a legend of
/// `entries` lines in the corner that covers the fewest points of the
/// polylines `drawn`; `body` draws the series.
fn chart(
    path: &Path,
    canvas: Canvas,
    title: &str,
    labels: (&str, &str),
    bounds: (f64, f64, f64, f64),
    (drawn, entries): (&[Vec<(f64, f64)>], usize),
    body: impl FnOnce(
        &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    ) -> DrawResult,
) -> Result<()> {
    register_font();
    let (x0, x1, y0, y1) = bounds;
    let root = BitMapBackend::new(path, canvas.size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let draw = || -> DrawResult {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(canvas.label_areas.0)
            .y_label_area_size(canvas.label_areas.1)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(labels.0)
            .y_desc(labels.1)
            .draw()?;
        body(&mut chart)?;
        chart
            .configure_series_labels()
            .position(legend_corner(drawn, entries, |(x, y)| {
                ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0))
            }))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    };
    draw().map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Generated against reference points (labelled `reference_label`) in the
/// first two coordinates.
pub fn samples(
    generated: &[f64],
    target: &[f64],
    dim: usize,
    reference_label: &str,
    title: &str,
    path: &Path,
) -> Result<()> {
    let xy = |v: &[f64]| -> Vec<(f64, f64)> { v.chunks(dim).map(|r| (r[0], r[1])).collect() };
    let (g, t) = (xy(generated), xy(target));
    let bounds = bounds(g.iter().chain(&t).copied());
    let drawn: Vec<Vec<(f64, f64)>> = g.iter().chain(&t).map(|&p| vec![p]).collect();
    chart(
        path,
        PLANE,
        title,
        ("x1", "x2"),
        bounds,
        (&drawn, 2),
        |chart| {
            for (points, label, color) in [
                (&t, reference_label, RGBColor(150, 150, 150)),
                (&g, "generated", BLUE),
            ] {
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| Circle::new(p, 1, color.mix(0.5).filled())),
                    )?
                    .label(label)
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
            }
            Ok(())
        },
    )
}

/// A straight segment between two points of a figure.
pub type Segment = ((f64, f64), (f64, f64));

/// Learned paths (polylines through the Euler steps) against the exact
/// straight segments `x0 -> y*(x0)`, in two chosen coordinates.
pub fn trajectories(
    learned: &[Vec<(f64, f64)>],
    exact: &[Segment],
    title: &str,
    labels: (&str, &str),
    path: &Path,
) -> Result<()> {
    let bounds = bounds(
        learned
            .iter()
            .flatten()
            .copied()
            .chain(exact.iter().flat_map(|(a, b)| [*a, *b])),
    );
    let drawn: Vec<Vec<(f64, f64)>> = learned
        .iter()
        .cloned()
        .chain(exact.iter().map(|(a, b)| vec![*a, *b]))
        .collect();
    chart(path, PLANE, title, labels, bounds, (&drawn, 2), |chart| {
        let red = RGBColor(200, 60, 60);
        chart
            .draw_series(
                exact
                    .iter()
                    .map(|(a, b)| PathElement::new(vec![*a, *b], red.stroke_width(3))),
            )?
            .label("exact straight line x0 -> y*(x0)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(3)));
        chart
            .draw_series(
                learned
                    .iter()
                    .map(|p| PathElement::new(p.clone(), BLUE.stroke_width(1))),
            )?
            .label("learned path (Euler steps)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(1)));
        Ok(())
    })
}

/// A histogram (as a density) of `values`, e.g. the orthogonal coordinates of
/// generated samples, which should be a spike at 0.
pub fn histogram(values: &[f64], title: &str, x_label: &str, path: &Path) -> Result<()> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = min_max(finite.iter().copied());
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let bins = 80;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0.0; bins];
    for v in &finite {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1.0;
    }
    let scale = 1.0 / (finite.len().max(1) as f64 * width);
    let top = counts.iter().fold(0.0f64, |a, c| a.max(*c)) * scale;
    let canvas = Canvas {
        size: (900, 600),
        label_areas: (45, 70),
    };
    let bounds = (lo, hi, 0.0, top * 1.05);
    let drawn: Vec<Vec<(f64, f64)>> = counts
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let middle = lo + (k as f64 + 0.5) * width;
            vec![(middle, 0.0), (middle, c * scale)]
        })
        .collect();
    let view = (x_label, "density");
    chart(path, canvas, title, view, bounds, (&drawn, 1), |chart| {
        chart
            .draw_series(counts.iter().enumerate().map(|(k, c)| {
                let a = lo + k as f64 * width;
                Rectangle::new([(a, 0.0), (a + width, c * scale)], BLUE.mix(0.6).filled())
            }))?
            .label(format!("{} values", finite.len()))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.6).filled()));
        Ok(())
    })
}

/// Generated images (pixels in [0, 1], clipped) as a `rows x cols` grid
/// under a title and an optional caption line (the judge's numbers).
pub fn image_grid(
    images: &[f64],
    side: usize,
    rows: usize,
    cols: usize,
    title: &str,
    caption: Option<&str>,
    path: &Path,
) -> Result<()> {
    register_font();
    let scale = (240 / side).max(2) as i32 / 2;
    let cell = side as i32 * scale + 4;
    let top = if caption.is_some() { 70 } else { 50 };
    let (w, h) = (
        (cols as i32 * cell + 20).max(900),
        rows as i32 * cell + top + 10,
    );
    let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            ("sans-serif", 22).into_font(),
        ))?;
        if let Some(caption) = caption {
            root.draw(&Text::new(
                caption.to_string(),
                (10, 38),
                ("sans-serif", 15).into_font(),
            ))?;
        }
        for (k, img) in images.chunks(side * side).take(rows * cols).enumerate() {
            let (r, c) = ((k / cols) as i32, (k % cols) as i32);
            let (ox, oy) = (10 + c * cell, top + r * cell);
            for (p, v) in img.iter().enumerate() {
                let g = (255.0 * (1.0 - v.clamp(0.0, 1.0))) as u8;
                let (i, j) = ((p / side) as i32, (p % side) as i32);
                let x = ox + j * scale;
                let y = oy + i * scale;
                root.draw(&Rectangle::new(
                    [(x, y), (x + scale, y + scale)],
                    RGBColor(g, g, g).filled(),
                ))?;
            }
        }
        Ok(())
    };
    draw().map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Every figure of one run folder: the training curves, generated against
/// target samples (or a grid of generated images), and for embedded data the
/// density of the orthogonal coordinates. Returns the files written.
pub fn run_figures(dir: &Path) -> Result<Vec<PathBuf>> {
    use crate::neural::train::{read_history, read_run_config};
    let config = read_run_config(dir)?;
    let history = read_history(&dir.join("history.csv"))?;
    let mut written = training_curves(&[(config.variant.name().to_string(), history)], dir)?;
    let samples_path = dir.join("samples.npy");
    if !samples_path.exists() {
        return Ok(written);
    }
    let generated = crate::neural::target::read_npy_points(&samples_path)?;
    let target = config.target()?;
    let d = config.dim;
    let path = dir.join("samples.png");
    match target.image_side {
        Some(side) => image_grid(
            &generated.values,
            side,
            8,
            8,
            &format!(
                "generated {} images ({} variant)",
                config.data,
                config.variant.name()
            ),
            crate::neural::train::read_run_judge(dir)?
                .map(|j| j.caption())
                .as_deref(),
            &path,
        )?,
        None => {
            let mut rng =
                <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(config.seed);
            let reference = target.sample(generated.len(), &mut rng);
            let title = format!(
                "{} in {d}-D ({}): generated against target, first two coordinates",
                config.data,
                config.variant.name()
            );
            samples(&generated.values, &reference, d, "target Q", &title, &path)?
        }
    }
    written.push(path);
    if target.embedded() {
        let orthogonal: Vec<f64> = generated
            .values
            .chunks(d)
            .flat_map(|r| r[2..].to_vec())
            .collect();
        let path = dir.join("orthogonal.png");
        histogram(
            &orthogonal,
            &format!(
                "orthogonal coordinates of generated samples ({d}-D {}): a spike at 0",
                config.data
            ),
            "x_i, i >= 3",
            &path,
        )?;
        written.push(path);
    }
    Ok(written)
}
