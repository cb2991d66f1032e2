//! int8 2-D convolution (TFLite `CONV_2D`, per-channel weights).

use super::{dot_with_offset, OutputStage};
use crate::error::{expect_len, KernelError};
use crate::geometry::ConvGeometry;

/// Checks a convolution's arguments by their lengths.
pub fn check(g: &ConvGeometry, stage: &OutputStage, input: usize, filter: usize, bias: Option<&[i32]>, output: usize) -> Result<(), KernelError> {
    g.check_conv_io(input, output)?;
    expect_len("filter", filter, g.output.c as usize * g.depth())?;
    stage.check(g.output.c as usize, bias)
}

/// int8 convolution. Filter layout OHWI, input and output NHWC.
pub fn conv2d(g: &ConvGeometry, stage: &OutputStage, input: &[i8], filter: &[i8], bias: Option<&[i32]>, output: &mut [i8]) -> Result<(), KernelError> {
    check(g, stage, input.len(), filter.len(), bias, output.len())?;
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let filter_o = &filter[o * depth..][..depth];
            let mut acc = 0i32;
            g.for_each_tap(b, oy, ox, |tap, at| {
                acc = acc.wrapping_add(dot_with_offset(&input[at * ic..][..ic], &filter_o[tap * ic..][..ic], stage.input_offset));
            });
            output[pixel * oc + o] = stage.finish_biased(acc, bias, o);
        }
    });
    Ok(())
}
