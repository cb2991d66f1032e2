//! Depthwise convolution on x86 (one input channel per output channel):
//! per output pixel, the accumulators of a whole chunk of channels stay in
//! registers while every in-bounds tap's input and filter bytes are
//! widened to 32-bit lanes and multiplied and added lane by lane; the sums
//! are requantized a vector at a time.

use super::requantize::{Requantize, CHUNK};
use super::simd::Simd;
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;

/// Vectors of channels summed together per pass over a pixel's taps.
const GROUP: usize = 4;

/// The depthwise convolution with multiplier 1 (lengths checked by the caller).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn depthwise_conv2d<S: Simd>(g: &ConvGeometry, stage: &OutputStage, input: &[i8], filter: &[i8], bias: Option<&[i32]>, output: &mut [i8]) {
    let c = g.output.c as usize;
    let group = GROUP * S::LANES;
    for first in (0..c).step_by(CHUNK) {
        let n = CHUNK.min(c - first);
        let requantize = Requantize::new(stage, bias, first, n, |_| 0);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let out = output.as_mut_ptr().add(pixel * c + first);
            for start in (0..n).step_by(group) {
                let lanes = group.min(n - start);
                let mut acc = [S::zero(); GROUP];
                if lanes == group {
                    // A whole group: no lane counts to test per tap.
                    g.for_each_tap(b, oy, ox, |tap, at| {
                        let x = input.as_ptr().add(at * c + first + start);
                        let w = filter.as_ptr().add(tap * c + first + start);
                        for (v, acc) in acc.iter_mut().enumerate() {
                            let k = v * S::LANES;
                            *acc = S::mul_add(*acc, S::widen(x.add(k), S::LANES, stage.input_offset), S::widen(w.add(k), S::LANES, 0));
                        }
                    });
                } else {
                    g.for_each_tap(b, oy, ox, |tap, at| {
                        let x = input.as_ptr().add(at * c + first + start);
                        let w = filter.as_ptr().add(tap * c + first + start);
                        for (v, acc) in acc.iter_mut().enumerate() {
                            let k = v * S::LANES;
                            if k < lanes {
                                let m = S::LANES.min(lanes - k);
                                *acc = S::mul_add(*acc, S::widen(x.add(k), m, stage.input_offset), S::widen(w.add(k), m, 0));
                            }
                        }
                    });
                }
                for (v, &acc) in acc.iter().enumerate() {
                    let k = v * S::LANES;
                    if k < lanes {
                        S::finish(acc, &requantize, start + k, S::LANES.min(lanes - k), out.add(start + k));
                    }
                }
            }
        });
    }
}
