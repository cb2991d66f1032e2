//! Elementwise addition on x86: both inputs rescaled, summed and
//! requantized a vector of elements at a time, with the same double
//! rounding as the portable kernel.

use super::simd::{Simd, Terms};
use crate::int8::AddParams;

/// The addition (parameters and lengths checked by the caller).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn add<S: Simd>(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) {
    // Input multipliers are below one (no left shift of their own): only
    // the headroom shift goes left.
    let input1 = Terms::uniform::<S>(p.input1, p.left_shift);
    let input2 = Terms::uniform::<S>(p.input2, p.left_shift);
    let out = Terms::uniform::<S>(p.output, 0);
    for i in (0..a.len()).step_by(S::LANES) {
        let n = S::LANES.min(a.len() - i);
        let x1 = S::requantize(S::widen(a.as_ptr().add(i), n, p.input1_offset), &input1);
        let x2 = S::requantize(S::widen(b.as_ptr().add(i), n, p.input2_offset), &input2);
        let y = S::requantize(S::add(x1, x2), &out);
        S::store_i8(y, p.output_offset, p.act_min, p.act_max, n, output.as_mut_ptr().add(i));
    }
}
