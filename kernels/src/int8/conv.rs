//! int8 2-D convolution (TFLite `CONV_2D`, per-channel weights).

use super::dot::{dot, dot4};
use super::OutputStage;
use crate::error::{expect_len, KernelError};
use crate::geometry::ConvGeometry;

/// Checks a convolution's arguments by their lengths.
pub fn check(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: usize,
    filter: usize,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_conv_io(input, output)?;
    expect_len("filter", filter, g.output.c as usize * g.depth())?;
    stage.check(g.output.c as usize, bias)
}

/// Receptive fields at most this many values deep are gathered into
/// contiguous columns (a thin input, such as a first layer on one channel,
/// otherwise pays a tap's overhead for every value). The columns live on
/// the stack: on DSP cores (M4, M7) four of them widened to 16-bit lanes,
/// deep enough for a 3x3 window over 64 channels (4.5 KiB; their target
/// files set 12 KiB of stack apart), elsewhere one, small, for 16 KiB
/// boards.
#[cfg(arm_dsp)]
pub(crate) const COLUMN: usize = super::DSP_COLUMN;
#[cfg(not(arm_dsp))]
pub(crate) const COLUMN: usize = 64;

/// int8 convolution. Filter layout OHWI, input and output NHWC.
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(g, stage, input.len(), filter.len(), bias, output.len())?;
    // The x86 kernels take weights with a zero point too.
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::conv2d(g, stage, input, filter, bias, output) {
        return Ok(());
    }
    if stage.filter_offset != 0 {
        #[cfg(op_weight_offset)]
        {
            super::offset::conv2d(g, stage, input, filter, bias, output);
            return Ok(());
        }
        #[cfg(not(op_weight_offset))]
        return Err(super::WEIGHT_OFFSET_NOT_BUILT);
    }
    let (oc, depth) = (g.output.c as usize, g.depth());
    let offset = stage.input_offset;
    let single_tap = g.window.taps() == 1;
    #[cfg(arm_mve)]
    if super::arm_mve::conv::conv2d(g, stage, input, filter, bias, output) {
        return Ok(());
    }
    #[cfg(arm_dsp)]
    if depth <= COLUMN {
        use super::arm_dsp::conv::{conv2d, Filter};
        conv2d(g, stage, input, Filter::Dense(filter), bias, output);
        return Ok(());
    }
    #[cfg(all(arm_dsp, op_deep_conv))]
    if single_tap && depth.is_multiple_of(4) {
        super::arm_dsp::conv::deep_pointwise(g, stage, input, filter, bias, output);
        return Ok(());
    }
    if single_tap || depth <= COLUMN {
        // Padded taps hold -offset: x + offset = 0 adds nothing, as skipping them does.
        let pad = (-offset) as i8;
        let mut column = [pad; COLUMN];
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let out = &mut output[pixel * oc..][..oc];
            field_outputs(g, stage, input, filter, bias, (b, oy, ox), &mut column, out);
        });
        return Ok(());
    }
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let out = &mut output[pixel * oc..][..oc];
        tap_outputs(g, stage, input, filter, bias, (b, oy, ox), 0, out);
    });
    Ok(())
}

/// Every output channel of output pixel `(b, oy, ox)`, tap by tap (four
/// channels at a time share each input tap), each accumulator starting at
/// `start` (0, or [`super::offset`]'s weight zero point term).
#[allow(clippy::too_many_arguments)]
pub(crate) fn tap_outputs(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    (b, oy, ox): (u32, u32, u32),
    start: i32,
    out: &mut [i8],
) {
    let (ic, depth) = (g.input.c as usize, g.depth());
    let offset = stage.input_offset;
    let mut o = 0;
    while o + 4 <= out.len() {
        let filters = [0, 1, 2, 3].map(|k| &filter[(o + k) * depth..][..depth]);
        let mut acc = [start; 4];
        g.for_each_tap(b, oy, ox, |tap, at| {
            let sums = dot4(
                &input[at * ic..][..ic],
                filters.map(|f| &f[tap * ic..][..ic]),
                offset,
            );
            for k in 0..4 {
                acc[k] = acc[k].wrapping_add(sums[k]);
            }
        });
        for k in 0..4 {
            out[o + k] = stage.finish_biased(acc[k], bias, o + k);
        }
        o += 4;
    }
    for (o, y) in out.iter_mut().enumerate().skip(o) {
        let filter_o = &filter[o * depth..][..depth];
        let mut acc = start;
        g.for_each_tap(b, oy, ox, |tap, at| {
            acc = acc.wrapping_add(dot(
                &input[at * ic..][..ic],
                &filter_o[tap * ic..][..ic],
                offset,
            ));
        });
        *y = stage.finish_biased(acc, bias, o);
    }
}

/// Copies the receptive field of output pixel `(b, oy, ox)` into `column`
/// (`depth` long); taps in the padding hold `pad`.
pub(crate) fn gather(
    g: &ConvGeometry,
    input: &[i8],
    b: u32,
    oy: u32,
    ox: u32,
    pad: i8,
    column: &mut [i8],
) {
    let (ic, w) = (g.input.c as usize, &g.window);
    let (last_y, last_x) = (w.kernel_h - 1, w.kernel_w - 1);
    let inside = w.in_y(oy, 0) >= 0
        && w.in_y(oy, last_y) < g.input.h as i32
        && w.in_x(ox, 0) >= 0
        && w.in_x(ox, last_x) < g.input.w as i32;
    if !inside {
        column.fill(pad);
    }
    // Taps next to each other in the input are one copy (a kernel row).
    g.for_each_tap_run(b, oy, ox, |tap, at, count| {
        copy_run(
            &mut column[tap * ic..][..count * ic],
            &input[at * ic..][..count * ic],
        )
    });
}

/// `dst.copy_from_slice(src)` for the short runs of a receptive field: on
/// x86 sixteen bytes at a time, the last sixteen overlapping, where a
/// `memcpy` call per kernel row would cost as much as the copy.
#[inline(always)]
fn copy_run(dst: &mut [i8], src: &[i8]) {
    const CHUNK: usize = 16;
    let n = dst.len();
    if !cfg!(target_arch = "x86_64") || n < CHUNK || src.len() != n {
        return dst.copy_from_slice(src);
    }
    let mut at = 0;
    while at + CHUNK < n {
        dst[at..at + CHUNK].copy_from_slice(&src[at..at + CHUNK]);
        at += CHUNK;
    }
    dst[n - CHUNK..].copy_from_slice(&src[n - CHUNK..]);
}

/// The output channels of `filter` (rows of `column.len()` values, a
/// receptive field) for output pixel `(b, oy, ox)`: a 1x1 window reads its
/// input pixel where it lies, a larger one (at most [`COLUMN`] deep) is
/// gathered into the front of `column`, padded taps holding `-offset`
/// (adding nothing).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn field_outputs(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    (b, oy, ox): (u32, u32, u32),
    column: &mut [i8],
    out: &mut [i8],
) {
    let ic = g.input.c as usize;
    if g.window.taps() == 1 {
        let mut at = None;
        g.for_each_tap(b, oy, ox, |_, a| at = Some(a));
        match at {
            Some(at) => column_outputs(&input[at * ic..][..ic], filter, stage, bias, out),
            // In the padding: every product is zero.
            None => out
                .iter_mut()
                .enumerate()
                .for_each(|(o, y)| *y = stage.finish_biased(0, bias, o)),
        }
    } else {
        let column = &mut column[..g.depth()];
        gather(g, input, b, oy, ox, (-stage.input_offset) as i8, column);
        column_outputs(column, filter, stage, bias, out);
    }
}

/// Every output channel of one pixel from its contiguous receptive field
/// `column` (filter rows are `column.len()` long), four channels per pass.
/// Out of line, so its loops get the registers to themselves.
#[inline(never)]
pub(crate) fn column_outputs(
    column: &[i8],
    filter: &[i8],
    stage: &OutputStage,
    bias: Option<&[i32]>,
    out: &mut [i8],
) {
    let depth = column.len();
    let mut o = 0;
    while o + 4 <= out.len() {
        let sums = dot4(
            column,
            [0, 1, 2, 3].map(|k| &filter[(o + k) * depth..][..depth]),
            stage.input_offset,
        );
        for k in 0..4 {
            out[o + k] = stage.finish_biased(sums[k], bias, o + k);
        }
        o += 4;
    }
    for (o, y) in out.iter_mut().enumerate().skip(o) {
        *y = stage.finish_biased(
            dot(column, &filter[o * depth..][..depth], stage.input_offset),
            bias,
            o,
        );
    }
}
