//! float32 convolution, depthwise convolution and dense layers with AVX2,
//! bit-exact with the portable kernels.
//!
//! The portable kernels sum each output in TFLite's order (taps, then
//! channels, from zero, then the bias) so that a float model's outputs are
//! LiteRT's bits. These keep that order for every output and put
//! *different outputs* in the lanes instead: eight output channels (or
//! eight channels of a depthwise layer) per vector, each lane adding its
//! own products one after the other, with a multiply and an add (never a
//! fused multiply-add, which rounds once instead of twice). A convolution
//! packs its filter so that sixteen output channels' weights for one tap
//! and channel lie together, and keeps six pixels' sums in registers
//! (twelve of the sixteen vector registers); a dense layer over one or a few rows transposes its weights eight by
//! eight in registers instead of packing them. AVX-512 machines run these
//! too: a 16-lane version would change nothing in the order, only the
//! width, and is not written yet.
#![allow(unsafe_code)]

use crate::geometry::ConvGeometry;
use crate::int8::DenseGeometry;
use core::arch::x86_64::*;
use std::vec::Vec;

use super::Range;
use crate::x86::{selected, Isa};

/// Whether the AVX2 kernels run: selected like the int8 ones (an AVX-512
/// level runs them too).
pub(super) fn avx2_selected() -> bool {
    selected() >= Isa::Avx2
}

/// The AVX2 kernels whatever level is selected, for the property tests
/// (lengths are the caller's to check, as for the portable kernels).
pub mod avx2 {
    use super::*;

    /// Panics unless this CPU has AVX2.
    fn require() {
        assert!(Isa::Avx2.is_available(), "this CPU lacks AVX2");
    }

    /// The AVX2 convolution.
    pub fn conv2d(
        g: &ConvGeometry,
        input: &[f32],
        filter: &[f32],
        bias: Option<&[f32]>,
        act: Range,
        output: &mut [f32],
    ) {
        require();
        // SAFETY: the CPU has AVX2.
        unsafe { conv2d_avx2(g, input, filter, bias, act, output) }
    }

    /// The AVX2 depthwise convolution with multiplier 1.
    pub fn depthwise_conv2d(
        g: &ConvGeometry,
        input: &[f32],
        filter: &[f32],
        bias: Option<&[f32]>,
        act: Range,
        output: &mut [f32],
    ) {
        require();
        // SAFETY: the CPU has AVX2.
        unsafe { depthwise_conv2d_avx2(g, input, filter, bias, act, output) }
    }

    /// The AVX2 dense layer.
    pub fn fully_connected(
        g: &DenseGeometry,
        input: &[f32],
        weights: &[f32],
        bias: Option<&[f32]>,
        act: Range,
        output: &mut [f32],
    ) {
        require();
        // SAFETY: the CPU has AVX2.
        unsafe { fully_connected_avx2(g, input, weights, bias, act, output) }
    }
}

/// Lanes of a vector.
const LANES: usize = 8;

/// Output channels of one packed filter block (two vectors).
const BLOCK: usize = 2 * LANES;

/// Output pixels whose sums stay in registers together.
const PIXELS: usize = 6;

/// Rows of a dense layer above which its weights are packed like a 1x1
/// convolution's (packing reads every weight once more; with fewer rows
/// the in-register transposes cost less).
const DENSE_PACK_ROWS: u32 = 4;

/// The activation's clamp, as [`f32::clamp`] does it: NaN stays NaN
/// (`max`/`min` return their second operand when either is NaN), and
/// a value equal to a bound keeps its own sign of zero.
#[derive(Clone, Copy)]
struct Clamp {
    lo: __m256,
    hi: __m256,
}

impl Clamp {
    #[inline(always)]
    unsafe fn new(act: Range) -> Clamp {
        Clamp {
            lo: _mm256_set1_ps(act.0),
            hi: _mm256_set1_ps(act.1),
        }
    }

    /// `(sum + bias).clamp(lo, hi)` in every lane.
    #[inline(always)]
    unsafe fn finish(self, sum: __m256, bias: __m256) -> __m256 {
        let v = _mm256_add_ps(sum, bias);
        _mm256_min_ps(self.hi, _mm256_max_ps(self.lo, v))
    }
}

/// `acc + x * w`, rounded after the multiply and after the add.
#[inline(always)]
unsafe fn mul_add(acc: __m256, x: __m256, w: __m256) -> __m256 {
    _mm256_add_ps(acc, _mm256_mul_ps(x, w))
}

/// Stores the first `n <= LANES` lanes of `v` at `out`.
#[inline(always)]
unsafe fn store(out: *mut f32, v: __m256, n: usize) {
    if n == LANES {
        _mm256_storeu_ps(out, v);
    } else {
        let mut lanes = [0f32; LANES];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        core::ptr::copy_nonoverlapping(lanes.as_ptr(), out, n);
    }
}

/// `values` padded with zeros to whole blocks of `BLOCK` (bias, or zeros).
fn padded(values: Option<&[f32]>, n: usize) -> Vec<f32> {
    let mut out = std::vec![0f32; n.div_ceil(BLOCK) * BLOCK];
    if let Some(values) = values {
        out[..n].copy_from_slice(values);
    }
    out
}

/// The filter `[oc][depth]` as blocks of `BLOCK` output channels, each
/// `[depth][BLOCK]`, the channels past `oc` zero.
fn pack(filter: &[f32], oc: usize, depth: usize) -> Vec<f32> {
    let blocks = oc.div_ceil(BLOCK);
    let mut packed = std::vec![0f32; blocks * depth * BLOCK];
    for (o, row) in filter.chunks_exact(depth).enumerate().take(oc) {
        let block = &mut packed[(o / BLOCK) * depth * BLOCK..][..depth * BLOCK];
        for (k, &w) in row.iter().enumerate() {
            block[k * BLOCK + o % BLOCK] = w;
        }
    }
    packed
}

/// float convolution (lengths checked by the caller).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn conv2d_avx2(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    let packed = pack(filter, oc, depth);
    let bias = padded(bias, oc);
    let clamp = Clamp::new(act);
    let w = &g.window;
    let (ih, iw) = (g.input.h as i32, g.input.w as i32);
    let (kh, kw) = (w.kernel_h, w.kernel_w);
    // Each tap's input offset from its window's first element.
    let offsets: Vec<usize> = (0..kh * kw)
        .map(|t| {
            (((t / kw) * w.dilation_h) as usize * iw as usize + ((t % kw) * w.dilation_w) as usize)
                * ic
        })
        .collect();
    let inside_x = |ox: u32| w.in_x(ox, 0) >= 0 && w.in_x(ox, kw - 1) < iw;
    let mut edge: Vec<(usize, usize)> = Vec::with_capacity(offsets.len());
    let conv = Conv {
        ic,
        oc,
        depth,
        packed: &packed,
        bias: &bias,
        clamp,
        input,
    };
    let (oh, ow) = (g.output.h, g.output.w);
    for b in 0..g.output.n {
        for oy in 0..oh {
            let rows_inside = w.in_y(oy, 0) >= 0 && w.in_y(oy, kh - 1) < ih;
            let mut ox = 0;
            while ox < ow {
                let pixel = ((b * oh + oy) * ow + ox) as usize;
                if rows_inside
                    && ox + PIXELS as u32 <= ow
                    && inside_x(ox)
                    && inside_x(ox + PIXELS as u32 - 1)
                {
                    let first = |p: u32| {
                        let (iy, ix) = (w.in_y(oy, 0) as usize, w.in_x(ox + p, 0) as usize);
                        ((b as usize * ih as usize + iy) * iw as usize + ix) * ic
                    };
                    let bases: [usize; PIXELS] = core::array::from_fn(|p| first(p as u32));
                    conv.pixels(&offsets, bases, &mut output[pixel * oc..][..PIXELS * oc]);
                    ox += PIXELS as u32;
                } else {
                    edge.clear();
                    g.for_each_tap(b, oy, ox, |tap, at| edge.push((tap * ic, at * ic)));
                    conv.one_pixel(&edge, &mut output[pixel * oc..][..oc]);
                    ox += 1;
                }
            }
        }
    }
}

/// One convolution's packed operands.
struct Conv<'a> {
    ic: usize,
    oc: usize,
    depth: usize,
    packed: &'a [f32],
    bias: &'a [f32],
    clamp: Clamp,
    input: &'a [f32],
}

impl Conv<'_> {
    /// `PIXELS` pixels of one row whose windows lie inside the input, starting at input
    /// elements `bases`; their outputs one after the other in `out`.
    #[inline(always)]
    unsafe fn pixels(&self, offsets: &[usize], bases: [usize; PIXELS], out: &mut [f32]) {
        let input = self.input.as_ptr();
        for block in 0..self.oc.div_ceil(BLOCK) {
            let mut weights = self.packed.as_ptr().add(block * self.depth * BLOCK);
            let mut acc = [_mm256_setzero_ps(); 2 * PIXELS];
            for &offset in offsets {
                let x = bases.map(|base| input.add(base + offset));
                for c in 0..self.ic {
                    let w0 = _mm256_loadu_ps(weights);
                    let w1 = _mm256_loadu_ps(weights.add(LANES));
                    weights = weights.add(BLOCK);
                    for p in 0..PIXELS {
                        let v = _mm256_broadcast_ss(&*x[p].add(c));
                        acc[2 * p] = mul_add(acc[2 * p], v, w0);
                        acc[2 * p + 1] = mul_add(acc[2 * p + 1], v, w1);
                    }
                }
            }
            for p in 0..PIXELS {
                self.finish(
                    block,
                    &acc[2 * p..][..2],
                    &mut out[p * self.oc..][..self.oc],
                );
            }
        }
    }

    /// One pixel over its in-bounds taps, `(filter element, input element)`
    /// of each tap's first channel, in tap order.
    #[inline(always)]
    unsafe fn one_pixel(&self, taps: &[(usize, usize)], out: &mut [f32]) {
        let input = self.input.as_ptr();
        for block in 0..self.oc.div_ceil(BLOCK) {
            let weights = self.packed.as_ptr().add(block * self.depth * BLOCK);
            let mut acc = [_mm256_setzero_ps(); 2];
            for &(k, at) in taps {
                for c in 0..self.ic {
                    let w = weights.add((k + c) * BLOCK);
                    let v = _mm256_broadcast_ss(&*input.add(at + c));
                    acc[0] = mul_add(acc[0], v, _mm256_loadu_ps(w));
                    acc[1] = mul_add(acc[1], v, _mm256_loadu_ps(w.add(LANES)));
                }
            }
            self.finish(block, &acc, out);
        }
    }

    /// Adds the bias, clamps and stores block `block`'s channels of one pixel.
    #[inline(always)]
    unsafe fn finish(&self, block: usize, acc: &[__m256], out: &mut [f32]) {
        for (half, &sum) in acc.iter().enumerate() {
            let first = block * BLOCK + half * LANES;
            if first >= self.oc {
                break;
            }
            let bias = _mm256_loadu_ps(self.bias.as_ptr().add(first));
            let v = self.clamp.finish(sum, bias);
            store(out.as_mut_ptr().add(first), v, (self.oc - first).min(LANES));
        }
    }
}

/// float depthwise convolution with multiplier 1 (lengths checked by the
/// caller): eight channels per vector, summed over the pixel's in-bounds
/// taps in order.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn depthwise_conv2d_avx2(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let c = g.output.c as usize;
    let bias = padded(bias, c);
    let depthwise = Depthwise {
        input,
        filter,
        bias: &bias,
        clamp: Clamp::new(act),
    };
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(g.window.taps());
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        taps.clear();
        g.for_each_tap(b, oy, ox, |tap, at| taps.push((tap * c, at * c)));
        let out = &mut output[pixel * c..][..c];
        // Four vectors of channels at a time, then one, then a partial one.
        let mut first = 0;
        while first + 4 * LANES <= c {
            depthwise.channels::<4>(&taps, first, LANES, out);
            first += 4 * LANES;
        }
        while first < c {
            depthwise.channels::<1>(&taps, first, (c - first).min(LANES), out);
            first += LANES;
        }
    });
}

/// One depthwise convolution's operands.
struct Depthwise<'a> {
    input: &'a [f32],
    filter: &'a [f32],
    bias: &'a [f32],
    clamp: Clamp,
}

impl Depthwise<'_> {
    /// `V` vectors of channels from `first` of one pixel, the last one
    /// `last` channels wide (fewer than `LANES` only when `V` is 1: the
    /// loads of a partial vector go through a zero-padded copy).
    #[inline(always)]
    unsafe fn channels<const V: usize>(
        &self,
        taps: &[(usize, usize)],
        first: usize,
        last: usize,
        out: &mut [f32],
    ) {
        let load = |values: &[f32], at: usize| {
            if last == LANES {
                _mm256_loadu_ps(values.as_ptr().add(at))
            } else {
                let mut lanes = [0f32; LANES];
                lanes[..last].copy_from_slice(&values[at..at + last]);
                _mm256_loadu_ps(lanes.as_ptr())
            }
        };
        let mut acc = [_mm256_setzero_ps(); V];
        for &(k, at) in taps {
            for (v, sum) in acc.iter_mut().enumerate() {
                let lane = first + v * LANES;
                *sum = mul_add(
                    *sum,
                    load(self.input, at + lane),
                    load(self.filter, k + lane),
                );
            }
        }
        for (v, &sum) in acc.iter().enumerate() {
            let lane = first + v * LANES;
            let bias = _mm256_loadu_ps(self.bias.as_ptr().add(lane));
            store(
                out.as_mut_ptr().add(lane),
                self.clamp.finish(sum, bias),
                last,
            );
        }
    }
}

/// float dense layer (lengths checked by the caller). Up to
/// `DENSE_PACK_ROWS - 1` rows: eight outputs at a time, their weight rows
/// read eight columns at a time and transposed in registers, so that each
/// input value is multiplied with eight outputs' weights in one vector.
/// More rows run as a 1x1 convolution over the rows.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn fully_connected_avx2(
    g: &DenseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    if g.batch >= DENSE_PACK_ROWS {
        let conv = g.as_conv();
        return conv2d_avx2(&conv, input, weights, bias, act, output);
    }
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let bias = padded(bias, n);
    let clamp = Clamp::new(act);
    for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        for first in (0..n).step_by(LANES) {
            let rows = (n - first).min(LANES);
            // Rows past the last output read the last one again.
            let row = |j: usize| weights.as_ptr().add((first + j.min(rows - 1)) * k);
            let rows_at: [*const f32; LANES] = core::array::from_fn(row);
            let mut acc = _mm256_setzero_ps();
            let mut column = 0;
            while column + LANES <= k {
                let t = transpose(rows_at.map(|r| _mm256_loadu_ps(r.add(column))));
                for (i, &w) in t.iter().enumerate() {
                    acc = mul_add(acc, _mm256_set1_ps(x[column + i]), w);
                }
                column += LANES;
            }
            for (column, &value) in x.iter().enumerate().skip(column) {
                let w: [f32; LANES] = rows_at.map(|r| *r.add(column));
                acc = mul_add(acc, _mm256_set1_ps(value), _mm256_loadu_ps(w.as_ptr()));
            }
            let v = clamp.finish(acc, _mm256_loadu_ps(bias.as_ptr().add(first)));
            store(out.as_mut_ptr().add(first), v, rows);
        }
    }
}

/// The 8x8 transpose of eight row vectors: lane `j` of result `i` is lane
/// `i` of row `j`.
#[inline(always)]
unsafe fn transpose(r: [__m256; LANES]) -> [__m256; LANES] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}
