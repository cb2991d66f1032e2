//! int8 average and max pooling (TFLite `AVERAGE_POOL_2D`, `MAX_POOL_2D`).
//! Input and output share one quantization, as TFLite requires.

use super::Clamp;
use crate::error::{ensure, KernelError};
use crate::geometry::ConvGeometry;
use serde::{Deserialize, Serialize};

/// Checks a pool's arguments by their lengths.
pub fn check(
    g: &ConvGeometry,
    clamp: Clamp,
    input: usize,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    clamp.check()?;
    ensure(
        g.input.c == g.output.c,
        "pool: input and output channels differ",
    )?;
    ensure(
        g.window.dilation_h == 1 && g.window.dilation_w == 1,
        "pool: dilation must be 1",
    )
}

/// Visits the valid window of every output pixel: `(pixel index, first input row,
/// row range, column range)`. Shared by both pools.
#[inline(always)]
pub(crate) fn for_each_window(
    g: &ConvGeometry,
    mut f: impl FnMut(usize, usize, core::ops::Range<u32>, core::ops::Range<u32>),
) {
    let w = &g.window;
    let mut pixel = 0;
    for b in 0..g.input.n as usize {
        for oy in 0..g.output.h {
            let y0 = w.in_y(oy, 0);
            let ys =
                (-y0).max(0) as u32..(g.input.h as i32 - y0).clamp(0, w.kernel_h as i32) as u32;
            for ox in 0..g.output.w {
                let x0 = w.in_x(ox, 0);
                let xs =
                    (-x0).max(0) as u32..(g.input.w as i32 - x0).clamp(0, w.kernel_w as i32) as u32;
                // Index of the input pixel at kernel position (0, 0), possibly outside.
                let base =
                    ((b * g.input.h as usize) as i64 + y0 as i64) * g.input.w as i64 + x0 as i64;
                f(pixel, base as usize, ys.clone(), xs);
                pixel += 1;
            }
        }
    }
}

/// How an average pool rounds a mean that falls halfway between two values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolRounding {
    /// Half away from zero (TFLite's int8 kernel).
    #[default]
    AwayFromZero,
    /// Half up, `floor((sum + n / 2) / n)`: TFLite's legacy uint8 kernel,
    /// whose sums are never negative, on uint8 run as int8 shifted by 128.
    Up,
}

impl PoolRounding {
    /// The mean of `count` values summing to `sum` (0 when `count` is 0).
    #[inline(always)]
    pub fn mean(self, sum: i32, count: i32) -> i32 {
        match self {
            _ if count == 0 => 0,
            PoolRounding::Up => (sum + count / 2).div_euclid(count),
            PoolRounding::AwayFromZero if sum > 0 => (sum + count / 2) / count,
            PoolRounding::AwayFromZero => (sum - count / 2) / count,
        }
    }
}

/// int8 average pool over the valid taps only.
pub fn avg_pool(
    g: &ConvGeometry,
    clamp: Clamp,
    rounding: PoolRounding,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(g, clamp, input.len(), output.len())?;
    let c = g.input.c as usize;
    let iw = g.input.w as usize;
    let mut sums = [0i32; 64];
    for_each_window(g, |pixel, base, ys, xs| {
        let count = (ys.len() * xs.len()) as i32;
        for c0 in (0..c).step_by(sums.len()) {
            let n = sums.len().min(c - c0);
            let sums = &mut sums[..n];
            sums.fill(0);
            for ky in ys.clone() {
                for kx in xs.clone() {
                    let at = base.wrapping_add(ky as usize * iw + kx as usize) * c + c0;
                    for (s, &x) in sums.iter_mut().zip(&input[at..at + n]) {
                        *s += x as i32;
                    }
                }
            }
            for (y, &s) in output[pixel * c + c0..][..n].iter_mut().zip(sums.iter()) {
                *y = rounding.mean(s, count).clamp(clamp.min, clamp.max) as i8;
            }
        }
    });
    Ok(())
}

/// int8 max pool over the valid taps.
pub fn max_pool(
    g: &ConvGeometry,
    clamp: Clamp,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(g, clamp, input.len(), output.len())?;
    let c = g.input.c as usize;
    let iw = g.input.w as usize;
    for_each_window(g, |pixel, base, ys, xs| {
        let out = &mut output[pixel * c..][..c];
        out.fill(i8::MIN);
        for ky in ys.clone() {
            for kx in xs.clone() {
                let at = base.wrapping_add(ky as usize * iw + kx as usize) * c;
                for (y, &x) in out.iter_mut().zip(&input[at..at + c]) {
                    *y = (*y).max(x);
                }
            }
        }
        for y in out.iter_mut() {
            *y = (*y as i32).clamp(clamp.min, clamp.max) as i8;
        }
    });
    Ok(())
}
