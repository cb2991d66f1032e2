//! DSP convolution by quads of output pixels: the receptive fields of four
//! pixels are widened into one interleaved buffer, and every filter is
//! read once per quad ([`quad_sums`](super::dot::quad_sums)), so a
//! weight word is loaded and widened once for four pixels.

use super::channels::{self, Channels};
#[cfg(op_deep_conv)]
use super::dot::quad_sums_part;
use super::dot::{quad_sums, quad_sums_rest, widen_quad, zero_quad, QUAD_GROUP_WORDS};
use crate::geometry::ConvGeometry;
use crate::int8::conv::{gather, COLUMN};
use crate::int8::OutputStage;
use crate::quant::{ChannelRequant, Rounding};
use crate::sparse::blocks::Blocks;

/// The weights a convolution's quads are multiplied by: a dense OHWI
/// filter, or block-sparse rows over the same receptive field.
#[derive(Clone, Copy)]
pub(crate) enum Filter<'a> {
    Dense(&'a [i8]),
    Blocks(&'a Blocks<'a>),
}

/// Output pixels per quad.
const QUAD: usize = 4;

/// `words` set to zero, as initialized words.
fn zeroed(words: &mut [core::mem::MaybeUninit<u32>]) -> &mut [u32] {
    for w in words.iter_mut() {
        w.write(0);
    }
    // SAFETY: every word was just written; `MaybeUninit<u32>` has the
    // layout of `u32`.
    #[allow(unsafe_code)]
    unsafe {
        &mut *(core::ptr::from_mut(words) as *mut [u32])
    }
}

/// The convolution of every output pixel (receptive fields at most
/// [`COLUMN`] deep; the caller checked the lengths).
pub(crate) fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: Filter,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (oc, depth) = (g.output.c as usize, g.depth());
    let pad = (-stage.input_offset) as i8;
    let mut column = [pad; COLUMN];
    // Only the part a field this deep uses is set: clearing all 4.5 KiB
    // cost a call thousands of instructions, which a layer run a band of
    // rows at a time (`memory = "partial"`) pays at every band.
    let mut storage =
        [core::mem::MaybeUninit::<u32>::uninit(); COLUMN.div_ceil(4) * QUAD_GROUP_WORDS];
    let wide = zeroed(&mut storage[..depth.div_ceil(4) * QUAD_GROUP_WORDS]);
    let mut sums = [[0i32; 4]; FILTER_RUN];
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

/// A 1x1 convolution whose input pixels are deeper than [`COLUMN`]
/// (MobileNetV2's last blocks read 960 channels), by quads as
/// [`conv2d`], the depth in chunks of at most `COLUMN` values: each run
/// of filters sums chunk by chunk ([`quad_sums_part`]), each chunk of
/// the quad's pixels widened again per run (a few percent of the
/// products) so that the buffers stay `COLUMN` deep. Per-pixel dot
/// products took 2.8 instructions a product here against 1.15 by quads.
/// The depth must be a multiple of four; the caller checked the lengths.
#[cfg(op_deep_conv)]
pub(crate) fn deep_pointwise(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let oc = g.output.c as usize;
    let mut buffers = DeepBuffers {
        wide: [0; COLUMN / 4 * QUAD_GROUP_WORDS],
        sums: [[0; 4]; FILTER_RUN],
        totals: [[0; 4]; FILTER_RUN],
    };
    // The quad's output pixels and their input pixels (none in the padding).
    let mut quad = [(0usize, None::<usize>); QUAD];
    let mut filled = 0;
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let mut at = None;
        g.for_each_tap_run(b, oy, ox, |_, first, _| at = Some(first));
        quad[filled] = (pixel, at);
        filled += 1;
        if filled == QUAD {
            let out = &mut output[quad[0].0 * oc..][..QUAD * oc];
            deep_quad(g, stage, input, (filter, bias), &quad, &mut buffers, out);
            filled = 0;
        }
    });
    if filled > 0 {
        let out = &mut output[quad[0].0 * oc..][..filled * oc];
        deep_quad(
            g,
            stage,
            input,
            (filter, bias),
            &quad[..filled],
            &mut buffers,
            out,
        );
    }
}

/// The stack buffers of [`deep_pointwise`]: a chunk of a quad widened,
/// a run's chunk sums and their totals.
#[cfg(op_deep_conv)]
struct DeepBuffers {
    wide: [u32; COLUMN / 4 * QUAD_GROUP_WORDS],
    sums: [[i32; 4]; FILTER_RUN],
    totals: [[i32; 4]; FILTER_RUN],
}

/// Every output channel of `pixels` (output pixel, input pixel if any)
/// of [`deep_pointwise`], into their rows `out`.
#[cfg(op_deep_conv)]
#[inline(never)]
fn deep_quad(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    (filter, bias): (&[i8], Option<&[i32]>),
    pixels: &[(usize, Option<usize>)],
    buffers: &mut DeepBuffers,
    out: &mut [i8],
) {
    let (oc, depth) = (g.output.c as usize, g.depth());
    for base in (0..oc).step_by(FILTER_RUN) {
        let n = FILTER_RUN.min(oc - base);
        let totals = &mut buffers.totals[..n];
        totals.fill([0; 4]);
        for start in (0..depth).step_by(COLUMN) {
            let len = COLUMN.min(depth - start);
            let wide = &mut buffers.wide[..len / 4 * QUAD_GROUP_WORDS];
            for (p, &(_, at)) in pixels.iter().enumerate() {
                match at {
                    Some(at) => widen_quad(
                        &input[at * depth + start..][..len],
                        stage.input_offset,
                        p,
                        wide,
                    ),
                    None => zero_quad(p, wide),
                }
            }
            let sums = &mut buffers.sums[..n];
            quad_sums_part(wide, &filter[base * depth + start..], len, depth, sums);
            for (total, sum) in totals.iter_mut().zip(sums.iter()) {
                for (t, s) in total.iter_mut().zip(sum) {
                    *t = t.wrapping_add(*s);
                }
            }
        }
        requantize_run(totals, base, stage, bias, out);
    }
}

/// Filters per run of [`quad_sums`]: their sums wait on the stack (512 bytes).
pub(super) const FILTER_RUN: usize = 32;

/// Every output channel of the first pixels of a widened quad (as many
/// as `out`, their consecutive output rows, holds): the sums of a run
/// of filters, then their requantization, channel by channel.
#[inline(never)]
fn quad_outputs(
    wide: &[u32],
    filter: Filter,
    depth: usize,
    stage: &OutputStage,
    bias: Option<&[i32]>,
    sums: &mut [[i32; 4]; FILTER_RUN],
    out: &mut [i8],
) {
    let oc = stage.requant.len();
    for base in (0..oc).step_by(FILTER_RUN) {
        let sums = &mut sums[..FILTER_RUN.min(oc - base)];
        match filter {
            Filter::Dense(filter) => {
                let filters = &filter[base * depth..(base + sums.len()) * depth];
                quad_sums(wide, filters, depth, sums);
                quad_sums_rest(wide, filters, depth, sums);
            }
            Filter::Blocks(w) => {
                // SAFETY: `Blocks::check` keeps every block inside the
                // receptive field, which `wide` holds.
                #[allow(unsafe_code)]
                unsafe {
                    super::sparse::block_rows4(w, base, wide, sums)
                };
            }
        }
        requantize_run(sums, base, stage, bias, out);
    }
}

/// Requantizes the quad sums of output channels `base..base +
/// sums.len()` into the pixels' rows of `out` (as [`requantize`]), the
/// rounding and whether the clamp is all of int8 (one SSAT) chosen once
/// per run, not per value.
pub(super) fn requantize_run(
    sums: &[[i32; 4]],
    base: usize,
    stage: &OutputStage,
    bias: Option<&[i32]>,
    out: &mut [i8],
) {
    let oc = stage.requant.len();
    if stage.rounding == Rounding::Double && out.len() == QUAD * oc && !sums.is_empty() {
        return requantize_quad(sums, base, stage, bias, out);
    }
    match (stage.rounding, stage.full_range()) {
        (Rounding::Double, true) => requantize::<true, true>(sums, base, stage, bias, out),
        (Rounding::Double, false) => requantize::<true, false>(sums, base, stage, bias, out),
        (Rounding::Single, true) => requantize::<false, true>(sums, base, stage, bias, out),
        (Rounding::Single, false) => requantize::<false, false>(sums, base, stage, bias, out),
    }
}

/// No bias: zeros for [`requantize_quad`]'s starting values.
static NO_BIAS: [i32; FILTER_RUN] = [0; FILTER_RUN];

/// [`requantize_run`] of a whole quad (four rows of `out`) with double
/// rounding: the channels' loop of assembly that the sparse kernels end
/// with ([`channels::sums`]), about seventeen instructions a value against
/// the compiled loop's twenty-two.
fn requantize_quad(
    sums: &[[i32; 4]],
    base: usize,
    stage: &OutputStage,
    bias: Option<&[i32]>,
    out: &mut [i8],
) {
    let (oc, n) = (stage.requant.len(), sums.len());
    let starts = bias.map_or(&NO_BIAS[..n], |b| &b[base..][..n]);
    let first = &mut out[base..][..3 * oc + n];
    let requant = &stage.requant[base..][..n];
    let mut frame = Channels::new(stage, (starts, requant), first, n, oc);
    frame.entries = sums.as_ptr().cast();
    // SAFETY: `n >= 1` channels; sums, starts and multipliers hold `n`
    // each; the four rows' values of channels `base..base + n` lie in
    // `first` (three rows of `oc` and `n` more).
    #[allow(unsafe_code)]
    unsafe {
        match stage.full_range() {
            true => channels::sums::<true>(&frame),
            false => channels::sums::<false>(&frame),
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
        // Double rounding's whole quads go to `requantize_quad`: here
        // single rounding, one multiplier unpacked per channel.
        for j in 0..n {
            let b = biases.map_or(0, |b| b[j]);
            let s = sums[j];
            let requant = ChannelRequant::new(requants[j], stage.rounding);
            let finish = |sum: i32| finish(sum.wrapping_add(b), &requant);
            (r0[j], r1[j], r2[j], r3[j]) = (finish(s[0]), finish(s[1]), finish(s[2]), finish(s[3]));
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
