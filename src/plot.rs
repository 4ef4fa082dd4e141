//! Figures (PNG, plotters, embedded DejaVu font): densities rho(., t) with the
//! straight characteristics drawn over them, and heatmaps of U(., 0) and phi*.
//! Plots take a [`Solution`], never a solver.

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::mfg::Solution;
use ndarray::Array2;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Registers the embedded font once, so no system font is needed.
pub(crate) fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

pub(crate) fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Largest value of a field, for a common colour scale.
fn field_max(fields: &[&Array2<f64>]) -> f64 {
    fields
        .iter()
        .flat_map(|f| f.iter())
        .filter(|v| v.is_finite())
        .fold(0.0f64, |a, b| a.max(*b))
}

/// Density panels at every stored time (2-D: heatmaps with characteristics;
/// 1-D: one chart of curves), written to `path`.
pub fn densities(solution: &Solution, title: &str, path: &Path) -> Result<()> {
    density_panels(solution, &[], title, path)
}

/// Density panels with traced characteristics (`trace::trace` through the
/// solution's U, not assumed straight) drawn up to each panel's time.
pub fn densities_traced(
    solution: &Solution,
    paths: &[crate::mfg::trace::Path],
    title: &str,
    path: &Path,
) -> Result<()> {
    density_panels(solution, paths, title, path)
}

fn density_panels(
    solution: &Solution,
    traced: &[crate::mfg::trace::Path],
    title: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    if solution.grid.dim == 1 {
        return densities_1d(solution, title, path);
    }
    let snaps = &solution.snapshots;
    let panel = 360u32;
    let width = panel * snaps.len() as u32 + 110;
    let root = BitMapBackend::new(path, (width, panel + 70)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (top, body) = root.split_vertically(50);
    top.titled(title, ("sans-serif", 26))
        .map_err(|e| plot_error(path, e))?;
    let (panels, bar) = body.split_horizontally(width - 110);
    let areas = panels.split_evenly((1, snaps.len()));
    let grid = &solution.grid;
    let cell = grid.cell_volume();
    let densities: Vec<Array2<f64>> = snaps.iter().map(|s| &s.rho / cell).collect();
    // point masses would flatten the colour scale: clip at the 99.5th percentile
    let vmax = percentile(&densities, 0.995).max(1e-300);
    for ((area, snap), dens) in areas.iter().zip(snaps).zip(&densities) {
        let caption = format!("t = {:.2}", snap.t);
        heatmap(area, grid, dens, vmax, &caption).map_err(|e| plot_error(path, e))?;
        let theta = snap.t / solution.horizon;
        let lines = match &solution.map {
            _ if !traced.is_empty() => traced_paths(traced, theta),
            Some(map) => characteristics(grid, &solution.rho0, map, theta),
            None => Vec::new(),
        };
        overlay(area, grid, lines).map_err(|e| plot_error(path, e))?;
    }
    colour_bar(&bar, 0.0, vmax, "density").map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// The `p`-quantile of the positive entries of some fields.
fn percentile(fields: &[Array2<f64>], p: f64) -> f64 {
    let mut v: Vec<f64> = fields
        .iter()
        .flat_map(|f| f.iter().copied())
        .filter(|x| *x > 0.0 && x.is_finite())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws a heatmap of `field` (downsampled to at most 160 cells per axis).
fn heatmap(
    area: &Area,
    grid: &Grid,
    field: &Array2<f64>,
    vmax: f64,
    caption: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let hi = grid.hi();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(36)
        .build_cartesian_2d(grid.lo[0]..hi[0], grid.lo[1]..hi[1])?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x1")
        .y_desc("x2")
        .label_style(("sans-serif", 12))
        .draw()?;
    let stride = grid.n[0].max(grid.n[1]).div_ceil(160).max(1);
    let h = grid.h * stride as f64;
    let mut cells = Vec::new();
    for i in (0..grid.n[0]).step_by(stride) {
        for j in (0..grid.n[1]).step_by(stride) {
            let x = grid.node(i, j);
            let v = (field[[i, j]] / vmax).clamp(0.0, 1.0) as f32;
            let c: RGBColor = ViridisRGB.get_color(v);
            cells.push(Rectangle::new(
                [
                    (x[0] - h / 2.0, x[1] - h / 2.0),
                    (x[0] + h / 2.0, x[1] + h / 2.0),
                ],
                c.filled(),
            ));
        }
    }
    chart.draw_series(cells)?;
    Ok(())
}

/// The straight characteristics of a sparse set of agents up to time
/// fraction `theta`, each from its start to its position at that time.
fn characteristics(
    grid: &Grid,
    rho0: &Array2<f64>,
    map: &[Array2<f64>; 2],
    theta: f64,
) -> Vec<Vec<(f64, f64)>> {
    let floor = 1e-4 * rho0.iter().fold(0.0f64, |a, b| a.max(*b));
    let stride = (grid.n[0] / 14).max(1);
    let mut lines = Vec::new();
    for i in (stride / 2..grid.n[0]).step_by(stride) {
        for j in (stride / 2..grid.n[1]).step_by(stride) {
            if rho0[[i, j]] < floor {
                continue;
            }
            let x = grid.node(i, j);
            let y = [map[0][[i, j]], map[1][[i, j]]];
            let at = (x[0] + theta * (y[0] - x[0]), x[1] + theta * (y[1] - x[1]));
            lines.push(vec![(x[0], x[1]), at]);
        }
    }
    lines
}

/// Traced paths up to time fraction `theta`.
fn traced_paths(traced: &[crate::mfg::trace::Path], theta: f64) -> Vec<Vec<(f64, f64)>> {
    traced
        .iter()
        .map(|p| {
            let last = ((p.points.len() - 1) as f64 * theta).round() as usize;
            p.points[..=last].iter().map(|x| (x[0], x[1])).collect()
        })
        .collect()
}

/// Draws polylines over a panel, with a dot where each one ends.
fn overlay(
    area: &Area,
    grid: &Grid,
    polylines: Vec<Vec<(f64, f64)>>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let hi = grid.hi();
    let mut chart = ChartBuilder::on(area)
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(36)
        .build_cartesian_2d(grid.lo[0]..hi[0], grid.lo[1]..hi[1])?;
    let dots: Vec<_> = polylines
        .iter()
        .filter_map(|p| p.last().map(|&at| Circle::new(at, 2, RED.filled())))
        .collect();
    chart.draw_series(
        polylines
            .into_iter()
            .map(|p| PathElement::new(p, WHITE.mix(0.8).stroke_width(1))),
    )?;
    chart.draw_series(dots)?;
    Ok(())
}

/// A short tick label: plain digits from 0.01 to 10^4, else scientific.
fn compact(v: f64) -> String {
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
pub(crate) fn legend_corner(
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

/// A vertical colour bar for values in `[lo, hi]`.
fn colour_bar(
    area: &Area,
    lo: f64,
    hi: f64,
    label: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(40)
        .margin_right(10)
        .y_label_area_size(55)
        .caption(label, ("sans-serif", 14))
        .build_cartesian_2d(0.0..1.0, lo..hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_label_formatter(&|v| format!("{v:.2e}"))
        .label_style(("sans-serif", 11))
        .draw()?;
    let steps = 100;
    chart.draw_series((0..steps).map(|k| {
        let a = lo + (hi - lo) * k as f64 / steps as f64;
        let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
        let c: RGBColor = ViridisRGB.get_color((k as f32 + 0.5) / steps as f32);
        Rectangle::new([(0.0, a), (1.0, b)], c.filled())
    }))?;
    Ok(())
}

fn densities_1d(solution: &Solution, title: &str, path: &Path) -> Result<()> {
    let grid = &solution.grid;
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let cell = grid.h;
    let target = &solution.target / cell;
    let curves: Vec<(f64, Array2<f64>)> = solution
        .snapshots
        .iter()
        .map(|s| (s.t, &s.rho / cell))
        .collect();
    let mut all: Vec<&Array2<f64>> = curves.iter().map(|(_, c)| c).collect();
    all.push(&target);
    let vmax = field_max(&all) * 1.05;
    let hi = grid.hi();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(grid.lo[0]..hi[0], 0.0..vmax)?;
        chart
            .configure_mesh()
            .x_desc("x")
            .y_desc("density")
            .draw()?;
        let n = curves.len();
        for (k, (t, c)) in curves.iter().enumerate() {
            let color: RGBColor = ViridisRGB.get_color(k as f32 / (n.max(2) - 1) as f32);
            chart
                .draw_series(LineSeries::new(
                    (0..grid.n[0]).map(|i| (grid.coord(0, i), c[[i, 0]])),
                    color.stroke_width(2),
                ))?
                .label(format!("rho(t = {t:.2})"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .draw_series(LineSeries::new(
                (0..grid.n[0]).map(|i| (grid.coord(0, i), target[[i, 0]])),
                RED.stroke_width(1),
            ))?
            .label("target Q")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    };
    draw().map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Heatmaps of `U(., 0)` and `phi* = U(., T)` side by side (2-D only).
pub fn potentials(solution: &Solution, path: &Path) -> Result<()> {
    register_font();
    let grid = &solution.grid;
    if grid.dim != 2 {
        return Ok(());
    }
    let root = BitMapBackend::new(path, (1000, 470)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let halves = root.split_evenly((1, 2));
    for (area, (field, name)) in halves.iter().zip([
        (&solution.value0, "U(x, 0)"),
        (&solution.phi, "phi* = U(x, T)"),
    ]) {
        let lo = field.iter().fold(f64::INFINITY, |a, b| a.min(*b));
        let shifted = field.mapv(|v| v - lo);
        let (plot, bar) = area.split_horizontally(400);
        let vmax = field_max(&[&shifted]).max(1e-300);
        heatmap(
            &plot,
            grid,
            &shifted,
            vmax,
            &format!("{name} (minus its minimum)"),
        )
        .map_err(|e| plot_error(path, e))?;
        colour_bar(&bar, 0.0, vmax, "value").map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))
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
