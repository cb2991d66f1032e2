//! float32 operators: the reference for float baselines, and the same
//! layouts and window semantics as the int8 kernels.

use crate::error::{ensure, expect_len, KernelError};
use crate::float_math;
use crate::geometry::ConvGeometry;
use crate::int8::DenseGeometry;

pub mod portable;
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod x86;

/// A float clamp range (the fused activation).
pub type Range = (f32, f32);

fn check_filter(
    g: &ConvGeometry,
    filter: usize,
    per_filter: usize,
    bias: Option<&[f32]>,
) -> Result<(), KernelError> {
    expect_len("filter", filter, g.output.c as usize * per_filter)?;
    bias.map_or(Ok(()), |b| expect_len("bias", b.len(), g.output.c as usize))
}

/// Checks a float convolution's arguments by their lengths.
pub fn check_conv2d(
    g: &ConvGeometry,
    input: usize,
    filter: usize,
    bias: Option<&[f32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    check_filter(g, filter, g.depth(), bias)
}

/// Checks a float depthwise convolution's arguments by their lengths.
pub fn check_depthwise_conv2d(
    g: &ConvGeometry,
    multiplier: u32,
    input: usize,
    filter: usize,
    bias: Option<&[f32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_depthwise_io(multiplier, input, output)?;
    check_filter(g, filter, g.window.taps(), bias)
}

/// Checks a float dense layer's arguments by their lengths.
pub fn check_fully_connected(
    g: &DenseGeometry,
    input: usize,
    weights: usize,
    bias: Option<&[f32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    let n = g.out_features as usize;
    expect_len("weights", weights, n * g.in_features as usize)?;
    bias.map_or(Ok(()), |b| expect_len("bias", b.len(), n))
}

/// Checks a float pool's arguments by their lengths.
pub fn check_pool(g: &ConvGeometry, input: usize, output: usize) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    ensure(
        g.input.c == g.output.c,
        "pool: input and output channels differ",
    )
}

/// float convolution; filter OHWI.
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_conv2d(g, input.len(), filter.len(), bias, output.len())?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if x86::conv2d(g, input, filter, bias, act, output) {
        return Ok(());
    }
    portable::conv2d(g, input, filter, bias, act, output);
    Ok(())
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
) -> Result<(), KernelError> {
    check_depthwise_conv2d(g, multiplier, input.len(), filter.len(), bias, output.len())?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if multiplier == 1 && x86::depthwise_conv2d(g, input, filter, bias, act, output) {
        return Ok(());
    }
    portable::depthwise_conv2d(g, multiplier, input, filter, bias, act, output);
    Ok(())
}

/// float dense layer; weights `[out, in]`.
pub fn fully_connected(
    g: &DenseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_fully_connected(g, input.len(), weights.len(), bias, output.len())?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if x86::fully_connected(g, input, weights, bias, act, output) {
        return Ok(());
    }
    portable::fully_connected(g, input, weights, bias, act, output);
    Ok(())
}

fn pool(
    g: &ConvGeometry,
    input: &[f32],
    output: &mut [f32],
    init: f32,
    step: fn(f32, f32) -> f32,
    finish: impl Fn(f32, usize) -> f32,
) -> Result<(), KernelError> {
    check_pool(g, input.len(), output.len())?;
    let c = g.input.c as usize;
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let out = &mut output[pixel * c..][..c];
        out.fill(init);
        let mut count = 0;
        g.for_each_tap(b, oy, ox, |_, at| {
            count += 1;
            for (y, &x) in out.iter_mut().zip(&input[at * c..][..c]) {
                *y = step(*y, x);
            }
        });
        for y in out.iter_mut() {
            *y = finish(*y, count);
        }
    });
    Ok(())
}

/// float average pool over the valid taps.
pub fn avg_pool(
    g: &ConvGeometry,
    act: Range,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    pool(
        g,
        input,
        output,
        0.0,
        |a, x| a + x,
        |s, n| {
            if n == 0 {
                0.0
            } else {
                (s / n as f32).clamp(act.0, act.1)
            }
        },
    )
}

/// float max pool over the valid taps.
pub fn max_pool(
    g: &ConvGeometry,
    act: Range,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    pool(g, input, output, f32::NEG_INFINITY, f32::max, |m, _| {
        m.clamp(act.0, act.1)
    })
}

/// float elementwise addition.
pub fn add(a: &[f32], b: &[f32], act: Range, output: &mut [f32]) -> Result<(), KernelError> {
    expect_len("second input", b.len(), a.len())?;
    expect_len("output", output.len(), a.len())?;
    for ((y, x), z) in output.iter_mut().zip(a).zip(b) {
        *y = (x + z).clamp(act.0, act.1);
    }
    Ok(())
}

/// float softmax over rows of `depth` values: `exp(beta * (x - max)) / sum`.
pub fn softmax(
    beta: f32,
    depth: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    let rows = rows_of(
        depth,
        input,
        output,
        "softmax: input length must be a multiple of the depth",
    )?;
    for (x, y) in rows {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (y, &x) in y.iter_mut().zip(x) {
            *y = float_math::expf(beta * (x - max));
            sum += *y;
        }
        for y in y.iter_mut() {
            *y /= sum;
        }
    }
    Ok(())
}

/// The rows of `depth` values of `input` and of `output`: `uneven` when
/// the input is not whole rows, an error when the lengths differ.
fn rows_of<'a>(
    depth: usize,
    input: &'a [f32],
    output: &'a mut [f32],
    uneven: &'static str,
) -> Result<impl Iterator<Item = (&'a [f32], &'a mut [f32])>, KernelError> {
    ensure(depth >= 1 && input.len().is_multiple_of(depth), uneven)?;
    expect_len("output", output.len(), input.len())?;
    Ok(input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth)))
}

/// float LOG_SOFTMAX over rows of `depth` values, as TFLite's reference:
/// `x - max - log(sum(exp(x - max)))`.
pub fn log_softmax(depth: usize, input: &[f32], output: &mut [f32]) -> Result<(), KernelError> {
    let rows = rows_of(
        depth,
        input,
        output,
        "log_softmax: input length must be a multiple of the depth",
    )?;
    for (x, y) in rows {
        let max = x.iter().copied().fold(f32::MIN, f32::max);
        let sum = x
            .iter()
            .fold(0.0f32, |sum, &v| sum + float_math::expf(v - max));
        let log_sum = float_math::logf(sum);
        for (y, &v) in y.iter_mut().zip(x) {
            *y = v - max - log_sum;
        }
    }
    Ok(())
}

/// Just below one half, `0.5 - 2^-25`: `trunc(y + copysign(HALF_BELOW, y))`
/// rounds half away from zero for every float: a fraction of exactly one
/// half reaches the next integer only by the addition's own rounding to
/// even, and a fraction just below stays below it (where the sum crosses
/// into a binade of twice the spacing, it still rounds below the integer).
pub const HALF_BELOW: f32 = 0.499_999_97;

/// `roundf(v) as i32` (half away from zero, saturating; NaN gives 0).
/// With a floating-point unit (hard-float Arm, hosted targets) without the
/// library call: `trunc(v + copysign(HALF_BELOW, v))`, one addition and
/// the truncating conversion (which saturates, and gives 0 for NaN). On
/// qemu-m4 that is 5 fewer instructions per value than taking the
/// fraction `v - trunc(v)` and stepping by two comparisons. (An earlier
/// form truncated `2 * fraction`, which LLVM folds on MVE (Cortex-M55)
/// into a fixed-point VCVT with 14 fraction bits: QUANTIZE went wrong
/// there; `harness/tests/qemu.rs` runs a 16x8 model on qemu-m55 for it.)
/// Without a floating-point unit every float operation is itself a library
/// call, and libm's integer bit manipulation is the cheaper way.
#[inline(always)]
pub fn round_to_i32(v: f32) -> i32 {
    #[cfg(any(target_abi = "eabihf", not(target_os = "none")))]
    {
        (v + HALF_BELOW.copysign(v)) as i32
    }
    #[cfg(not(any(target_abi = "eabihf", not(target_os = "none"))))]
    {
        libm::roundf(v) as i32
    }
}

/// Quantizes float values to int8: `clamp(round(x / scale) + zero_point)` (TFLite `QUANTIZE`).
pub fn quantize(
    scale: f32,
    zero_point: i32,
    input: &[f32],
    output: &mut [i8],
) -> Result<(), KernelError> {
    expect_len("output", output.len(), input.len())?;
    ensure(
        scale > 0.0 && (-128..=127).contains(&zero_point),
        "quantize: scale must be positive and the zero point int8",
    )?;
    for (y, &x) in output.iter_mut().zip(input) {
        let q = round_to_i32(x / scale);
        *y = q.saturating_add(zero_point).clamp(-128, 127) as i8;
    }
    Ok(())
}

/// Dequantizes int8 values: `scale * (q - zero_point)` (TFLite `DEQUANTIZE`).
pub fn dequantize(
    scale: f32,
    zero_point: i32,
    input: &[i8],
    output: &mut [f32],
) -> Result<(), KernelError> {
    expect_len("output", output.len(), input.len())?;
    for (y, &q) in output.iter_mut().zip(input) {
        *y = scale * (q as i32 - zero_point) as f32;
    }
    Ok(())
}

/// float MEAN of `x` (shape `input`) over `axes` into `out`: each output
/// sums its elements in input order from 0, then divides by their count,
/// as TFLite's reference `Mean` does.
pub fn mean(
    input: crate::geometry::Shape,
    output: crate::geometry::Shape,
    axes: [bool; 4],
    x: &[f32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    let r = crate::layout::reduced(input, axes);
    ensure(
        r.elements() == output.elements(),
        "mean: the output must have the elements of the input reduced over the axes",
    )?;
    expect_len(
        "mean input",
        x.len(),
        input.elements().unwrap_or(usize::MAX),
    )?;
    expect_len("mean output", out.len(), r.elements().unwrap_or(usize::MAX))?;
    let count = (x.len() / out.len().max(1)) as f32;
    crate::layout::reduce(
        input,
        axes,
        0.0f32,
        |sum, i| sum + x[i],
        |o, sum| {
            out[o] = sum / count;
        },
    );
    Ok(())
}

/// A float elementwise activation, as TFLite's reference computes it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `std::max(lo, std::min(x, hi))` (RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1).
    Clamp {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `x > 0 ? x : x * alpha` (LEAKY_RELU).
    Leaky {
        /// Slope below zero.
        alpha: f32,
    },
    /// `x * min(6, max(0, x + 3)) / 6` (HARD_SWISH).
    HardSwish,
    /// `1 / (1 + exp(-x))`, `exp(x)` below -9 and 1 above 16.619 (LOGISTIC).
    Logistic,
    /// `tanh(x)` (TANH).
    Tanh,
    /// `max(0, min(1, alpha * x + beta))` (ONNX's HardSigmoid).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x < 0 ? alpha * expm1(x) : x` (ELU; TFLite's has alpha 1).
    Elu {
        /// Scale of the negative part.
        alpha: f32,
    },
}

/// Applies `act` to every element.
pub fn activation(act: Activation, x: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    expect_len("activation output", out.len(), x.len())?;
    if let Activation::Logistic | Activation::Tanh | Activation::Elu { .. } = act {
        return curve(act, x, out);
    }
    for (y, &v) in out.iter_mut().zip(x) {
        *y = match act {
            Activation::Clamp { lo, hi } => {
                // Comparisons in TFLite's order, for -0.0 and NaN.
                let m = if hi < v { hi } else { v };
                if lo < m {
                    m
                } else {
                    lo
                }
            }
            Activation::Leaky { alpha } => {
                if v > 0.0 {
                    v
                } else {
                    v * alpha
                }
            }
            Activation::HardSigmoid { alpha, beta } => (alpha * v + beta).clamp(0.0, 1.0),
            Activation::HardSwish => {
                let r = if 0.0 < v + 3.0 { v + 3.0 } else { 0.0 };
                let r = if r < 6.0 { r } else { 6.0 };
                v * r / 6.0
            }
            // Run by `curve` above.
            Activation::Logistic | Activation::Tanh | Activation::Elu { .. } => v,
        };
    }
    Ok(())
}

/// LOGISTIC (TFLite's reference float logistic: its cut-offs avoid `exp`
/// overflow and saturate where the float result is 1), TANH or ELU, with
/// glibc's `expf`, `tanhf` and `expm1f`: the `op-float-math` family, which
/// a firmware links only when its model has such an operator.
#[cfg(op_float_math)]
fn curve(act: Activation, x: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    const CUTOFF_UPPER: f32 = 16.619_047;
    const CUTOFF_LOWER: f32 = -9.0;
    for (y, &v) in out.iter_mut().zip(x) {
        *y = if act == Activation::Tanh {
            float_math::tanhf(v)
        } else if let Activation::Elu { alpha } = act {
            if v < 0.0 {
                alpha * float_math::expm1f(v)
            } else {
                v
            }
        } else if v > CUTOFF_UPPER {
            1.0
        } else if v < CUTOFF_LOWER {
            float_math::expf(v)
        } else {
            1.0 / (1.0 + float_math::expf(-v))
        };
    }
    Ok(())
}

#[cfg(not(op_float_math))]
fn curve(_act: Activation, _x: &[f32], _out: &mut [f32]) -> Result<(), KernelError> {
    Err(KernelError::Param {
        what: "float LOGISTIC, TANH and ELU are not built into this program (op-float-math)",
    })
}

#[cfg(test)]
mod rounding_tests {
    use super::round_to_i32;

    #[test]
    fn rounding_equals_libm_roundf_as_i32() {
        let edges = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999997,
            -0.49999997,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            16_777_217.0,
            2.1e9,
            -2.1e9,
            3e9,
            -3e9,
        ];
        for v in edges.into_iter().chain([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
        ]) {
            assert_eq!(round_to_i32(v), libm::roundf(v) as i32, "{v}");
        }
        // Every 4099th bit pattern: all exponents, both signs, NaNs.
        for bits in (0..=u32::MAX).step_by(4099) {
            let v = f32::from_bits(bits);
            assert_eq!(round_to_i32(v), libm::roundf(v) as i32, "{v} ({bits:#x})");
        }
    }

    /// The ties and their neighbours, where adding just under one half
    /// could round the wrong way: every half-integer up to 2^22 in
    /// magnitude (past it they are 0.5 apart or integers) and two bit
    /// patterns either side of each.
    #[test]
    fn every_tie_and_its_neighbours_round_half_away_from_zero() {
        for i in -(1i32 << 23)..=(1 << 23) {
            let y = i as f32 * 0.5;
            for bits in y.to_bits().saturating_sub(2)..=y.to_bits().saturating_add(2) {
                let v = f32::from_bits(bits);
                assert_eq!(round_to_i32(v), libm::roundf(v) as i32, "{v:e} ({bits:#x})");
            }
        }
    }
}
