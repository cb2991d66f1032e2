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
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::depthwise_conv2d(g, depth_multiplier, stage, input, filter, bias, output) {
        return Ok(());
    }
    let (ic, oc, m) = (
        g.input.c as usize,
        g.output.c as usize,
        depth_multiplier as usize,
    );
    #[cfg(arm_dsp)]
    if m == 1 && oc % 4 == 0 && g.window.taps() <= dsp::MAX_TAPS {
        match (stage.rounding, stage.full_range()) {
            (Rounding::Double, true) => {
                dsp::depthwise::<true, true>(g, stage, input, filter, bias, output)
            }
            (Rounding::Double, false) => {
                dsp::depthwise::<true, false>(g, stage, input, filter, bias, output)
            }
            (Rounding::Single, true) => {
                dsp::depthwise::<false, true>(g, stage, input, filter, bias, output)
            }
            (Rounding::Single, false) => {
                dsp::depthwise::<false, false>(g, stage, input, filter, bias, output)
            }
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

/// Depthwise convolution on DSP cores, for one input channel per output
/// channel: per output pixel the in-bounds taps are listed once, then each
/// group of four channels sums over them with its four accumulators in
/// registers ([`DepthwiseTaps::mac4`]).
#[cfg(arm_dsp)]
mod dsp {
    use super::{ConvGeometry, OutputStage};
    use crate::int8::dot::dsp::DepthwiseTaps;
    use crate::quant::{ChannelRequant, RoundingDown};

    /// Windows of at most this many taps take this path (5x5 and smaller).
    pub(super) const MAX_TAPS: usize = 25;

    /// The whole layer (lengths checked by the caller; `DOUBLE` and `FULL`
    /// as for [`OutputStage::finish_with`]).
    #[inline(never)]
    pub(super) fn depthwise<const DOUBLE: bool, const FULL: bool>(
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
                    *y = stage
                        .finish_with::<DOUBLE, FULL>(sum, &ChannelRequant::new(r, stage.rounding));
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
}
