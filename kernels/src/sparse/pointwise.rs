//! Sparse pointwise convolutions on DSP cores, four output pixels at a
//! time: the four pixels' input rows are first laid out channel by channel
//! (the four bytes of a channel in one word, a stack buffer), so that each
//! non-zero reads one word for the four pixels
//! ([`quad_dots4`](crate::int8::arm_dsp::sparse::quad_dots4): 2.25
//! instructions a product, against 2.75 gathering bytes rows apart); then
//! every output channel of the quad, its four values requantized together.
//! Laying out costs about three instructions per input byte, shared by all
//! output channels.

use super::{channels_frame, group_channels, is_pointwise, starting_values, Csr, LayerArgs};
use crate::geometry::ConvGeometry;
use crate::int8::arm_dsp::sparse::quad_dots4;
use crate::int8::{OutputClamp, OutputStage};
use crate::quant::Rounding;

/// Input channels up to which a quad is laid out on the stack (2 KiB).
const MAX_CHANNELS: usize = 512;

/// Output channels up to which this path takes a layer: their sums'
/// starting values are worked out once per layer (1 KiB of stack).
const MAX_OUTPUTS: usize = 256;

/// Pixels of a quad.
const QUAD: usize = 4;

/// Whether this path takes a convolution: pointwise, with a quad of
/// pixels at least, and few enough input and output channels.
pub(crate) fn takes(g: &ConvGeometry) -> bool {
    is_pointwise(g)
        && g.input.c as usize <= MAX_CHANNELS
        && g.output.c as usize <= MAX_OUTPUTS
        && g.output.pixels().is_some_and(|p| p >= QUAD)
}

/// The layer (arguments checked by the caller, [`takes`] true).
pub(crate) fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let args = (g, stage, input, filter, bias, output);
    // The rounding and whether the clamp is all of int8 chosen once.
    match (stage.rounding, stage.full_range()) {
        (Rounding::Double, true) => quads::<true, true>(args),
        (Rounding::Double, false) => quads::<true, false>(args),
        (Rounding::Single, _) => quads::<false, false>(args),
    }
}

/// Every quad of pixels (the last one overlapping the one before where
/// the pixels do not divide into quads: its pixels get the same values
/// again), then every output channel. `DOUBLE` and `FULL` as for
/// [`OutputStage::finish_with`].
fn quads<const DOUBLE: bool, const FULL: bool>((g, stage, input, filter, bias, output): LayerArgs) {
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let pixels = g.output.pixels().unwrap_or(0);
    // Inputs are read as they are: the offset's term is the weights'.
    let mut bases = [0i32; MAX_OUTPUTS];
    starting_values(stage, bias, filter, &mut bases[..oc]);
    let clamp = OutputClamp::of(stage);
    let mut quad = [0u32; MAX_CHANNELS];
    let mut p = 0;
    while p < pixels {
        let first = p.min(pixels - QUAD);
        lay_out(&input[first * ic..][..QUAD * ic], &mut quad[..ic]);
        let out = &mut output[first * oc..][..QUAD * oc];
        let start = |o: usize, _: &[u32]| bases[o];
        // SAFETY: check_offsets keeps every entry's offset below the
        // receptive field, `ic` channels, and `quad` holds `ic` words.
        #[allow(unsafe_code)]
        let dots =
            |entries: &[u32], base| unsafe { quad_dots4(entries, quad.as_ptr(), [base; QUAD]) };
        if let Some(mut frame) = channels_frame(stage, filter, Some(&bases[..oc]), out) {
            frame.x = quad.as_ptr().cast();
            // SAFETY: the frame covers `out`'s four rows and the filter's
            // rows; check_offsets keeps every entry's offset below `ic`,
            // the words `quad` holds.
            #[allow(unsafe_code)]
            unsafe {
                crate::int8::arm_dsp::channels::quad::<FULL>(&frame)
            };
        } else {
            // SAFETY: `out` holds a quad of `oc` channels, one row of the
            // filter and one multiplier per channel (checked).
            #[allow(unsafe_code)]
            unsafe {
                group_channels::<QUAD, DOUBLE, FULL>((stage, clamp), filter, start, dots, out, oc)
            };
        }
        p = first + QUAD;
    }
}

/// `quad[c]` = the bytes of channel `c` of the four input rows of `rows`.
#[inline(always)]
fn lay_out(rows: &[i8], quad: &mut [u32]) {
    let ic = quad.len();
    let (r0, rest) = rows.split_at(ic);
    let (r1, rest) = rest.split_at(ic);
    let (r2, r3) = rest.split_at(ic);
    for (c, word) in quad.iter_mut().enumerate() {
        *word = u32::from_le_bytes([r0[c] as u8, r1[c] as u8, r2[c] as u8, r3[c] as u8]);
    }
}
