//! Depthwise convolution on AVX-512 VNNI by quads of taps: four taps of a
//! kernel row, side by side in each channel's 32-bit lane, are one
//! VPDPBUSD, where multiplying lane by lane takes a widening, an offset
//! addition, a VPMULLD and an addition per tap.
//!
//! The input is first copied with its padding (values that add nothing),
//! as the unsigned bytes `x + 128` VPDPBUSD multiplies, then laid out as
//! quads: for every padded pixel `(r, x)` and channel `c`, the four bytes
//! of columns `x, x + d, x + 2d, x + 3d` (`d` the horizontal dilation; pad
//! bytes past the right edge), 64 channels at a time by two rounds of
//! VPERMT2B and VPERMT2W (AVX-512 VBMI). Every output pixel then
//! reads, per kernel row and quad of its taps, one 64-byte vector of
//! sixteen channels, against the filter laid out the same way (zero
//! weights past the kernel's width). The sums lack `(offset - 128) *
//! sum(w)` per channel, which the requantization adds to the bias.

use super::requantize::{Requantize, CHUNK};
use super::simd::{Avx512, Simd};
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;
use core::arch::x86_64::*;
use std::vec::Vec;

/// Channels per vector, taps per lane, and channels laid out together.
const LANES: usize = 16;
const QUAD: usize = 4;
const BLOCK: usize = 64;

/// Output pixels of a row whose sums are kept together.
const PIXELS: usize = 4;

/// Bytes of the quad layout the kernel allocates at most; larger layers
/// go lane by lane.
const MAX_QUAD_BYTES: usize = 1 << 20;

/// The depthwise convolution with multiplier 1 (lengths checked by the
/// caller); `false` when the layer does not fit the quad layout.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL, VNNI and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
pub(super) unsafe fn depthwise_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    let c = g.output.c as usize;
    let layout = Layout::new(g);
    if c > CHUNK || layout.image_bytes() > MAX_QUAD_BYTES || !quads_pay(g) {
        return false;
    }
    let weights = Weights::new(g, filter, layout.stride_c);
    let correction = stage.input_offset.wrapping_sub(128);
    let mut requantize = Requantize::blank(stage, 0);
    requantize.fill(bias, c, |i| weights.sums[i].wrapping_mul(correction));
    let pad = (-stage.input_offset) as i8 ^ i8::MIN;
    SCRATCH.with_borrow_mut(|scratch| {
        let (padded, quads) = layout.buffers(scratch);
        let image = g.input.features();
        let (oh, ow) = (g.output.h as usize, g.output.w as usize);
        for b in 0..g.output.n as usize {
            layout.pad(g, &input[b * image..][..image], pad, padded);
            layout.fill(padded, quads);
            let out = output.as_mut_ptr().add(b * oh * ow * c);
            for oy in 0..oh {
                let r = oy * g.window.stride_h as usize;
                let mut ox = 0;
                // Four pixels' sums in registers at a time, then one by one.
                while ox < ow {
                    let at = out.add((oy * ow + ox) * c);
                    let quads = &quads[layout.quad(r, ox * layout.stride_x)..];
                    if ox + PIXELS <= ow {
                        pixels::<PIXELS>(&layout, &weights, quads, &requantize, c, at);
                        ox += PIXELS;
                    } else {
                        pixels::<1>(&layout, &weights, quads, &requantize, c, at);
                        ox += 1;
                    }
                }
            }
        }
    });
    true
}

/// Output pixels from which laying the input out as quads (four times its
/// bytes, channels padded to whole blocks) costs less than it saves.
const MIN_PIXELS: usize = 512;

/// Whether the quads pay for their layout: whole blocks of channels over
/// a large enough map. Measured against the lane-by-lane kernel (3x3,
/// best of 2,000 calls each, interleaved; this Xeon): quads faster at
/// 56x56x64 (143 against 183 us) and 28x28x128 (67 against 89 us), slower
/// at 14x14x256 (37 against 33), 7x7x256 (14 against 11), DS-CNN's
/// 25x5x64 (7.2 against 5.8) and 48x48x16 (79 against 50, a block of 64
/// holding 16 channels), equal at 112x112x32 with stride 2.
fn quads_pay(g: &ConvGeometry) -> bool {
    (g.output.c as usize).is_multiple_of(BLOCK)
        && g.output.pixels().is_some_and(|p| p >= MIN_PIXELS)
}

std::thread_local! {
    /// The padded copy and the quads of the last layer, kept so that
    /// every call does not allocate and clear them again.
    static SCRATCH: core::cell::RefCell<Vec<u8>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Where things are in the quad layout of one image.
struct Layout {
    /// Padded rows and columns: every window's taps inside.
    rows: usize,
    cols: usize,
    /// Channels rounded up to whole blocks: bytes per padded pixel, and
    /// per quad pixel / 4.
    stride_c: usize,
    /// Columns between two output pixels, and between taps.
    stride_x: usize,
    dilation_x: usize,
    dilation_y: usize,
    /// Kernel rows and quads per kernel row.
    kernel_rows: usize,
    quads_per_row: usize,
}

impl Layout {
    fn new(g: &ConvGeometry) -> Layout {
        let w = &g.window;
        let (kh, kw) = (w.kernel_h as usize, w.kernel_w as usize);
        let (sh, sw) = (w.stride_h as usize, w.stride_w as usize);
        let (dh, dw) = (w.dilation_h as usize, w.dilation_w as usize);
        let (oh, ow) = (g.output.h as usize, g.output.w as usize);
        Layout {
            rows: (oh - 1) * sh + (kh - 1) * dh + 1,
            cols: (ow - 1) * sw + (kw - 1) * dw + 1,
            stride_c: (g.output.c as usize).div_ceil(BLOCK) * BLOCK,
            stride_x: sw,
            dilation_x: dw,
            dilation_y: dh,
            kernel_rows: kh,
            quads_per_row: kw.div_ceil(QUAD),
        }
    }

    /// Bytes of the quads of one image.
    fn image_bytes(&self) -> usize {
        self.rows
            .saturating_mul(self.cols)
            .saturating_mul(self.stride_c * QUAD)
    }

    /// Columns of the padded copy: every quad's last column inside.
    fn padded_cols(&self) -> usize {
        self.cols + 3 * self.dilation_x
    }

    /// The padded copy and the quads, carved out of `scratch`.
    fn buffers<'s>(&self, scratch: &'s mut Vec<u8>) -> (&'s mut [u8], &'s mut [u8]) {
        let padded = self.rows * self.padded_cols() * self.stride_c;
        let need = padded + self.image_bytes();
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        scratch[..need].split_at_mut(padded)
    }

    /// Byte offset of padded pixel `(r, x)`'s quads.
    fn quad(&self, r: usize, x: usize) -> usize {
        (r * self.cols + x) * self.stride_c * QUAD
    }

    /// Copies one image (`[h, w, c]`) into `padded` (`stride_c` bytes a
    /// pixel) as unsigned bytes, pixels outside the input as `pad` (the
    /// input's zero point, flipped).
    #[inline(always)]
    unsafe fn pad(&self, g: &ConvGeometry, image: &[i8], pad: i8, padded: &mut [u8]) {
        let (h, w, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
        let (top, left) = (g.window.pad_top as usize, g.window.pad_left as usize);
        let (flip, pads) = (_mm512_set1_epi8(-128), _mm512_set1_epi8(pad));
        let cols = self.padded_cols();
        assert!(padded.len() >= self.rows * cols * self.stride_c);
        for r in 0..self.rows {
            for x in 0..cols {
                let out = padded.as_mut_ptr().add((r * cols + x) * self.stride_c);
                let (y, x) = (r.wrapping_sub(top), x.wrapping_sub(left));
                for v in (0..self.stride_c).step_by(BLOCK) {
                    let bytes = if y < h && x < w {
                        let at = image.as_ptr().add((y * w + x) * c + v);
                        let mask = bytes64(c - v.min(c));
                        _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, at), flip)
                    } else {
                        pads
                    };
                    _mm512_storeu_si512(out.add(v).cast(), bytes);
                }
            }
        }
    }

    /// Lays out the quads of every padded pixel from `padded`.
    #[inline(always)]
    unsafe fn fill(&self, padded: &[u8], quads: &mut [u8]) {
        let cols = self.padded_cols();
        let d = self.dilation_x * self.stride_c;
        assert!(padded.len() >= self.rows * cols * self.stride_c);
        assert!(quads.len() >= self.image_bytes());
        // Byte i of the pairs: byte i / 2 of the first source or the second.
        let pairs = |half: usize| {
            _mm512_loadu_si512(
                core::array::from_fn::<u8, 64, _>(|i| (i / 2 + 32 * half + 64 * (i % 2)) as u8)
                    .as_ptr()
                    .cast(),
            )
        };
        // Word i of the quads: word i / 2 of the first pairs or the second.
        let quad_words = |half: usize| {
            _mm512_loadu_si512(
                core::array::from_fn::<u16, 32, _>(|i| (i / 2 + 16 * half + 32 * (i % 2)) as u16)
                    .as_ptr()
                    .cast(),
            )
        };
        let (pairs_low, pairs_high) = (pairs(0), pairs(1));
        let (quads_low, quads_high) = (quad_words(0), quad_words(1));
        for r in 0..self.rows {
            for x in 0..self.cols {
                let src = padded.as_ptr().add((r * cols + x) * self.stride_c);
                let out = quads.as_mut_ptr().add(self.quad(r, x));
                for v in (0..self.stride_c).step_by(BLOCK) {
                    let [a, b, e, f] =
                        core::array::from_fn(|j| _mm512_loadu_si512(src.add(j * d + v).cast()));
                    let ab = [pairs_low, pairs_high].map(|i| _mm512_permutex2var_epi8(a, i, b));
                    let ef = [pairs_low, pairs_high].map(|i| _mm512_permutex2var_epi8(e, i, f));
                    let out = out.add(v * QUAD).cast::<__m512i>();
                    for (half, (ab, ef)) in ab.into_iter().zip(ef).enumerate() {
                        let lo = _mm512_permutex2var_epi16(ab, quads_low, ef);
                        let hi = _mm512_permutex2var_epi16(ab, quads_high, ef);
                        _mm512_storeu_si512(out.add(2 * half), lo);
                        _mm512_storeu_si512(out.add(2 * half + 1), hi);
                    }
                }
            }
        }
    }
}

/// Mask of the first `n` of 64 bytes.
fn bytes64(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The filter in the quad layout: kernel row `dy`'s quad `q` of channel
/// `c` at word `(dy * quads_per_row + q) * stride_c + c`, and each
/// channel's weight sum.
struct Weights {
    quads: Vec<i32>,
    sums: Vec<i32>,
}

impl Weights {
    fn new(g: &ConvGeometry, filter: &[i8], stride_c: usize) -> Weights {
        let (kh, kw, c) = (
            g.window.kernel_h as usize,
            g.window.kernel_w as usize,
            g.output.c as usize,
        );
        let per_row = kw.div_ceil(QUAD);
        let mut quads = std::vec![0i32; kh * per_row * stride_c];
        let mut sums = std::vec![0i32; c];
        for dy in 0..kh {
            for dx in 0..kw {
                let word = (dy * per_row + dx / QUAD) * stride_c;
                for ch in 0..c {
                    let w = filter[(dy * kw + dx) * c + ch];
                    quads[word + ch] |= (w as u8 as i32) << (8 * (dx % QUAD));
                    sums[ch] += w as i32;
                }
            }
        }
        Weights { quads, sums }
    }
}

/// Every channel of `N` output pixels of one row, the first window's
/// top-left quad at `quads`; outputs at `out` (`c` apart).
#[inline(always)]
unsafe fn pixels<const N: usize>(
    layout: &Layout,
    weights: &Weights,
    quads: &[u8],
    r: &Requantize,
    c: usize,
    out: *mut i8,
) {
    let step = layout.stride_x * layout.stride_c * QUAD;
    let row = layout.dilation_y * layout.cols * layout.stride_c * QUAD;
    let quad_step = QUAD * layout.dilation_x * layout.stride_c * QUAD;
    let (rows, per_row) = (layout.kernel_rows, layout.quads_per_row);
    let last =
        (N - 1) * step + (rows - 1) * row + (per_row - 1) * quad_step + layout.stride_c * QUAD;
    assert!(last <= quads.len() && rows * per_row * layout.stride_c <= weights.quads.len());
    for v in (0..c).step_by(LANES) {
        let mut acc = [_mm512_setzero_si512(); N];
        let mut w = weights.quads.as_ptr().add(v);
        for dy in 0..rows {
            let mut tap = quads.as_ptr().add(dy * row + v * QUAD);
            for _ in 0..per_row {
                let wq = _mm512_loadu_si512(w.cast());
                for (p, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_loadu_si512(tap.add(p * step).cast());
                    *acc = _mm512_dpbusd_epi32(*acc, x, wq);
                }
                w = w.add(layout.stride_c);
                tap = tap.add(quad_step);
            }
        }
        let width = LANES.min(c - v);
        let channels = Avx512::channels(r, v);
        for (p, &acc) in acc.iter().enumerate() {
            Avx512::finish_with(acc, &channels, r, v, width, out.add(p * c + v));
        }
    }
}
