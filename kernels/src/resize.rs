//! RESIZE_BILINEAR over the H and W axes of an NHWC tensor, as TFLite's
//! reference kernels compute it: int8 in fixed point with 10 fractional
//! bits (`reference_ops::ResizeBilinearInteger`, rounding half away from
//! zero), float32 in float with TFLite's order of operations
//! (`reference_ops::ResizeBilinear`). Input and output share one
//! quantization, as TFLite requires, so int8 interpolates raw values.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::Shape;
use serde::{Deserialize, Serialize};

/// How output pixels map onto input pixels (TFLite's `ResizeBilinearOptions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bilinear {
    /// Corner pixels of input and output are aligned.
    pub align_corners: bool,
    /// Pixels are sampled at their centres (`(x + 0.5) * scale - 0.5`).
    pub half_pixel_centers: bool,
}

/// Checks that only H and W change and the slices hold the shapes.
pub fn check(
    input: Shape,
    output: Shape,
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    ensure(
        input.n == output.n && input.c == output.c,
        "resize: batch and channels must stay",
    )?;
    ensure(
        input.h >= 1 && input.w >= 1,
        "resize: the input must have at least one pixel",
    )?;
    expect_len("input", in_len, input.elements().unwrap_or(usize::MAX))?;
    expect_len("output", out_len, output.elements().unwrap_or(usize::MAX))
}

/// One output coordinate on an input axis of `size`: the two input indices
/// either side and the position between them in 1/1024ths from the first.
#[derive(Clone, Copy)]
struct Fixed {
    lower: usize,
    upper: usize,
    /// The scaled coordinate minus `1024 * lower`.
    frac: i64,
}

fn fixed_axis(output: u32, size: u32, mode: Bilinear, at: u32) -> Fixed {
    let (out, size, at) = (output as i32, size as i32, at as i32);
    let scale = if mode.align_corners && out > 1 {
        ((1 << 10) * (size - 1) + (out - 1) / 2) / (out - 1)
    } else {
        ((1 << 10) * size + out / 2) / out
    };
    let scaled = if mode.half_pixel_centers {
        at * scale + scale / 2 - (1 << 9)
    } else {
        at * scale
    };
    let lower = (scaled / (1 << 10)).max(0);
    let upper = ((scaled + (1 << 10) - 1) / (1 << 10)).min(size - 1);
    Fixed {
        lower: lower as usize,
        upper: upper as usize,
        frac: (scaled - (1 << 10) * lower) as i64,
    }
}

/// int8 bilinear resize of `input` (shape `i`) to shape `o`.
pub fn bilinear_i8(
    i: Shape,
    o: Shape,
    mode: Bilinear,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(i, o, input.len(), output.len())?;
    let (ih, iw, c) = (i.h as usize, i.w as usize, i.c as usize);
    let mut dst = 0;
    for b in 0..i.n as usize {
        for y in 0..o.h {
            let fy = fixed_axis(o.h, i.h, mode, y);
            for x in 0..o.w {
                let fx = fixed_axis(o.w, i.w, mode, x);
                let at = |yy: usize, xx: usize, ch: usize| {
                    input[((b * ih + yy) * iw + xx) * c + ch] as i64
                };
                let (one, wy, wx) = (1i64 << 10, fy.frac, fx.frac);
                for ch in 0..c {
                    let sum = at(fy.lower, fx.lower, ch) * (one - wy) * (one - wx)
                        + at(fy.upper, fx.lower, ch) * wy * (one - wx)
                        + at(fy.lower, fx.upper, ch) * (one - wy) * wx
                        + at(fy.upper, fx.upper, ch) * wy * wx;
                    let round = if sum > 0 { 1 << 19 } else { -(1 << 19) };
                    output[dst] = ((sum + round) / (1 << 20)) as i8;
                    dst += 1;
                }
            }
        }
    }
    Ok(())
}

/// One output coordinate in float: the input indices either side and the
/// scaled coordinate itself.
fn float_axis(output: u32, size: u32, mode: Bilinear, at: u32) -> (usize, usize, f32) {
    let scale = if mode.align_corners && output > 1 {
        (size - 1) as f32 / (output - 1) as f32
    } else {
        size as f32 / output as f32
    };
    let scaled = if mode.half_pixel_centers {
        (at as f32 + 0.5) * scale - 0.5
    } else {
        at as f32 * scale
    };
    let lower = (libm::floorf(scaled) as i32).max(0);
    let upper = (libm::ceilf(scaled) as i32).min(size as i32 - 1);
    (lower as usize, upper as usize, scaled)
}

/// float32 bilinear resize of `input` (shape `i`) to shape `o`.
pub fn bilinear_f32(
    i: Shape,
    o: Shape,
    mode: Bilinear,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    check(i, o, input.len(), output.len())?;
    let (ih, iw, c) = (i.h as usize, i.w as usize, i.c as usize);
    let mut dst = 0;
    for b in 0..i.n as usize {
        for y in 0..o.h {
            let (y0, y1, iy) = float_axis(o.h, i.h, mode, y);
            for x in 0..o.w {
                let (x0, x1, ix) = float_axis(o.w, i.w, mode, x);
                let at =
                    |yy: usize, xx: usize, ch: usize| input[((b * ih + yy) * iw + xx) * c + ch];
                let (dy, dx) = (iy - y0 as f32, ix - x0 as f32);
                for ch in 0..c {
                    // TFLite's expression, term by term and left to right.
                    output[dst] = at(y0, x0, ch) * (1.0 - dy) * (1.0 - dx)
                        + at(y1, x0, ch) * dy * (1.0 - dx)
                        + at(y0, x1, ch) * (1.0 - dy) * dx
                        + at(y1, x1, ch) * dy * dx;
                    dst += 1;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Bilinear = Bilinear {
        align_corners: false,
        half_pixel_centers: false,
    };
    const ALIGNED: Bilinear = Bilinear {
        align_corners: true,
        half_pixel_centers: false,
    };

    #[test]
    fn the_same_size_is_the_identity() {
        let s = Shape::new(2, 3, 4, 3);
        let x: [i8; 72] = core::array::from_fn(|i| (i as i8).wrapping_mul(37));
        let mut y = [0i8; 72];
        bilinear_i8(s, s, PLAIN, &x, &mut y).unwrap();
        assert_eq!(y, x);
        let xf: [f32; 72] = core::array::from_fn(|i| i as f32 * 0.25 - 3.0);
        let mut yf = [0f32; 72];
        bilinear_f32(s, s, PLAIN, &xf, &mut yf).unwrap();
        assert_eq!(yf, xf);
    }

    #[test]
    fn aligned_corners_interpolate_between_the_ends() {
        // [0, 90] to 4 pixels, corners aligned: 0, 30, 60, 90 exactly.
        let (i, o) = (Shape::new(1, 1, 2, 1), Shape::new(1, 1, 4, 1));
        let mut y = [0i8; 4];
        bilinear_i8(i, o, ALIGNED, &[0, 90], &mut y).unwrap();
        assert_eq!(y, [0, 30, 60, 90]);
        let mut yf = [0f32; 4];
        bilinear_f32(i, o, ALIGNED, &[0.0, 90.0], &mut yf).unwrap();
        assert_eq!(yf, [0.0, 30.0, 60.0, 90.0]);
        // Without alignment the last pixels repeat the edge: 0, 45, 90, 90.
        bilinear_i8(i, o, PLAIN, &[0, 90], &mut y).unwrap();
        assert_eq!(y, [0, 45, 90, 90]);
    }

    #[test]
    fn halves_round_away_from_zero_in_int8() {
        // [-1, 0] and [1, 0] to 4 pixels: the second pixel sits halfway.
        let (i, o) = (Shape::new(1, 1, 2, 1), Shape::new(1, 1, 4, 1));
        let mut y = [0i8; 4];
        bilinear_i8(i, o, PLAIN, &[-1, 0], &mut y).unwrap();
        assert_eq!(y, [-1, -1, 0, 0]);
        bilinear_i8(i, o, PLAIN, &[1, 0], &mut y).unwrap();
        assert_eq!(y, [1, 1, 0, 0]);
        assert!(bilinear_i8(i, Shape::new(1, 1, 4, 2), PLAIN, &[1, 0], &mut y).is_err());
        assert!(bilinear_i8(Shape::new(1, 0, 2, 1), o, PLAIN, &[], &mut y).is_err());
    }
}
