//! int8 softmax (TFLite `SOFTMAX`, int8 in and out, output scale 1/256 and
//! zero point -128), built on gemmlowp's fixed-point exp and reciprocal.

use crate::error::{ensure, expect_len, KernelError};
use crate::fixedpoint::{exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1, rescale};
use crate::quant::{
    multiply_by_quantized_multiplier_greater_than_one, quantize_multiplier, rounding_divide_by_pot,
};
use serde::{Deserialize, Serialize};

const SCALED_DIFF_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// The integer parameters of an int8 softmax (TFLite `SoftmaxParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftmaxParams {
    /// Q31 multiplier of `beta * input_scale`.
    pub input_multiplier: i32,
    /// Its left shift.
    pub input_left_shift: i32,
    /// Inputs further than this below the row maximum contribute exactly 0.
    pub diff_min: i32,
}

impl SoftmaxParams {
    /// Derives the parameters from `beta` and the input scale (TFLite
    /// `PreprocessSoftmaxScaling` and `CalculateInputRadius`).
    pub fn new(beta: f32, input_scale: f32) -> Self {
        let real =
            (beta as f64 * input_scale as f64 * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64)
                .min((1i64 << 31) as f64 - 1.0);
        let q = quantize_multiplier(real);
        let max_input_rescaled = ((1i64 << SCALED_DIFF_INTEGER_BITS) - 1) as f64
            * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64
            / (1i64 << q.shift.clamp(0, 62)) as f64;
        SoftmaxParams {
            input_multiplier: q.multiplier,
            input_left_shift: q.shift,
            diff_min: -(libm::floor(max_input_rescaled) as i32),
        }
    }

    /// Checks the parameters are in range.
    pub fn check(&self) -> Result<(), KernelError> {
        ensure(
            self.input_multiplier >= 0 && (0..=31).contains(&self.input_left_shift),
            "softmax: multiplier must be at least one",
        )?;
        ensure(self.diff_min <= 0, "softmax: diff_min must not be positive")
    }
}

/// Checks a softmax's arguments by their lengths.
pub fn check(
    p: &SoftmaxParams,
    depth: usize,
    input: usize,
    output: usize,
) -> Result<(), KernelError> {
    p.check()?;
    ensure(
        depth >= 1 && input.is_multiple_of(depth),
        "softmax: input length must be a multiple of the depth",
    )?;
    expect_len("output", output, input)
}

/// int8 softmax over rows of `depth` values.
pub fn softmax(
    p: &SoftmaxParams,
    depth: usize,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(p, depth, input.len(), output.len())?;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().copied().max().unwrap_or(i8::MIN) as i32;
        let scaled_exp = |v: i8| -> Option<i32> {
            let diff = v as i32 - max;
            (diff >= p.diff_min).then(|| {
                let rescaled = multiply_by_quantized_multiplier_greater_than_one(
                    diff,
                    p.input_multiplier,
                    p.input_left_shift,
                );
                exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
            })
        };
        let sum_of_exps = x
            .iter()
            .filter_map(|&v| scaled_exp(v))
            .fold(0i32, |sum, e| {
                sum.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS))
            });
        let headroom_plus_one = (sum_of_exps as u32).leading_zeros() as i32;
        let num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
        let shifted_sum_minus_one = ((sum_of_exps as u32)
            .wrapping_shl(headroom_plus_one as u32)
            .wrapping_sub(1 << 31)) as i32;
        let shifted_scale = if shifted_sum_minus_one == 0 {
            i32::MAX
        } else {
            one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
        };
        let exponent = (num_bits_over_unit + 31 - 8).clamp(0, 31) as u32;
        for (&v, out) in x.iter().zip(y.iter_mut()) {
            *out = match scaled_exp(v) {
                Some(e) => {
                    let unsat = rounding_divide_by_pot(
                        crate::quant::saturating_rounding_doubling_high_mul(shifted_scale, e),
                        exponent,
                    );
                    (unsat - 128).clamp(-128, 127) as i8
                }
                None => i8::MIN,
            };
        }
    }
    Ok(())
}

/// The integer parameters of an int8 LOG_SOFTMAX (TFLite
/// `PreprocessLogSoftmaxScalingExp`): the softmax's input scaling and its
/// inverse, which bounds the inputs whose output is not the minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSoftmaxParams {
    /// The input scaling (beta 1), as a softmax has it.
    pub softmax: SoftmaxParams,
    /// Q31 multiplier of the inverse scaling.
    pub reverse_scaling_divisor: i32,
    /// Its shift (a right shift: not positive).
    pub reverse_scaling_shift: i32,
}

impl LogSoftmaxParams {
    /// Derives the parameters from the input scale.
    pub fn new(input_scale: f32) -> Self {
        let softmax = SoftmaxParams::new(1.0, input_scale);
        // TFLite computes `1 << (31 - left_shift)` in int; for a left shift
        // of 0 that overflows to its minimum, which this reproduces.
        let numerator = (1i32.wrapping_shl((31 - softmax.input_left_shift) as u32)) as f64;
        let reverse = quantize_multiplier(numerator / softmax.input_multiplier as f64);
        LogSoftmaxParams {
            softmax,
            reverse_scaling_divisor: reverse.multiplier,
            reverse_scaling_shift: reverse.shift,
        }
    }

    /// Checks the parameters are in range.
    pub fn check(&self) -> Result<(), KernelError> {
        self.softmax.check()?;
        ensure(
            (-31..=0).contains(&self.reverse_scaling_shift),
            "log_softmax: reverse scaling must be a right shift",
        )
    }
}

/// int8 LOG_SOFTMAX over rows of `depth` values (output scale 16/256, zero
/// point 127: TFLite's `LogSoftmaxQuantized`).
pub fn log_softmax(
    p: &LogSoftmaxParams,
    depth: usize,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    const OUTPUT_INTEGER_BITS: i32 = 4;
    p.check()?;
    check(&p.softmax, depth, input.len(), output.len())?;
    let s = &p.softmax;
    let in_q5 = |diff: i32| {
        crate::quant::multiply_by_quantized_multiplier(diff, s.input_multiplier, s.input_left_shift)
    };
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().copied().max().unwrap_or(i8::MIN) as i32;
        let sum_of_exps_in_q12 = x
            .iter()
            .map(|&v| v as i32 - max)
            .filter(|&diff| diff >= s.diff_min)
            .fold(0i32, |sum, diff| {
                let e = exp_on_negative_values(in_q5(diff), SCALED_DIFF_INTEGER_BITS);
                sum.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS))
            });
        let log_sum_of_exps_in_q5 = crate::fixedpoint::log_x_for_x_greater_than_or_equal_to_1(
            sum_of_exps_in_q12,
            ACCUMULATION_INTEGER_BITS,
            SCALED_DIFF_INTEGER_BITS,
        );
        let shifted_log_sum = log_sum_of_exps_in_q5.wrapping_add(i32::MIN);
        let adjusted_diff_min =
            (s.diff_min - 1).max(crate::quant::multiply_by_quantized_multiplier(
                shifted_log_sum,
                p.reverse_scaling_divisor,
                p.reverse_scaling_shift,
            ));
        let exponent = (31 - SCALED_DIFF_INTEGER_BITS - OUTPUT_INTEGER_BITS) as u32;
        for (&v, out) in x.iter().zip(y.iter_mut()) {
            let diff = v as i32 - max;
            *out = if diff > adjusted_diff_min {
                let q27 = rounding_divide_by_pot(
                    in_q5(diff).wrapping_sub(log_sum_of_exps_in_q5),
                    exponent,
                ) + 127;
                q27.clamp(-128, 127) as i8
            } else {
                i8::MIN
            };
        }
    }
    Ok(())
}
