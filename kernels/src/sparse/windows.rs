//! Sparse layers over gathered windows: the windows of four output pixels
//! copied side by side, the padding holding the input's zero point, then
//! each output channel's non-zeros walked once for the four (on DSP cores
//! one loop of assembly over every channel, `int8::arm_dsp::channels`: a
//! byte load and SMLABB a pixel and non-zero). An entry's offset is its
//! element of the window gathered as `[kh * kw, ic]` (tap `t`, input
//! channel `c`: `t * ic + c`): a depthwise filter's form, and a
//! convolution's field form ([`super::Csr::conv_fields`]). Gathering costs
//! a window's bytes per pixel, shared by all output channels, and makes
//! the windows that cross the padding cost what the others do; a channel
//! costs its non-zeros. Windows larger than the stack buffer are read in
//! place, entry by entry.

use super::{dots, group_channels, offset, starting_value, starting_values, weight, LayerArgs};
use crate::int8::OutputClamp;
use crate::quant::Rounding;

/// Pixels whose windows are gathered together.
const PIXELS: usize = 4;

/// Bytes of gathered windows on the stack: four 3x3 windows over 64
/// channels where the stack is large (DSP cores, the host, targets that
/// set 12 KiB apart), else 512.
#[cfg(any(arm_dsp, feature = "std", large_stack))]
const WINDOWS: usize = LARGE_WINDOWS;
#[cfg(not(any(arm_dsp, feature = "std", large_stack)))]
const WINDOWS: usize = 512;

/// Output channels whose sums' starting values (bias plus the input
/// offset times the weights' sum) are worked out once per layer, on the
/// stack; wider layers work them out for each group of pixels.
#[cfg(any(arm_dsp, feature = "std", large_stack))]
const BASES: usize = 256;
#[cfg(not(any(arm_dsp, feature = "std", large_stack)))]
const BASES: usize = 64;

/// Whether four windows of `window` bytes fit the stack buffer where it is
/// large (DSP cores, the host): the lowering's bound for the field form.
pub const fn fit_four(window: usize) -> bool {
    PIXELS * window <= LARGE_WINDOWS
}

/// [`WINDOWS`] where the stack is large.
const LARGE_WINDOWS: usize = 2304;

/// The layer (arguments checked: one row per output channel, every entry
/// inside the window), by the loop its window and pixels allow.
pub(crate) fn run(args: LayerArgs) {
    let (g, stage, ..) = args;
    let window = g.window.taps() * g.input.c as usize;
    let pixels = g.output.pixels().unwrap_or(0);
    // The rounding and whether the clamp is all of int8 chosen once.
    match (stage.rounding, stage.full_range()) {
        _ if window > WINDOWS => in_place(args),
        _ if pixels < PIXELS || PIXELS * window > WINDOWS => gathered::<1, false, false>(args),
        (Rounding::Double, true) => gathered::<PIXELS, true, true>(args),
        (Rounding::Double, false) => gathered::<PIXELS, true, false>(args),
        (Rounding::Single, _) => gathered::<PIXELS, false, false>(args),
    }
}

/// Every output pixel by groups of `P` (the last group overlapping the one
/// before where the pixels do not divide into groups: its pixels get the
/// same values again), their windows gathered side by side, then every
/// output channel of the group. `DOUBLE` and `FULL` as for
/// [`OutputStage::finish_with`].
fn gathered<const P: usize, const DOUBLE: bool, const FULL: bool>(
    (g, stage, input, filter, bias, output): LayerArgs,
) {
    let window = g.window.taps() * g.input.c as usize;
    let (oc, pixels) = (g.output.c as usize, g.output.pixels().unwrap_or(0));
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let ic = g.input.c as usize;
    let pad = (-stage.input_offset) as i8;
    let mut bases = [0i32; BASES];
    let known = oc <= BASES;
    let clamp = OutputClamp::of(stage);
    if known {
        starting_values(stage, bias, filter, &mut bases[..oc]);
    }
    // Words, so that the windows' rows are copied a word at a time.
    let mut buffer = [0u32; WINDOWS / 4];
    let windows = &mut bytemuck::cast_slice_mut::<u32, i8>(&mut buffer)[..P * window];
    let mut p = 0;
    while p < pixels {
        let first = p.min(pixels - P);
        for (j, w) in windows.chunks_exact_mut(window).enumerate() {
            let q = first + j;
            let (b, oy, ox) = (
                (q / (oh * ow)) as u32,
                (q / ow % oh) as u32,
                (q % ow) as u32,
            );
            // The taps inside the input copied, those in the padding (the
            // gaps between the runs) filled with the zero point.
            let mut next = 0;
            g.for_each_tap_run(b, oy, ox, |tap, at, count| {
                if tap > next {
                    fill(&mut w[next * ic..tap * ic], pad);
                }
                copy(
                    &mut w[tap * ic..][..count * ic],
                    &input[at * ic..][..count * ic],
                );
                next = tap + count;
            });
            if next * ic < w.len() {
                fill(&mut w[next * ic..], pad);
            }
        }
        let out = &mut output[first * oc..][..P * oc];
        // The padding holds `-offset`, so the offset's term is the whole
        // row's: from the table, or worked out here for wide layers.
        let start = |o: usize, entries: &[u32]| match known {
            true => bases[o],
            false => starting_value(stage, bias, o, entries),
        };
        // SAFETY: check_offsets keeps every offset below `window`, so
        // `j * window + offset` lies inside `windows` for j < P.
        #[allow(unsafe_code)]
        let dots =
            |entries: &[u32], base| unsafe { dots::<P>(entries, &*windows, 0, window, [base; P]) };
        #[cfg(arm_dsp)]
        if P == 4 && DOUBLE {
            let starts = known.then(|| &bases[..oc]);
            if let Some(mut frame) = super::channels_frame(stage, filter, starts, out) {
                (frame.x, frame.step, frame.step3) = (windows.as_ptr(), window, 3 * window);
                // SAFETY: the frame covers `out`'s four rows and the
                // filter's rows; check_offsets keeps every entry inside
                // a window, and the four windows are `window` apart.
                #[allow(unsafe_code)]
                unsafe {
                    crate::int8::arm_dsp::channels::gather::<FULL>(&frame)
                };
                p = first + P;
                continue;
            }
        }
        // SAFETY: `out` holds P pixels of `oc` channels, one row of the
        // filter and one multiplier per channel (checked).
        #[allow(unsafe_code)]
        unsafe {
            group_channels::<P, DOUBLE, FULL>((stage, clamp), filter, start, dots, out, oc)
        };
        p = first + P;
    }
}

/// `dst = src`: on DSP cores by words where `dst` is whole words (every
/// window's taps are when the channels are a multiple of four): LDM/STM
/// where `src` is aligned too, else a word at a time (LDR reads unaligned
/// words on these cores; `memcpy`'s call and byte loop cost more than a
/// short row, such as a 10x4 window's four bytes).
#[inline(always)]
fn copy(dst: &mut [i8], src: &[i8]) {
    #[cfg(arm_dsp)]
    if let Ok(d) = bytemuck::try_cast_slice_mut::<i8, u32>(dst) {
        match bytemuck::try_cast_slice::<i8, u32>(src) {
            Ok(s) => crate::int8::arm_dsp::copy::copy_words(d, s),
            Err(_) => {
                for (d, s) in d.iter_mut().zip(src.chunks_exact(4)) {
                    // SAFETY: `s` is four bytes inside `src`.
                    #[allow(unsafe_code)]
                    let word = unsafe { s.as_ptr().cast::<u32>().read_unaligned() };
                    *d = word;
                }
            }
        }
        return;
    }
    dst.copy_from_slice(src)
}

/// `dst[..] = value`: on DSP cores by words where `dst` is whole words.
#[inline(always)]
fn fill(dst: &mut [i8], value: i8) {
    #[cfg(arm_dsp)]
    if let Ok(d) = bytemuck::try_cast_slice_mut::<i8, u32>(dst) {
        crate::int8::arm_dsp::copy::fill_words(d, u32::from_ne_bytes([value as u8; 4]));
        return;
    }
    dst.fill(value)
}

/// Windows too large to gather: each entry's tap and channel found from
/// its offset, its input read where it lies (padded taps adding nothing).
fn in_place((g, stage, input, filter, bias, output): LayerArgs) {
    let (w, i) = (&g.window, &g.input);
    let (ic, oc) = (i.c as usize, g.output.c as usize);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let mut acc = 0i32;
            for &e in filter.rows(o, o + 1) {
                let (tap, c) = (offset(e) / ic, offset(e) % ic);
                let (ky, kx) = (tap as u32 / w.kernel_w, tap as u32 % w.kernel_w);
                let (iy, ix) = (w.in_y(oy, ky), w.in_x(ox, kx));
                if (0..i.h as i32).contains(&iy) && (0..i.w as i32).contains(&ix) {
                    let row = b as usize * i.h as usize + iy as usize;
                    let at = (row * i.w as usize + ix as usize) * ic + c;
                    let x = input[at] as i32 + stage.input_offset;
                    acc = acc.wrapping_add(weight(e) * x);
                }
            }
            output[pixel * oc + o] = stage.finish_biased(acc, bias, o);
        }
    });
}
