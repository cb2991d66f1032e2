//! Depthwise convolution on x86 (one input channel per output channel).
//! The input is first copied with its padding (values that add nothing)
//! so that every output pixel has the whole window; then four pixels'
//! accumulators for a group of channel vectors stay in registers while
//! each tap's filter bytes, widened to 32-bit lanes once, are multiplied
//! with the four pixels' inputs; the sums are requantized a vector at a
//! time, each vector's terms loaded once for the four pixels. Layers whose
//! padded copy does not fit go pixel by pixel over the in-bounds taps.

use super::requantize::{Requantize, CHUNK};
use super::simd::Simd;
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;

/// Output pixels whose sums are kept together.
const PIXELS: usize = 4;

/// Bytes of the padded input copy at most, in the thread's scratch
/// buffer ([`crate::x86::take_scratch`]); larger layers go pixel by pixel.
const PADDED: usize = 4 << 20;

/// Taps of the largest window the padded path takes (8x8).
const MAX_TAPS: usize = 64;

/// The depthwise convolution with multiplier 1 (lengths checked by the caller).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn depthwise_conv2d<S: Simd>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let c = g.output.c as usize;
    let w = &g.window;
    let (kh, kw) = (w.kernel_h as usize, w.kernel_w as usize);
    let (dh, dw) = (w.dilation_h as usize, w.dilation_w as usize);
    let (rows, cols) = g.window_span();
    if rows.saturating_mul(cols).saturating_mul(c) > PADDED || c > CHUNK || kh * kw > MAX_TAPS {
        return by_pixel::<S>(g, stage, input, filter, bias, output);
    }
    let mut taps = [0usize; MAX_TAPS];
    for (t, tap) in taps.iter_mut().enumerate().take(kh * kw) {
        *tap = ((t / kw) * dh * cols + (t % kw) * dw) * c;
    }
    let taps = &taps[..kh * kw];
    // The sums leave the input offset out (one addition less per product);
    // it comes back as `offset * sum(w)` in the bias. A padded tap holds
    // `-offset`, which that term cancels. Weights are widened with the
    // filter offset (0 but in legacy uint8 models) added.
    let taps_of = |ch: usize| filter[ch..].iter().step_by(c).take(kh * kw);
    let mut requantize = Requantize::blank(stage, 0);
    requantize.fill(bias, c, |ch| {
        let sum: i32 = taps_of(ch).map(|&w| w as i32 + stage.filter_offset).sum();
        sum.wrapping_mul(stage.input_offset)
    });
    let mut scratch = crate::x86::take_scratch(rows * cols * c);
    let padded = scratch.as_mut_ptr().cast::<i8>();
    by_padded_copy::<S>(g, stage, input, filter, &requantize, taps, padded, output);
    crate::x86::put_scratch(scratch);
}

/// [`depthwise_conv2d`] over a padded copy of each image at `padded`
/// (`rows x cols` pixels from the first window's origin).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn by_padded_copy<S: Simd>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    requantize: &Requantize,
    taps: &[usize],
    padded: *mut i8,
    output: &mut [i8],
) {
    let c = g.output.c as usize;
    let w = &g.window;
    let (sh, sw) = (w.stride_h as usize, w.stride_w as usize);
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let (rows, cols) = g.window_span();
    let image = g.input.features();
    for b in 0..g.output.n as usize {
        pad_image(
            g,
            &input[b * image..][..image],
            (-stage.input_offset) as i8,
            (rows, cols),
            padded,
        );
        let out = output.as_mut_ptr().add(b * oh * ow * c);
        let mut bases = [padded as *const i8; PIXELS];
        let (mut group_start, mut filled) = (0, 0);
        for oy in 0..oh {
            for ox in 0..ow {
                bases[filled] = padded.add((oy * sh * cols + ox * sw) * c);
                filled += 1;
                if filled == PIXELS || (oy + 1 == oh && ox + 1 == ow) {
                    let out = out.add(group_start * c);
                    // Two vectors of channels at a time (four measured no faster on AVX-512).
                    let weights = (filter, stage.filter_offset);
                    pixel_group::<S, 2>(&bases, taps, weights, c, requantize, out, filled);
                    group_start += filled;
                    filled = 0;
                }
            }
        }
    }
}

/// Copies one input image into `padded` (`size` = rows x columns of
/// pixels from the window's first position), pixels outside the input as
/// `pad` (minus the input offset: they add nothing).
#[inline(always)]
unsafe fn pad_image(
    g: &ConvGeometry,
    image: &[i8],
    pad: i8,
    size: (usize, usize),
    padded: *mut i8,
) {
    let (h, w, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let (top, left) = (g.window.pad_top as usize, g.window.pad_left as usize);
    let (rows, cols) = size;
    let x0 = left.min(cols);
    let x1 = (left + w).min(cols).max(x0);
    for r in 0..rows {
        let dst = padded.add(r * cols * c);
        match r.checked_sub(top).filter(|&y| y < h) {
            None => core::ptr::write_bytes(dst, pad as u8, cols * c),
            Some(y) => {
                core::ptr::write_bytes(dst, pad as u8, x0 * c);
                // No input column is inside when the left padding fills the
                // row (a geometry only a corrupted model has).
                if x1 > x0 {
                    core::ptr::copy_nonoverlapping(
                        image.as_ptr().add((y * w + (x0 - left)) * c),
                        dst.add(x0 * c),
                        (x1 - x0) * c,
                    );
                }
                core::ptr::write_bytes(dst.add(x1 * c), pad as u8, (cols - x1) * c);
            }
        }
    }
}

/// Every channel of up to [`PIXELS`] output pixels (consecutive in the
/// output, `pixels` of them real) whose windows start at `bases`, `G`
/// vectors of channels at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pixel_group<S: Simd, const G: usize>(
    bases: &[*const i8; PIXELS],
    taps: &[usize],
    filter: (&[i8], i32),
    c: usize,
    r: &Requantize,
    out: *mut i8,
    pixels: usize,
) {
    let whole = c - c % (G * S::LANES);
    for first in (0..whole).step_by(G * S::LANES) {
        channel_group::<S, G, true>(bases, taps, filter, c, r, out, pixels, first);
    }
    if whole < c {
        channel_group::<S, G, false>(bases, taps, filter, c, r, out, pixels, whole);
    }
}

/// [`pixel_group`] for channels `first..` (`G` vectors of them when
/// `FULL`, the rest of `c` otherwise).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn channel_group<S: Simd, const G: usize, const FULL: bool>(
    bases: &[*const i8; PIXELS],
    taps: &[usize],
    (filter, filter_offset): (&[i8], i32),
    c: usize,
    r: &Requantize,
    out: *mut i8,
    pixels: usize,
    first: usize,
) {
    let lanes = (G * S::LANES).min(c - first);
    // Lanes of vector `v`: all of them in a whole group, with no test per use.
    let width = |v: usize| {
        if FULL {
            S::LANES
        } else {
            S::LANES.min(lanes.saturating_sub(v * S::LANES))
        }
    };
    let mut acc = [[S::zero(); G]; PIXELS];
    for (t, &tap) in taps.iter().enumerate() {
        let mut wv = [S::zero(); G];
        for (v, wv) in wv.iter_mut().enumerate() {
            if width(v) > 0 {
                *wv = S::widen(
                    filter.as_ptr().add(t * c + first + v * S::LANES),
                    width(v),
                    filter_offset,
                );
            }
        }
        for (acc, base) in acc.iter_mut().zip(bases) {
            let x = base.add(tap + first);
            for (v, (a, &wv)) in acc.iter_mut().zip(&wv).enumerate() {
                if width(v) > 0 {
                    *a = S::mul_add(*a, S::widen(x.add(v * S::LANES), width(v), 0), wv);
                }
            }
        }
    }
    // Constant bounds keep the sums in registers.
    #[allow(clippy::needless_range_loop)]
    for v in 0..G {
        if width(v) > 0 {
            let at = first + v * S::LANES;
            let channels = S::channels(r, at);
            for p in 0..PIXELS {
                if p < pixels {
                    S::finish_with(acc[p][v], &channels, r, at, width(v), out.add(p * c + at));
                }
            }
        }
    }
}

/// Vectors of channels summed together per pass over a pixel's taps.
const GROUP: usize = 4;

/// The depthwise convolution pixel by pixel over the in-bounds taps, for
/// layers the padded path does not take.
#[inline(always)]
unsafe fn by_pixel<S: Simd>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let c = g.output.c as usize;
    let group = GROUP * S::LANES;
    for first in (0..c).step_by(CHUNK) {
        let n = CHUNK.min(c - first);
        let mut requantize = Requantize::blank(stage, first);
        requantize.fill(bias, n, |_| 0);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let out = output.as_mut_ptr().add(pixel * c + first);
            for start in (0..n).step_by(group) {
                let lanes = group.min(n - start);
                let mut acc = [S::zero(); GROUP];
                if lanes == group {
                    // A whole group: no lane counts to test per tap.
                    g.for_each_tap(b, oy, ox, |tap, at| {
                        let x = input.as_ptr().add(at * c + first + start);
                        let w = filter.as_ptr().add(tap * c + first + start);
                        for (v, acc) in acc.iter_mut().enumerate() {
                            let k = v * S::LANES;
                            *acc = S::mul_add(
                                *acc,
                                S::widen(x.add(k), S::LANES, stage.input_offset),
                                S::widen(w.add(k), S::LANES, stage.filter_offset),
                            );
                        }
                    });
                } else {
                    g.for_each_tap(b, oy, ox, |tap, at| {
                        let x = input.as_ptr().add(at * c + first + start);
                        let w = filter.as_ptr().add(tap * c + first + start);
                        for (v, acc) in acc.iter_mut().enumerate() {
                            let k = v * S::LANES;
                            if k < lanes {
                                let m = S::LANES.min(lanes - k);
                                *acc = S::mul_add(
                                    *acc,
                                    S::widen(x.add(k), m, stage.input_offset),
                                    S::widen(w.add(k), m, stage.filter_offset),
                                );
                            }
                        }
                    });
                }
                for (v, &acc) in acc.iter().enumerate() {
                    let k = v * S::LANES;
                    if k < lanes {
                        S::finish(
                            acc,
                            &requantize,
                            start + k,
                            S::LANES.min(lanes - k),
                            out.add(start + k),
                        );
                    }
                }
            }
        });
    }
}
