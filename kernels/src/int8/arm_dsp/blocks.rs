//! The block-sparse matrix product on DSP cores by quads of pixels: four
//! input rows are widened into one interleaved buffer (as the dense
//! convolution's quads are), and each stored block of a row is loaded and
//! widened once for the four
//! ([`block_dots4`](super::sparse::block_dots4)). Fewer pixels than a
//! quad, or rows longer than the buffer, go one pixel at a time
//! ([`block_dot1`]).

use super::conv::{requantize_run, FILTER_RUN};
use super::dot::{widen_quad, QUAD_GROUP_WORDS};
use super::sparse::{block_dot1, block_rows4};
use crate::int8::conv::COLUMN;
use crate::int8::OutputStage;
use crate::sparse::blocks::{Blocks, Matrix};

/// Pixels per quad.
const QUAD: usize = 4;

/// The product (arguments checked by the caller); `false`, having done
/// nothing, where the quads do not apply.
pub(crate) fn matrix(
    m: &Matrix,
    stage: &OutputStage,
    input: &[i8],
    w: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    if m.pixels < QUAD || m.columns > COLUMN {
        return false;
    }
    let mut wide = [0u32; COLUMN / 4 * QUAD_GROUP_WORDS];
    let wide = &mut wide[..m.columns / 4 * QUAD_GROUP_WORDS];
    let mut sums = [[0i32; 4]; FILTER_RUN];
    let mut p = 0;
    while p < m.pixels {
        // The last quad overlaps the one before where the pixels do not
        // divide into quads: its pixels get the same values again.
        let first = p.min(m.pixels - QUAD);
        for j in 0..QUAD {
            let x = &input[(first + j) * m.columns..][..m.columns];
            widen_quad(x, stage.input_offset, j, wide);
        }
        let out = &mut output[first * m.rows..][..QUAD * m.rows];
        for base in (0..m.rows).step_by(FILTER_RUN) {
            let sums = &mut sums[..FILTER_RUN.min(m.rows - base)];
            // SAFETY: `Blocks::check` keeps every block inside the row's
            // columns, which `wide` holds.
            #[allow(unsafe_code)]
            unsafe {
                block_rows4(w, base, wide, sums)
            };
            requantize_run(sums, base, stage, bias, out);
        }
        p = first + QUAD;
    }
    true
}

/// `sum(w * (x + offset))` over `row`'s blocks for one input row `x`.
pub(crate) fn dot(row: &[u32], x: &[i8], offset: i32) -> i32 {
    let o = offset as u16 as u32;
    // SAFETY: `Blocks::check` keeps every block inside `x`'s columns.
    #[allow(unsafe_code)]
    unsafe {
        block_dot1(row, x.as_ptr(), o << 16 | o)
    }
}
