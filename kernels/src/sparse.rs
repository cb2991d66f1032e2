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
use crate::quant::ChannelRequant;

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

/// Checks every column index once, so the loops over non-zeros read the
/// input without a bounds check each.
fn check_columns(weights: &Csr, columns: usize) -> Result<(), KernelError> {
    ensure(
        weights.index.iter().all(|&c| (c as usize) < columns),
        "sparse indices: must be below the column count",
    )
    .map_err(|_| BAD_INDEX)
}

/// `sum(w * x[c])` and `sum(w)` over one row's non-zeros, for `P` input
/// vectors at once (each non-zero loaded once for all of them). The input
/// offset is applied once per output as `offset * sum(w)`, not per product.
///
/// Every column must be below each vector's length ([`check_columns`]).
#[inline(always)]
#[allow(unsafe_code)]
fn sparse_dots<const P: usize>(columns: &[u16], values: &[i8], x: [&[i8]; P]) -> ([i32; P], i32) {
    let (mut acc, mut sum) = ([0i32; P], 0i32);
    for (&c, &w) in columns.iter().zip(values) {
        let (c, w) = (c as usize, w as i32);
        for (a, x) in acc.iter_mut().zip(&x) {
            debug_assert!(c < x.len());
            // SAFETY: check_columns checked every column against the
            // vectors' length before any kernel reads them.
            *a = a.wrapping_add(w * unsafe { *x.get_unchecked(c) } as i32);
        }
        sum = sum.wrapping_add(w);
    }
    (acc, sum)
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
    check_columns(weights, g.in_features as usize)?;
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
            let ([acc], sum) = sparse_dots(columns, values, [x]);
            let acc = acc.wrapping_add(sum.wrapping_mul(stage.input_offset));
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
    check_columns(filter, g.input.c as usize)?;
    stage.check(oc, bias)
}

/// Output pixels of one row computed together where their windows lie
/// inside the input: each non-zero weight is loaded once for all of them.
const PIXELS: usize = 4;

/// Sparse int8 convolution: row `o * taps + tap` holds the non-zero input
/// channels of output channel `o` at that kernel tap. Output channel by
/// output channel (its requantization unpacked once), pixels of a row in
/// groups of [`PIXELS`] where their windows lie inside the input.
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check_conv2d(g, stage, input.len(), filter, bias, output.len())?;
    let (oh, ow, oc) = (g.output.h, g.output.w, g.output.c as usize);
    for o in 0..oc {
        let channel = Channel {
            o,
            requant: ChannelRequant::new(stage.requant[o], stage.rounding),
            bias: bias.map_or(0, |b| b[o]),
        };
        for b in 0..g.output.n {
            for oy in 0..oh {
                let mut ox = 0;
                while ox < ow {
                    let first = ((b * oh + oy) * ow + ox) as usize;
                    let at = (b, oy, ox);
                    if ox + PIXELS as u32 <= ow && inside(g, oy, ox, PIXELS as u32) {
                        let y = conv_pixels::<PIXELS>(g, stage, input, filter, &channel, at);
                        for (j, y) in y.into_iter().enumerate() {
                            output[(first + j) * oc + o] = y;
                        }
                        ox += PIXELS as u32;
                    } else {
                        let [y] = conv_pixels::<1>(g, stage, input, filter, &channel, at);
                        output[first * oc + o] = y;
                        ox += 1;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One output channel: its index, requantization and bias.
struct Channel {
    o: usize,
    requant: ChannelRequant,
    bias: i32,
}

/// Whether the windows of output pixels `(oy, ox..ox + n)` lie inside the input.
fn inside(g: &ConvGeometry, oy: u32, ox: u32, n: u32) -> bool {
    let w = &g.window;
    let (last_y, last_x) = (w.kernel_h - 1, w.kernel_w - 1);
    w.in_y(oy, 0) >= 0
        && w.in_y(oy, last_y) < g.input.h as i32
        && w.in_x(ox, 0) >= 0
        && w.in_x(ox + n - 1, last_x) < g.input.w as i32
}

/// Output channel `channel` of pixels `(b, oy, ox..ox + P)` (all inside
/// when `P > 1`) over the taps inside the input, the non-zeros of each tap
/// shared by the `P` pixels.
#[inline(always)]
fn conv_pixels<const P: usize>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    channel: &Channel,
    (b, oy, ox): (u32, u32, u32),
) -> [i8; P] {
    let (ic, taps) = (g.input.c as usize, g.window.taps());
    let step = g.window.stride_w as usize * ic;
    let (mut acc, mut sum) = ([channel.bias; P], 0i32);
    g.for_each_tap(b, oy, ox, |tap, at| {
        let (columns, values) = filter.row(channel.o * taps + tap);
        if columns.is_empty() {
            return;
        }
        let x = core::array::from_fn(|j| &input[at * ic + j * step..][..ic]);
        let (dots, s) = sparse_dots::<P>(columns, values, x);
        for (a, d) in acc.iter_mut().zip(dots) {
            *a = a.wrapping_add(d);
        }
        sum = sum.wrapping_add(s);
    });
    let offset = sum.wrapping_mul(stage.input_offset);
    acc.map(|a| stage.saturate(channel.requant.apply(a.wrapping_add(offset))))
}
