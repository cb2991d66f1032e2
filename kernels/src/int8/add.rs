//! int8 elementwise addition (TFLite `ADD`): both inputs are rescaled to a
//! common scale with 20 bits of headroom, summed, then requantized.

use crate::error::{ensure, expect_len, KernelError};
use crate::quant::{multiply_by_quantized_multiplier_smaller_than_one as scale_down, quantize_multiplier, Requant};
use serde::{Deserialize, Serialize};

/// The integer parameters of an int8 addition (TFLite `ArithmeticParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddParams {
    /// `-zero_point` of the first input.
    pub input1_offset: i32,
    /// `-zero_point` of the second input.
    pub input2_offset: i32,
    /// Zero point of the output.
    pub output_offset: i32,
    /// Headroom shift applied to both inputs (20 for int8).
    pub left_shift: i32,
    /// Rescale of the first input (multiplier below one).
    pub input1: Requant,
    /// Rescale of the second input.
    pub input2: Requant,
    /// Rescale of the sum.
    pub output: Requant,
    /// Lower clamp, in output units.
    pub act_min: i32,
    /// Upper clamp, in output units.
    pub act_max: i32,
}

impl AddParams {
    /// Derives the parameters from the three quantizations, as TFLM's `ADD` prepare does.
    pub fn new(input1: (f32, i32), input2: (f32, i32), output: (f32, i32), act: (i32, i32)) -> Self {
        let left_shift = 20;
        let twice_max_input_scale = 2.0 * input1.0.max(input2.0) as f64;
        let real_output = twice_max_input_scale / ((1i64 << left_shift) as f64 * output.0 as f64);
        AddParams {
            input1_offset: -input1.1,
            input2_offset: -input2.1,
            output_offset: output.1,
            left_shift,
            input1: quantize_multiplier(input1.0 as f64 / twice_max_input_scale),
            input2: quantize_multiplier(input2.0 as f64 / twice_max_input_scale),
            output: quantize_multiplier(real_output),
            act_min: act.0,
            act_max: act.1,
        }
    }

    /// Checks every parameter is in the range the arithmetic is defined for.
    pub fn check(&self) -> Result<(), KernelError> {
        let offsets = [self.input1_offset, self.input2_offset].iter().all(|o| (-127..=128).contains(o));
        ensure(offsets && (-128..=127).contains(&self.output_offset), "add: zero points must be int8 values")?;
        ensure((0..=22).contains(&self.left_shift), "add: left shift must be in 0..=22")?;
        let below_one = |r: &Requant| r.multiplier >= 0 && (-31..=0).contains(&r.shift);
        ensure(below_one(&self.input1) && below_one(&self.input2), "add: input multipliers must be below one")?;
        ensure(self.output.is_valid(), "add: output shift must be in -31..=31")?;
        super::Clamp { min: self.act_min, max: self.act_max }.check()
    }
}

/// Checks an addition's arguments by their lengths.
pub fn check(p: &AddParams, a: usize, b: usize, output: usize) -> Result<(), KernelError> {
    p.check()?;
    expect_len("second input", b, a)?;
    expect_len("output", output, a)
}

/// `out[i] = a[i] + b[i]` in int8, with TFLite's rescaling.
pub fn add(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    check(p, a.len(), b.len(), output.len())?;
    let shift = 1i32 << p.left_shift;
    for ((y, &a), &b) in output.iter_mut().zip(a).zip(b) {
        let a = scale_down((p.input1_offset + a as i32) * shift, p.input1.multiplier, p.input1.shift);
        let b = scale_down((p.input2_offset + b as i32) * shift, p.input2.multiplier, p.input2.shift);
        let sum = p.output.apply_smaller(a.wrapping_add(b)).wrapping_add(p.output_offset);
        *y = sum.clamp(p.act_min, p.act_max) as i8;
    }
    Ok(())
}

impl Requant {
    /// TFLite `MultiplyByQuantizedMultiplierSmallerThanOneExp` with this multiplier;
    /// for a positive shift it falls back to the general form.
    #[inline(always)]
    pub fn apply_smaller(&self, x: i32) -> i32 {
        if self.shift <= 0 {
            scale_down(x, self.multiplier, self.shift)
        } else {
            self.apply(x)
        }
    }
}
