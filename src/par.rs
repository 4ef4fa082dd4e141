//! Explicit parallelism for the hot kernels: each kernel takes a
//! [`Parallelism`] and sweeps grid rows either in order or with rayon.

use ndarray::{Array2, ArrayViewMut1, Zip};

/// How a kernel sweeps the rows of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parallelism {
    /// One thread, in order (deterministic and cheapest for small grids).
    Sequential,
    /// rayon's global pool.
    #[default]
    Rayon,
}

impl Parallelism {
    /// Calls `f(i, a_row_i, b_row_i)` for every row `i` of two equally shaped arrays.
    pub fn rows2<F>(self, a: &mut Array2<f64>, b: &mut Array2<f64>, f: F)
    where
        F: Fn(usize, ArrayViewMut1<f64>, ArrayViewMut1<f64>) + Sync + Send,
    {
        let zip = Zip::indexed(a.rows_mut()).and(b.rows_mut());
        match self {
            Parallelism::Sequential => zip.for_each(&f),
            Parallelism::Rayon => zip.par_for_each(f),
        }
    }

    /// Calls `f(i, rows_i)` for every row `i` of four equally shaped arrays.
    pub fn rows4<F>(self, a: &mut [Array2<f64>; 4], f: F)
    where
        F: Fn(usize, [ArrayViewMut1<f64>; 4]) + Sync + Send,
    {
        let [a0, a1, a2, a3] = a;
        let zip = Zip::indexed(a0.rows_mut())
            .and(a1.rows_mut())
            .and(a2.rows_mut())
            .and(a3.rows_mut());
        let g = |i, r0, r1, r2, r3| f(i, [r0, r1, r2, r3]);
        match self {
            Parallelism::Sequential => zip.for_each(g),
            Parallelism::Rayon => zip.par_for_each(g),
        }
    }

    /// Calls `f(i, row_i)` for every row `i`.
    pub fn rows<F>(self, a: &mut Array2<f64>, f: F)
    where
        F: Fn(usize, ArrayViewMut1<f64>) + Sync + Send,
    {
        let zip = Zip::indexed(a.rows_mut());
        match self {
            Parallelism::Sequential => zip.for_each(&f),
            Parallelism::Rayon => zip.par_for_each(f),
        }
    }

    /// Calls `f(scratch, row_i)` for every row of `a`, with one `scratch()`
    /// per thread (one in all when sequential) instead of one per row.
    pub fn rows_with_scratch<S, I, F>(self, a: &mut Array2<f64>, scratch: I, f: F)
    where
        I: Fn() -> S + Sync + Send,
        F: Fn(&mut S, ArrayViewMut1<f64>) + Sync + Send,
    {
        match self {
            Parallelism::Sequential => {
                let mut s = scratch();
                a.rows_mut().into_iter().for_each(|row| f(&mut s, row));
            }
            Parallelism::Rayon => {
                use ndarray::parallel::prelude::*;
                a.axis_iter_mut(ndarray::Axis(0))
                    .into_par_iter()
                    .for_each_init(scratch, f);
            }
        }
    }

    /// `f(k)` for `k` in `0..n`, in order or with rayon; the results come
    /// back in order.
    pub fn map<U, F>(self, n: usize, f: F) -> Vec<U>
    where
        U: Send,
        F: Fn(usize) -> U + Sync + Send,
    {
        use rayon::prelude::*;
        match self {
            Parallelism::Sequential => (0..n).map(f).collect(),
            Parallelism::Rayon => (0..n).into_par_iter().map(f).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Parallelism;

    #[test]
    fn map_returns_the_same_in_order_either_way() {
        let run = |par: Parallelism| par.map(1000, |k| (k as f64 * 0.1).sin());
        let expected: Vec<f64> = (0..1000).map(|k| (k as f64 * 0.1).sin()).collect();
        assert_eq!(run(Parallelism::Sequential), expected);
        assert_eq!(run(Parallelism::Rayon), expected);
    }
}
