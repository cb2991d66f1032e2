//! Helium convolutions and dense layers: every output pixel's receptive
//! field (the input pixel itself for a 1x1 window, else gathered into a
//! column with padded taps holding `-offset`) against runs of up to
//! [`RUN`] filters, whose starting values ([`filter_bases`]: bias plus
//! the input offset's term) are worked out once per call.

use super::copy::{copy, copy_rows, fill};
use super::dot::{dots, filter_bases, RunSums, RUN};
use super::requant::RowRequant;
use crate::geometry::ConvGeometry;
use crate::int8::conv::COLUMN;
use crate::int8::dense::DenseGeometry;
use crate::int8::OutputStage;
use core::ops::Range;

/// int8 convolution (OHWI filter, NHWC input and output) with receptive
/// fields at most [`COLUMN`] deep, or of one tap; `false` (nothing
/// written) for deeper fields. The caller checked the lengths.
pub(crate) fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    let single_tap = g.window.taps() == 1;
    if !single_tap && depth > COLUMN {
        return false;
    }
    let pad = (-stage.input_offset) as i8;
    let mut column = [pad; COLUMN];
    let inside = g.inside_windows();
    let mut run = RunSums::new();
    for first in (0..oc).step_by(RUN) {
        let count = RUN.min(oc - first);
        let filters = &filter[first * depth..][..count * depth];
        let bias = bias.map(|b| &b[first..]);
        filter_bases(
            filters,
            depth,
            bias,
            stage.input_offset,
            &mut run.base[..count],
        );
        let requant = RowRequant::new(stage, first, count);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            if single_tap {
                let mut at = None;
                g.for_each_tap(b, oy, ox, |_, a| at = Some(a));
                match at {
                    Some(at) => dots(&input[at * ic..][..ic], filters, &mut run, count),
                    // A tap in the padding adds nothing to the bases.
                    None => run.sums = run.base,
                }
            } else {
                let column = &mut column[..depth];
                gather(g, input, &inside, (b, oy, ox), pad, column);
                dots(column, filters, &mut run, count);
            }
            let out = &mut output[pixel * oc + first..][..count];
            requant.apply(&run.sums[..count], out);
        });
    }
    true
}

/// int8 dense layer (weights `[out, in]` row-major), each input row a
/// receptive field. The caller checked the lengths.
pub(crate) fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let mut run = RunSums::new();
    for first in (0..n).step_by(RUN) {
        let count = RUN.min(n - first);
        let filters = &weights[first * k..][..count * k];
        let bias = bias.map(|b| &b[first..]);
        filter_bases(filters, k, bias, stage.input_offset, &mut run.base[..count]);
        let requant = RowRequant::new(stage, first, count);
        for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
            dots(x, filters, &mut run, count);
            requant.apply(&run.sums[..count], &mut out[first..][..count]);
        }
    }
}

/// Copies the receptive field of output pixel `(b, oy, ox)` into `column`
/// (`depth` long): a window wholly inside the input (`inside`, from
/// [`ConvGeometry::inside_windows`]; taps one apart, `dilation_w == 1`)
/// row by row in one block of assembly, any
/// other run of taps by run of taps, only the taps in the padding filled
/// with `pad`.
#[inline(always)]
fn gather(
    g: &ConvGeometry,
    input: &[i8],
    (rows, columns): &(Range<u32>, Range<u32>),
    (b, oy, ox): (u32, u32, u32),
    pad: i8,
    column: &mut [i8],
) {
    let ic = g.input.c as usize;
    let w = &g.window;
    if w.dilation_w == 1 && rows.contains(&oy) && columns.contains(&ox) {
        let row_stride = w.dilation_h as usize * g.input.w as usize * ic;
        let rows = &input[g.padded_origin((b, oy, ox))..];
        copy_rows(rows, row_stride, w.kernel_w as usize * ic, column);
        return;
    }
    let mut next = 0;
    g.for_each_tap_run(b, oy, ox, |tap, at, count| {
        fill(&mut column[next * ic..tap * ic], pad);
        copy(
            &input[at * ic..][..count * ic],
            &mut column[tap * ic..][..count * ic],
        );
        next = tap + count;
    });
    fill(&mut column[next * ic..], pad);
}
