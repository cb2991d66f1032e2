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
const COLUMN: usize = 576;
#[cfg(not(arm_dsp))]
const COLUMN: usize = 64;

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
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::conv2d(g, stage, input, filter, bias, output) {
        return Ok(());
    }
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    let offset = stage.input_offset;
    let single_tap = g.window.taps() == 1;
    #[cfg(arm_dsp)]
    if depth <= COLUMN {
        quads::conv2d(g, stage, input, filter, bias, output);
        return Ok(());
    }
    if single_tap || depth <= COLUMN {
        // Padded taps hold -offset: x + offset = 0 adds nothing, as skipping them does.
        let pad = (-offset) as i8;
        let mut column = [pad; COLUMN];
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let out = &mut output[pixel * oc..][..oc];
            if single_tap {
                // A 1x1 window reads one input pixel as it lies in memory.
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
                let column = &mut column[..depth];
                gather(g, input, b, oy, ox, pad, column);
                column_outputs(column, filter, stage, bias, out);
            }
        });
        return Ok(());
    }
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let out = &mut output[pixel * oc..][..oc];
        // Four output channels at a time share each input tap.
        let mut o = 0;
        while o + 4 <= oc {
            let filters = [0, 1, 2, 3].map(|k| &filter[(o + k) * depth..][..depth]);
            let mut acc = [0i32; 4];
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
            let mut acc = 0i32;
            g.for_each_tap(b, oy, ox, |tap, at| {
                acc = acc.wrapping_add(dot(
                    &input[at * ic..][..ic],
                    &filter_o[tap * ic..][..ic],
                    offset,
                ));
            });
            *y = stage.finish_biased(acc, bias, o);
        }
    });
    Ok(())
}

/// Copies the receptive field of output pixel `(b, oy, ox)` into `column`
/// (`depth` long); taps in the padding hold `pad`.
fn gather(g: &ConvGeometry, input: &[i8], b: u32, oy: u32, ox: u32, pad: i8, column: &mut [i8]) {
    let ic = g.input.c as usize;
    column.fill(pad);
    // Taps next to each other in the input are one copy (a kernel row).
    g.for_each_tap_run(b, oy, ox, |tap, at, count| {
        column[tap * ic..][..count * ic].copy_from_slice(&input[at * ic..][..count * ic])
    });
}

/// DSP convolution by quads of output pixels: the receptive fields of four
/// pixels are widened into one interleaved buffer, and every filter is
/// read once per quad ([`quad_sums`](super::dot::dsp::quad_sums)), so a
/// weight word is loaded and widened once for four pixels.
#[cfg(arm_dsp)]
mod quads {
    use super::{gather, ConvGeometry, OutputStage, COLUMN};
    use crate::int8::dot::dsp::{
        quad_sums, quad_sums_rest, widen_quad, zero_quad, QUAD_GROUP_WORDS,
    };
    use crate::quant::{ChannelRequant, Rounding, RoundingDown};

    /// Output pixels per quad.
    const QUAD: usize = 4;

    /// The convolution of every output pixel (receptive fields at most
    /// [`COLUMN`] deep; the caller checked the lengths).
    pub(super) fn conv2d(
        g: &ConvGeometry,
        stage: &OutputStage,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        output: &mut [i8],
    ) {
        let (oc, depth) = (g.output.c as usize, g.depth());
        let pad = (-stage.input_offset) as i8;
        let mut column = [pad; COLUMN];
        let mut wide = [0u32; COLUMN.div_ceil(4) * QUAD_GROUP_WORDS];
        let mut sums = [[0i32; 4]; FILTER_RUN];
        let wide = &mut wide[..depth.div_ceil(4) * QUAD_GROUP_WORDS];
        // Each pixel of the quad being filled: its index and position.
        let mut quad = [(0usize, 0u32, 0u32, 0u32); QUAD];
        let mut filled = 0;
        let ic = g.input.c as usize;
        // Whole groups of four channels per tap: each tap is widened
        // straight from the input, the padding's lanes set to zero.
        let tap_words = ic.is_multiple_of(4).then_some(ic / 4 * QUAD_GROUP_WORDS);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            if let Some(tap_words) = tap_words {
                let mut next = 0;
                g.for_each_tap_run(b, oy, ox, |tap, at, count| {
                    zero_quad(filled, &mut wide[next * tap_words..tap * tap_words]);
                    widen_quad(
                        &input[at * ic..][..count * ic],
                        stage.input_offset,
                        filled,
                        &mut wide[tap * tap_words..][..count * tap_words],
                    );
                    next = tap + count;
                });
                zero_quad(filled, &mut wide[next * tap_words..]);
            } else {
                let column = &mut column[..depth];
                gather(g, input, b, oy, ox, pad, column);
                widen_quad(column, stage.input_offset, filled, wide);
            }
            quad[filled] = (pixel, b, oy, ox);
            filled += 1;
            if filled == QUAD {
                quad_outputs(
                    wide,
                    filter,
                    depth,
                    stage,
                    bias,
                    &mut sums,
                    &mut output[quad[0].0 * oc..][..QUAD * oc],
                );
                filled = 0;
            }
        });
        // The last pixels, fewer than a quad: the other lanes of the buffer
        // still hold earlier pixels, whose sums are not stored.
        if filled > 0 {
            quad_outputs(
                wide,
                filter,
                depth,
                stage,
                bias,
                &mut sums,
                &mut output[quad[0].0 * oc..][..filled * oc],
            );
        }
    }

    /// Filters per run of [`quad_sums`]: their sums wait on the stack (512 bytes).
    const FILTER_RUN: usize = 32;

    /// Every output channel of the first pixels of a widened quad (as many
    /// as `out`, their consecutive output rows, holds): the sums of a run
    /// of filters, then their requantization, channel by channel.
    #[inline(never)]
    fn quad_outputs(
        wide: &[u32],
        filter: &[i8],
        depth: usize,
        stage: &OutputStage,
        bias: Option<&[i32]>,
        sums: &mut [[i32; 4]; FILTER_RUN],
        out: &mut [i8],
    ) {
        let oc = stage.requant.len();
        // The rounding and whether the clamp is all of int8 (one SSAT) are
        // chosen once per call, not per value.
        let full = stage.full_range();
        for (run, filters) in filter[..oc * depth].chunks(FILTER_RUN * depth).enumerate() {
            let sums = &mut sums[..filters.len() / depth];
            quad_sums(wide, filters, depth, sums);
            quad_sums_rest(wide, filters, depth, sums);
            let base = run * FILTER_RUN;
            match (stage.rounding, full) {
                (Rounding::Double, true) => requantize::<true, true>(sums, base, stage, bias, out),
                (Rounding::Double, false) => {
                    requantize::<true, false>(sums, base, stage, bias, out)
                }
                (Rounding::Single, true) => requantize::<false, true>(sums, base, stage, bias, out),
                (Rounding::Single, false) => {
                    requantize::<false, false>(sums, base, stage, bias, out)
                }
            }
        }
    }

    /// Requantizes the quad sums of output channels `base..base +
    /// sums.len()` into the pixels' rows of `out`. `DOUBLE`: the stage
    /// rounds twice; `FULL`: its clamp is all of int8.
    #[inline(always)]
    fn requantize<const DOUBLE: bool, const FULL: bool>(
        sums: &[[i32; 4]],
        base: usize,
        stage: &OutputStage,
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) {
        let (oc, n) = (stage.requant.len(), sums.len());
        let requants = &stage.requant[base..][..n];
        let biases = bias.map(|b| &b[base..][..n]);
        let finish =
            |sum: i32, requant: &ChannelRequant| stage.finish_with::<DOUBLE, FULL>(sum, requant);
        if out.len() == QUAD * oc {
            // A whole quad: four rows, each value's place known in advance.
            let (r0, rest) = out.split_at_mut(oc);
            let (r1, rest) = rest.split_at_mut(oc);
            let (r2, r3) = rest.split_at_mut(oc);
            let [r0, r1, r2, r3] = [r0, r1, r2, r3].map(|r| &mut r[base..][..n]);
            for j in 0..n {
                let b = biases.map_or(0, |b| b[j]);
                let s = sums[j];
                match RoundingDown::new(requants[j]) {
                    // The usual case, without a test on the shift per value.
                    Some(down) if DOUBLE => {
                        let finish =
                            |sum: i32| stage.saturate_with::<FULL>(down.apply(sum.wrapping_add(b)));
                        (r0[j], r1[j], r2[j], r3[j]) =
                            (finish(s[0]), finish(s[1]), finish(s[2]), finish(s[3]));
                    }
                    _ => {
                        let requant = ChannelRequant::new(requants[j], stage.rounding);
                        let finish = |sum: i32| finish(sum.wrapping_add(b), &requant);
                        (r0[j], r1[j], r2[j], r3[j]) =
                            (finish(s[0]), finish(s[1]), finish(s[2]), finish(s[3]));
                    }
                }
            }
        } else {
            for (k, row) in out.chunks_exact_mut(oc).enumerate() {
                for (j, y) in row[base..][..n].iter_mut().enumerate() {
                    let b = biases.map_or(0, |b| b[j]);
                    *y = finish(
                        sums[j][k].wrapping_add(b),
                        &ChannelRequant::new(requants[j], stage.rounding),
                    );
                }
            }
        }
    }
}

/// Every output channel of one pixel from its contiguous receptive field
/// `column` (filter rows are `column.len()` long), four channels per pass.
/// Out of line, so its loops get the registers to themselves.
#[inline(never)]
fn column_outputs(
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
