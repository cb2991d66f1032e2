//! Binary elementwise operators with NumPy broadcasting, as TFLite's
//! reference kernels compute them: ADD and SUB (int8: both inputs rescaled
//! with 20 bits of headroom, summed or subtracted, requantized), MUL (int8:
//! the product of the offset inputs, requantized), MAXIMUM and MINIMUM (of
//! the raw values, in either type). Each operand is viewed as a 4-D shape
//! whose extents equal the output's or are 1.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::Shape;
use crate::int8::AddParams;
use crate::quant::{
    multiply_by_quantized_multiplier, quantize_multiplier, ChannelRequant, Requant, Rounding,
};
use serde::{Deserialize, Serialize};

/// Which operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binary {
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b.
    Mul,
    /// max(a, b).
    Maximum,
    /// min(a, b).
    Minimum,
    /// (a - b)^2.
    SquaredDifference,
}

/// The integer parameters of an int8 MUL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MulParams {
    /// `-zero_point` of the first input.
    pub input1_offset: i32,
    /// `-zero_point` of the second input.
    pub input2_offset: i32,
    /// Zero point of the output.
    pub output_offset: i32,
    /// `s1 * s2 / s_out` (computed in float, as TFLite does).
    pub output: Requant,
    /// Lower clamp, in output units.
    pub act_min: i32,
    /// Upper clamp, in output units.
    pub act_max: i32,
}

impl MulParams {
    /// TFLite's parameters from the three quantizations and the clamp.
    pub fn new(
        input1: (f32, i32),
        input2: (f32, i32),
        output: (f32, i32),
        act: (i32, i32),
    ) -> Self {
        Self {
            input1_offset: -input1.1,
            input2_offset: -input2.1,
            output_offset: output.1,
            output: quantize_multiplier(f64::from(input1.0 * input2.0 / output.0)),
            act_min: act.0,
            act_max: act.1,
        }
    }
}

/// The integer parameters of an int8 SQUARED_DIFFERENCE: both inputs
/// rescaled with 7 bits of headroom, subtracted, squared, requantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquaredDifferenceParams {
    /// `-zero_point` of the first input.
    pub input1_offset: i32,
    /// `-zero_point` of the second input.
    pub input2_offset: i32,
    /// Zero point of the output.
    pub output_offset: i32,
    /// Rescale of the first input (below one).
    pub input1: Requant,
    /// Rescale of the second input (below one).
    pub input2: Requant,
    /// Rescale of the squared difference.
    pub output: Requant,
}

impl SquaredDifferenceParams {
    /// Headroom of the rescaled inputs.
    pub const LEFT_SHIFT: i32 = 7;

    /// TFLite's parameters from the three quantizations.
    pub fn new(input1: (f32, i32), input2: (f32, i32), output: (f32, i32)) -> Self {
        let twice_max = 2.0 * f64::from(input1.0.max(input2.0));
        let headroom = (1i64 << (2 * Self::LEFT_SHIFT)) as f64;
        Self {
            input1_offset: -input1.1,
            input2_offset: -input2.1,
            output_offset: output.1,
            input1: quantize_multiplier(f64::from(input1.0) / twice_max),
            input2: quantize_multiplier(f64::from(input2.0) / twice_max),
            output: quantize_multiplier(twice_max * twice_max / (headroom * f64::from(output.0))),
        }
    }
}

/// The int8 arithmetic of a binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Int8Binary {
    /// ADD or SUB's rescaling (SUB subtracts the rescaled second input).
    Add(AddParams),
    /// MUL.
    Mul(MulParams),
    /// MAXIMUM or MINIMUM: raw values.
    Raw,
    /// SQUARED_DIFFERENCE.
    SquaredDifference(SquaredDifferenceParams),
}

/// Checks that `a` and `b` broadcast to `out` and the slices fit.
pub fn check(a: Shape, b: Shape, out: Shape, lens: [usize; 3]) -> Result<(), KernelError> {
    let d = |s: Shape| [s.n, s.h, s.w, s.c];
    let fits = |s: Shape| d(s).iter().zip(d(out)).all(|(&x, o)| x == o || x == 1);
    ensure(
        fits(a) && fits(b),
        "binary: operands do not broadcast to the output",
    )?;
    let n = |s: Shape| s.elements().unwrap_or(usize::MAX);
    expect_len("first operand", lens[0], n(a))?;
    expect_len("second operand", lens[1], n(b))?;
    expect_len("output", lens[2], n(out))
}

/// Calls `f(out, a, b)` with the indices of every output element in order
/// and the operand elements it reads.
pub(crate) fn each(a: Shape, b: Shape, out: Shape, mut f: impl FnMut(usize, usize, usize)) {
    let strides = |s: Shape| {
        let d = [s.n, s.h, s.w, s.c].map(|v| v as usize);
        let full = [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];
        core::array::from_fn::<usize, 4, _>(|k| if d[k] == 1 { 0 } else { full[k] })
    };
    let (sa, sb) = (strides(a), strides(b));
    let o = [out.n, out.h, out.w, out.c].map(|v| v as usize);
    let mut at = 0;
    for i in 0..o[0] {
        for j in 0..o[1] {
            for k in 0..o[2] {
                let (ra, rb) = (
                    i * sa[0] + j * sa[1] + k * sa[2],
                    i * sb[0] + j * sb[1] + k * sb[2],
                );
                for l in 0..o[3] {
                    f(at, ra + l * sa[3], rb + l * sb[3]);
                    at += 1;
                }
            }
        }
    }
}

/// int8 `op` of `x` (viewed as `a`) and `y` (viewed as `b`) into `out`.
#[allow(clippy::too_many_arguments)]
pub fn binary_i8(
    op: Binary,
    p: &Int8Binary,
    (a, b, o): (Shape, Shape, Shape),
    x: &[i8],
    y: &[i8],
    out: &mut [i8],
) -> Result<(), KernelError> {
    check(a, b, o, [x.len(), y.len(), out.len()])?;
    match (op, p) {
        (Binary::Add | Binary::Sub, Int8Binary::Add(p)) => {
            p.check()?;
            let [r1, r2, ro] =
                [p.input1, p.input2, p.output].map(|r| ChannelRequant::new(r, Rounding::Double));
            let shift = p.left_shift as u32;
            let sub = op == Binary::Sub;
            each(a, b, o, |i, j, k| {
                let v1 = r1.apply_double((p.input1_offset + i32::from(x[j])) << shift);
                let v2 = r2.apply_double((p.input2_offset + i32::from(y[k])) << shift);
                let raw = if sub {
                    v1.wrapping_sub(v2)
                } else {
                    v1.wrapping_add(v2)
                };
                out[i] = ro
                    .apply_double(raw)
                    .wrapping_add(p.output_offset)
                    .max(p.act_min)
                    .min(p.act_max) as i8;
            });
        }
        (Binary::Mul, Int8Binary::Mul(p)) => {
            ensure(p.output.is_valid(), "mul: output shift must be in -31..=31")?;
            each(a, b, o, |i, j, k| {
                let prod =
                    (p.input1_offset + i32::from(x[j])) * (p.input2_offset + i32::from(y[k]));
                let v = multiply_by_quantized_multiplier(prod, p.output.multiplier, p.output.shift);
                out[i] = v
                    .wrapping_add(p.output_offset)
                    .max(p.act_min)
                    .min(p.act_max) as i8;
            });
        }
        (Binary::SquaredDifference, Int8Binary::SquaredDifference(p)) => {
            let ok = [p.input1, p.input2]
                .iter()
                .all(|r| r.multiplier >= 0 && (-31..=0).contains(&r.shift));
            ensure(
                ok && p.output.is_valid(),
                "squared difference: multipliers out of range",
            )?;
            let shift = SquaredDifferenceParams::LEFT_SHIFT as u32;
            each(a, b, o, |i, j, k| {
                let scale = |v: i32, r: Requant| {
                    crate::quant::multiply_by_quantized_multiplier_smaller_than_one(
                        v << shift,
                        r.multiplier,
                        r.shift,
                    )
                };
                let d = scale(p.input1_offset + i32::from(x[j]), p.input1)
                    - scale(p.input2_offset + i32::from(y[k]), p.input2);
                let v = multiply_by_quantized_multiplier(
                    d.wrapping_mul(d),
                    p.output.multiplier,
                    p.output.shift,
                );
                out[i] = v.wrapping_add(p.output_offset).clamp(-128, 127) as i8;
            });
        }
        (Binary::Maximum, Int8Binary::Raw) => each(a, b, o, |i, j, k| out[i] = x[j].max(y[k])),
        (Binary::Minimum, Int8Binary::Raw) => each(a, b, o, |i, j, k| out[i] = x[j].min(y[k])),
        _ => {
            return Err(KernelError::Param {
                what: "binary: parameters for another operator",
            })
        }
    }
    Ok(())
}

/// float `op` of `x` (viewed as `a`) and `y` (viewed as `b`) into `out`;
/// ADD, SUB and MUL clamp to `(lo, hi)` as TFLite's
/// `ActivationFunctionWithMinMax` does (`min(max(v, lo), hi)`).
pub fn binary_f32(
    op: Binary,
    (lo, hi): (f32, f32),
    (a, b, o): (Shape, Shape, Shape),
    x: &[f32],
    y: &[f32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    check(a, b, o, [x.len(), y.len(), out.len()])?;
    let clamp = |v: f32| {
        let m = if v < lo { lo } else { v };
        if hi < m {
            hi
        } else {
            m
        }
    };
    each(a, b, o, |i, j, k| {
        let (u, v) = (x[j], y[k]);
        out[i] = match op {
            Binary::Add => clamp(u + v),
            Binary::Sub => clamp(u - v),
            Binary::Mul => clamp(u * v),
            Binary::Maximum => {
                if u > v {
                    u
                } else {
                    v
                }
            }
            Binary::Minimum => {
                if u < v {
                    u
                } else {
                    v
                }
            }
            Binary::SquaredDifference => (u - v) * (u - v),
        };
    });
    Ok(())
}
