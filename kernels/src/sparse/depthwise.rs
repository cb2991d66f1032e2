//! Unstructured-sparse depthwise convolution: each output channel's
//! non-zeros over its window, whatever the multiplier, stride, dilation
//! and padding.
//!
//! Format ([`super::Csr`]): one row per output channel; an entry's offset
//! is its element of the pixel's window gathered as `[kh * kw, ic]` (tap
//! `t`, input channel `c`: `t * ic + c`), so that the windows of four
//! output pixels, gathered side by side with the padding holding the
//! input's zero point, are read by one walk over the entries, each entry
//! loaded once for the four (on DSP cores one SMLABB per pixel, see
//! `int8::arm_dsp::sparse::gather_dots4`). Gathering costs a window's
//! bytes per pixel, shared by all of its output channels; a channel costs
//! its non-zeros. Windows larger than the stack buffer are read in place,
//! entry by entry.

use super::{
    check_offsets, dots, group_channels, offset, starting_value, starting_values, weight, Csr,
    LayerArgs,
};
use crate::error::KernelError;
use crate::geometry::ConvGeometry;
use crate::int8::{OutputClamp, OutputStage};
use crate::quant::Rounding;

/// Pixels whose windows are gathered together.
const PIXELS: usize = 4;

/// Bytes of gathered windows on the stack: four 3x3 windows over 64
/// channels where the stack is large (DSP cores, the host, targets that
/// set 12 KiB apart), else 512.
#[cfg(any(arm_dsp, feature = "std", large_stack))]
const WINDOWS: usize = 2304;
#[cfg(not(any(arm_dsp, feature = "std", large_stack)))]
const WINDOWS: usize = 512;

/// Output channels whose sums' starting values (bias plus the input
/// offset times the weights' sum) are worked out once per layer, on the
/// stack; wider layers work them out for each group of pixels.
#[cfg(any(arm_dsp, feature = "std", large_stack))]
const BASES: usize = 256;
#[cfg(not(any(arm_dsp, feature = "std", large_stack)))]
const BASES: usize = 64;

/// Checks a sparse depthwise convolution's arguments: lengths, the
/// multiplier, one row per output channel, and every entry inside the
/// window.
pub fn check(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: usize,
    filter: &Csr,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_depthwise_io(multiplier, input, output)?;
    check_filter(g, filter)?;
    stage.check(g.output.c as usize, bias)
}

/// Checks a sparse depthwise filter: one row per output channel, every
/// entry inside the gathered window.
fn check_filter(g: &ConvGeometry, filter: &Csr) -> Result<(), KernelError> {
    filter.check(g.output.c as usize)?;
    check_offsets(filter, g.window.taps() * g.input.c as usize, |_| 0)
}

/// Sparse int8 depthwise convolution ([`Csr::depthwise`]'s form; the
/// multiplier is in the entries, which read input channel `o /
/// multiplier` for output channel `o`).
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    // The host's vector kernels, over all channels at once, beat walking
    // each channel's non-zeros at any sparsity: the filter is written out
    // dense, once for a prepared model (its entries checked then).
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(dense) = prepared::find(g, filter) {
        return run_dense(g, multiplier, stage, input, dense, bias, output);
    }
    check(
        g,
        multiplier,
        stage,
        input.len(),
        filter,
        bias,
        output.len(),
    )?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::x86::selected() != crate::x86::Isa::Portable {
        let dense = dense_filter(g, filter);
        return run_dense(g, multiplier, stage, input, &dense, bias, output);
    }
    let window = g.window.taps() * g.input.c as usize;
    let pixels = g.output.pixels().unwrap_or(0);
    let args = (g, stage, input, filter, bias, output);
    // The rounding and whether the clamp is all of int8 chosen once.
    match (stage.rounding, stage.full_range()) {
        _ if window > WINDOWS => in_place(args),
        _ if pixels < PIXELS || PIXELS * window > WINDOWS => gathered::<1, false, false>(args),
        (Rounding::Double, true) => gathered::<PIXELS, true, true>(args),
        (Rounding::Double, false) => gathered::<PIXELS, true, false>(args),
        (Rounding::Single, _) => gathered::<PIXELS, false, false>(args),
    }
    Ok(())
}

/// The layer by the dense kernels, its filter written out by
/// [`dense_filter`]: over one input channel (a convolution's, which the
/// lowering gives this form on every target) as the convolution it is,
/// since the host's vector depthwise kernels take a multiplier of one only.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn run_dense(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    dense: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    match g.input.c {
        1 => crate::int8::conv2d(g, stage, input, dense, bias, output),
        _ => crate::int8::depthwise_conv2d(g, multiplier, stage, input, dense, bias, output),
    }
}

/// The dense filter of checked entries: `[1, kh, kw, oc]`, or over one
/// input channel the convolution's `[oc, kh, kw, 1]` (see [`run_dense`]).
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn dense_filter(g: &ConvGeometry, filter: &Csr) -> std::vec::Vec<i8> {
    let (ic, oc, taps) = (g.input.c as usize, g.output.c as usize, g.window.taps());
    let mut dense = std::vec![0i8; taps * oc];
    for (o, ends) in filter.row_ptr.windows(2).enumerate() {
        for &e in &filter.entries[ends[0] as usize..ends[1] as usize] {
            let tap = offset(e) / ic;
            let at = match ic {
                1 => o * taps + tap,
                _ => tap * oc + o,
            };
            dense[at] = weight(e) as i8;
        }
    }
    dense
}

/// The sparse depthwise filters of prepared models written out dense once
/// (as `super::prepared` does for convolutions), looked up by the address
/// of their entries.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod prepared {
    use super::{dense_filter, Csr};
    use crate::geometry::ConvGeometry;
    use crate::x86::Copies;

    /// The address and length of a filter's entries, and its geometry.
    type Key = ((usize, usize), ConvGeometry);

    static DENSE: Copies<Key> = Copies::new();

    fn key(g: &ConvGeometry, filter: &Csr) -> Key {
        ((filter.entries.as_ptr() as usize, filter.entries.len()), *g)
    }

    /// Makes the dense copy of a model's `filter` (its entries checked
    /// first; one that fails is left for the kernel's own check).
    pub fn densify(g: &ConvGeometry, filter: &Csr<'static>) {
        if super::check_filter(g, filter).is_ok() {
            DENSE.get_or_make(key(g, filter), || dense_filter(g, filter));
        }
    }

    /// The dense copy of `filter` for `g`, if a prepared model's.
    pub fn find(g: &ConvGeometry, filter: &Csr) -> Option<&'static [i8]> {
        DENSE.find(&key(g, filter))
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
    let (rows, columns) = g.inside_windows();
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
            if !(rows.contains(&oy) && columns.contains(&ox)) {
                w.fill(pad);
            }
            g.for_each_tap_run(b, oy, ox, |tap, at, count| {
                copy(
                    &mut w[tap * ic..][..count * ic],
                    &input[at * ic..][..count * ic],
                )
            });
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

/// `dst = src`: by words where both are word-aligned on DSP cores.
#[inline(always)]
fn copy(dst: &mut [i8], src: &[i8]) {
    #[cfg(arm_dsp)]
    if let (Ok(d), Ok(s)) = (
        bytemuck::try_cast_slice_mut::<i8, u32>(dst),
        bytemuck::try_cast_slice::<i8, u32>(src),
    ) {
        return crate::int8::arm_dsp::copy::copy_words(d, s);
    }
    dst.copy_from_slice(src)
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
