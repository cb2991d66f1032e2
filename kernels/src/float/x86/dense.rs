//! A float dense layer of a few rows: eight outputs at a time, their
//! weight rows read eight columns at a time and transposed in registers,
//! so that each input value is multiplied with eight outputs' weights in
//! one vector (AVX2, which every AVX-512 CPU has too). More rows run as a
//! 1x1 convolution over the rows (`super::conv`).

use core::arch::x86_64::*;

use super::conv::padded;
use super::vector::{Avx2, Clamp, F32s};
use super::Range;
use crate::int8::DenseGeometry;

/// Lanes of a vector.
const LANES: usize = 8;

/// The dense layer, row by row (lengths checked by the caller).
///
/// # Safety
/// The CPU must have AVX2.
#[inline(always)]
pub(super) unsafe fn fully_connected_rows(
    g: &DenseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let bias = padded(bias, n);
    let clamp = Clamp::<Avx2>::new(act);
    for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for first in (0..n).step_by(LANES) {
            let rows = (n - first).min(LANES);
            // Rows past the last output read the last one again.
            let row = |j: usize| weights.as_ptr().add((first + j.min(rows - 1)) * k);
            let rows_at: [*const f32; LANES] = core::array::from_fn(row);
            let mut acc = Avx2::zero();
            let mut column = 0;
            while column + LANES <= k {
                let t = transpose(rows_at.map(|r| _mm256_loadu_ps(r.add(column))));
                for (i, &w) in t.iter().enumerate() {
                    acc = acc.mul_add(Avx2::splat(x[column + i]), Avx2(w));
                }
                column += LANES;
            }
            for (column, &value) in x.iter().enumerate().skip(column) {
                let w: [f32; LANES] = rows_at.map(|r| *r.add(column));
                acc = acc.mul_add(Avx2::splat(value), Avx2::load(w.as_ptr()));
            }
            let v = clamp.finish(acc, Avx2::load(bias.as_ptr().add(first)));
            v.store_first(out.as_mut_ptr().add(first), rows);
        }
    }
}

/// The 8x8 transpose of eight row vectors: lane `j` of result `i` is lane
/// `i` of row `j`.
#[inline(always)]
unsafe fn transpose(r: [__m256; LANES]) -> [__m256; LANES] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}
