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
pub(super) const P: usize = 12;

/// Pixels of a micro-kernel with more than one vector of channels (its
/// sums and weights must fit the 32 registers of AVX-512, or 16 of AVX2).
const HALF: usize = P / 2;

/// Pixels of AVX2's micro-kernel over two vectors of channels.
const QUARTER: usize = 4;

/// Deepest receptive field these kernels take (a 3x3 window over 455
/// channels); deeper ones use the portable kernels.
pub(super) const MAX_DEPTH: usize = 4096;

/// Packed weights per chunk of output channels, in elements.
const PACK: usize = 64 * 1024;

/// Elements of the padded input copy at most (2 MiB of bytes for
/// AVX-512, 4 MiB for AVX2), in the thread's scratch buffer
/// ([`crate::x86::take_scratch`]); larger inputs are gathered pixel by
/// pixel.
const PADDED: usize = 2 << 20;

/// How the micro-kernel walks a pixel's receptive field from its base:
/// `rows` runs of `run_steps` steps, `row_stride` elements apart.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    rows: usize,
    run_steps: usize,
    row_stride: usize,
}

/// How a convolution is laid out for the micro-kernel: read in place or
/// gathered, channels per tap as packed, steps per receptive field, and
/// output channels per chunk. A function of the geometry alone, so filters
/// packed ahead of time ([`super::prepared`]) match the packing a call
/// would do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    in_place: bool,
    padded_h: usize,
    padded_w: usize,
    /// Channels per tap in the padded input and the packed filters.
    packed_c: usize,
    steps: usize,
    chunk: usize,
}

impl Plan {
    /// The plan for `g` at level `S`.
    ///
    /// Receptive fields are read in place from a padded copy of the input
    /// in gathered form when each kernel row's values are contiguous there
    /// (no horizontal dilation) and the copy fits; a kernel row must then
    /// be whole steps, so channels are padded (with padding values,
    /// against zero weights) when it is not. Otherwise each field is
    /// gathered into a column first.
    pub fn new<S: Simd>(g: &ConvGeometry) -> Plan {
        let (ic, oc) = (g.input.c as usize, g.output.c as usize);
        let w = &g.window;
        let (kh, kw) = (w.kernel_h as usize, w.kernel_w as usize);
        let (padded_h, padded_w) = g.window_span();
        let padded_c = if (kw * ic) % S::STEP == 0 {
            ic
        } else {
            ic.next_multiple_of(S::STEP)
        };
        let in_place = w.dilation_w == 1 && padded_h * padded_w * padded_c <= PADDED;
        let packed_c = if in_place { padded_c } else { ic };
        let steps = (kh * kw * packed_c).div_ceil(S::STEP);
        // Channels per chunk: whole vectors, as many as the packing buffer holds.
        let fit = (PACK / (steps * S::STEP * S::LANES)).max(1) * S::LANES;
        let chunk = fit.min(CHUNK).min(oc.next_multiple_of(S::LANES));
        Plan {
            in_place,
            padded_h,
            padded_w,
            packed_c,
            steps,
            chunk,
        }
    }

    /// Whether these kernels take `g` at level `S`: its receptive field,
    /// with the channels padded to whole steps as the plan lays them out,
    /// fits [`MAX_DEPTH`] (the gathered columns and the packing buffer
    /// hold that much; a 3x3 window over 453 channels is 4,077 values but
    /// 4,104 once padded).
    pub fn fits<S: Simd>(g: &ConvGeometry) -> bool {
        if g.depth() > MAX_DEPTH || g.output.h == 0 || g.output.w == 0 {
            return false;
        }
        Plan::new::<S>(g).steps * S::STEP <= MAX_DEPTH
    }

    /// Packs all of `filter` (every output channel) plus `weight_offset`
    /// into `buffer`, which must hold [`packed_len`](Self::packed_len)
    /// elements.
    pub unsafe fn pack_all<'b, S: Simd>(
        &self,
        g: &ConvGeometry,
        filter: &[i8],
        weight_offset: i32,
        buffer: &'b mut [MaybeUninit<S::W>],
    ) -> &'b [S::W] {
        pack::<S>(
            filter,
            g.depth(),
            (g.input.c as usize, self.packed_c),
            self.steps,
            weight_offset,
            buffer,
        )
    }

    /// Packed elements of all of a filter of `g`.
    pub fn packed_len<S: Simd>(&self, g: &ConvGeometry) -> usize {
        (g.output.c as usize).div_ceil(S::LANES) * self.steps * S::LANES * S::STEP
    }
}

/// Each output channel's weight sum (what the sums' correction scales).
pub(super) fn weight_sums(filter: &[i8], depth: usize) -> impl Iterator<Item = i32> + '_ {
    filter
        .chunks_exact(depth)
        .map(|row| row.iter().map(|&w| w as i32).sum())
}

/// Filters packed ahead of time for a plan: all output channels' blocks
/// in order, and their weight sums.
pub(super) struct Prepacked<'p, W> {
    pub weights: &'p [W],
    pub sums: &'p [i32],
}

/// The convolution (lengths checked by the caller, depth at most
/// [`MAX_DEPTH`]), with the filter packed ahead of time by `prepacked`
/// (for the plan of `g`) or packed here, a chunk at a time.
///
/// # Safety
/// The CPU must have `S`'s features.
#[inline(always)]
pub(super) unsafe fn conv2d<S: Simd>(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
    prepacked: Option<Prepacked<S::W>>,
) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    let offset = stage.input_offset;
    let w = &g.window;
    let (kh, kw, sh, sw, dh) = (
        w.kernel_h as usize,
        w.kernel_w as usize,
        w.stride_h as usize,
        w.stride_w as usize,
        w.dilation_h as usize,
    );
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let plan = Plan::new::<S>(g);
    let Plan {
        in_place,
        padded_h,
        padded_w,
        packed_c,
        steps,
        chunk,
    } = plan;
    let row = steps * S::STEP;
    let mut buffer = [MaybeUninit::<S::W>::uninit(); PACK];
    let correction = S::correction(offset);
    for first in (0..oc).step_by(chunk) {
        let n = chunk.min(oc - first);
        // The offset's correction of each channel's sums: `offset * sum(w)`.
        let mut corrections = [0i32; CHUNK];
        let packed = match &prepacked {
            Some(p) => {
                for (c, correction_of) in corrections.iter_mut().enumerate().take(n) {
                    *correction_of = correction.wrapping_mul(p.sums[first + c]);
                }
                &p.weights[first / S::LANES * row * S::LANES..]
            }
            None => {
                let sums = weight_sums(&filter[first * depth..][..n * depth], depth);
                for (correction_of, sum) in corrections.iter_mut().zip(sums) {
                    *correction_of = correction.wrapping_mul(sum);
                }
                pack::<S>(
                    &filter[first * depth..][..n * depth],
                    depth,
                    (ic, packed_c),
                    steps,
                    stage.filter_offset,
                    &mut buffer,
                )
            }
        };
        let mut requantize = Requantize::blank(stage, first);
        requantize.fill(bias, n, |c| corrections[c]);
        let output = output.as_mut_ptr().add(first);
        if in_place {
            let layout = Layout {
                rows: kh,
                run_steps: kw * packed_c / S::STEP,
                row_stride: dh * padded_w * packed_c,
            };
            let bytes = padded_h * padded_w * packed_c * size_of::<S::X>();
            let mut scratch = crate::x86::take_scratch(bytes);
            let padded = scratch.as_mut_ptr().cast::<S::X>();
            for b in 0..g.output.n as usize {
                pad_image::<S>(
                    g,
                    &input[b * g.input.features()..],
                    offset,
                    (padded_h, padded_w, packed_c),
                    padded,
                );
                let image_out = output.add(b * oh * ow * oc);
                let mut bases = [padded as *const S::X; P];
                let (mut tile_start, mut filled) = (0, 0);
                for oy in 0..oh {
                    for ox in 0..ow {
                        bases[filled] = padded.add((oy * sh * padded_w + ox * sw) * packed_c);
                        filled += 1;
                        if filled == P || (oy + 1 == oh && ox + 1 == ow) {
                            // A short last tile computes on earlier bases and stores only its pixels.
                            S::tile(
                                &bases,
                                layout,
                                packed,
                                &requantize,
                                n,
                                image_out.add(tile_start * oc),
                                oc,
                                filled,
                            );
                            tile_start += filled;
                            filled = 0;
                        }
                    }
                }
            }
            crate::x86::put_scratch(scratch);
            continue;
        }
        let pad = S::pad(offset);
        let mut columns = [MaybeUninit::<S::X>::uninit(); P * MAX_DEPTH];
        let columns = columns.as_mut_ptr().cast::<S::X>();
        let mut bases = [columns as *const S::X; P];
        for (p, base) in bases.iter_mut().enumerate() {
            *base = columns.add(p * row);
        }
        let layout = Layout {
            rows: 1,
            run_steps: steps,
            row_stride: row,
        };
        let pixels = g.output.pixels().unwrap_or(0);
        let (mut tile_start, mut filled) = (0, 0);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let column = columns.add(filled * row);
            let mut next = 0;
            g.for_each_tap_run(b, oy, ox, |tap, at, count| {
                fill(column.add(next * ic), (tap - next) * ic, pad);
                S::convert(
                    &input[at * ic..][..count * ic],
                    offset,
                    column.add(tap * ic),
                );
                next = tap + count;
            });
            fill(column.add(next * ic), row - next * ic, pad);
            filled += 1;
            if filled == P || pixel + 1 == pixels {
                // A short last tile computes on padding rows and stores only its pixels.
                for p in filled..P {
                    fill(columns.add(p * row), row, pad);
                }
                S::tile(
                    &bases,
                    layout,
                    packed,
                    &requantize,
                    n,
                    output.add(tile_start * oc),
                    oc,
                    filled,
                );
                tile_start += filled;
                filled = 0;
            }
        });
    }
}

/// What a padded copy of the input holds ([`pad_image`]): a level's
/// gathered values (every [`Simd`]), or the input's own bytes with the
/// zero point in the padding ([`Bytes`], the sparse kernel's).
pub(super) trait PaddedValue {
    type X: Copy;
    /// The value of a tap in the padding.
    fn padding(offset: i32) -> Self::X;
    /// Input value `x` as held.
    fn value(x: i8, offset: i32) -> Self::X;
    /// Converts `src` to held values at `dst`.
    unsafe fn copy(src: &[i8], offset: i32, dst: *mut Self::X);
}

impl<S: Simd> PaddedValue for S {
    type X = S::X;
    #[inline(always)]
    fn padding(offset: i32) -> S::X {
        S::pad(offset)
    }
    #[inline(always)]
    fn value(x: i8, offset: i32) -> S::X {
        S::x(x, offset)
    }
    #[inline(always)]
    unsafe fn copy(src: &[i8], offset: i32, dst: *mut S::X) {
        S::convert(src, offset, dst)
    }
}

/// The input's bytes as they are, the padding the zero point (`-offset`).
pub(super) struct Bytes;

impl PaddedValue for Bytes {
    type X = i8;
    #[inline(always)]
    fn padding(offset: i32) -> i8 {
        (-offset) as i8
    }
    #[inline(always)]
    fn value(x: i8, _offset: i32) -> i8 {
        x
    }
    #[inline(always)]
    unsafe fn copy(src: &[i8], _offset: i32, dst: *mut i8) {
        core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len())
    }
}

/// Writes one input image in gathered form into `padded` (`size` =
/// rows x columns x channels, starting at the window's first position;
/// at least the input's channels), pixels and channels outside the input
/// as padding.
#[inline(always)]
pub(super) unsafe fn pad_image<P: PaddedValue>(
    g: &ConvGeometry,
    image: &[i8],
    offset: i32,
    size: (usize, usize, usize),
    padded: *mut P::X,
) {
    let (h, w, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let (top, left) = (g.window.pad_top as usize, g.window.pad_left as usize);
    let pad = P::padding(offset);
    let (rows, cols, pc) = size;
    let x0 = left.min(cols);
    let x1 = (left + w).min(cols).max(x0);
    for r in 0..rows {
        let dst = padded.add(r * cols * pc);
        match r.checked_sub(top).filter(|&y| y < h) {
            None => fill(dst, cols * pc, pad),
            Some(y) => {
                fill(dst, x0 * pc, pad);
                // Padded columns x0..x1 hold the input's first columns: when
                // any is copied, x0 is `left`. None are when the windows end
                // inside the left padding (x0 = x1 = cols <= left).
                let src = &image[y * w * c..][..(x1 - x0) * c];
                if pc == c {
                    P::copy(src, offset, dst.add(x0 * pc));
                } else {
                    // A few channels per pixel (a first layer), each
                    // padded pixel one store where its width is a
                    // constant (byte by byte, the copy took a third of
                    // ResNet-8's first layer on AVX-512).
                    let dst = dst.add(x0 * pc);
                    match pc {
                        2 => copy_pixels::<P, 2>(src, c, offset, dst),
                        4 => copy_pixels::<P, 4>(src, c, offset, dst),
                        8 => copy_pixels::<P, 8>(src, c, offset, dst),
                        _ => {
                            for (i, pixel) in src.chunks_exact(c).enumerate() {
                                for k in 0..pc {
                                    let x = pixel.get(k).map_or(pad, |&x| P::value(x, offset));
                                    dst.add(i * pc + k).write(x);
                                }
                            }
                        }
                    }
                }
                fill(dst.add(x1 * pc), (cols - x1) * pc, pad);
            }
        }
    }
}

/// The pixels of `src` (`c` values each, `c <= PC`) at `dst`, `PC`
/// values a pixel: the values as held, then the padding (each value
/// written once: a pixel built in a register array went through the
/// stack and stalled its reload).
#[inline(always)]
unsafe fn copy_pixels<P: PaddedValue, const PC: usize>(
    src: &[i8],
    c: usize,
    offset: i32,
    dst: *mut P::X,
) {
    let pad = P::padding(offset);
    for (i, pixel) in src.chunks_exact(c).enumerate() {
        let at = dst.add(i * PC);
        for k in 0..PC {
            let x = if k < c {
                P::value(*pixel.get_unchecked(k), offset)
            } else {
                pad
            };
            at.add(k).write(x);
        }
    }
}

/// Writes `n` copies of `value` from `at`.
#[inline(always)]
unsafe fn fill<T: Copy>(at: *mut T, n: usize, value: T) {
    for i in 0..n {
        at.add(i).write(value);
    }
}

/// Packs `filters` (rows of `depth`, `channels.0` per tap) as blocks of
/// `LANES` channels, each `steps` vectors of `LANES x STEP` weights, with
/// `channels.1` channels per tap (the extra ones zero); missing output
/// channels and depth past the end are zero too. A `weight_offset`
/// (a level that [holds one](Simd::HOLDS_WEIGHT_OFFSET)) is added to
/// every packed weight: where no weight lies, the gathered value is
/// AVX2's padding, 0, so the product stays 0. Returns the packed weights.
#[inline(always)]
unsafe fn pack<'b, S: Simd>(
    filters: &[i8],
    depth: usize,
    channels: (usize, usize),
    steps: usize,
    weight_offset: i32,
    buffer: &'b mut [MaybeUninit<S::W>],
) -> &'b [S::W] {
    let (ic, packed_c) = channels;
    let outputs = filters.len() / depth;
    let blocks = outputs.div_ceil(S::LANES);
    let vector = S::LANES * S::STEP;
    let out = buffer.as_mut_ptr().cast::<S::W>();
    // The filter index of packed depth `k`, if it holds a weight.
    let source = |k: usize| {
        let (tap, c) = (k / packed_c, k % packed_c);
        (c < ic && tap * ic + c < depth).then_some(tap * ic + c)
    };
    for block in 0..blocks {
        let rows = &filters[block * S::LANES * depth..];
        let n = S::LANES.min(outputs - block * S::LANES);
        for s in 0..steps {
            let (k, at) = (s * S::STEP, out.add((block * steps + s) * vector));
            if packed_c == ic && k + 4 <= depth {
                // Four bytes from every row stay inside it.
                S::pack_step(rows.as_ptr(), depth, k, n, at);
            } else {
                for lane in 0..S::LANES {
                    for t in 0..S::STEP {
                        let weight = source(k + t)
                            .filter(|_| lane < n)
                            .map_or(0, |i| rows[lane * depth + i]);
                        at.add(lane * S::STEP + t).write(S::w(weight));
                    }
                }
            }
        }
    }
    if weight_offset != 0 {
        for i in 0..blocks * steps * vector {
            out.add(i)
                .write(S::offset_weight(out.add(i).read(), weight_offset));
        }
    }
    core::slice::from_raw_parts(out, blocks * steps * vector)
}

/// Every output channel of the chunk for one tile of `pixels <= P`
/// receptive fields (from `bases`, walked by `layout`), blocks of up to
/// four vectors at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile<S: Simd>(
    bases: &[*const S::X; P],
    layout: Layout,
    packed: &[S::W],
    r: &Requantize,
    n: usize,
    out: *mut i8,
    oc: usize,
    pixels: usize,
) {
    let block = layout.rows * layout.run_steps * S::LANES * S::STEP;
    let blocks = n.div_ceil(S::LANES);
    let mut b = 0;
    while b < blocks {
        let w = packed.as_ptr().add(b * block);
        let wide = match blocks - b {
            // One vector of channels: all the tile's pixels at once.
            1 => {
                micro::<S, 1, P>(bases, layout, w, block, r, b, n, out, oc, pixels);
                1
            }
            // AVX2's 16 registers hold the sums of four pixels by two
            // vectors, their weights and a broadcast value; six pixels'
            // sums made LLVM keep some on the stack and move the others
            // between registers at every step.
            _ if S::LANES == 8 => {
                by_groups::<S, 2, QUARTER>(bases, layout, w, block, r, b, n, out, oc, pixels);
                2
            }
            2 => {
                by_groups::<S, 2, HALF>(bases, layout, w, block, r, b, n, out, oc, pixels);
                2
            }
            3 => {
                by_groups::<S, 3, HALF>(bases, layout, w, block, r, b, n, out, oc, pixels);
                3
            }
            _ => {
                by_groups::<S, 4, HALF>(bases, layout, w, block, r, b, n, out, oc, pixels);
                4
            }
        };
        b += wide;
    }
}

/// [`micro`] over the tile's `pixels` in groups of `PX`, as many as `NB`
/// vectors of sums per pixel leave room for in the level's registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn by_groups<S: Simd, const NB: usize, const PX: usize>(
    bases: &[*const S::X; P],
    layout: Layout,
    w: *const S::W,
    block: usize,
    r: &Requantize,
    b: usize,
    n: usize,
    out: *mut i8,
    oc: usize,
    pixels: usize,
) {
    // A constant count of groups (unrolled), each skipped past `pixels`.
    for at in (0..P / PX).map(|g| g * PX) {
        if at < pixels {
            // SAFETY: `at + PX <= P`: the group's bases lie inside the tile's.
            let group = &*bases.as_ptr().add(at).cast::<[*const S::X; PX]>();
            let (out, pixels) = (out.add(at * oc), pixels - at);
            micro::<S, NB, PX>(group, layout, w, block, r, b, n, out, oc, pixels);
        }
    }
}

/// The micro-kernel: `PX` pixels x `NB` vectors of channels from block
/// `b`, all sums in registers; stores the first `pixels` pixels' outputs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro<S: Simd, const NB: usize, const PX: usize>(
    bases: &[*const S::X; PX],
    layout: Layout,
    w: *const S::W,
    block: usize,
    r: &Requantize,
    b: usize,
    n: usize,
    out: *mut i8,
    oc: usize,
    pixels: usize,
) {
    let mut acc = [[S::zero(); NB]; PX];
    // One loop over every step (a nested loop over rows made LLVM store the
    // sums to memory on every step); `at` jumps to the next row's run.
    let (mut w, mut at, mut run_left) = (w, 0, layout.run_steps);
    let jump = layout.row_stride.wrapping_sub(layout.run_steps * S::STEP);
    for _ in 0..layout.rows * layout.run_steps {
        let mut wv = [S::zero(); NB];
        for (v, wv) in wv.iter_mut().enumerate() {
            *wv = S::load(w.add(v * block));
        }
        for (acc, base) in acc.iter_mut().zip(bases) {
            let x = S::broadcast(base.add(at));
            for (a, &wv) in acc.iter_mut().zip(&wv) {
                *a = S::madd(*a, x, wv);
            }
        }
        w = w.add(S::LANES * S::STEP);
        at += S::STEP;
        run_left -= 1;
        if run_left == 0 {
            run_left = layout.run_steps;
            at = at.wrapping_add(jump);
        }
    }
    // Constant bounds, so that every sum stays a register (an index only
    // known at run time would keep the array in memory).
    // Each vector of channels' terms are loaded once for all pixels.
    #[allow(clippy::needless_range_loop)]
    for v in 0..NB {
        let first = (b + v) * S::LANES;
        if first < n {
            let channels = S::channels(r, first);
            for p in 0..PX {
                if p < pixels {
                    S::finish_with(
                        acc[p][v],
                        &channels,
                        r,
                        first,
                        S::LANES.min(n - first),
                        out.add(p * oc + first),
                    );
                }
            }
        }
    }
}
