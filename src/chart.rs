//! Generic chart pieces (PNG through plotters, with the embedded DejaVu font
//! so no system font is needed): line charts with log axes, a legend in the
//! emptiest corner, compact tick labels. They know nothing of solvers;
//! [`crate::plot`] draws a `Solution` with them and the neural figures draw
//! training curves.

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Registers the embedded font once, so no system font is needed.
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// The error for a figure that could not be drawn at `path`.
pub fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A short tick label: plain digits from 0.01 to 10^4, else scientific.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-2..1e4).contains(&a) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// One named series of a line chart.
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// The points (x, y).
    pub points: Vec<(f64, f64)>,
}

/// Axes of a line chart.
pub struct Axes<'a> {
    /// Title.
    pub title: &'a str,
    /// x label.
    pub x: &'a str,
    /// y label.
    pub y: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
}

/// A line chart with markers and a legend (log axes drop non-positive points).
pub fn lines(series: &[Series], axes: &Axes, path: &Path) -> Result<()> {
    register_font();
    let keep = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
    let pts: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|(x, y)| keep(*x, axes.log_x) && keep(*y, axes.log_y))
                .collect()
        })
        .collect();
    let all: Vec<(f64, f64)> = pts.iter().flatten().copied().collect();
    if all.is_empty() {
        return Err(plot_error(path, "no finite points to draw"));
    }
    let range = |vals: Vec<f64>, log: bool| {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if log {
            (lo / 1.5, hi * 1.5)
        } else {
            let pad = 0.05 * (hi - lo).max(1e-12 * hi.abs().max(1.0));
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = range(all.iter().map(|p| p.0).collect(), axes.log_x);
    let (y0, y1) = range(all.iter().map(|p| p.1).collect(), axes.log_y);
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        macro_rules! finish {
            ($xr:expr, $yr:expr) => {{
                let mut chart = ChartBuilder::on(&root)
                    .caption(axes.title, ("sans-serif", 22))
                    .margin(14)
                    .x_label_area_size(45)
                    .y_label_area_size(75)
                    .build_cartesian_2d($xr, $yr)?;
                chart
                    .configure_mesh()
                    .x_desc(axes.x)
                    .y_desc(axes.y)
                    .x_label_formatter(&|v| compact(*v))
                    .y_label_formatter(&|v| compact(*v))
                    .draw()?;
                for (k, (s, p)) in series.iter().zip(&pts).enumerate() {
                    let color = Palette99::pick(k).to_rgba();
                    chart
                        .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))?
                        .label(s.label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                    chart.draw_series(p.iter().map(|&q| Circle::new(q, 4, color.filled())))?;
                }
                chart
                    .configure_series_labels()
                    .position(legend_corner(&pts, series.len(), |(x, y)| {
                        (unit(x, x0, x1, axes.log_x), unit(y, y0, y1, axes.log_y))
                    }))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()?;
            }};
        }
        // a log axis over less than two decades gets ticks at powers of 2
        // (grid sizes and spacings): in base 10 it has no labels, or crowded
        // ones where plotters' intermediate ticks meet a power of 10
        let base = |lo: f64, hi: f64| if hi / lo < 100.0 { 2.0 } else { 10.0 };
        let (x_base, y_base) = (base(x0, x1), base(y0, y1));
        match (axes.log_x, axes.log_y) {
            (true, true) => finish!(
                (x0..x1).log_scale().base(x_base),
                (y0..y1).log_scale().base(y_base)
            ),
            (true, false) => finish!((x0..x1).log_scale().base(x_base), y0..y1),
            (false, true) => finish!(x0..x1, (y0..y1).log_scale().base(y_base)),
            (false, false) => finish!(x0..x1, y0..y1),
        }
        Ok(())
    };
    draw().map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Position of `v` in `[lo, hi]` as a fraction (of the logarithms on a log axis).
fn unit(v: f64, lo: f64, hi: f64, log: bool) -> f64 {
    if log {
        (v / lo).ln() / (hi / lo).ln()
    } else {
        (v - lo) / (hi - lo)
    }
}

/// The corner whose legend box (for `labels` entries) covers the fewest
/// points of the polylines `series`, sampled along every segment; `to_unit`
/// maps data to `[0, 1]^2`. The upper right wins ties.
pub fn legend_corner(
    series: &[Vec<(f64, f64)>],
    labels: usize,
    to_unit: impl Fn((f64, f64)) -> (f64, f64),
) -> SeriesLabelPosition {
    let (width, height) = (0.4, (0.06 * (labels + 1) as f64).min(0.9));
    let samples: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| {
            let ends: Vec<(f64, f64)> = s.iter().map(|&p| to_unit(p)).collect();
            let inner: Vec<(f64, f64)> = ends
                .windows(2)
                .flat_map(|w| {
                    (1..20).map(move |k| {
                        let t = k as f64 / 20.0;
                        (
                            w[0].0 + t * (w[1].0 - w[0].0),
                            w[0].1 + t * (w[1].1 - w[0].1),
                        )
                    })
                })
                .collect();
            ends.into_iter().chain(inner)
        })
        .collect();
    let covered = |right: bool, upper: bool| {
        samples
            .iter()
            .filter(|(x, y)| {
                let in_x = if right { *x > 1.0 - width } else { *x < width };
                let in_y = if upper {
                    *y > 1.0 - height
                } else {
                    *y < height
                };
                in_x && in_y
            })
            .count()
    };
    [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ]
    .into_iter()
    .min_by_key(|(_, right, upper)| covered(*right, *upper))
    .map(|(position, _, _)| position)
    .expect("four corners")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_avoids_the_lines() {
        let identity = |p: (f64, f64)| p;
        // A rising line crosses the upper-right and lower-left boxes.
        let rising = vec![vec![(0.0, 0.0), (1.0, 1.0)]];
        assert!(matches!(
            legend_corner(&rising, 2, identity),
            SeriesLabelPosition::UpperLeft
        ));
        // Two falling lines near the top leave only the lower corners free,
        // and one point in the lower left settles it.
        let high = vec![
            vec![(0.0, 1.0), (1.0, 0.9)],
            vec![(0.0, 0.95), (1.0, 0.85), (0.05, 0.05)],
        ];
        assert!(matches!(
            legend_corner(&high, 2, identity),
            SeriesLabelPosition::LowerRight
        ));
        // Log axes are measured in decades.
        assert!((unit(10.0, 1.0, 100.0, true) - 0.5).abs() < 1e-12);
        assert!((unit(2.0, 1.0, 3.0, false) - 0.5).abs() < 1e-12);
    }
}
