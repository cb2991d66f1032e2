//! Fixed-point requantization, exactly as TFLite and gemmlowp define it.
//!
//! An int32 accumulator is scaled to the int8 output by a real multiplier
//! `M = s_in * s_w / s_out`, stored as a Q31 `multiplier` in `[2^30, 2^31)`
//! and a power-of-two `shift` (TFLite's "double rounding" scheme, which is
//! its default): first a saturating rounding doubling high multiply, then a
//! rounding right shift. The host converts `M` with [`quantize_multiplier`];
//! the device only ever sees the two integers.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

/// A real multiplier in TFLite's fixed-point form: `M = multiplier * 2^(shift - 31)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Requant {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0 for a zero multiplier.
    pub multiplier: i32,
    /// Power-of-two exponent; positive shifts left, negative shifts right.
    pub shift: i32,
}

impl Requant {
    /// Largest left or right shift a valid multiplier may carry.
    pub const MAX_SHIFT: i32 = 31;

    /// Whether the shift is inside the range the arithmetic is defined for.
    pub fn is_valid(&self) -> bool {
        (-Self::MAX_SHIFT..=Self::MAX_SHIFT).contains(&self.shift) && self.multiplier >= 0
    }

    /// Scales `x` by this multiplier (TFLite `MultiplyByQuantizedMultiplier`).
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        multiply_by_quantized_multiplier(x, self.multiplier, self.shift)
    }

    /// Scales `x` by this multiplier with the given rounding.
    #[inline(always)]
    pub fn apply_rounded(&self, x: i32, rounding: Rounding) -> i32 {
        match rounding {
            Rounding::Double => self.apply(x),
            Rounding::Single => {
                multiply_by_quantized_multiplier_single_rounding(x, self.multiplier, self.shift)
            }
        }
    }
}

/// One channel's [`Requant`] unpacked for many accumulators: the shifts and
/// the rounding constants are worked out once per channel instead of once
/// per output value, as CMSIS-NN's kernels do.
#[derive(Clone, Copy, Debug)]
pub struct ChannelRequant {
    multiplier: i32,
    /// The left shift (a multiplier of one half or more).
    left: u32,
    /// The rounding right shift, in the form that applies it.
    down: Option<RoundingDown>,
    rounding: Rounding,
}

impl ChannelRequant {
    /// Unpacks a valid multiplier (see [`Requant::is_valid`]).
    #[inline(always)]
    pub fn new(r: Requant, rounding: Rounding) -> Self {
        Self {
            multiplier: r.multiplier,
            left: r.shift.max(0) as u32,
            down: RoundingDown::new(r),
            rounding,
        }
    }

    /// Equals [`Requant::apply_rounded`] of the multiplier it was made from.
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        match self.rounding {
            Rounding::Double => self.apply_double(x),
            Rounding::Single => {
                let right = self.down.map_or(0, |d| d.down as i32 + 1);
                multiply_by_quantized_multiplier_single_rounding(
                    x,
                    self.multiplier,
                    self.left as i32 - right,
                )
            }
        }
    }

    /// The multiplier as a [`RoundingDown`], if it rounds twice
    /// ([`Rounding::Double`]) and down (a negative shift, no left shift):
    /// then [`RoundingDown::apply`] equals [`apply`](Self::apply).
    #[inline(always)]
    pub fn rounding_down(&self) -> Option<RoundingDown> {
        self.down.filter(|_| self.rounding == Rounding::Double)
    }

    /// [`apply`](Self::apply) for a multiplier made with
    /// [`Rounding::Double`], for loops that chose the rounding outside.
    #[inline(always)]
    pub fn apply_double(&self, x: i32) -> i32 {
        match self.down {
            Some(down) => down.apply(x),
            None => {
                ((x.wrapping_shl(self.left) as i64 * self.multiplier as i64 + (1 << 30)) >> 31)
                    as i32
            }
        }
    }
}

/// A [`Requant`] with double rounding and a negative shift (no left
/// shift, then a rounding right shift: a real multiplier below one half,
/// as in every conv and dense layer of the MLPerf Tiny models), kept in
/// eight bytes so that a kernel can hold a table of them for all its
/// channels.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundingDown {
    multiplier: i32,
    /// The right shift minus one.
    down: u32,
}

impl RoundingDown {
    /// A valid multiplier (see [`Requant::is_valid`]) in this form, if it
    /// rounds down (a negative shift); `None` otherwise.
    #[inline(always)]
    pub fn new(r: Requant) -> Option<Self> {
        (r.shift < 0).then(|| Self {
            multiplier: r.multiplier,
            down: (-r.shift - 1) as u32,
        })
    }

    /// The multiplier and the right shift minus one, for assembly that
    /// applies them as [`apply`](Self::apply) does.
    #[inline(always)]
    #[cfg(arm_dsp)]
    pub(crate) fn parts(&self) -> (i32, u32) {
        (self.multiplier, self.down)
    }

    /// [`apply`](Self::apply) of each of `x` (four at once in registers on
    /// DSP cores).
    #[inline(always)]
    pub fn apply_each<const P: usize>(&self, x: [i32; P]) -> [i32; P] {
        #[cfg(arm_dsp)]
        if P == 4 {
            let y =
                crate::int8::arm_dsp::requant::round_down4(self, [0, 1, 2, 3].map(|j| x[j % P]));
            return core::array::from_fn(|j| y[j]);
        }
        x.map(|v| self.apply(v))
    }

    /// Equals [`Requant::apply`] (double rounding) of the multiplier it
    /// was made from.
    ///
    /// gemmlowp rounds twice: `h = floor(P / 2^31)` with `P = x * M +
    /// 2^30` (the doubling high multiply; a valid multiplier is never
    /// i32::MIN, so it never saturates), then `h / 2^right` to nearest,
    /// ties away from zero, which is `floor((h + 2^(right-1) - [h < 0]) /
    /// 2^right)`. Both floors fold into one of `P + c * 2^31` with `c =
    /// 2^(right-1) - [P < 0]`, never negative, a 64-bit sum that cannot
    /// overflow (ADDS/ADC with shifted operands), whose high word shifted
    /// by `right - 1` is the result: about ten instructions on a 32-bit
    /// core against fifteen for the two steps (the unit tests hold it to
    /// the two-step form).
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        let p = x as i64 * self.multiplier as i64 + (1 << 30);
        let c = (1u32 << self.down) - ((p >> 32) as u32 >> 31);
        (((p + ((c as u64) << 31) as i64) >> 32) as i32) >> self.down
    }
}

/// How a requantization rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rounding {
    /// gemmlowp's two roundings (doubling high multiply, then a rounding
    /// shift): TFLite's default, and what its reference convolutions use.
    #[default]
    Double,
    /// One rounding of the exact 64-bit product, half toward +infinity
    /// (TFLite's `TFLITE_SINGLE_ROUNDING`): what LiteRT's reference
    /// `FULLY_CONNECTED` computes. The two differ only when a value lies
    /// within one part in `2^-shift` of a tie.
    Single,
}

/// `round(x * multiplier * 2^shift / 2^31)` with a single rounding, half toward +infinity.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_single_rounding(
    x: i32,
    multiplier: i32,
    shift: i32,
) -> i32 {
    let total_shift = (31 - shift).clamp(1, 62) as u32;
    let result = (x as i64 * multiplier as i64 + (1i64 << (total_shift - 1))) >> total_shift;
    result.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)`, with
/// the one overflowing case `MIN * MIN` saturated to `MAX`.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp adds a nudge of 2^30 (1 - 2^30 below zero) and divides by
    // 2^31 toward zero; for every product both equal one floor shift of
    // `ab + 2^30` (CMSIS-NN's form), which costs a 64-bit add and shift
    // instead of a signed 64-bit division.
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// gemmlowp's own arithmetic, kept as the oracle of the shift form above.
#[cfg(test)]
fn saturating_rounding_doubling_high_mul_by_division(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties
/// away from zero. `exponent` must be at most 31.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31);
    let mask = ((1u64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite `MultiplyByQuantizedMultiplier` (double rounding).
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left_shift = shift.max(0) as u32;
    let right_shift = (-shift).max(0) as u32;
    // TFLite multiplies by `1 << left_shift`; an overflow there is undefined
    // behaviour in C++, here it wraps, which is what the hardware does.
    let shifted = x.wrapping_mul(1i32.wrapping_shl(left_shift));
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(shifted, multiplier),
        right_shift,
    )
}

/// TFLite `MultiplyByQuantizedMultiplierSmallerThanOneExp`, used by ADD.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_smaller_than_one(
    x: i32,
    multiplier: i32,
    shift: i32,
) -> i32 {
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, multiplier),
        (-shift).max(0) as u32,
    )
}

/// TFLite `MultiplyByQuantizedMultiplierGreaterThanOne`, used by SOFTMAX.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_greater_than_one(
    x: i32,
    multiplier: i32,
    left_shift: i32,
) -> i32 {
    saturating_rounding_doubling_high_mul(
        x.wrapping_mul(1i32.wrapping_shl(left_shift.max(0) as u32)),
        multiplier,
    )
}

/// `frexp`: splits `x` into a mantissa in `[0.5, 1)` (same sign as `x`) and an
/// exponent with `x = mantissa * 2^exponent`. Zero, infinities and NaN give `(x, 0)`.
pub fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (m, e - 54);
    }
    let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (mantissa, biased - 1022)
}

/// `std::round`: halves away from zero, without needing `std`.
pub fn round_half_away(x: f64) -> f64 {
    libm::round(x)
}

/// TFLite `QuantizeMultiplier`: the fixed-point form of a real multiplier.
pub fn quantize_multiplier(real: f64) -> Requant {
    if real == 0.0 {
        return Requant {
            multiplier: 0,
            shift: 0,
        };
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = round_half_away(q * (1i64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    Requant {
        multiplier: q_fixed as i32,
        shift,
    }
}

/// The effective output multiplier of a convolution (and of a dense layer
/// with per-channel weights), computed in double precision as TFLite's
/// `PopulateConvolutionQuantizationParams` does.
pub fn conv_output_multiplier(input_scale: f32, filter_scale: f32, output_scale: f32) -> Requant {
    quantize_multiplier(input_scale as f64 * filter_scale as f64 / output_scale as f64)
}

/// The effective output multiplier of a dense layer with one weight scale:
/// TFLite's `GetQuantizedConvolutionMultipler` multiplies the two scales in
/// single precision before dividing in double, which can change the last
/// bit of the multiplier (and an output byte) against [`conv_output_multiplier`].
pub fn fully_connected_output_multiplier(
    input_scale: f32,
    filter_scale: f32,
    output_scale: f32,
) -> Requant {
    quantize_multiplier((input_scale * filter_scale) as f64 / output_scale as f64)
}

/// The int8 activation range after a fused activation, in output units
/// (TFLite `CalculateActivationRangeQuantized`).
pub fn activation_range_i8(
    activation: crate::geometry::Activation,
    scale: f32,
    zero_point: i32,
) -> (i32, i32) {
    activation_range(
        activation,
        scale,
        zero_point,
        (i8::MIN.into(), i8::MAX.into()),
    )
}

/// The activation range after a fused activation, in output units of a
/// type spanning `(min, max)` (TFLite `CalculateActivationRangeQuantized`).
pub fn activation_range(
    activation: crate::geometry::Activation,
    scale: f32,
    zero_point: i32,
    (min, max): (i32, i32),
) -> (i32, i32) {
    use crate::geometry::Activation;
    let quantize = |v: f32| zero_point + libm::round((v / scale) as f64) as i32;
    let (lo, hi) = match activation {
        Activation::None => (min, max),
        Activation::Relu => (quantize(0.0), max),
        Activation::Relu6 => (quantize(0.0), quantize(6.0)),
        Activation::ReluN1To1 => (quantize(-1.0), quantize(1.0)),
    };
    (lo.max(min), hi.min(max))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shift_form_of_the_doubling_high_multiply_equals_gemmlowp_s_division() {
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 30) - 1,
            -(1 << 30),
            -3,
            -2,
            -1,
            0,
            1,
            2,
            3,
            1 << 30,
            (1 << 30) + 1,
            i32::MAX - 1,
            i32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(
                    saturating_rounding_doubling_high_mul(a, b),
                    saturating_rounding_doubling_high_mul_by_division(a, b),
                    "{a} * {b}"
                );
            }
        }
        // Ties (ab = (2k + 1) * 2^30) on both sides of zero, and a pseudo-random sweep.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for k in -1000i64..1000 {
            let (a, b) = (((2 * k + 1) << 15) as i32, 1 << 15);
            assert_eq!(
                saturating_rounding_doubling_high_mul(a, b),
                saturating_rounding_doubling_high_mul_by_division(a, b),
                "{a} * {b}"
            );
        }
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (a, b) = (state as i32, (state >> 32) as i32);
            assert_eq!(
                saturating_rounding_doubling_high_mul(a, b),
                saturating_rounding_doubling_high_mul_by_division(a, b),
                "{a} * {b}"
            );
        }
    }

    use super::*;

    #[test]
    fn an_unpacked_channel_requantization_equals_the_packed_one() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -65_537,
            -256,
            -3,
            -1,
            0,
            1,
            3,
            255,
            65_536,
            i32::MAX - 1,
            i32::MAX,
        ];
        let random_multipliers: std::vec::Vec<i32> = (0..6)
            .map(|_| (1 << 30) | (next() as i32 & ((1 << 30) - 1)))
            .collect();
        for shift in -31..=31 {
            for &multiplier in [0, 1 << 30, (1 << 30) + 1, 1_126_980_244, i32::MAX]
                .iter()
                .chain(&random_multipliers)
            {
                let r = Requant { multiplier, shift };
                for rounding in [Rounding::Double, Rounding::Single] {
                    let unpacked = ChannelRequant::new(r, rounding);
                    let random: std::vec::Vec<i32> =
                        (0..4_000).map(|k| next() as i32 >> (k % 2 * 16)).collect();
                    for x in edges.into_iter().chain(random) {
                        assert_eq!(
                            unpacked.apply(x),
                            r.apply_rounded(x, rounding),
                            "{x} by {r:?} ({rounding:?})"
                        );
                        if let (Rounding::Double, Some(down)) = (rounding, RoundingDown::new(r)) {
                            assert_eq!(down.apply(x), r.apply(x), "{x} by {r:?} rounding down");
                        }
                    }
                    // Four at a time (assembly on DSP cores): each as one.
                    if let (Rounding::Double, Some(down)) = (rounding, RoundingDown::new(r)) {
                        let values: std::vec::Vec<i32> = edges
                            .into_iter()
                            .chain((0..400).map(|_| next() as i32))
                            .collect();
                        for four in values.chunks_exact(4) {
                            let four = [four[0], four[1], four[2], four[3]];
                            assert_eq!(down.apply_each(four), four.map(|x| r.apply(x)), "{r:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn srdhm_golden_values() {
        // Values worked by hand from the gemmlowp definition.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        // Ties round toward +infinity, like ARM's VQRDMULH: the negative nudge
        // is 1 - 2^30, not -2^30. So 1.5 -> 2 but -1.5 -> -1, and 0.5 -> 1 but
        // -0.5 -> 0. (Cross-checked with a Python transcription of gemmlowp.)
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(1000, 1_518_500_250),
            707
        );
        // 1000/sqrt(2)
    }

    #[test]
    fn rounding_divide_by_pot_golden_values() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 -> 2
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 0), i32::MIN);
        assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
    }

    #[test]
    fn multiply_by_quantized_multiplier_golden_values() {
        // M = 0.5 -> (2^30, 0); 0.25 -> (2^30, -1); 3.0 -> (0.75 * 2^31, 2).
        assert_eq!(
            quantize_multiplier(0.5),
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            quantize_multiplier(0.25),
            Requant {
                multiplier: 1 << 30,
                shift: -1
            }
        );
        assert_eq!(
            quantize_multiplier(3.0),
            Requant {
                multiplier: 1_610_612_736,
                shift: 2
            }
        );
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, -1), 25);
        assert_eq!(multiply_by_quantized_multiplier(-101, 1 << 30, -1), -25); // -25.25
        assert_eq!(multiply_by_quantized_multiplier(-102, 1 << 30, -1), -26); // -25.5 away from 0
        assert_eq!(multiply_by_quantized_multiplier(7, 1_610_612_736, 2), 21);
        // Double rounding: 0.5 * x with x = 3 gives 1.5 -> 2 after one step.
        assert_eq!(multiply_by_quantized_multiplier(3, 1 << 30, 0), 2);
        // Saturation: MIN * (multiplier MIN) would overflow; the left shift wraps first.
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
            i32::MAX
        );
        // A typical conv scale: 0.0039215 * 0.0123 / 0.0470588.
        let r = conv_output_multiplier(0.003_921_5, 0.012_3, 0.047_058_8);
        // Expected value from Python's math.frexp on the same f32 inputs.
        assert_eq!(
            r,
            Requant {
                multiplier: 1_126_980_244,
                shift: -9
            }
        );
    }

    #[test]
    fn quantize_multiplier_edge_cases() {
        assert_eq!(
            quantize_multiplier(0.0),
            Requant {
                multiplier: 0,
                shift: 0
            }
        );
        // Mantissa rounding up to exactly 2^31 renormalises.
        let just_below_one = 1.0 - 1e-12;
        assert_eq!(
            quantize_multiplier(just_below_one),
            Requant {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        // Tiny multipliers flush to zero as TFLite does.
        assert_eq!(
            quantize_multiplier(1e-12),
            Requant {
                multiplier: 0,
                shift: 0
            }
        );
        assert_eq!(frexp(8.0), (0.5, 4));
        assert_eq!(frexp(-0.375), (-0.75, -1));
        assert_eq!(frexp(f64::MIN_POSITIVE / 4.0), (0.5, -1023));
    }
}
