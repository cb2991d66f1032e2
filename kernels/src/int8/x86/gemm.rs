//! Convolution (and dense layers, as 1x1 convolutions) as a matrix
//! product on x86: receptive fields gathered a tile of output pixels at a
//! time (im2col), filters packed so one vector load holds `LANES` output
//! channels x `STEP` depth values, and a register-blocked micro-kernel of
//! `P` pixels x `NB` vectors of channels whose gathered values are
//! broadcast to every lane.

use super::requantize::{Requantize, CHUNK};
use super::simd::Simd;
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;
use core::mem::MaybeUninit;

/// Output pixels per tile: the micro-kernel's rows.
const P: usize = 6;

/// Deepest receptive field these kernels take (a 3x3 window over 455
/// channels); deeper ones use the portable kernels.
pub(super) const MAX_DEPTH: usize = 4096;

/// Packed weights per chunk of output channels, in elements.
const PACK: usize = 64 * 1024;

/// The convolution (lengths checked by the caller, depth at most
/// [`MAX_DEPTH`]).
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn conv2d<S: Simd>(g: &ConvGeometry, stage: &OutputStage, input: &[i8], filter: &[i8], bias: Option<&[i32]>, output: &mut [i8]) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    let steps = depth.div_ceil(S::STEP);
    let row = steps * S::STEP;
    // Channels per chunk: whole vectors, as many as the packing buffer holds.
    let fit = (PACK / (row * S::LANES)).max(1) * S::LANES;
    let chunk = fit.min(CHUNK).min(oc.next_multiple_of(S::LANES));
    let mut packed = [MaybeUninit::<S::W>::uninit(); PACK];
    let mut columns = [MaybeUninit::<S::X>::uninit(); P * MAX_DEPTH];
    let (offset, pad) = (stage.input_offset, S::pad(stage.input_offset));
    let pixels = g.output.pixels().unwrap_or(0);
    for first in (0..oc).step_by(chunk) {
        let n = chunk.min(oc - first);
        let packed = pack::<S>(&filter[first * depth..][..n * depth], depth, steps, &mut packed);
        let correction = S::correction(offset);
        let requantize = Requantize::new(stage, bias, first, n, |c| {
            let sum: i32 = filter[(first + c) * depth..][..depth].iter().map(|&w| w as i32).sum();
            correction.wrapping_mul(sum)
        });
        let mut tile_start = 0;
        let mut filled = 0;
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let column = columns.as_mut_ptr().add(filled * row).cast::<S::X>();
            let mut next = 0;
            g.for_each_tap_run(b, oy, ox, |tap, at, count| {
                fill(column.add(next * ic), (tap - next) * ic, pad);
                S::convert(&input[at * ic..][..count * ic], offset, column.add(tap * ic));
                next = tap + count;
            });
            fill(column.add(next * ic), row - next * ic, pad);
            filled += 1;
            if filled == P || pixel + 1 == pixels {
                // A short last tile computes on padding rows and stores only its pixels.
                for p in filled..P {
                    fill(columns.as_mut_ptr().add(p * row).cast(), row, pad);
                }
                let out = output.as_mut_ptr().add(tile_start * oc + first);
                tile::<S>(columns.as_ptr().cast(), row, steps, packed, &requantize, n, out, oc, filled);
                tile_start += filled;
                filled = 0;
            }
        });
    }
}

/// Writes `n` copies of `value` from `at`.
#[inline(always)]
unsafe fn fill<T: Copy>(at: *mut T, n: usize, value: T) {
    for i in 0..n {
        at.add(i).write(value);
    }
}

/// Packs `filters` (rows of `depth`) as blocks of `LANES` channels, each
/// `steps` vectors of `LANES x STEP` weights; missing channels and depth
/// past the end are zero. Returns the packed weights.
#[inline(always)]
unsafe fn pack<'b, S: Simd>(filters: &[i8], depth: usize, steps: usize, buffer: &'b mut [MaybeUninit<S::W>]) -> &'b [S::W] {
    let channels = filters.len() / depth;
    let blocks = channels.div_ceil(S::LANES);
    let vector = S::LANES * S::STEP;
    let out = buffer.as_mut_ptr().cast::<S::W>();
    for block in 0..blocks {
        let rows = &filters[block * S::LANES * depth..];
        let n = S::LANES.min(channels - block * S::LANES);
        for s in 0..steps {
            let (k, at) = (s * S::STEP, out.add((block * steps + s) * vector));
            if k + 4 <= depth {
                // Four bytes from every row stay inside it.
                S::pack_step(rows.as_ptr(), depth, k, n, at);
            } else {
                for lane in 0..S::LANES {
                    for t in 0..S::STEP {
                        let inside = lane < n && k + t < depth;
                        at.add(lane * S::STEP + t).write(S::w(if inside { rows[lane * depth + k + t] } else { 0 }));
                    }
                }
            }
        }
    }
    core::slice::from_raw_parts(out, blocks * steps * vector)
}

/// Every output channel of the chunk for one tile of `pixels <= P`
/// gathered columns (`P` rows of `row` values), blocks of up to four
/// vectors at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<S: Simd>(columns: *const S::X, row: usize, steps: usize, packed: &[S::W], r: &Requantize, n: usize, out: *mut i8, oc: usize, pixels: usize) {
    let block = steps * S::LANES * S::STEP;
    let blocks = n.div_ceil(S::LANES);
    let mut b = 0;
    while b < blocks {
        let w = packed.as_ptr().add(b * block);
        let count = match blocks - b {
            1 => micro::<S, 1>(columns, row, steps, w, block, r, b, n, out, oc, pixels),
            2 => micro::<S, 2>(columns, row, steps, w, block, r, b, n, out, oc, pixels),
            3 if S::LANES == 16 => micro::<S, 3>(columns, row, steps, w, block, r, b, n, out, oc, pixels),
            _ if S::LANES == 16 => micro::<S, 4>(columns, row, steps, w, block, r, b, n, out, oc, pixels),
            _ => micro::<S, 2>(columns, row, steps, w, block, r, b, n, out, oc, pixels),
        };
        b += count;
    }
}

/// The micro-kernel: `P` pixels x `NB` vectors of channels from block
/// `b`, all sums in registers; returns `NB`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro<S: Simd, const NB: usize>(
    columns: *const S::X,
    row: usize,
    steps: usize,
    w: *const S::W,
    block: usize,
    r: &Requantize,
    b: usize,
    n: usize,
    out: *mut i8,
    oc: usize,
    pixels: usize,
) -> usize {
    let mut acc = [[S::zero(); NB]; P];
    for s in 0..steps {
        let mut wv = [S::zero(); NB];
        for (v, wv) in wv.iter_mut().enumerate() {
            *wv = S::load(w.add(v * block + s * S::LANES * S::STEP));
        }
        for (p, acc) in acc.iter_mut().enumerate() {
            let x = S::broadcast(columns.add(p * row + s * S::STEP));
            for (a, &wv) in acc.iter_mut().zip(&wv) {
                *a = S::madd(*a, x, wv);
            }
        }
    }
    for (p, acc) in acc.iter().enumerate().take(pixels) {
        for (v, &a) in acc.iter().enumerate() {
            let first = (b + v) * S::LANES;
            if first < n {
                S::finish(a, r, first, S::LANES.min(n - first), out.add(p * oc + first));
            }
        }
    }
    NB
}
