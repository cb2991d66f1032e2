//! The int8 dot products under convolution and dense layers:
//! `sum(w * (x + offset))`, for one filter or four sharing the input; and
//! the lane-wise multiply-accumulate under depthwise convolution.
//! [`portable`] is plain Rust for every target and the oracle;
//! [`dsp`] uses the Armv7E-M DSP instructions (two 16-bit
//! multiply-accumulates per SMLAD), chosen at build time on cores that
//! have them. Both must give the same sums for every input (property
//! tests on the host, the imported models bit-exact on qemu-m4).

/// Portable dot products.
pub mod portable {
    /// `sum(w * (x + offset))` over two equally long slices.
    #[inline(always)]
    pub fn dot(x: &[i8], w: &[i8], offset: i32) -> i32 {
        x.iter().zip(w).fold(0i32, |acc, (&x, &w)| {
            acc.wrapping_add((x as i32 + offset) * w as i32)
        })
    }

    /// [`dot`] of one input with four filters, each `x.len()` long.
    #[inline(always)]
    pub fn dot4(x: &[i8], w: [&[i8]; 4], offset: i32) -> [i32; 4] {
        w.map(|w| dot(x, w, offset))
    }

    /// `acc[i] += w[i] * (x[i] + offset)` for every lane (three equally long slices).
    #[inline(always)]
    pub fn mac_lanes(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32) {
        for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
            *a = a.wrapping_add((x as i32 + offset) * w as i32);
        }
    }
}

#[cfg(arm_dsp)]
pub use super::arm_dsp::dot::{dot, dot4, mac_lanes};
#[cfg(not(arm_dsp))]
pub use portable::{dot, dot4, mac_lanes};
