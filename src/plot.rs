//! Figures (PNG, plotters, embedded DejaVu font): densities rho(., t) with the
//! straight characteristics drawn over them, and heatmaps of U(., 0) and phi*.
//! Plots take a [`Solution`], never a solver.

use crate::chart::{plot_error, register_font};
use crate::error::Result;
use crate::grid::Grid;
use crate::mfg::Solution;
use ndarray::Array2;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use std::path::Path;

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
