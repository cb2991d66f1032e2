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

/// `out[r] += dot(q(x), weights[r]) * (scale(x) * filter_scale)`, the int32
/// dot products kept in `out`'s bits while the row is quantized in chunks.
fn accumulate(
    x: &[f32],
    weights: &[i8],
    filter_scale: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let k = x.len();
    // A row of zeros quantizes to zeros with scale 1: its products are 0.
    let (scale, inv) = row_scale(x).unwrap_or((1.0, 0.0));
    let mut dots = [0i32; CHUNK];
    for (rows, outs) in weights.chunks(k * CHUNK).zip(out.chunks_mut(CHUNK)) {
        let dots = &mut dots[..outs.len()];
        dots.fill(0);
        let mut q = [0i8; CHUNK];
        for (start, xs) in x.chunks(CHUNK).enumerate().map(|(i, c)| (i * CHUNK, c)) {
            for (qi, &v) in q.iter_mut().zip(xs) {
                *qi = round_to_i32(v * inv).clamp(-127, 127) as i8;
            }
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
