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
    // Four channels at a time: a word of each row, transposed as a 4x4
    // matrix of bytes.
    let whole = ic / 4 * 4;
    for (c, words) in quad[..whole].chunks_exact_mut(4).enumerate() {
        let word = |r: &[i8]| {
            let b = &r[4 * c..][..4];
            u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
        };
        words.copy_from_slice(&transpose4([word(r0), word(r1), word(r2), word(r3)]));
    }
    for c in whole..ic {
        quad[c] = u32::from_le_bytes([r0[c] as u8, r1[c] as u8, r2[c] as u8, r3[c] as u8]);
    }
}

/// The 4x4 matrix of bytes whose rows are the words `rows` (byte `j` of
/// row `i` becomes byte `i` of word `j`): on DSP cores byte pairs by
/// UXTB16 and ORR, then halves by PKHBT/PKHTB, 16 instructions.
#[inline(always)]
fn transpose4(rows: [u32; 4]) -> [u32; 4] {
    #[cfg(arm_dsp)]
    {
        let [mut a, mut b, mut c, mut d] = rows;
        let (t0, t1): (u32, u32);
        // SAFETY: register-only arithmetic.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                // a0 b0 a2 b2 and a1 b1 a3 b3.
                "uxtb16 {t0}, {a}",
                "uxtb16 {t1}, {b}",
                "orr {t0}, {t0}, {t1}, lsl #8",
                "uxtb16 {a}, {a}, ror #8",
                "uxtb16 {b}, {b}, ror #8",
                "orr {a}, {a}, {b}, lsl #8",
                // c0 d0 c2 d2 and c1 d1 c3 d3.
                "uxtb16 {t1}, {c}",
                "uxtb16 {b}, {d}",
                "orr {t1}, {t1}, {b}, lsl #8",
                "uxtb16 {c}, {c}, ror #8",
                "uxtb16 {d}, {d}, ror #8",
                "orr {c}, {c}, {d}, lsl #8",
                // Columns 0 and 2 from the even pairs, 1 and 3 from the odd.
                "pkhbt {b}, {t0}, {t1}, lsl #16",
                "pkhtb {d}, {t1}, {t0}, asr #16",
                "pkhbt {t0}, {a}, {c}, lsl #16",
                "pkhtb {t1}, {c}, {a}, asr #16",
                a = inout(reg) a,
                b = inout(reg) b,
                c = inout(reg) c,
                d = inout(reg) d,
                t0 = out(reg) t0,
                t1 = out(reg) t1,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        let _ = (a, c);
        [b, t0, d, t1]
    }
    #[cfg(not(arm_dsp))]
    {
        let bytes = rows.map(u32::to_le_bytes);
        core::array::from_fn(|j| u32::from_le_bytes(bytes.map(|r| r[j])))
    }
}
