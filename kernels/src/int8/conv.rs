//! int8 2-D convolution (TFLite `CONV_2D`, per-channel weights).

use super::{check_bias, dot_with_offset, OutputStage};
use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::{ConvGeometry, MAX_DEPTH};

/// Checks a convolution's arguments by their lengths.
pub fn check(g: &ConvGeometry, stage: &OutputStage, input: usize, filter: usize, bias: Option<&[i32]>, output: usize) -> Result<(), KernelError> {
    g.check()?;
    ensure(g.depth() <= MAX_DEPTH, "convolution depth: kernel_h * kernel_w * in_channels must be at most 65535")?;
    expect_len("input", input, g.input.elements().unwrap_or(usize::MAX))?;
    expect_len("output", output, g.output.elements().unwrap_or(usize::MAX))?;
    expect_len("filter", filter, g.output.c as usize * g.depth())?;
    check_bias(bias, g.output.c as usize)?;
    stage.check(g.output.c as usize)
}

/// int8 convolution. Filter layout OHWI, input and output NHWC.
pub fn conv2d(g: &ConvGeometry, stage: &OutputStage, input: &[i8], filter: &[i8], bias: Option<&[i32]>, output: &mut [i8]) -> Result<(), KernelError> {
    check(g, stage, input.len(), filter.len(), bias, output.len())?;
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let w = &g.window;
    let depth = g.depth();
    let mut out_pixels = output.chunks_exact_mut(oc);
    for b in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                let out = out_pixels.next().unwrap_or_default();
                for (o, out_value) in out.iter_mut().enumerate() {
                    let filter_o = &filter[o * depth..(o + 1) * depth];
                    let mut acc = 0i32;
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
                            let tap = (ky * w.kernel_w + kx) as usize;
                            acc = acc.wrapping_add(dot_with_offset(&input[pixel * ic..][..ic], &filter_o[tap * ic..][..ic], stage.input_offset));
                        }
                    }
                    if let Some(bias) = bias {
                        acc = acc.wrapping_add(bias[o]);
                    }
                    *out_value = stage.finish(acc, o);
                }
            }
        }
    }
    Ok(())
}
