//! MEAN over any set of axes, as TFLite's reference `QuantizedMeanOrSum`
//! computes it: the int32 sum of the reduced elements, less the input zero
//! point times their count, times `input_scale / output_scale` with the
//! division by the count folded into the multiplier (and its shift), plus
//! the output zero point, clamped.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::Shape;
use crate::layout::{reduce, reduced, sum_channels};
use crate::quant::{multiply_by_quantized_multiplier, quantize_multiplier};
use serde::{Deserialize, Serialize};

/// The integer parameters of an int8 MEAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeanParams {
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Elements reduced into each output.
    pub count: i32,
    /// `input_scale / output_scale / count` as a multiplier ...
    pub multiplier: i32,
    /// ... and its power-of-two shift.
    pub shift: i32,
}

impl MeanParams {
    /// TFLite's parameters: `QuantizeMultiplier(input_scale / output_scale)`
    /// in double precision, then the count folded in as
    /// `(multiplier << s) / count` with the shift lowered by `s`, where `s`
    /// is the count's bit length less one, at most 32 and `31 + shift`.
    pub fn new(input: (f32, i32), output: (f32, i32), count: u32) -> Self {
        let r = quantize_multiplier(f64::from(input.0) / f64::from(output.0));
        let (mut multiplier, mut shift) = (r.multiplier, r.shift);
        if count > 0 {
            let s = (31 - count.leading_zeros() as i32)
                .min(32)
                .min(31 + shift)
                .max(0);
            multiplier = ((i64::from(multiplier) << s) / i64::from(count)) as i32;
            shift -= s;
        }
        Self {
            input_zero_point: input.1,
            output_zero_point: output.1,
            count: count as i32,
            multiplier,
            shift,
        }
    }
}

/// Checks MEAN's arguments: the output is the input reduced over `axes`.
pub fn check(
    p: &MeanParams,
    input: Shape,
    output: Shape,
    axes: [bool; 4],
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    let r = reduced(input, axes);
    ensure(
        r.elements() == output.elements(),
        "mean: the output must have the elements of the input reduced over the axes",
    )?;
    let count = input.elements().unwrap_or(0) / r.elements().unwrap_or(1).max(1);
    ensure(
        p.count as usize == count && p.shift >= -31 && p.shift <= 30,
        "mean: parameters do not match the reduction",
    )?;
    expect_len("mean input", in_len, input.elements().unwrap_or(usize::MAX))?;
    expect_len(
        "mean output",
        out_len,
        output.elements().unwrap_or(usize::MAX),
    )
}

/// int8 MEAN of `x` (shape `input`) over `axes` into `out`.
pub fn mean(
    p: &MeanParams,
    input: Shape,
    output: Shape,
    axes: [bool; 4],
    x: &[i8],
    out: &mut [i8],
) -> Result<(), KernelError> {
    mean_of(p, (input, output, axes), x, out, (-128, 127), |v| v as i8)
}

/// MEAN of int8 or int16 values (TFLite's int16 MEAN is the same
/// arithmetic): the result clamped to `(lo, hi)` and narrowed by `narrow`.
pub fn mean_of<T: Copy + Into<i32>>(
    p: &MeanParams,
    (input, output, axes): (Shape, Shape, [bool; 4]),
    x: &[T],
    out: &mut [T],
    (lo, hi): (i32, i32),
    narrow: impl Fn(i32) -> T,
) -> Result<(), KernelError> {
    check(p, input, output, axes, x.len(), out.len())?;
    let offset = p.input_zero_point.wrapping_mul(p.count);
    let store = |o: usize, sum: i32| {
        let scaled =
            multiply_by_quantized_multiplier(sum.wrapping_sub(offset), p.multiplier, p.shift);
        out[o] = narrow(scaled.wrapping_add(p.output_zero_point).clamp(lo, hi));
    };
    if axes[3] {
        reduce(
            input,
            axes,
            0i32,
            |sum, i| sum.wrapping_add(x[i].into()),
            store,
        );
    } else {
        sum_channels(input, axes, x, store);
    }
    Ok(())
}
