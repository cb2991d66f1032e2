//! int8 depthwise convolution (TFLite `DEPTHWISE_CONV_2D`, per-channel weights).

use super::dot::mac_lanes;
use super::OutputStage;
use crate::error::{expect_len, KernelError};
use crate::geometry::ConvGeometry;
#[cfg(arm_dsp)]
use crate::quant::Rounding;

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
    g.check_depthwise_io(depth_multiplier, input, output)?;
    expect_len("filter", filter, g.window.taps() * g.output.c as usize)?;
    stage.check(g.output.c as usize, bias)
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
    check(
        g,
        depth_multiplier,
        stage,
        input.len(),
        filter.len(),
        bias,
        output.len(),
    )?;
    // The x86 kernels take weights with a zero point too.
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::depthwise_conv2d(g, depth_multiplier, stage, input, filter, bias, output) {
        return Ok(());
    }
    if stage.filter_offset != 0 {
        #[cfg(op_weight_offset)]
        {
            super::offset::depthwise_conv2d(
                g,
                depth_multiplier,
                stage,
                input,
                filter,
                bias,
                output,
            );
            return Ok(());
        }
        #[cfg(not(op_weight_offset))]
        return Err(super::WEIGHT_OFFSET_NOT_BUILT);
    }
    let (ic, oc, m) = (
        g.input.c as usize,
        g.output.c as usize,
        depth_multiplier as usize,
    );
    #[cfg(arm_mve)]
    if super::arm_mve::depthwise::depthwise(g, stage, input, filter, bias, output) {
        return Ok(());
    }
    #[cfg(arm_dsp)]
    if m == 1 && oc % 4 == 0 && g.window.taps() <= super::arm_dsp::depthwise::MAX_TAPS {
        match (stage.rounding, stage.full_range()) {
            (Rounding::Double, true) => super::arm_dsp::depthwise::depthwise::<true, true>(
                g, stage, input, filter, bias, output,
            ),
            (Rounding::Double, false) => super::arm_dsp::depthwise::depthwise::<true, false>(
                g, stage, input, filter, bias, output,
            ),
            (Rounding::Single, true) => super::arm_dsp::depthwise::depthwise::<false, true>(
                g, stage, input, filter, bias, output,
            ),
            (Rounding::Single, false) => super::arm_dsp::depthwise::depthwise::<false, false>(
                g, stage, input, filter, bias, output,
            ),
        }
        return Ok(());
    }
    // Accumulate tap by tap across a block of channels, so both the input
    // pixel and the filter row are read contiguously.
    const BLOCK: usize = 64;
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let out = &mut output[pixel * oc..][..oc];
        for start in (0..oc).step_by(BLOCK) {
            let len = BLOCK.min(oc - start);
            let mut acc = [0i32; BLOCK];
            g.for_each_tap(b, oy, ox, |tap, at| {
                let f = &filter[tap * oc + start..][..len];
                if m == 1 {
                    // Output channel i reads input channel i: lane by lane.
                    mac_lanes(
                        &mut acc[..len],
                        &input[at * ic + start..][..len],
                        f,
                        stage.input_offset,
                    );
                } else {
                    let x = &input[at * ic..][..ic];
                    for (i, (a, &wv)) in acc.iter_mut().zip(f).enumerate() {
                        *a = a.wrapping_add(
                            (x[(start + i) / m] as i32 + stage.input_offset) * wv as i32,
                        );
                    }
                }
            });
            for (i, &a) in acc[..len].iter().enumerate() {
                out[start + i] = stage.finish_biased(a, bias, start + i);
            }
        }
    });
    Ok(())
}
