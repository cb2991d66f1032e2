//! Elementwise addition on x86: both inputs rescaled, summed and
//! requantized a vector of elements at a time, with the same double
//! rounding as the portable kernel.

use super::simd::{Simd, Terms};
use crate::int8::AddParams;
use crate::quant::Requant;

/// One input's rescaling, `RoundingDivideByPOT(SRDHM((x + offset) << L,
/// M), right)`, for headroom shifts `L` of 8 or more. With `a = x +
/// offset` (at most 255 in magnitude) the doubling high multiply is
/// `floor((a * M + 2^(30-L)) / 2^(31-L))`; split as `M = mh * 2^(31-L) +
/// ml` it is `a * mh + floor((a * ml + 2^(30-L)) / 2^(31-L))`, every term
/// inside 32 bits: two 32-bit multiplies instead of the 64-bit ones.
struct Rescale<V> {
    offset: i32,
    high: V,
    low: V,
    nudge: V,
    shift: V,
    terms: Terms<V>,
}

impl<V: Copy> Rescale<V> {
    /// The rescaling by `r` (a multiplier below one) after `left` bits of headroom.
    #[inline(always)]
    unsafe fn new<S: Simd<V = V>>(r: Requant, left: i32, offset: i32) -> Self {
        let shift = 31 - left;
        Rescale {
            offset,
            high: S::splat(r.multiplier >> shift),
            low: S::splat(r.multiplier & ((1 << shift) - 1)),
            nudge: S::splat(1 << (shift - 1)),
            shift: S::splat(shift),
            terms: Terms::uniform::<S>(r, 0),
        }
    }

    /// `n <= LANES` int8 values from `x`, rescaled.
    #[inline(always)]
    unsafe fn apply<S: Simd<V = V>>(&self, x: *const i8, n: usize) -> V {
        let a = S::widen(x, n, self.offset);
        let high = S::add(
            S::mul_low(a, self.high),
            S::shift_right(S::add(S::mul_low(a, self.low), self.nudge), self.shift),
        );
        S::rounding_shift(high, &self.terms)
    }
}

/// The addition (parameters and lengths checked by the caller).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn add<S: Simd>(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) {
    let out = Terms::uniform::<S>(p.output, 0);
    if (8..=22).contains(&p.left_shift) {
        let rescale1 = Rescale::new::<S>(p.input1, p.left_shift, p.input1_offset);
        let rescale2 = Rescale::new::<S>(p.input2, p.left_shift, p.input2_offset);
        for i in (0..a.len()).step_by(S::LANES) {
            let n = S::LANES.min(a.len() - i);
            let sum = S::add(
                rescale1.apply::<S>(a.as_ptr().add(i), n),
                rescale2.apply::<S>(b.as_ptr().add(i), n),
            );
            S::store_i8(
                S::requantize(sum, &out),
                p.output_offset,
                p.act_min,
                p.act_max,
                n,
                output.as_mut_ptr().add(i),
            );
        }
        return;
    }
    // Input multipliers are below one (no left shift of their own): only
    // the headroom shift goes left.
    let input1 = Terms::uniform::<S>(p.input1, p.left_shift);
    let input2 = Terms::uniform::<S>(p.input2, p.left_shift);
    for i in (0..a.len()).step_by(S::LANES) {
        let n = S::LANES.min(a.len() - i);
        let x1 = S::requantize(S::widen(a.as_ptr().add(i), n, p.input1_offset), &input1);
        let x2 = S::requantize(S::widen(b.as_ptr().add(i), n, p.input2_offset), &input2);
        let y = S::requantize(S::add(x1, x2), &out);
        S::store_i8(
            y,
            p.output_offset,
            p.act_min,
            p.act_max,
            n,
            output.as_mut_ptr().add(i),
        );
    }
}
