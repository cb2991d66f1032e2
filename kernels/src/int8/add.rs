//! int8 elementwise addition (TFLite `ADD`): both inputs are rescaled to a
//! common scale with 20 bits of headroom, summed, then requantized.

use crate::error::{ensure, expect_len, KernelError};
use crate::quant::{quantize_multiplier, ChannelRequant, Requant, Rounding};
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
    pub fn new(
        input1: (f32, i32),
        input2: (f32, i32),
        output: (f32, i32),
        act: (i32, i32),
    ) -> Self {
        Self::with_left_shift(20, input1, input2, output, act)
    }

    /// The same with another headroom: TFLite's general int16 scaling
    /// shifts by 15 instead of int8's 20.
    pub fn with_left_shift(
        left_shift: i32,
        input1: (f32, i32),
        input2: (f32, i32),
        output: (f32, i32),
        act: (i32, i32),
    ) -> Self {
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
        let offsets = [self.input1_offset, self.input2_offset]
            .iter()
            .all(|o| (-127..=128).contains(o));
        ensure(
            offsets && (-128..=127).contains(&self.output_offset),
            "add: zero points must be int8 values",
        )?;
        ensure(
            (0..=22).contains(&self.left_shift),
            "add: left shift must be in 0..=22",
        )?;
        let below_one = |r: &Requant| r.multiplier >= 0 && (-31..=0).contains(&r.shift);
        ensure(
            below_one(&self.input1) && below_one(&self.input2),
            "add: input multipliers must be below one",
        )?;
        ensure(
            self.output.is_valid(),
            "add: output shift must be in -31..=31",
        )?;
        super::Clamp {
            min: self.act_min,
            max: self.act_max,
        }
        .check()
    }
}

/// Checks an addition's arguments by their lengths.
pub fn check(p: &AddParams, a: usize, b: usize, output: usize) -> Result<(), KernelError> {
    p.check()?;
    expect_len("second input", b, a)?;
    expect_len("output", output, a)
}

/// Tensors at least this long rescale their inputs through two 256-entry
/// tables (filling them costs about as much as rescaling 512 elements).
const TABLE_FROM: usize = 1024;

/// `out[i] = a[i] + b[i]` in int8, with TFLite's rescaling.
pub fn add(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    check(p, a.len(), b.len(), output.len())?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::add(p, a, b, output) {
        return Ok(());
    }
    #[cfg(arm_mve)]
    if super::arm_mve::add::add(p, a, b, output) {
        return Ok(());
    }
    // The three multipliers unpacked once for the whole tensor. Each is
    // valid (checked above), so the double-rounding form holds for all
    // three: with a shift of at most zero it is TFLite's
    // `...SmallerThanOneExp`, above zero its general form (the naive
    // kernel spells the two out).
    let [input1, input2, out] =
        [p.input1, p.input2, p.output].map(|r| ChannelRequant::new(r, Rounding::Double));
    let shift = p.left_shift as u32;
    let rescale1 = |a: i8| input1.apply_double((p.input1_offset + a as i32) << shift);
    let rescale2 = |b: i8| input2.apply_double((p.input2_offset + b as i32) << shift);
    let finish = |a: i32, b: i32| {
        out.apply_double(a.wrapping_add(b))
            .wrapping_add(p.output_offset)
            .max(p.act_min)
            .min(p.act_max) as i8
    };
    if a.len() >= TABLE_FROM {
        // An int8 input takes 256 values: rescale each once into a table
        // (2 KiB of stack) instead of once per element.
        let table = |rescale: &dyn Fn(i8) -> i32| {
            core::array::from_fn::<i32, 256, _>(|q| rescale(q as u8 as i8))
        };
        let (table1, table2) = (table(&rescale1), table(&rescale2));
        for ((y, &a), &b) in output.iter_mut().zip(a).zip(b) {
            *y = finish(table1[a as u8 as usize], table2[b as u8 as usize]);
        }
    } else {
        for ((y, &a), &b) in output.iter_mut().zip(a).zip(b) {
            *y = finish(rescale1(a), rescale2(b));
        }
    }
    Ok(())
}
