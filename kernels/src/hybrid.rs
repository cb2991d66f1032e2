//! Dynamic-range ("hybrid") layers: int8 weights with float32 activations,
//! run the way TFLite's reference FULLY_CONNECTED runs them. Each input row
//! is quantized symmetrically on the fly (scale `max|x| / 127`, values
//! `round(x * 127 / max|x|)` clamped to +-127), the dot products are exact
//! int32, and each output is `bias + dot * (row_scale * filter_scale)` in
//! float, then the activation. A whole input of zeros skips the products
//! (outputs are the bias), as TFLite does.

use crate::error::{expect_len, KernelError};
use crate::float::round_to_i32;
use crate::int8::DenseGeometry;

/// Input values quantized per pass: a stack buffer, so no scratch memory is needed.
const CHUNK: usize = 256;

/// A hybrid dense layer's arguments are checked as a float one's.
pub use crate::float::check_fully_connected;

/// TFLite's `std::max(lo, std::min(x, hi))`, comparisons in its order, so
/// that -0.0 and NaN come out as TFLite's do.
#[inline(always)]
fn activate(x: f32, (lo, hi): (f32, f32)) -> f32 {
    let y = if hi < x { hi } else { x };
    if lo < y {
        y
    } else {
        lo
    }
}

/// Symmetric quantization of one row: its scale, or `None` for a row of zeros.
fn row_scale(row: &[f32]) -> Option<(f32, f32)> {
    let (mut lo, mut hi) = (row[0], row[0]);
    for &v in &row[1..] {
        // std::minmax_element: the first smallest, the last largest.
        if v < lo {
            lo = v;
        }
        if v.partial_cmp(&hi) != Some(core::cmp::Ordering::Less) {
            hi = v;
        }
    }
    let range = if lo.abs() < hi.abs() {
        hi.abs()
    } else {
        lo.abs()
    };
    (range != 0.0).then(|| (range / 127.0, 127.0 / range))
}

/// Hybrid dense layer: `input` `[batch, in]` float, `weights` `[out, in]`
/// int8 with one scale, optional float bias, activation range `act`.
pub fn fully_connected(
    g: &DenseGeometry,
    filter_scale: f32,
    input: &[f32],
    weights: &[i8],
    bias: Option<&[f32]>,
    act: (f32, f32),
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_fully_connected(g, input.len(), weights.len(), bias, output.len())?;
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    for row in output.chunks_exact_mut(n) {
        match bias {
            Some(b) => row.copy_from_slice(b),
            None => row.fill(0.0),
        }
    }
    if input.iter().any(|&v| v != 0.0) {
        for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
            accumulate(x, weights, filter_scale, out)?;
        }
    }
    for y in output.iter_mut() {
        *y = activate(*y, act);
    }
    Ok(())
}

/// `v * inv` rounded (half away from zero) and clamped to +-127.
#[inline(always)]
fn quantize_one(v: f32, inv: f32) -> i8 {
    round_to_i32(v * inv).clamp(-127, 127) as i8
}

/// [`quantize_one`] of each of `x`, into `q`.
fn quantize(x: &[f32], inv: f32, q: &mut [i8]) {
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = quantize_one(v, inv);
    }
}

/// `out[r] += dot(q(x), weights[r]) * (scale(x) * filter_scale)`, the int32
/// dot products kept in `out`'s bits while the row is quantized in chunks.
fn accumulate(
    x: &[f32],
    weights: &[i8],
    filter_scale: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if x86::accumulate(x, filter_scale, weights, out) {
        return Ok(());
    }
    let k = x.len();
    // A row of zeros quantizes to zeros with scale 1: its products are 0.
    let (scale, inv) = row_scale(x).unwrap_or((1.0, 0.0));
    let mut dots = [0i32; CHUNK];
    for (rows, outs) in weights.chunks(k * CHUNK).zip(out.chunks_mut(CHUNK)) {
        let dots = &mut dots[..outs.len()];
        dots.fill(0);
        let mut q = [0i8; CHUNK];
        for (start, xs) in x.chunks(CHUNK).enumerate().map(|(i, c)| (i * CHUNK, c)) {
            quantize(xs, inv, &mut q);
            for (d, w) in dots.iter_mut().zip(rows.chunks_exact(k)) {
                let w = &w[start..start + xs.len()];
                *d = d.wrapping_add(crate::int8::dot::dot(&q[..xs.len()], w, 0));
            }
        }
        let batch_scale = scale * filter_scale;
        for (y, &d) in outs.iter_mut().zip(dots.iter()) {
            *y += d as f32 * batch_scale;
        }
    }
    expect_len("hybrid output row", out.len(), weights.len() / k.max(1))
}

/// Hybrid rows on x86: quantized eight values at a time (AVX2, which
/// every selected level has) and multiplied by the selected level's
/// matrix-vector kernel, with the same results as the portable loops.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
#[allow(unsafe_code)]
mod x86 {
    use super::CHUNK;
    use crate::float::HALF_BELOW;
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    /// Longest row quantized at once (the matrix-vector kernels' longest).
    const ROW: usize = 16384;

    /// [`accumulate`](super::accumulate) with the whole row quantized at
    /// once and its products by the selected level's matrix-vector kernel
    /// (the same exact int32 dots, so the same float outputs); `false`
    /// (nothing written) where that kernel does not take the row.
    pub fn accumulate(x: &[f32], filter_scale: f32, weights: &[i8], out: &mut [f32]) -> bool {
        let k = x.len();
        if crate::x86::selected() == crate::x86::Isa::Portable
            || k == 0
            || k > ROW
            || weights.len() != k * out.len()
        {
            return false;
        }
        // SAFETY: every selected level's CPU has AVX2.
        let largest = unsafe { abs_max(x) };
        // A row with a NaN takes the portable scale's comparisons.
        let scale = match largest {
            Some(0.0) => None,
            Some(range) => Some((range / 127.0, 127.0 / range)),
            None => super::row_scale(x),
        };
        // A row of zeros quantizes to zeros with scale 1: its products are 0.
        let (scale, inv) = scale.unwrap_or((1.0, 0.0));
        // Not zeroed first: that took as long as a 128 x 128 layer's products.
        let mut q = [MaybeUninit::<i8>::uninit(); ROW];
        // SAFETY: as above; `q` has room for the row, and `quantize`
        // writes each of its first `k` values.
        let q = unsafe {
            quantize(x, inv, q.as_mut_ptr().cast());
            core::slice::from_raw_parts(q.as_ptr().cast::<i8>(), k)
        };
        let batch_scale = scale * filter_scale;
        let mut dots = [0i32; CHUNK];
        // The kernel takes every chunk if it takes one: same row, same level.
        for (rows, outs) in weights.chunks(k * CHUNK).zip(out.chunks_mut(CHUNK)) {
            let dots = &mut dots[..outs.len()];
            if !crate::int8::x86::row_dots(q, rows, dots) {
                return false;
            }
            for (y, &d) in outs.iter_mut().zip(dots.iter()) {
                *y += d as f32 * batch_scale;
            }
        }
        true
    }

    /// The largest `|v|` of a row, `None` if it holds a NaN: for rows
    /// without NaN, what [`row_scale`](super::row_scale)'s first smallest
    /// and last largest give (their larger magnitude).
    #[target_feature(enable = "avx2")]
    unsafe fn abs_max(x: &[f32]) -> Option<f32> {
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
        let (mut top, mut unordered) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let chunks = x.chunks_exact(8);
        let tail = chunks.remainder();
        for chunk in chunks {
            let v = _mm256_and_ps(_mm256_loadu_ps(chunk.as_ptr()), magnitude);
            unordered = _mm256_or_ps(unordered, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            top = _mm256_max_ps(top, v);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), top);
        let mut largest = lanes.iter().fold(0f32, |m, &v| if v > m { v } else { m });
        for &v in tail {
            if v.is_nan() {
                return None;
            }
            largest = if v.abs() > largest { v.abs() } else { largest };
        }
        (_mm256_movemask_ps(unordered) == 0).then_some(largest)
    }

    /// [`quantize`](super::quantize) eight values at a time: `x * inv`
    /// plus half below one half of its sign, clamped to +-127 (integers,
    /// so before the truncation as after it), NaN to 0, truncated.
    #[target_feature(enable = "avx2")]
    unsafe fn quantize(x: &[f32], inv: f32, q: *mut i8) {
        let (inv_v, half) = (_mm256_set1_ps(inv), _mm256_set1_ps(HALF_BELOW));
        let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
        let whole = x.len() - x.len() % 8;
        for i in (0..whole).step_by(8) {
            let t = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), inv_v);
            let u = _mm256_add_ps(t, _mm256_or_ps(half, _mm256_and_ps(t, sign)));
            let u = _mm256_and_ps(u, _mm256_cmp_ps::<_CMP_ORD_Q>(u, u));
            let u = _mm256_max_ps(_mm256_min_ps(u, hi), lo);
            let w = _mm256_packs_epi32(_mm256_cvttps_epi32(u), _mm256_setzero_si256());
            let b = _mm256_packs_epi16(w, _mm256_setzero_si256());
            let at = q.add(i);
            at.cast::<i32>().write_unaligned(_mm256_cvtsi256_si32(b));
            at.add(4)
                .cast::<i32>()
                .write_unaligned(_mm256_extract_epi32::<4>(b));
        }
        for (i, &v) in x.iter().enumerate().skip(whole) {
            q.add(i).write(super::quantize_one(v, inv));
        }
    }
}
