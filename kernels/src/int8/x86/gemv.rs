//! Dense layers of a few input rows on x86 as matrix-vector products: the
//! weights are read as they lie, four output channels sharing each load
//! of the input row. Every weight is used once per row, so packing them
//! (as the matrix product does) would cost as much as the product.

use super::requantize::{Requantize, CHUNK};
use super::simd::Simd;
use crate::int8::{DenseGeometry, OutputStage};
use core::mem::MaybeUninit;

/// Longest input row this path takes.
pub(super) const MAX_FEATURES: usize = 16384;

/// Input rows up to which a dense layer takes this path.
pub(super) const MAX_ROWS: u32 = 2;

/// The dense layer (lengths checked by the caller, at most
/// [`MAX_FEATURES`] input features).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn fully_connected<S: Simd>(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    // The gathered row, zero up to a whole vector of bytes past its end.
    let mut x = [MaybeUninit::<S::X>::uninit(); MAX_FEATURES + 64];
    let x = x.as_mut_ptr().cast::<S::X>();
    let mut sums = [0i32; CHUNK];
    for (row, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        // Weights with a zero point (legacy uint8): `sum((x + offset) *
        // (w + filter_offset))` is the dot product plus `filter_offset`
        // times the row's sum, the same for every output channel.
        let row_correction = match stage.filter_offset {
            0 => 0,
            filter_offset => row
                .iter()
                .fold(0i32, |s, &x| s.wrapping_add(x as i32 + stage.input_offset))
                .wrapping_mul(filter_offset),
        };
        S::convert(row, stage.input_offset, x);
        for i in k..k.next_multiple_of(64) {
            x.add(i).write(S::pad(0));
        }
        for first in (0..n).step_by(CHUNK) {
            let m = CHUNK.min(n - first);
            for o in (0..m).step_by(4) {
                // A short last group repeats its last row.
                let w =
                    [0, 1, 2, 3].map(|j| weights.as_ptr().add((first + (o + j).min(m - 1)) * k));
                let dots = S::dot4(x, w, k, stage.input_offset);
                for (j, &dot) in dots.iter().enumerate().take(m - o) {
                    sums[o + j] = dot;
                }
            }
            let mut requantize = Requantize::blank(stage, first);
            requantize.fill(bias, m, |_| row_correction);
            for v in (0..m).step_by(S::LANES) {
                S::finish(
                    S::load32(sums.as_ptr().add(v)),
                    &requantize,
                    v,
                    S::LANES.min(m - v),
                    out.as_mut_ptr().add(first + v),
                );
            }
        }
    }
}
