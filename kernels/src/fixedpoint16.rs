//! gemmlowp's 16-bit fixed point (`FixedPoint<int16_t, N>`): the logistic
//! and tanh that TFLite's integer LSTM applies to its int16 gates
//! (`tensor_utils::ApplySigmoid`, `ApplyTanh`). Raw `i16` values with a
//! number of integer bits the caller fixes, as in [`crate::fixedpoint`]
//! for 32 bits; transcribed operation for operation, additions wrapping as
//! gemmlowp's int16 ones do, so every input gives gemmlowp's output.

use crate::quant::rounding_divide_by_pot as rounding_divide_by_pot_i32;

/// `SaturatingRoundingDoublingHighMul` on int16. gemmlowp adds a nudge
/// of `2^14` (or `1 - 2^14` below zero) and divides by `2^15` rounding
/// toward zero; for a negative product `-q` that is the negated floor of
/// `(q + 2^14 - 1) / 2^15`, which is the floor of `(2^14 - q) / 2^15`, so
/// both signs are one arithmetic shift of `ab + 2^14` (SMLABB and ASR on
/// a DSP core; the test holds it to the division).
#[inline(always)]
fn mul(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32 + (1 << 14)) >> 15) as i16
}

/// `RoundingDivideByPOT` on int16.
fn rounding_divide_by_pot(x: i16, exponent: u32) -> i16 {
    let mask = ((1i32 << exponent) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1).wrapping_add(i16::from(x < 0));
    (x >> exponent).wrapping_add(i16::from(remainder > threshold))
}

/// `SaturatingRoundingMultiplyByPOT<exponent>` on int16.
fn saturating_rounding_multiply_by_pot(x: i16, exponent: i32) -> i16 {
    match exponent {
        0 => x,
        e if e > 0 => {
            let threshold = (1i32 << (15 - e)) - 1;
            if x as i32 > threshold {
                i16::MAX
            } else if (x as i32) < -threshold {
                i16::MIN
            } else {
                x.wrapping_shl(e as u32)
            }
        }
        e => rounding_divide_by_pot(x, (-e) as u32),
    }
}

/// `Rescale<dst>` from `src` integer bits.
fn rescale(x: i16, src: i32, dst: i32) -> i16 {
    saturating_rounding_multiply_by_pot(x, src - dst)
}

/// A gemmlowp constant given as a 32-bit raw value, rounded to 16 bits
/// (`RescaleConstantInitializer`).
fn constant(raw32: i32) -> i16 {
    rounding_divide_by_pot_i32(raw32, 16) as i16
}

/// The value one with `integer_bits` integer bits (the largest value for 0).
fn one(integer_bits: i32) -> i16 {
    match integer_bits {
        0 => i16::MAX,
        bits => 1 << (15 - bits),
    }
}

/// `RoundingHalfSum` on int16.
fn rounding_half_sum(a: i16, b: i16) -> i16 {
    let sum = a as i32 + b as i32;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i16
}

/// `exp(a)` for `a` in `[-1/4, 0)`, both Q0.15.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i16) -> i16 {
    let constant_term = constant(1_895_147_668); // exp(-1/8)
    let one_third = constant(715_827_883);
    let x = a.wrapping_add(1 << 12); // a + 1/8
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly = saturating_rounding_multiply_by_pot(
        mul(x4_over_4.wrapping_add(x3), one_third).wrapping_add(x2),
        -1,
    );
    // AddSaturatingIf16Bit.
    constant_term.saturating_add(mul(constant_term, x.wrapping_add(poly)))
}

/// `exp(a)` for `a <= 0` with `integer_bits` integer bits; Q0.15 result.
fn exp_on_negative_values(a: i16, integer_bits: i32) -> i16 {
    let fractional_bits = 15 - integer_bits;
    let one_quarter: i16 = 1 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    for (exponent, multiplier) in crate::fixedpoint::EXP_BARREL {
        if integer_bits > exponent {
            let bit = 1i32 << (fractional_bits + exponent);
            if remainder as i32 & bit != 0 {
                result = mul(result, constant(multiplier));
            }
        }
    }
    if integer_bits > 5 {
        let clamp = constant(-(1 << (36 - integer_bits)));
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = one(0);
    }
    result
}

/// Newton-Raphson for `1 / (1 + a)` on `a` in (0, 1), in Q2.13, as
/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` and
/// `one_minus_x_over_one_plus_x_for_x_in_0_1` both start.
fn reciprocal_of_half_denominator(half_denominator: i16) -> i16 {
    let constant_48_over_17 = constant(1_515_870_810);
    let constant_neg_32_over_17 = constant(-1_010_580_540);
    let mut x = constant_48_over_17.wrapping_add(mul(half_denominator, constant_neg_32_over_17));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus = one(2).wrapping_sub(half_denominator_times_x);
        x = x.wrapping_add(rescale(mul(x, one_minus), 4, 2));
    }
    x
}

/// `1 / (1 + a)` for `a` in (0, 1), Q0.15.
fn one_over_one_plus_x_for_x_in_0_1(a: i16) -> i16 {
    let x = reciprocal_of_half_denominator(rounding_half_sum(a, one(0)));
    // ExactMulByPot<-1> makes Q2.13 into Q1.14 with the same raw value.
    rescale(x, 1, 0)
}

/// `(1 - a) / (1 + a)` for `a` in (0, 1), Q0.15.
fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i16) -> i16 {
    let x = reciprocal_of_half_denominator(rounding_half_sum(a, one(0)));
    rescale(x.wrapping_sub(one(2)), 2, 0)
}

/// gemmlowp `logistic` of `a` with `integer_bits` integer bits; Q0.15.
pub fn logistic(a: i16, integer_bits: i32) -> i16 {
    let abs_input = if a > 0 { a } else { a.wrapping_neg() };
    let if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(
        abs_input.wrapping_neg(),
        integer_bits,
    ));
    match a {
        0 => constant(1 << 30),
        a if a > 0 => if_positive,
        _ => one(0).wrapping_sub(if_positive),
    }
}

/// gemmlowp `tanh` of `a` with `integer_bits` integer bits; Q0.15.
pub fn tanh(a: i16, integer_bits: i32) -> i16 {
    let n = if a < 0 { a } else { a.wrapping_neg() };
    // ExactMulByPot<1>: the same raw value read with one more integer bit.
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1));
    match a {
        0 => 0,
        a if a < 0 => t.wrapping_neg(),
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gemmlowp's form: a nudge by sign, then a division toward zero.
    fn mul_by_division(a: i16, b: i16) -> i16 {
        if a == b && a == i16::MIN {
            return i16::MAX;
        }
        let ab = a as i32 * b as i32;
        let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
        ((ab + nudge) / (1 << 15)) as i16
    }

    #[test]
    fn the_shifted_high_multiply_equals_gemmlowps_division() {
        // Every a against b at every power of two, its neighbours and a
        // spread of others: the products that sit on a rounding tie too.
        let mut bs: std::vec::Vec<i16> = (0..15)
            .flat_map(|e| [1i16 << e, (1i16 << e) - 1, -(1i16 << e), 1 - (1i16 << e)])
            .chain([i16::MIN, i16::MAX, 0, 1, -1, 3, -3, 12_345, -12_345])
            .collect();
        bs.extend((0..2_000).map(|i: i32| (i.wrapping_mul(40_503) % 65_536 - 32_768) as i16));
        for a in i16::MIN..=i16::MAX {
            for &b in &bs {
                assert_eq!(mul(a, b), mul_by_division(a, b), "{a} x {b}");
            }
        }
    }

    /// Within a few units of the last place of the real function: the
    /// transcription is checked exactly by the LSTM goldens, this only
    /// catches a wrong formula.
    #[test]
    fn logistic_and_tanh_are_close_to_the_real_functions() {
        for raw in (i16::MIN..=i16::MAX).step_by(7) {
            let x = raw as f64 / 4096.0; // three integer bits
            let s = logistic(raw, 3) as f64 / 32768.0;
            assert!(
                (s - 1.0 / (1.0 + libm::exp(-x))).abs() < 4e-4,
                "logistic({x}) = {s}"
            );
            let t = tanh(raw, 3) as f64 / 32768.0;
            assert!((t - libm::tanh(x)).abs() < 4e-4, "tanh({x}) = {t}");
        }
        assert_eq!(logistic(0, 3), 16384);
        assert_eq!(tanh(0, 3), 0);
    }
}
