//! The gemmlowp fixed-point functions that TFLite's int8 softmax is built on.
//!
//! Values are `i32` raw integers with a number of integer bits fixed by the
//! caller (Q-format): `FixedPoint<i32, I>` in gemmlowp. Only the functions
//! softmax needs are here, transcribed operation for operation.

use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul as mul};

/// `SaturatingRoundingMultiplyByPOT<exponent>` on a raw value.
#[inline(always)]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    } else {
        rounding_divide_by_pot(x, (-exponent) as u32)
    }
}

/// `Rescale<dst>` from `src` integer bits.
#[inline(always)]
pub fn rescale(x: i32, src_integer_bits: i32, dst_integer_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)
}

/// gemmlowp `RoundingHalfSum`.
#[inline(always)]
fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// `exp(x)` for `x` in `[-1/4, 0)`, both Q0.31.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(-1/8)
    const CONSTANT_1_OVER_3: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28); // a + 1/8
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly = saturating_rounding_multiply_by_pot(
        mul(x4_over_4.wrapping_add(x3), CONSTANT_1_OVER_3).wrapping_add(x2),
        -1,
    );
    CONSTANT_TERM.wrapping_add(mul(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// `(k, exp(-2^k))` in Q0.31 for k = -2..=4: the factors gemmlowp's
/// `exp_on_negative_values` multiplies in, one per set bit of the
/// remainder (16-bit code rounds them to Q0.15).
pub(crate) const EXP_BARREL: [(i32, i32); 7] = [
    (-2, 1_672_461_947),
    (-1, 1_302_514_674),
    (0, 790_015_084),
    (1, 290_630_308),
    (2, 39_332_535),
    (3, 720_401),
    (4, 242),
];

/// gemmlowp `exp_on_negative_values`: `exp(a)` for `a <= 0` given with
/// `integer_bits` integer bits; the result is Q0.31.
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    let fractional_bits = 31 - integer_bits;
    let one_quarter = 1i32 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // Barrel shifter: multiply by exp(-2^k) for every set bit of the remainder.
    for (exponent, multiplier) in EXP_BARREL {
        if integer_bits > exponent {
            let shift = fractional_bits + exponent;
            if remainder & (1i32 << shift) != 0 {
                result = mul(result, multiplier);
            }
        }
    }
    if integer_bits > 5 {
        let clamp = -(1i32 << (36 - integer_bits)); // -32.0
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i32::MAX; // One() in Q0.31
    }
    result
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + x)` for Q0.31 `x` in (0, 1).
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    const F2_ONE: i32 = 1 << 29;
    const CONSTANT_48_OVER_17: i32 = 1_515_870_810;
    const CONSTANT_NEG_32_OVER_17: i32 = -1_010_580_540;
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let mut x = CONSTANT_48_OVER_17.wrapping_add(mul(half_denominator, CONSTANT_NEG_32_OVER_17));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus = F2_ONE.wrapping_sub(half_denominator_times_x);
        x = x.wrapping_add(rescale(mul(x, one_minus), 4, 2));
    }
    // ExactMulByPot<-1> makes it Q1 (same raw), then Rescale<0>.
    rescale(x, 1, 0)
}

/// TFLite `SaturatingRoundingMultiplyByPOTParam` for a left shift (`exponent >= 0`).
fn saturating_shift_left(x: i32, exponent: i32) -> i32 {
    debug_assert!(exponent >= 0);
    saturating_rounding_multiply_by_pot(x, exponent)
}

/// TFLite `log_x_for_x_greater_than_or_equal_to_1_impl`: `ln(x)` for
/// `x >= 1` with `input_bits` integer bits, the result with `output_bits`.
pub fn log_x_for_x_greater_than_or_equal_to_1(x: i32, input_bits: i32, output_bits: i32) -> i32 {
    const LOG_2: i32 = 1_488_522_236;
    const SQRT_SQRT_HALF: i32 = 1_805_811_301;
    const SQRT_HALF: i32 = 1_518_500_250;
    const ONE_QUARTER: i32 = 536_870_912;
    const ALPHA_N: i32 = 117_049_297;
    const ALPHA_D: i32 = 127_690_142;
    const ALPHA_I: i32 = 1_057_819_769;
    const ALPHA_F: i32 = 638_450_708;
    // One integer bit of headroom while accumulating.
    let accum_bits = output_bits + 1;
    let shifted_quarter = rescale(ONE_QUARTER, 0, accum_bits);
    // x read as Q0.31: its shift is worked out here instead.
    let z_a = x;
    let z_a_headroom_plus_1 = (z_a as u32).leading_zeros() as i32;
    let r_a_tmp = saturating_shift_left(z_a, z_a_headroom_plus_1 - 1);
    let r_a = saturating_shift_left(mul(r_a_tmp, SQRT_HALF), 1);
    let z_a_pow_2_adj = saturating_shift_left(input_bits - z_a_headroom_plus_1, 31 - accum_bits)
        .saturating_add(shifted_quarter);
    // z_b: z_a premultiplied by sqrt(1/2).
    let z_b = mul(z_a, SQRT_HALF);
    let z_b_headroom = (z_b as u32).leading_zeros() as i32 - 1;
    let r_b = saturating_shift_left(z_a, z_b_headroom);
    let z_b_pow_2_adj = saturating_shift_left(input_bits - z_b_headroom, 31 - accum_bits)
        .saturating_sub(shifted_quarter);
    let r = r_a.min(r_b);
    let z_pow_2_adj = z_a_pow_2_adj.max(z_b_pow_2_adj);
    let p = rounding_half_sum(r, SQRT_SQRT_HALF);
    let q = r.wrapping_sub(SQRT_SQRT_HALF);
    let q = q.wrapping_add(q);
    let common_sq = mul(q, q);
    let num = mul(q, r).wrapping_add(mul(mul(q, common_sq), ALPHA_N));
    let denom_minus_one = mul(
        p,
        ALPHA_I
            .wrapping_add(q)
            .wrapping_add(mul(ALPHA_D, common_sq)),
    )
    .wrapping_add(mul(ALPHA_F, q));
    let recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one);
    let num_scaled = rescale(num, 0, accum_bits);
    rescale(
        mul(z_pow_2_adj, LOG_2).wrapping_add(mul(num_scaled, recip_denom)),
        accum_bits,
        output_bits,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: i32, integer_bits: i32) -> f64 {
        x as f64 / (1u64 << (31 - integer_bits)) as f64
    }

    #[test]
    fn exp_matches_libm_closely() {
        for k in 0..200 {
            let real = -(k as f64) * 0.08; // down to -16
            let raw = (real * (1u64 << 26) as f64) as i32; // 5 integer bits
            let got = q(exp_on_negative_values(raw, 5), 0);
            assert!(
                (got - libm::exp(q(raw, 5))).abs() < 2e-9 + 1e-6 * libm::exp(real),
                "exp({real}) = {got}"
            );
        }
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
    }

    #[test]
    fn log_matches_libm_closely() {
        for k in 0..300 {
            let real = 1.0 + k as f64 * 13.0; // 1 to 3888, Q12.19 in
            let raw = (real * (1u64 << 19) as f64) as i32;
            let got = q(log_x_for_x_greater_than_or_equal_to_1(raw, 12, 5), 5);
            assert!(
                (got - libm::log(q(raw, 12))).abs() < 1e-6,
                "ln({real}) = {got}"
            );
        }
    }

    #[test]
    fn reciprocal_matches_closely() {
        for k in 1..100 {
            let x = k as f64 / 100.0;
            let got = q(
                one_over_one_plus_x_for_x_in_0_1((x * 2147483648.0) as i32),
                0,
            );
            assert!((got - 1.0 / (1.0 + x)).abs() < 1e-8, "1/(1+{x}) = {got}");
        }
    }
}
