//! Exact Hopf–Lax solution of `-U_t + |grad U|^2 / (2 alpha) = 0`, `U(., T) = g`:
//!
//! ```text
//! U(x, t) = min_y { g(y) + alpha |x - y|^2 / (2 (T - t)) }
//! ```
//!
//! over the grid nodes y, computed in O(N) per time slice by the lower envelope
//! of parabolas (Felzenszwalb–Huttenlocher), rows then columns, rayon across
//! lines. `g = +inf` marks nodes outside the support of g. The minimiser map
//! y*(x) is returned as node indices (`usize::MAX` where U is infinite).

use crate::grid::Grid;
use crate::par::Parallelism;
use ndarray::Array2;

/// Per-line scratch of the lower-envelope kernel.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeScratch {
    vertex: Vec<usize>,
    bound: Vec<f64>,
    values: Vec<f64>,
    out: Vec<f64>,
    arg: Vec<usize>,
}

/// 1-D lower envelope: `out[i] = min_j values[j] + c (i - j)^2`, `arg[i]` the
/// minimising `j`. Works in index units (`c = coefficient * h^2`).
pub fn lower_envelope(c: f64, s: &mut EnvelopeScratch) {
    let n = s.values.len();
    s.vertex.clear();
    s.bound.clear();
    s.out.clear();
    s.arg.clear();
    // lifted values F_q = f_q + c q^2: the parabolas rooted at p < q cross at
    // (F_q - F_p) / (2 c (q - p)); +inf values root no parabola
    let lifted = &mut s.out;
    lifted.extend(
        s.values
            .iter()
            .enumerate()
            .map(|(q, f)| f + c * (q * q) as f64),
    );
    let inv_2c = 0.5 / c;
    for q in 0..n {
        let fq = lifted[q];
        if !fq.is_finite() {
            continue;
        }
        loop {
            let Some(&top) = s.vertex.last() else {
                s.vertex.push(q);
                s.bound.push(f64::NEG_INFINITY);
                break;
            };
            let x = (fq - lifted[top]) * inv_2c / (q - top) as f64;
            if x <= *s.bound.last().expect("same length") {
                s.vertex.pop();
                s.bound.pop();
            } else {
                s.vertex.push(q);
                s.bound.push(x);
                break;
            }
        }
    }
    s.out.clear();
    if s.vertex.is_empty() {
        s.out.resize(n, f64::INFINITY);
        s.arg.resize(n, usize::MAX);
        return;
    }
    let f = &s.values;
    let mut k = 0;
    for i in 0..n {
        while k + 1 < s.vertex.len() && s.bound[k + 1] < i as f64 {
            k += 1;
        }
        let j = s.vertex[k];
        let d = i as f64 - j as f64;
        s.out.push(f[j] + c * d * d);
        s.arg.push(j);
    }
}

/// Result of one Hopf–Lax transform on a grid.
#[derive(Debug, Clone)]
pub struct HopfLax {
    /// `U(x_ij)`.
    pub value: Array2<f64>,
    /// Index of the minimising node along axis 0 (`usize::MAX` where U is infinite).
    pub arg0: Array2<usize>,
    /// Index of the minimising node along axis 1.
    pub arg1: Array2<usize>,
}

/// Workspace of the 2-D transform: the intermediate fields, reused across calls.
#[derive(Debug, Clone)]
pub struct HopfLaxWorkspace {
    partial: Vec<f64>,
    partial_arg: Vec<u32>,
    gathered: Vec<f64>,
    column: Vec<f64>,
    column_arg: Vec<u32>,
}

impl HopfLaxWorkspace {
    /// Workspace for `grid`.
    pub fn new(grid: &Grid) -> Self {
        let len = grid.len();
        HopfLaxWorkspace {
            partial: vec![0.0; len],
            partial_arg: vec![0; len],
            gathered: vec![0.0; len],
            column: vec![0.0; len],
            column_arg: vec![0; len],
        }
    }
}

const NO_ARG: u32 = u32::MAX;

/// Runs the 1-D envelope on every line of `input` (lines of length `len`),
/// writing values and minimiser indices line by line.
fn envelope_lines(
    input: &[f64],
    len: usize,
    c: f64,
    out: &mut [f64],
    arg: &mut [u32],
    par: Parallelism,
) {
    let work = |s: &mut EnvelopeScratch, ((line, o), a): ((&[f64], &mut [f64]), &mut [u32])| {
        s.values.clear();
        s.values.extend_from_slice(line);
        lower_envelope(c, s);
        o.copy_from_slice(&s.out);
        for (dst, src) in a.iter_mut().zip(&s.arg) {
            *dst = if *src == usize::MAX {
                NO_ARG
            } else {
                *src as u32
            };
        }
    };
    match par {
        Parallelism::Sequential => {
            let mut s = EnvelopeScratch::default();
            input
                .chunks(len)
                .zip(out.chunks_mut(len))
                .zip(arg.chunks_mut(len))
                .for_each(|item| work(&mut s, item));
        }
        Parallelism::Rayon => {
            use rayon::prelude::*;
            input
                .par_chunks(len)
                .zip(out.par_chunks_mut(len))
                .zip(arg.par_chunks_mut(len))
                .with_min_len(8)
                .for_each_init(EnvelopeScratch::default, work);
        }
    }
}

/// `U = min_y g(y) + coefficient |x - y|^2` on the grid nodes, with minimisers.
/// `coefficient = alpha / (2 (T - t))`.
pub fn hopf_lax(
    grid: &Grid,
    g: &Array2<f64>,
    coefficient: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) -> HopfLax {
    let mut out = HopfLax {
        value: grid.zeros(),
        arg0: Array2::from_elem(grid.shape(), usize::MAX),
        arg1: Array2::from_elem(grid.shape(), usize::MAX),
    };
    hopf_lax_into(grid, g, coefficient, ws, par, &mut out);
    out
}

/// The envelopes along axis 1 (into `ws.partial`), then along axis 0 on
/// the columns (into `ws.column`, column by column).
fn both_passes(
    grid: &Grid,
    g: &Array2<f64>,
    coefficient: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
) {
    let (n0, n1) = grid.shape();
    let c = coefficient * grid.h * grid.h;
    let g = g.as_standard_layout();
    let gs = g.as_slice().expect("standard layout");
    // pass 1: along axis 1 (contiguous rows of length n1)
    if n1 > 1 {
        envelope_lines(gs, n1, c, &mut ws.partial, &mut ws.partial_arg, par);
    } else {
        ws.partial.copy_from_slice(gs);
        ws.partial_arg.fill(0);
    }
    // pass 2: along axis 0, on columns gathered into contiguous lines
    ws.gathered.resize(n0 * n1, 0.0);
    for (i, row) in ws.partial.chunks_exact(n1).enumerate() {
        for (j, v) in row.iter().enumerate() {
            ws.gathered[j * n0 + i] = *v;
        }
    }
    envelope_lines(&ws.gathered, n0, c, &mut ws.column, &mut ws.column_arg, par);
}

/// The values of [`hopf_lax`] only, into `value` (no minimisers gathered).
pub fn hopf_lax_values_into(
    grid: &Grid,
    g: &Array2<f64>,
    coefficient: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
    value: &mut Array2<f64>,
) {
    let (n0, n1) = grid.shape();
    both_passes(grid, g, coefficient, ws, par);
    let value = value.as_slice_mut().expect("standard layout");
    for (j, col) in ws.column.chunks_exact(n0).enumerate() {
        for (i, v) in col.iter().enumerate() {
            value[i * n1 + j] = *v;
        }
    }
}

/// [`hopf_lax`] writing into preallocated output (no allocation after the first call).
pub fn hopf_lax_into(
    grid: &Grid,
    g: &Array2<f64>,
    coefficient: f64,
    ws: &mut HopfLaxWorkspace,
    par: Parallelism,
    out: &mut HopfLax,
) {
    let (n0, n1) = grid.shape();
    both_passes(grid, g, coefficient, ws, par);
    let value = out.value.as_slice_mut().expect("standard layout");
    let arg0 = out.arg0.as_slice_mut().expect("standard layout");
    let arg1 = out.arg1.as_slice_mut().expect("standard layout");
    for (j, (col, col_arg)) in ws
        .column
        .chunks_exact(n0)
        .zip(ws.column_arg.chunks_exact(n0))
        .enumerate()
    {
        for (i, (v, a)) in col.iter().zip(col_arg).enumerate() {
            let k = i * n1 + j;
            value[k] = *v;
            if *a == NO_ARG {
                arg0[k] = usize::MAX;
                arg1[k] = usize::MAX;
            } else {
                let a = *a as usize;
                arg0[k] = a;
                arg1[k] = ws.partial_arg[a * n1 + j] as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_brute_force() {
        let vals: Vec<f64> = (0..57)
            .map(|k| ((k * 37) % 11) as f64 * 0.3 - (k as f64 * 0.1).sin())
            .collect();
        let mut s = EnvelopeScratch {
            values: vals.clone(),
            ..Default::default()
        };
        lower_envelope(0.07, &mut s);
        for i in 0..vals.len() {
            let (best, arg) = (0..vals.len())
                .map(|j| (vals[j] + 0.07 * (i as f64 - j as f64).powi(2), j))
                .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a });
            assert!((s.out[i] - best).abs() < 1e-12);
            assert!(
                (vals[s.arg[i]] + 0.07 * (i as f64 - s.arg[i] as f64).powi(2) - best).abs() < 1e-12
            );
            let _ = arg;
        }
    }

    #[test]
    fn two_d_transform_matches_brute_force() {
        let grid = Grid::on_box(&[-1.0, -1.0], &[1.0, 1.0], 12).unwrap();
        let g = grid.evaluate(|x| (3.0 * x[0]).sin() + x[1].abs() + 0.5 * x[0] * x[1]);
        let mut ws = HopfLaxWorkspace::new(&grid);
        let hl = hopf_lax(&grid, &g, 0.8, &mut ws, Parallelism::Sequential);
        for ((i, j), u) in hl.value.indexed_iter() {
            let x = grid.node(i, j);
            let brute = g
                .indexed_iter()
                .map(|((a, b), v)| {
                    let y = grid.node(a, b);
                    v + 0.8 * ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2))
                })
                .fold(f64::INFINITY, f64::min);
            assert!((u - brute).abs() < 1e-12, "({i},{j}) {u} vs {brute}");
            let (a, b) = (hl.arg0[[i, j]], hl.arg1[[i, j]]);
            let y = grid.node(a, b);
            let via = g[[a, b]] + 0.8 * ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2));
            assert!((via - brute).abs() < 1e-12);
        }
    }
}
