//! Max pooling of packed signs.
//!
//! A maximum is negative only when every value in its window is, so the
//! sign bit of a max-pooled value (set for -1) is the AND of the window's
//! sign bits: one AND per word of 32 channels, where pooling the values
//! the signs were taken of costs a comparison per channel and a float or
//! int8 tensor the signs are then packed from.

use super::{tail_mask, words};
use crate::error::{expect_len, KernelError};
use crate::geometry::ConvGeometry;

/// Checks a packed max pool's input and output lengths, in words.
pub fn check_max_pool(g: &ConvGeometry, input: usize, output: usize) -> Result<(), KernelError> {
    g.check()?;
    crate::error::ensure(
        g.input.c == g.output.c,
        "packed max pool: output channels must equal input channels",
    )?;
    let wpc = words(g.input.c as usize);
    expect_len(
        "packed input",
        input,
        g.input.pixels().unwrap_or(usize::MAX).saturating_mul(wpc),
    )?;
    expect_len(
        "packed output",
        output,
        g.output.pixels().unwrap_or(usize::MAX).saturating_mul(wpc),
    )
}

/// Max pool of packed signs `[N, H, W, words(C)]` over the taps inside the
/// input (as max pooling pads). The sign of the maximum of values is the
/// AND of their sign bits; a window with no tap inside pools the maximum of
/// nothing, -infinity, whose sign is set, as float max pooling gives.
pub fn max_pool(g: &ConvGeometry, input: &[u32], output: &mut [u32]) -> Result<(), KernelError> {
    check_max_pool(g, input.len(), output.len())?;
    let c = g.input.c as usize;
    let (wpc, last) = (words(c), tail_mask(c));
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let out = &mut output[pixel * wpc..][..wpc];
        out.fill(u32::MAX);
        g.for_each_tap(b, oy, ox, |_, at| {
            for (y, x) in out.iter_mut().zip(&input[at * wpc..][..wpc]) {
                *y &= x;
            }
        });
        out[wpc - 1] &= last;
    });
    Ok(())
}
