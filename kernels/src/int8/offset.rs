//! Convolution, depthwise and dense layers whose weights have a zero point:
//! the legacy uint8 scheme (TFLite's `reference_ops` uint8 kernels), run on
//! int8 storage shifted by 128, which leaves every difference `q - zero_point`
//! and so every accumulator unchanged.
//!
//! `(x + input_offset) * (w + filter_offset)` spans 17 bits by 9, which the
//! paired 16-bit multiplies of the optimized kernels cannot take; these are
//! the portable reference loops, as TFLite's own uint8 reference is (TFLite
//! Micro no longer runs uint8 at all).

use super::OutputStage;
use crate::geometry::ConvGeometry;

/// The accumulator of output pixel `(b, oy, ox)`: `products(tap, input
/// pixel, acc)` adds each in-bounds tap's products (padded taps add none).
fn accumulate(
    g: &ConvGeometry,
    (b, oy, ox): (u32, u32, u32),
    mut products: impl FnMut(usize, usize, &mut i32),
) -> i32 {
    let mut acc = 0i32;
    g.for_each_tap(b, oy, ox, |tap, pixel| products(tap, pixel, &mut acc));
    acc
}

/// `acc += (x + input_offset) * (w + filter_offset)`, wrapping as TFLite's int32 does.
fn mac(acc: &mut i32, stage: &OutputStage, x: i8, w: i8) {
    let product = (x as i32 + stage.input_offset) * (w as i32 + stage.filter_offset);
    *acc = acc.wrapping_add(product);
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
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for (o, y) in output[pixel * oc..][..oc].iter_mut().enumerate() {
            let f = &filter[o * depth..][..depth];
            let acc = accumulate(g, (b, oy, ox), |tap, at, acc| {
                let x = &input[at * ic..][..ic];
                for (&x, &w) in x.iter().zip(&f[tap * ic..][..ic]) {
                    mac(acc, stage, x, w);
                }
            });
            *y = stage.finish_biased(acc, bias, o);
        }
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
    let (ic, oc, m) = (g.input.c as usize, g.output.c as usize, multiplier as usize);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for (o, y) in output[pixel * oc..][..oc].iter_mut().enumerate() {
            let acc = accumulate(g, (b, oy, ox), |tap, at, acc| {
                mac(acc, stage, input[at * ic + o / m], filter[tap * oc + o]);
            });
            *y = stage.finish_biased(acc, bias, o);
        }
    });
}
