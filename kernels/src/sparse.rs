//! Unstructured-sparse int8 weights: dense and conv kernels whose work is
//! proportional to the number of non-zero weights.
//!
//! Format (CSR): the weight matrix has one row per output channel. For a
//! dense layer the columns are input features; for a convolution a row is
//! split by kernel tap, so `row_ptr` has `out_channels * taps + 1` entries
//! and `index` holds input channels. A tap that falls in the padding skips
//! its whole run of non-zeros. `row_ptr` must start at 0, never decrease,
//! and end at `values.len()`; every index must be below the column count.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::ConvGeometry;
use crate::int8::{DenseGeometry, OutputStage};

/// A compressed-sparse-row int8 matrix.
#[derive(Clone, Copy, Debug)]
pub struct Csr<'a> {
    /// Start of each row in `index` and `values`, plus the end.
    pub row_ptr: &'a [u32],
    /// Column of each non-zero.
    pub index: &'a [u16],
    /// Value of each non-zero.
    pub values: &'a [i8],
}

impl<'a> Csr<'a> {
    /// Checks the row structure for `rows` rows. Column indices are checked
    /// as they are read, which costs no more than a bounds check.
    pub fn check(&self, rows: usize) -> Result<(), KernelError> {
        expect_len("sparse row pointers", self.row_ptr.len(), rows + 1)?;
        expect_len("sparse indices", self.index.len(), self.values.len())?;
        ensure(
            self.row_ptr.first() == Some(&0)
                && self.row_ptr.last().copied() == Some(self.values.len() as u32),
            "sparse row pointers: must run from 0 to the non-zero count",
        )?;
        ensure(
            self.row_ptr.windows(2).all(|w| w[0] <= w[1]),
            "sparse row pointers: must not decrease",
        )
    }

    /// The non-zeros of row `r` as `(columns, values)`.
    #[inline(always)]
    fn row(&self, r: usize) -> (&'a [u16], &'a [i8]) {
        let (start, end) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
        (&self.index[start..end], &self.values[start..end])
    }

    /// The CSR arrays `(row_ptr, index, values)` of a dense row-major matrix
    /// with `columns` columns. Host-side helper.
    #[cfg(feature = "std")]
    pub fn from_dense(
        dense: &[i8],
        columns: usize,
    ) -> (std::vec::Vec<u32>, std::vec::Vec<u16>, std::vec::Vec<i8>) {
        let (mut row_ptr, mut index, mut values) =
            (std::vec![0u32], std::vec::Vec::new(), std::vec::Vec::new());
        for row in dense.chunks_exact(columns) {
            for (c, &v) in row.iter().enumerate().filter(|(_, &v)| v != 0) {
                index.push(c as u16);
                values.push(v);
            }
            row_ptr.push(values.len() as u32);
        }
        (row_ptr, index, values)
    }
}

const BAD_INDEX: KernelError = KernelError::Param {
    what: "sparse indices: must be below the column count",
};

#[inline(always)]
fn sparse_dot(columns: &[u16], values: &[i8], x: &[i8], offset: i32) -> Result<i32, KernelError> {
    let mut acc = 0i32;
    for (&c, &w) in columns.iter().zip(values) {
        let &v = x.get(c as usize).ok_or(BAD_INDEX)?;
        acc = acc.wrapping_add(w as i32 * (v as i32 + offset));
    }
    Ok(acc)
}

/// Checks a sparse dense layer's arguments (lengths and row structure).
pub fn check_fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: usize,
    weights: &Csr,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    let n = g.out_features as usize;
    weights.check(n)?;
    stage.check(n, bias)
}

/// Sparse int8 dense layer: rows are output features, columns input features.
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check_fully_connected(g, stage, input.len(), weights, bias, output.len())?;
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for (o, y) in out.iter_mut().enumerate() {
            let (columns, values) = weights.row(o);
            let acc = sparse_dot(columns, values, x, stage.input_offset)?;
            *y = stage.finish_biased(acc, bias, o);
        }
    }
    Ok(())
}

/// Checks a sparse convolution's arguments (lengths and row structure).
pub fn check_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: usize,
    filter: &Csr,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_conv_io(input, output)?;
    let oc = g.output.c as usize;
    filter.check(oc * g.window.taps())?;
    stage.check(oc, bias)
}

/// Sparse int8 convolution: row `o * taps + tap` holds the non-zero input
/// channels of output channel `o` at that kernel tap.
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check_conv2d(g, stage, input.len(), filter, bias, output.len())?;
    let (ic, oc, taps) = (g.input.c as usize, g.output.c as usize, g.window.taps());
    let mut result = Ok(());
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let mut acc = 0i32;
            g.for_each_tap(b, oy, ox, |tap, at| {
                let (columns, values) = filter.row(o * taps + tap);
                match sparse_dot(columns, values, &input[at * ic..][..ic], stage.input_offset) {
                    Ok(dot) => acc = acc.wrapping_add(dot),
                    Err(e) => result = Err(e),
                }
            });
            output[pixel * oc + o] = stage.finish_biased(acc, bias, o);
        }
    });
    result
}
