//! The block-sparse convolution on AVX2, which has no byte dot product:
//! a group of 32 output pixels (eight vectors of four) whose input quads are widened to 16
//! bits once, the input offset added (`|x + offset| <= 255`), four pixels
//! per vector (a quad of each in 64 bits); every stored block is then one
//! VPMADDWD per vector by its four weights, widened and broadcast from
//! the stored word. A pixel's two 32-bit lanes sum the block's two pairs;
//! they are added when the row is done. Where the fields come from and how
//! they are widened is [`super::fields`]'s.
//!
//! Four output channels are requantized together and interleaved, one
//! word per pixel, and eight such words of a pixel (32 channels) are
//! stored at once after an 8x8 transpose.
//!
//! Every helper is compiled for AVX2 itself (not only inlined into a
//! function that is): the closures inside a helper take its features, and
//! an intrinsic inside a closure without them is a call.

use super::super::simd::{Avx2, Simd, Terms};
use super::fields::{wide_quads, Fields};
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;
use crate::quant::Rounding;
use crate::sparse::blocks::{Blocks, BLOCK};
use core::arch::x86_64::*;
use std::vec::Vec;

/// Pixels per vector: a quad of 16-bit values each.
pub(super) const PIXELS: usize = 4;

/// Vectors per group: independent sums for VPMADDWD's latency, each
/// block's weights and offset loaded once for all of them.
pub(super) const VECTORS: usize = 8;

/// Output pixels per group.
pub(super) const GROUP: usize = PIXELS * VECTORS;

/// Output channels interleaved into one word per pixel.
const ROWS: usize = 4;

/// Vectors of eight pixels' 32-bit sums per group.
const EIGHTS: usize = VECTORS / 2;

/// A group's sums of one row: pixels 0-7, 8-15, ..., 32-bit lanes.
type Sums = [__m256i; EIGHTS];

/// The convolution (arguments checked by the caller: the blocks fit the
/// receptive field, `g.depth()` a multiple of four).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(in crate::int8::x86) unsafe fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    w: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let oc = g.output.c as usize;
    let rows: Vec<Row> = (0..oc).map(|o| Row::new(w, stage, bias, o)).collect();
    let mut fields = Fields::new(g, input, stage.input_offset);
    let mut wide = std::vec![_mm256_setzero_si256(); wide_quads(g) * VECTORS];
    let mut words = std::vec![[_mm256_setzero_si256(); EIGHTS]; oc.div_ceil(ROWS)];
    let pixels = g.output.pixels().unwrap_or(0);
    for first in (0..pixels).step_by(GROUP) {
        let n = GROUP.min(pixels - first);
        fields.widen(first, n, &mut wide);
        for (c, word) in words.iter_mut().enumerate() {
            *word = chunk(&rows, c, &wide, w.entries, stage);
        }
        store_words(&words, output.as_mut_ptr().add(first * oc), oc, n);
    }
}

/// The words of chunk `c`'s four rows (a last chunk of fewer rows
/// computes its last row again).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn chunk(
    rows: &[Row],
    c: usize,
    wide: &[__m256i],
    entries: &[u32],
    stage: &OutputStage,
) -> Sums {
    let mut y = [[_mm256_setzero_si256(); EIGHTS]; ROWS];
    for (j, y) in y.iter_mut().enumerate() {
        let row = &rows[(ROWS * c + j).min(rows.len() - 1)];
        *y = row.requantize(row.sums(wide, entries), stage);
    }
    let mut words = [_mm256_setzero_si256(); EIGHTS];
    for (h, word) in words.iter_mut().enumerate() {
        *word = interleave([y[0][h], y[1][h], y[2][h], y[3][h]]);
    }
    words
}

/// One output channel: its blocks, what its sums lack, its requantization.
struct Row {
    /// Its blocks' two words each, as a range of the entries.
    blocks: core::ops::Range<usize>,
    /// Its bias.
    base: i32,
    channel: usize,
    terms: Terms<__m256i>,
}

impl Row {
    #[target_feature(enable = "avx2")]
    unsafe fn new(w: &Blocks, stage: &OutputStage, bias: Option<&[i32]>, o: usize) -> Row {
        Row {
            blocks: 2 * w.row_ptr[o] as usize..2 * w.row_ptr[o + 1] as usize,
            base: bias.map_or(0, |b| b[o]),
            channel: o,
            terms: Terms::uniform::<Avx2>(stage.requant[o], 0),
        }
    }

    /// The row's sums (base included) of the group's pixels.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sums(&self, wide: &[__m256i], entries: &[u32]) -> Sums {
        let mut acc = [_mm256_setzero_si256(); VECTORS];
        for block in entries.get_unchecked(self.blocks.clone()).chunks_exact(2) {
            // The block's first column `4q` finds quad `q`'s vectors, `4q *
            // VECTORS * 8` bytes in (`check` keeps columns whole blocks).
            let bytes = block[0] as usize * (VECTORS * size_of::<__m256i>() / BLOCK);
            let x = wide.as_ptr().byte_add(bytes);
            let w = _mm256_cvtepi8_epi16(_mm_set1_epi32(block[1] as i32));
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(x.add(v).read(), w));
            }
        }
        let base = _mm256_set1_epi32(self.base);
        let mut sums = [base; EIGHTS];
        for (e, sums) in sums.iter_mut().enumerate() {
            *sums = pixel_sums(acc[2 * e], acc[2 * e + 1], base);
        }
        sums
    }

    /// The row's outputs of `sums`, requantized (offset added, clamped).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn requantize(&self, sums: Sums, stage: &OutputStage) -> Sums {
        if stage.rounding != Rounding::Double {
            let mut y = sums;
            for y in &mut y {
                *y = self.finish_scalar(*y, stage);
            }
            return y;
        }
        let (offset, min, max) = (
            _mm256_set1_epi32(stage.output_offset),
            _mm256_set1_epi32(stage.act_min),
            _mm256_set1_epi32(stage.act_max),
        );
        let mut y = sums;
        for y in &mut y {
            *y = _mm256_add_epi32(Avx2::requantize(*y, &self.terms), offset);
            *y = _mm256_min_epi32(_mm256_max_epi32(*y, min), max);
        }
        y
    }

    /// Single rounding: value by value through the stage.
    #[inline(never)]
    #[target_feature(enable = "avx2")]
    unsafe fn finish_scalar(&self, acc: __m256i, stage: &OutputStage) -> __m256i {
        let mut sums = [0i32; 8];
        _mm256_storeu_si256(sums.as_mut_ptr().cast(), acc);
        let y = sums.map(|s| stage.finish(s, self.channel) as i32);
        _mm256_loadu_si256(y.as_ptr().cast())
    }
}

/// The sums of eight pixels plus `base`, from two vectors of four whose
/// pixels' two lanes are added (even lanes plus odd lanes: pixels 0, 1,
/// 4, 5 | 2, 3, 6, 7), then their 64-bit pairs put back in order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pixel_sums(a: __m256i, b: __m256i, base: __m256i) -> __m256i {
    let (a, b) = (_mm256_castsi256_ps(a), _mm256_castsi256_ps(b));
    let even = _mm256_castps_si256(_mm256_shuffle_ps::<0x88>(a, b));
    let odd = _mm256_castps_si256(_mm256_shuffle_ps::<0xdd>(a, b));
    let sums = _mm256_permute4x64_epi64::<0xd8>(_mm256_add_epi32(even, odd));
    _mm256_add_epi32(sums, base)
}

/// Four rows' values (32-bit lanes, in int8 range) as one word per pixel,
/// row `j` in byte `j`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn interleave([r0, r1, r2, r3]: [__m256i; ROWS]) -> __m256i {
    let byte = _mm256_set1_epi32(0xff);
    let low = |r: __m256i| _mm256_and_si256(r, byte);
    _mm256_or_si256(
        _mm256_or_si256(low(r0), _mm256_slli_epi32::<8>(low(r1))),
        _mm256_or_si256(
            _mm256_slli_epi32::<16>(low(r2)),
            _mm256_slli_epi32::<24>(r3),
        ),
    )
}

/// The words of `n` pixels to their rows of `oc` bytes from `out`: eight
/// words of a pixel (32 channels) at a time by an 8x8 transpose, the
/// channels past the last whole 32 word by word.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_words(words: &[Sums], out: *mut i8, oc: usize, n: usize) {
    let whole = oc / (8 * ROWS);
    for h in 0..EIGHTS {
        let pixels = n.saturating_sub(8 * h).min(8);
        for block in 0..whole {
            let mut rows = [_mm256_setzero_si256(); 8];
            for (i, row) in rows.iter_mut().enumerate() {
                *row = words[8 * block + i][h];
            }
            let t = transpose8(rows);
            for (p, pixel) in t.into_iter().enumerate().take(pixels) {
                let at = out.add((8 * h + p) * oc + 8 * ROWS * block);
                _mm256_storeu_si256(at.cast(), pixel);
            }
        }
        for (c, word) in words.iter().enumerate().skip(8 * whole) {
            let mut lanes = [0u32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), word[h]);
            let bytes = (oc - ROWS * c).min(ROWS);
            for (p, lane) in lanes.iter().enumerate().take(pixels) {
                let at = out.add((8 * h + p) * oc + ROWS * c);
                if bytes == ROWS {
                    at.cast::<u32>().write_unaligned(*lane);
                    continue;
                }
                for (i, byte) in lane.to_le_bytes().into_iter().take(bytes).enumerate() {
                    at.add(i).write(byte as i8);
                }
            }
        }
    }
}

/// The 8x8 transpose of 32-bit elements: lane `i` of `r[j]` goes to lane
/// `j` of the result's vector `i`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let mut t = [_mm256_setzero_si256(); 8];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + e]: element e of each 128-bit half of rows 4g..4g+3.
    let mut u = [_mm256_setzero_si256(); 8];
    for g in 0..2 {
        for half in 0..2 {
            let (a, b) = (t[4 * g + half], t[4 * g + 2 + half]);
            u[4 * g + 2 * half] = _mm256_unpacklo_epi64(a, b);
            u[4 * g + 2 * half + 1] = _mm256_unpackhi_epi64(a, b);
        }
    }
    let mut out = [_mm256_setzero_si256(); 8];
    for e in 0..4 {
        out[e] = _mm256_permute2x128_si256::<0x20>(u[e], u[4 + e]);
        out[4 + e] = _mm256_permute2x128_si256::<0x31>(u[e], u[4 + e]);
    }
    out
}
