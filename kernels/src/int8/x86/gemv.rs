//! Dense layers of a few input rows on x86 as matrix-vector products: the
//! weights are read as they lie, four output channels sharing each load
//! of the input row. Every weight is used once per row, so packing them
//! (as the matrix product does) would cost as much as the product.

use super::requantize::{Requantize, CHUNK};
use super::simd::Simd;
use crate::int8::{DenseGeometry, OutputStage};
use core::mem::MaybeUninit;

/// Longest input row this path takes.
pub(super) const MAX_FEATURES: usize = 16384;

/// Input rows up to which a dense layer takes this path.
pub(super) const MAX_ROWS: u32 = 2;

/// The dense layer (lengths checked by the caller, at most
/// [`MAX_FEATURES`] input features).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn fully_connected<S: Simd>(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let mut x = [MaybeUninit::<S::X>::uninit(); GATHERED];
    let x = x.as_mut_ptr().cast::<S::X>();
    let mut sums = [0i32; CHUNK];
    for (row, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        // Weights with a zero point (legacy uint8): `sum((x + offset) *
        // (w + filter_offset))` is the dot product plus `filter_offset`
        // times the row's sum, the same for every output channel.
        let row_correction = match stage.filter_offset {
            0 => 0,
            filter_offset => row
                .iter()
                .fold(0i32, |s, &x| s.wrapping_add(x as i32 + stage.input_offset))
                .wrapping_mul(filter_offset),
        };
        gather::<S>(row, stage.input_offset, x);
        for first in (0..n).step_by(CHUNK) {
            let m = CHUNK.min(n - first);
            let rows = &weights[first * k..][..m * k];
            dots::<S>(x, k, rows, stage.input_offset, &mut sums[..m]);
            let mut requantize = Requantize::blank(stage, first);
            requantize.fill(bias, m, |_| row_correction);
            for v in (0..m).step_by(S::LANES) {
                S::finish(
                    S::load32(sums.as_ptr().add(v)),
                    &requantize,
                    v,
                    S::LANES.min(m - v),
                    out.as_mut_ptr().add(first + v),
                );
            }
        }
    }
}

/// Gathered values of a row at most: [`MAX_FEATURES`] and a whole vector
/// of bytes past them.
const GATHERED: usize = MAX_FEATURES + 64;

/// Writes `row` (at most [`MAX_FEATURES`] values) gathered at `x`, zero
/// up to a whole vector of bytes past its end.
#[inline(always)]
unsafe fn gather<S: Simd>(row: &[i8], offset: i32, x: *mut S::X) {
    S::convert(row, offset, x);
    for i in row.len()..row.len().next_multiple_of(64) {
        x.add(i).write(S::pad(0));
    }
}

/// `sums[o] = sum(rows[o][i] * (x[i] + offset))` for each row of `k`
/// weights in `rows`, one per sum, with `x` a gathered row ([`gather`]).
#[inline(always)]
unsafe fn dots<S: Simd>(x: *const S::X, k: usize, rows: &[i8], offset: i32, sums: &mut [i32]) {
    let m = sums.len();
    let end = rows.as_ptr_range().end;
    for o in (0..m).step_by(4) {
        // A short last group repeats its last row.
        let w = [0, 1, 2, 3].map(|j| rows.as_ptr().add((o + j).min(m - 1) * k));
        let dots = S::dot4(x, w, k, offset, end);
        for (j, &dot) in dots.iter().enumerate().take(m - o) {
            sums[o + j] = dot;
        }
    }
}

/// The exact int32 dot products of one int8 `row` (at most
/// [`MAX_FEATURES`] values, none -128) with each row of `weights`
/// (`sums.len()` rows of `row.len()`): a hybrid layer's products.
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn row_dots<S: Simd>(row: &[i8], weights: &[i8], sums: &mut [i32]) {
    let mut x = [MaybeUninit::<S::X>::uninit(); GATHERED];
    let x = x.as_mut_ptr().cast::<S::X>();
    gather::<S>(row, 0, x);
    dots::<S>(x, row.len(), weights, 0, sums);
}

/// [`row_dots`] on AVX2 by byte products: `|w|` (unsigned, up to 128)
/// times `x` with `w`'s sign (VPSIGNB; exact because no `x` is -128),
/// two products per 16-bit lane by VPMADDUBSW (at most 2 x 128 x 127 =
/// 32,512, so never saturated), widened by VPMADDWD against ones: 32
/// products in five instructions where widening both sides to 16 bits
/// takes eight.
///
/// # Safety
/// The CPU must have AVX2.
#[inline(always)]
pub(super) unsafe fn signed_row_dots_avx2(row: &[i8], weights: &[i8], sums: &mut [i32]) {
    use core::arch::x86_64::*;
    let k = row.len();
    // The row, zero past its end up to a whole 32 bytes.
    let mut x = [MaybeUninit::<i8>::uninit(); GATHERED];
    let x = x.as_mut_ptr().cast::<i8>();
    core::ptr::copy_nonoverlapping(row.as_ptr(), x, k);
    core::ptr::write_bytes(x.add(k), 0, k.next_multiple_of(32) - k);
    let end = weights.as_ptr_range().end as usize;
    let ones = _mm256_set1_epi16(1);
    let m = sums.len();
    for o in (0..m).step_by(4) {
        // A short last group repeats its last row.
        let w = [0, 1, 2, 3].map(|j| weights.as_ptr().add((o + j).min(m - 1) * k));
        let mut acc = [_mm256_setzero_si256(); 4];
        for c in (0..k).step_by(32) {
            let xv = _mm256_loadu_si256(x.add(c).cast());
            for (acc, &w) in acc.iter_mut().zip(&w) {
                // Past a row's end the next row's bytes meet zeros, short
                // of the weights' end.
                let wv = if k - c >= 32 || end.wrapping_sub(w as usize) >= c + 32 {
                    _mm256_loadu_si256(w.add(c).cast())
                } else {
                    let mut tail = [0i8; 32];
                    core::ptr::copy_nonoverlapping(w.add(c), tail.as_mut_ptr(), k - c);
                    _mm256_loadu_si256(tail.as_ptr().cast())
                };
                let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, ones));
            }
        }
        let four = super::simd::sum4_avx2(acc);
        if m - o >= 4 {
            _mm_storeu_si128(sums.as_mut_ptr().add(o).cast(), four);
        } else {
            let mut last = [0i32; 4];
            _mm_storeu_si128(last.as_mut_ptr().cast(), four);
            sums[o..].copy_from_slice(&last[..m - o]);
        }
    }
}
