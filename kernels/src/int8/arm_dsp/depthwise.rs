//! Depthwise convolution on DSP cores, for one input channel per output
//! channel: per output pixel the in-bounds taps are listed once, then each
//! group of four channels sums over them with its four accumulators in
//! registers ([`DepthwiseTaps::mac4`]).

use super::dot::DepthwiseTaps;
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;
use crate::quant::{ChannelRequant, RoundingDown};

/// Windows of at most this many taps take this path (5x5 and smaller).
pub(crate) const MAX_TAPS: usize = 25;

/// The whole layer (lengths checked by the caller; `DOUBLE` and `FULL`
/// as for [`OutputStage::finish_with`]).
#[inline(never)]
pub(crate) fn depthwise<const DOUBLE: bool, const FULL: bool>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let c = g.output.c as usize;
    if DOUBLE && c <= TABLE {
        // Every channel's multiplier in registers' form, made once.
        let mut table = [RoundingDown::default(); TABLE];
        let all_down = table
            .iter_mut()
            .zip(stage.requant)
            .all(|(t, &r)| RoundingDown::new(r).map(|down| *t = down).is_some());
        if all_down {
            return depthwise_rounding_down::<FULL>(
                g,
                stage,
                input,
                filter,
                &table[..c],
                bias,
                output,
            );
        }
    }
    let mut taps = DepthwiseTaps::<MAX_TAPS>::new(input, filter, c);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        taps.clear();
        g.for_each_tap(b, oy, ox, |tap, at| taps.push(at, tap));
        let mut biases = bias.map(|b| b.chunks_exact(4));
        let out = output[pixel * c..][..c].chunks_exact_mut(4);
        for (lane, (out, requant)) in out
            .zip(stage.requant.chunks_exact(4))
            .enumerate()
            .map(|(k, pair)| (4 * k, pair))
        {
            let start = match &mut biases {
                Some(b) => b.next().map_or([0; 4], |b| [b[0], b[1], b[2], b[3]]),
                None => [0; 4],
            };
            let sums = taps.mac4(lane, stage.input_offset, start);
            for ((y, &sum), &r) in out.iter_mut().zip(&sums).zip(requant) {
                *y =
                    stage.finish_with::<DOUBLE, FULL>(sum, &ChannelRequant::new(r, stage.rounding));
            }
        }
    });
}

/// Channels up to which [`depthwise`] keeps a table of their
/// multipliers (512 bytes of stack).
const TABLE: usize = 64;

/// [`depthwise`] for double rounding with every channel's multiplier
/// below one half (the usual case): requantization from the table.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn depthwise_rounding_down<const FULL: bool>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    table: &[RoundingDown],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let c = g.output.c as usize;
    let mut taps = DepthwiseTaps::<MAX_TAPS>::new(input, filter, c);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        taps.clear();
        g.for_each_tap(b, oy, ox, |tap, at| taps.push(at, tap));
        let mut biases = bias.map(|b| b.chunks_exact(4));
        let out = output[pixel * c..][..c].chunks_exact_mut(4);
        for (lane, (out, table)) in out
            .zip(table.chunks_exact(4))
            .enumerate()
            .map(|(k, pair)| (4 * k, pair))
        {
            let start = match &mut biases {
                Some(b) => b.next().map_or([0; 4], |b| [b[0], b[1], b[2], b[3]]),
                None => [0; 4],
            };
            let sums = taps.mac4(lane, stage.input_offset, start);
            for ((y, &sum), down) in out.iter_mut().zip(&sums).zip(table) {
                *y = stage.saturate_with::<FULL>(down.apply(sum));
            }
        }
    });
}
