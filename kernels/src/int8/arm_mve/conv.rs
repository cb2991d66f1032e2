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
                gather(g, input, (b, oy, ox), pad, column);
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
/// (`depth` long): a window wholly inside the input (and one tap wide
/// apart, `dilation_w == 1`) row by row in one block of assembly, any
/// other run of taps by run of taps, only the taps in the padding filled
/// with `pad`.
#[inline(always)]
fn gather(
    g: &ConvGeometry,
    input: &[i8],
    (b, oy, ox): (u32, u32, u32),
    pad: i8,
    column: &mut [i8],
) {
    let ic = g.input.c as usize;
    let w = &g.window;
    let (y0, x0) = (w.in_y(oy, 0), w.in_x(ox, 0));
    let (last_y, last_x) = ((w.kernel_h - 1) * w.dilation_h, w.kernel_w - 1);
    if w.dilation_w == 1
        && y0 >= 0
        && x0 >= 0
        && y0 as u32 + last_y < g.input.h
        && x0 as u32 + last_x < g.input.w
    {
        let row_stride = w.dilation_h as usize * g.input.w as usize * ic;
        let origin = (b as usize * g.input.h as usize + y0 as usize) * g.input.w as usize;
        let rows = &input[(origin + x0 as usize) * ic..];
        let row = w.kernel_w as usize * ic;
        copy_rows(rows, row_stride, row, column);
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
