//! int8 depthwise convolution (TFLite `DEPTHWISE_CONV_2D`, per-channel weights).

use super::{check_bias, OutputStage};
use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::ConvGeometry;

/// Checks a depthwise convolution's arguments by their lengths.
pub fn check(
    g: &ConvGeometry,
    depth_multiplier: u32,
    stage: &OutputStage,
    input: usize,
    filter: usize,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check()?;
    ensure(
        depth_multiplier >= 1 && g.output.c == g.input.c.saturating_mul(depth_multiplier),
        "depth multiplier: output channels must equal input channels x multiplier",
    )?;
    expect_len("input", input, g.input.elements().unwrap_or(usize::MAX))?;
    expect_len("output", output, g.output.elements().unwrap_or(usize::MAX))?;
    expect_len("filter", filter, g.window.taps() * g.output.c as usize)?;
    check_bias(bias, g.output.c as usize)?;
    stage.check(g.output.c as usize)
}

/// int8 depthwise convolution. Filter layout `[1, KH, KW, C * multiplier]`;
/// output channel `c * multiplier + m` reads input channel `c`.
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    depth_multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(g, depth_multiplier, stage, input.len(), filter.len(), bias, output.len())?;
    let (ic, oc, m) = (g.input.c as usize, g.output.c as usize, depth_multiplier as usize);
    let w = &g.window;
    let mut out_pixels = output.chunks_exact_mut(oc);
    for b in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                let out = out_pixels.next().unwrap_or_default();
                // Accumulate tap by tap across all channels so both the input
                // pixel and the filter row are read contiguously.
                let mut acc = [0i32; 64];
                for chunk_start in (0..oc).step_by(acc.len()) {
                    let chunk = acc.len().min(oc - chunk_start);
                    let acc = &mut acc[..chunk];
                    acc.fill(0);
                    for ky in 0..w.kernel_h {
                        let iy = w.in_y(oy, ky);
                        if iy < 0 || iy >= g.input.h as i32 {
                            continue;
                        }
                        for kx in 0..w.kernel_w {
                            let ix = w.in_x(ox, kx);
                            if ix < 0 || ix >= g.input.w as i32 {
                                continue;
                            }
                            let pixel = (b as usize * g.input.h as usize + iy as usize) * g.input.w as usize + ix as usize;
                            let x = &input[pixel * ic..][..ic];
                            let f = &filter[(ky * w.kernel_w + kx) as usize * oc + chunk_start..][..chunk];
                            for (i, (a, &wv)) in acc.iter_mut().zip(f).enumerate() {
                                let xv = x[(chunk_start + i) / m] as i32 + stage.input_offset;
                                *a = a.wrapping_add(xv * wv as i32);
                            }
                        }
                    }
                    for (i, &a) in acc.iter().enumerate() {
                        let o = chunk_start + i;
                        let a = bias.map_or(a, |bias| a.wrapping_add(bias[o]));
                        out[o] = stage.finish(a, o);
                    }
                }
            }
        }
    }
    Ok(())
}
