//! The portable float kernels: TFLite's reference loops, in its order of
//! summation (each output summed from zero over its taps and channels,
//! then the bias), so that a float model's outputs are LiteRT's bits. They
//! are the oracle the SIMD kernels beside them (`x86`) must equal bit for
//! bit. Lengths are the caller's to check (`super::check_*`).

use super::Range;
use crate::geometry::ConvGeometry;
use crate::int8::DenseGeometry;

/// float convolution; filter OHWI.
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    // TFLite's order: one sum from zero over the taps and their channels,
    // then the bias, so that a float model's outputs are LiteRT's bits.
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let f = &filter[o * depth..][..depth];
            let mut acc = 0.0f32;
            g.for_each_tap(b, oy, ox, |tap, at| {
                for (x, w) in input[at * ic..][..ic].iter().zip(&f[tap * ic..][..ic]) {
                    acc += x * w;
                }
            });
            output[pixel * oc + o] = (acc + bias.map_or(0.0, |b| b[o])).clamp(act.0, act.1);
        }
    });
}

/// float depthwise convolution; filter `[1, KH, KW, C * multiplier]`.
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    multiplier: u32,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let (ic, oc, m) = (g.input.c as usize, g.output.c as usize, multiplier as usize);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        // TFLite's order: the taps summed from zero, then the bias.
        let out = &mut output[pixel * oc..][..oc];
        out.fill(0.0);
        g.for_each_tap(b, oy, ox, |tap, at| {
            for (o, y) in out.iter_mut().enumerate() {
                *y += input[at * ic + o / m] * filter[tap * oc + o];
            }
        });
        for (o, y) in out.iter_mut().enumerate() {
            *y = (*y + bias.map_or(0.0, |b| b[o])).clamp(act.0, act.1);
        }
    });
}

/// float dense layer; weights `[out, in]`.
pub fn fully_connected(
    g: &DenseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for (o, (w, y)) in weights.chunks_exact(k).zip(out.iter_mut()).enumerate() {
            // From +0, as TFLite's `total = 0.f` (`Iterator::sum` starts
            // from -0, which an all-(-0) sum and a -0 bias would show).
            let total = x.iter().zip(w).fold(0.0f32, |acc, (x, w)| acc + x * w);
            let acc = total + bias.map_or(0.0, |b| b[o]);
            *y = acc.clamp(act.0, act.1);
        }
    }
}
