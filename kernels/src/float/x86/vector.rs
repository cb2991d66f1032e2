//! What the float kernels need of a SIMD register, for AVX2's eight lanes
//! and AVX-512's sixteen. The kernels are written once over [`F32s`] and
//! compiled for each width inside a `#[target_feature]` entry point (the
//! methods are `#[inline(always)]`, so they take the entry point's
//! features).

use core::arch::x86_64::*;

/// A vector of `f32` lanes.
///
/// Every method is `unsafe`: the CPU must have the width's instruction
/// set, and pointers must be valid for the lanes read or written.
pub(super) trait F32s: Copy {
    /// Lanes per vector.
    const LANES: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// Every lane `*p`.
    unsafe fn broadcast(p: *const f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    /// The first `n <= LANES` lanes from `p`, the others zero (nothing
    /// past them is read).
    unsafe fn load_first(p: *const f32, n: usize) -> Self;
    /// Stores the first `n <= LANES` lanes at `p` (nothing past them is written).
    unsafe fn store_first(self, p: *mut f32, n: usize);
    unsafe fn add(self, other: Self) -> Self;
    unsafe fn mul(self, other: Self) -> Self;
    /// `maxps self, other`: `other` when either is NaN.
    unsafe fn max(self, other: Self) -> Self;
    /// `minps self, other`: `other` when either is NaN.
    unsafe fn min(self, other: Self) -> Self;

    /// `self + x * w`, rounded after the multiply and after the add (a
    /// fused multiply-add rounds once, and would not be TFLite's bits).
    #[inline(always)]
    unsafe fn mul_add(self, x: Self, w: Self) -> Self {
        self.add(x.mul(w))
    }
}

/// Eight lanes (AVX2).
#[derive(Clone, Copy)]
pub(super) struct Avx2(pub(super) __m256);

impl F32s for Avx2 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx2(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx2(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        Avx2(_mm256_broadcast_ss(&*p))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Avx2(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        let mut lanes = [0f32; 8];
        core::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n);
        Avx2(_mm256_loadu_ps(lanes.as_ptr()))
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        if n == Self::LANES {
            _mm256_storeu_ps(p, self.0);
        } else {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), self.0);
            core::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n);
        }
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        Avx2(_mm256_add_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        Avx2(_mm256_mul_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn max(self, other: Self) -> Self {
        Avx2(_mm256_max_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn min(self, other: Self) -> Self {
        Avx2(_mm256_min_ps(self.0, other.0))
    }
}

/// Sixteen lanes (AVX-512 F); partial vectors by lane masks.
#[derive(Clone, Copy)]
pub(super) struct Avx512(__m512);

/// The mask of the first `n <= 16` lanes.
#[inline(always)]
fn first_lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

impl F32s for Avx512 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx512(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx512(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        Avx512(_mm512_set1_ps(*p))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Avx512(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        Avx512(_mm512_maskz_loadu_ps(first_lanes(n), p))
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        _mm512_mask_storeu_ps(p, first_lanes(n), self.0);
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        Avx512(_mm512_add_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        Avx512(_mm512_mul_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn max(self, other: Self) -> Self {
        Avx512(_mm512_max_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn min(self, other: Self) -> Self {
        Avx512(_mm512_min_ps(self.0, other.0))
    }
}

/// The activation's clamp, as [`f32::clamp`] does it: NaN stays NaN
/// (`max`/`min` return their second operand when either is NaN), and a
/// value equal to a bound keeps its own sign of zero.
#[derive(Clone, Copy)]
pub(super) struct Clamp<V> {
    lo: V,
    hi: V,
}

impl<V: F32s> Clamp<V> {
    #[inline(always)]
    pub(super) unsafe fn new(act: super::Range) -> Self {
        Clamp {
            lo: V::splat(act.0),
            hi: V::splat(act.1),
        }
    }

    /// `(sum + bias).clamp(lo, hi)` in every lane.
    #[inline(always)]
    pub(super) unsafe fn finish(self, sum: V, bias: V) -> V {
        self.hi.min(self.lo.max(sum.add(bias)))
    }
}
