//! Naive reference implementations: the test oracle for every kernel.
//!
//! Each function is a literal transcription of the TFLite reference kernel
//! (or, for binary, int4 and sparse, of the definition): plain nested loops,
//! explicit index arithmetic, wide accumulators, no checks beyond what the
//! definition needs. They are slow on purpose and exist so that the fast
//! kernels, here and on each architecture, can be compared with something
//! obviously right. Callers must pass consistent lengths (they panic otherwise).

use crate::geometry::{ConvGeometry, Shape};
use crate::int8::{AddParams, Clamp, DenseGeometry, OutputStage, PoolRounding, SoftmaxParams};
use crate::quant::multiply_by_quantized_multiplier_smaller_than_one;

fn nhwc(s: &Shape, b: u32, y: i64, x: i64, c: u32) -> usize {
    (((b as i64 * s.h as i64 + y) * s.w as i64 + x) * s.c as i64 + c as i64) as usize
}

fn inside(s: &Shape, y: i64, x: i64) -> bool {
    y >= 0 && y < s.h as i64 && x >= 0 && x < s.w as i64
}

fn requantize(stage: &OutputStage, acc: i64, channel: usize) -> i8 {
    let r = stage.requant[channel];
    let v = r.apply_rounded(acc as i32, stage.rounding) as i64 + stage.output_offset as i64;
    v.clamp(stage.act_min as i64, stage.act_max as i64) as i8
}

/// Generic direct convolution: `value(b, oy, ox, oc)` sums `tap(oc, ky, kx, ic, input value)`
/// over every in-bounds tap. Shared by the int8, int4 and sparse references.
pub fn conv_accumulate(
    g: &ConvGeometry,
    input: &[i8],
    mut tap: impl FnMut(usize, u32, u32, u32, i64) -> i64,
    mut out: impl FnMut(usize, usize, i64),
) {
    let w = &g.window;
    for b in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for oc in 0..g.output.c {
                    let mut acc: i64 = 0;
                    for ky in 0..w.kernel_h {
                        for kx in 0..w.kernel_w {
                            let iy = (oy * w.stride_h) as i64 - w.pad_top as i64
                                + (ky * w.dilation_h) as i64;
                            let ix = (ox * w.stride_w) as i64 - w.pad_left as i64
                                + (kx * w.dilation_w) as i64;
                            if !inside(&g.input, iy, ix) {
                                continue;
                            }
                            for ic in 0..g.input.c {
                                acc += tap(
                                    oc as usize,
                                    ky,
                                    kx,
                                    ic,
                                    input[nhwc(&g.input, b, iy, ix, ic)] as i64,
                                );
                            }
                        }
                    }
                    out(
                        nhwc(&g.output, b, oy as i64, ox as i64, oc),
                        oc as usize,
                        acc,
                    );
                }
            }
        }
    }
}

/// Reference int8 convolution (TFLite `reference_integer_ops::ConvPerChannel`).
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (kh, kw, ic) = (g.window.kernel_h, g.window.kernel_w, g.input.c);
    conv_accumulate(
        g,
        input,
        |oc, ky, kx, c, x| {
            (filter[(((oc as u32 * kh + ky) * kw + kx) * ic + c) as usize] as i64
                + stage.filter_offset as i64)
                * (x + stage.input_offset as i64)
        },
        |at, oc, acc| output[at] = requantize(stage, acc + bias.map_or(0, |b| b[oc] as i64), oc),
    );
}

/// Reference int8 depthwise convolution (TFLite `DepthwiseConvPerChannel`).
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let w = &g.window;
    for b in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for ic in 0..g.input.c {
                    for m in 0..multiplier {
                        let oc = m + ic * multiplier;
                        let mut acc: i64 = 0;
                        for ky in 0..w.kernel_h {
                            for kx in 0..w.kernel_w {
                                let iy = (oy * w.stride_h) as i64 - w.pad_top as i64
                                    + (ky * w.dilation_h) as i64;
                                let ix = (ox * w.stride_w) as i64 - w.pad_left as i64
                                    + (kx * w.dilation_w) as i64;
                                if inside(&g.input, iy, ix) {
                                    let x = input[nhwc(&g.input, b, iy, ix, ic)] as i64;
                                    let f = filter
                                        [((ky * w.kernel_w + kx) * g.output.c + oc) as usize]
                                        as i64
                                        + stage.filter_offset as i64;
                                    acc += f * (x + stage.input_offset as i64);
                                }
                            }
                        }
                        acc += bias.map_or(0, |b| b[oc as usize] as i64);
                        output[nhwc(&g.output, b, oy as i64, ox as i64, oc)] =
                            requantize(stage, acc, oc as usize);
                    }
                }
            }
        }
    }
}

/// Reference int8 dense layer (TFLite `reference_integer_ops::FullyConnected`).
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    for b in 0..g.batch as usize {
        for o in 0..n {
            let mut acc: i64 = 0;
            for d in 0..k {
                acc += (weights[o * k + d] as i64 + stage.filter_offset as i64)
                    * (input[b * k + d] as i64 + stage.input_offset as i64);
            }
            acc += bias.map_or(0, |b| b[o] as i64);
            output[b * n + o] = requantize(stage, acc, o);
        }
    }
}

fn pool(
    g: &ConvGeometry,
    input: &[i8],
    output: &mut [i8],
    mut reduce: impl FnMut(&mut dyn Iterator<Item = i64>) -> i64,
) {
    let w = &g.window;
    for b in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for c in 0..g.input.c {
                    let iy0 = (oy * w.stride_h) as i64 - w.pad_top as i64;
                    let ix0 = (ox * w.stride_w) as i64 - w.pad_left as i64;
                    let mut taps = (0..w.kernel_h as i64)
                        .flat_map(|ky| (0..w.kernel_w as i64).map(move |kx| (iy0 + ky, ix0 + kx)))
                        .filter(|&(y, x)| inside(&g.input, y, x))
                        .map(|(y, x)| input[nhwc(&g.input, b, y, x, c)] as i64);
                    output[nhwc(&g.output, b, oy as i64, ox as i64, c)] = reduce(&mut taps) as i8;
                }
            }
        }
    }
}

/// Reference int8 average pool (TFLite `reference_integer_ops::AveragePool`);
/// with [`PoolRounding::Up`], TFLite's uint8 `reference_ops::AveragePool` on
/// the values shifted back to uint8.
pub fn avg_pool(
    g: &ConvGeometry,
    clamp: Clamp,
    rounding: PoolRounding,
    input: &[i8],
    output: &mut [i8],
) {
    pool(g, input, output, |taps| {
        let (sum, count) = taps.fold((0i64, 0i64), |(s, n), x| (s + x, n + 1));
        let avg = if count == 0 {
            0
        } else if rounding == PoolRounding::Up {
            let uint8_sum = sum + 128 * count;
            (uint8_sum + count / 2) / count - 128
        } else if sum > 0 {
            (sum + count / 2) / count
        } else {
            (sum - count / 2) / count
        };
        avg.clamp(clamp.min as i64, clamp.max as i64)
    });
}

/// Reference int8 max pool (TFLite `reference_integer_ops::MaxPool`).
pub fn max_pool(g: &ConvGeometry, clamp: Clamp, input: &[i8], output: &mut [i8]) {
    pool(g, input, output, |taps| {
        taps.fold(i8::MIN as i64, i64::max)
            .clamp(clamp.min as i64, clamp.max as i64)
    });
}

/// Reference int8 addition (TFLite `reference_integer_ops::AddElementwise`).
pub fn add(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) {
    for i in 0..a.len() {
        let shifted1 = (p.input1_offset + a[i] as i32) * (1 << p.left_shift);
        let shifted2 = (p.input2_offset + b[i] as i32) * (1 << p.left_shift);
        let scaled1 = multiply_by_quantized_multiplier_smaller_than_one(
            shifted1,
            p.input1.multiplier,
            p.input1.shift,
        );
        let scaled2 = multiply_by_quantized_multiplier_smaller_than_one(
            shifted2,
            p.input2.multiplier,
            p.input2.shift,
        );
        let raw_sum = scaled1 as i64 + scaled2 as i64;
        let raw = multiply_by_quantized_multiplier_smaller_than_one(
            raw_sum as i32,
            p.output.multiplier,
            p.output.shift,
        ) as i64
            + p.output_offset as i64;
        output[i] = raw.clamp(p.act_min as i64, p.act_max as i64) as i8;
    }
}

/// Reference int8 softmax: the same fixed-point arithmetic as
/// [`crate::int8::softmax`], written as two plain passes per row.
pub fn softmax(p: &SoftmaxParams, depth: usize, input: &[i8], output: &mut [i8]) {
    use crate::fixedpoint::*;
    use crate::quant::*;
    for row in 0..input.len() / depth {
        let x = &input[row * depth..(row + 1) * depth];
        let mut max = -128i32;
        for &v in x {
            max = max.max(v as i32);
        }
        let mut sum: i32 = 0;
        for &v in x {
            let diff = v as i32 - max;
            if diff >= p.diff_min {
                let r = multiply_by_quantized_multiplier_greater_than_one(
                    diff,
                    p.input_multiplier,
                    p.input_left_shift,
                );
                sum += rescale(exp_on_negative_values(r, 5), 0, 12);
            }
        }
        let headroom = (sum as u32).leading_zeros() as i32;
        let bits_over_unit = 12 - headroom;
        let shifted = ((sum as u32) << headroom).wrapping_sub(1u32 << 31) as i32;
        let scale = if shifted == 0 {
            i32::MAX
        } else {
            one_over_one_plus_x_for_x_in_0_1(shifted)
        };
        for c in 0..depth {
            let diff = x[c] as i32 - max;
            output[row * depth + c] = if diff >= p.diff_min {
                let r = multiply_by_quantized_multiplier_greater_than_one(
                    diff,
                    p.input_multiplier,
                    p.input_left_shift,
                );
                let e = exp_on_negative_values(r, 5);
                let unsat = rounding_divide_by_pot(
                    saturating_rounding_doubling_high_mul(scale, e),
                    (bits_over_unit + 31 - 8) as u32,
                );
                (unsat - 128).clamp(-128, 127) as i8
            } else {
                -128
            };
        }
    }
}

/// Reference binary convolution on unpacked +-1 values: returns the raw dot
/// product per output (`K - 2 * popcount` must equal it). Padded taps count
/// as +1 when `one_padding`, and are skipped otherwise.
pub fn binary_conv2d_dots(
    g: &ConvGeometry,
    input_signs: &[i8],
    filter_signs: &[i8],
    one_padding: bool,
) -> std::vec::Vec<i32> {
    let mut out = std::vec![0i32; g.output.elements().unwrap()];
    let w = &g.window;
    for b in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for oc in 0..g.output.c {
                    let mut acc = 0i32;
                    for ky in 0..w.kernel_h {
                        for kx in 0..w.kernel_w {
                            let iy = (oy * w.stride_h) as i64 - w.pad_top as i64
                                + (ky * w.dilation_h) as i64;
                            let ix = (ox * w.stride_w) as i64 - w.pad_left as i64
                                + (kx * w.dilation_w) as i64;
                            for ic in 0..g.input.c {
                                let f = filter_signs[(((oc * w.kernel_h + ky) * w.kernel_w + kx)
                                    * g.input.c
                                    + ic)
                                    as usize] as i32;
                                if inside(&g.input, iy, ix) {
                                    acc += f * input_signs[nhwc(&g.input, b, iy, ix, ic)] as i32;
                                } else if one_padding {
                                    acc += f;
                                }
                            }
                        }
                    }
                    out[nhwc(&g.output, b, oy as i64, ox as i64, oc)] = acc;
                }
            }
        }
    }
    out
}
