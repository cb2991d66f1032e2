//! Convolution, depthwise and dense layers whose weights have a zero point:
//! the legacy uint8 scheme (TFLite's `reference_ops` uint8 kernels), run on
//! int8 storage shifted by 128, which leaves every difference `q - zero_point`
//! and so every accumulator unchanged.
//!
//! `sum((x + input_offset) * (w + filter_offset))` is computed as
//! `sum((x + input_offset) * w) + filter_offset * sum(x + input_offset)`:
//! the first term is the dot product the symmetric kernels use (DSP
//! instructions on the cores that have them), the second is one sum per
//! output pixel (per channel for depthwise) shared by every filter. Both
//! wrap as TFLite's int32 accumulator does, so the result is the same.

use super::dot::mac_lanes;
use super::OutputStage;
use crate::geometry::ConvGeometry;

/// `sum(x + offset)` over a slice.
fn offset_sum(x: &[i8], offset: i32) -> i32 {
    x.iter()
        .fold(0i32, |s, &x| s.wrapping_add(x as i32 + offset))
}

/// Convolution (OHWI filter) with a weight zero point; arguments checked by
/// the caller. A dense layer is the 1x1 convolution of
/// [`DenseGeometry::as_conv`](super::DenseGeometry::as_conv).
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let offset = stage.input_offset;
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        // Padded taps are skipped, so they add to neither term.
        let mut inputs = 0i32;
        g.for_each_tap(b, oy, ox, |_, at| {
            inputs = inputs.wrapping_add(offset_sum(&input[at * ic..][..ic], offset))
        });
        let correction = inputs.wrapping_mul(stage.filter_offset);
        let out = &mut output[pixel * oc..][..oc];
        super::conv::tap_outputs(g, stage, input, filter, bias, (b, oy, ox), correction, out);
    });
}

/// Depthwise convolution (`[1, KH, KW, C * multiplier]` filter) with a
/// weight zero point; arguments checked by the caller.
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    const BLOCK: usize = 64;
    const ONES: [i8; BLOCK] = [1; BLOCK];
    let (ic, oc, m) = (g.input.c as usize, g.output.c as usize, multiplier as usize);
    let offset = stage.input_offset;
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let out = &mut output[pixel * oc..][..oc];
        for start in (0..oc).step_by(BLOCK) {
            let len = BLOCK.min(oc - start);
            let (mut acc, mut inputs) = ([0i32; BLOCK], [0i32; BLOCK]);
            g.for_each_tap(b, oy, ox, |tap, at| {
                let f = &filter[tap * oc + start..][..len];
                if m == 1 {
                    let x = &input[at * ic + start..][..len];
                    mac_lanes(&mut acc[..len], x, f, offset);
                    mac_lanes(&mut inputs[..len], x, &ONES[..len], offset);
                } else {
                    for (i, &w) in f.iter().enumerate() {
                        let x = input[at * ic + (start + i) / m] as i32 + offset;
                        acc[i] = acc[i].wrapping_add(x * w as i32);
                        inputs[i] = inputs[i].wrapping_add(x);
                    }
                }
            });
            for i in 0..len {
                let a = acc[i].wrapping_add(inputs[i].wrapping_mul(stage.filter_offset));
                out[start + i] = stage.finish_biased(a, bias, start + i);
            }
        }
    });
}
