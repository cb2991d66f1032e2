//! The block-sparse matrix product (pointwise convolution, dense layer)
//! with pixels in the lanes of AVX-512 vectors, two vectors (32 pixels)
//! per group. A group's quads of input columns are gathered once, as the
//! unsigned bytes `x + 128` VPDPBUSD multiplies; each stored block of a
//! row is then one VPDPBUSD per vector of the pixels' quad by the block's
//! four weights, broadcast. Four rows are requantized together and
//! interleaved, so that each pixel's four output channels are stored as
//! one word.

use super::super::simd::{Avx512, Simd, Terms};
use crate::int8::OutputStage;
use crate::quant::Rounding;
use crate::sparse::blocks::{weight_sum, Blocks, Matrix, BLOCK};
use core::arch::x86_64::*;
use std::vec::Vec;

/// Pixels per vector, and quads (or words) transposed at a time.
const LANES: usize = 16;

/// Vectors of pixels per group: independent sums, as VPDPBUSD's latency
/// is several times its throughput.
const VECTORS: usize = 4;

/// Output channels stored together (four bytes of one word per pixel).
const ROWS: usize = 4;

/// A group's gathered input: quad `q` of every pixel, one vector per
/// [`LANES`] pixels.
type Quads = Vec<[__m512i; VECTORS]>;

/// The product (arguments checked by the caller).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::int8::x86) unsafe fn matrix(
    m: &Matrix,
    stage: &OutputStage,
    input: &[i8],
    w: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let rows: Vec<Row> = (0..m.rows).map(|o| Row::new(w, stage, bias, o)).collect();
    let zero = [_mm512_setzero_si512(); VECTORS];
    let mut quads: Quads = std::vec![zero; m.columns.div_ceil(LANES * BLOCK) * LANES];
    // One word (four output channels) per pixel and chunk of four rows.
    let mut words: Quads = std::vec![zero; m.rows.div_ceil(LANES * ROWS) * LANES];
    for first in (0..m.pixels).step_by(VECTORS * LANES) {
        let n = (m.pixels - first).min(VECTORS * LANES);
        let x = input.as_ptr().add(first * m.columns);
        load_quads(&mut quads, x, m.columns, n);
        for (c, word) in words.iter_mut().take(m.rows.div_ceil(ROWS)).enumerate() {
            // A last chunk of fewer rows computes its last row again.
            let row = |j: usize| &rows[(ROWS * c + j).min(m.rows - 1)];
            let mut sums = [[_mm512_setzero_si512(); VECTORS]; ROWS];
            for (j, s) in sums.iter_mut().enumerate() {
                *s = row(j).sums(&quads, w);
            }
            for (j, s) in sums.iter_mut().enumerate() {
                *s = row(j).requantize(*s, stage);
            }
            for v in 0..VECTORS {
                word[v] = interleave([sums[0][v], sums[1][v], sums[2][v], sums[3][v]]);
            }
        }
        store_words(&words, output.as_mut_ptr().add(first * m.rows), m.rows, n);
    }
}

/// The bytes of `len` (at most 64) starting at `at`, as a load or store mask.
#[inline(always)]
fn byte_mask(len: usize) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

/// The quads of `n` input rows (`columns` bytes apart from `x`) into
/// `quads`, quad `q` of pixel `p` in lane `p % 16` of `quads[q][p / 16]`,
/// as unsigned bytes: sixteen rows of 64 bytes loaded and transposed at a
/// time. Lanes past `n` hold the bytes of zeros.
#[inline(always)]
unsafe fn load_quads(quads: &mut Quads, x: *const i8, columns: usize, n: usize) {
    let flip = _mm512_set1_epi8(-128);
    for v in 0..VECTORS {
        let pixels = n.saturating_sub(v * LANES).min(LANES);
        for (chunk, out) in quads.chunks_exact_mut(LANES).enumerate() {
            let first = chunk * LANES * BLOCK;
            let mask = byte_mask(columns - first);
            let rows: [__m512i; LANES] = core::array::from_fn(|p| {
                let at = x.add((v * LANES + p) * columns + first);
                if p < pixels {
                    _mm512_maskz_loadu_epi8(mask, at)
                } else {
                    _mm512_setzero_si512()
                }
            });
            for (q, t) in transpose(rows).into_iter().enumerate() {
                out[q][v] = _mm512_xor_si512(t, flip);
            }
        }
    }
}

/// The words of `n` pixels to their rows of `rows` bytes from `out`: each
/// sixteen words of a pixel (64 output channels) transposed from
/// `words` into one store.
#[inline(always)]
unsafe fn store_words(words: &Quads, out: *mut i8, rows: usize, n: usize) {
    for v in 0..VECTORS {
        let pixels = n.saturating_sub(v * LANES).min(LANES);
        for (chunk, block) in words.chunks_exact(LANES).enumerate() {
            let first = chunk * LANES * ROWS;
            let mask = byte_mask(rows - first);
            let t = transpose(core::array::from_fn(|i| block[i][v]));
            for (p, pixel) in t.into_iter().enumerate().take(pixels) {
                _mm512_mask_storeu_epi8(out.add((v * LANES + p) * rows + first), mask, pixel);
            }
        }
    }
}

/// The 16x16 transpose of 32-bit elements: lane `i` of `rows[j]` goes to
/// lane `j` of the result's vector `i`.
#[inline(always)]
unsafe fn transpose(r: [__m512i; 16]) -> [__m512i; 16] {
    // Pairs, then fours, of rows interleaved within each 128-bit lane ...
    let t: [__m512i; 16] = core::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // u[4g + e]: element e of each 128-bit lane L (4L + e) of rows 4g..4g+3.
    let u: [__m512i; 16] = core::array::from_fn(|i| {
        let (g, e) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + e / 2], t[4 * g + 2 + e / 2]);
        if e % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // ... then the 128-bit lanes of the four groups gathered.
    let mut out = [_mm512_setzero_si512(); 16];
    for e in 0..4 {
        let even_a = _mm512_shuffle_i32x4::<0x88>(u[e], u[4 + e]);
        let odd_a = _mm512_shuffle_i32x4::<0xdd>(u[e], u[4 + e]);
        let even_b = _mm512_shuffle_i32x4::<0x88>(u[8 + e], u[12 + e]);
        let odd_b = _mm512_shuffle_i32x4::<0xdd>(u[8 + e], u[12 + e]);
        out[e] = _mm512_shuffle_i32x4::<0x88>(even_a, even_b);
        out[8 + e] = _mm512_shuffle_i32x4::<0xdd>(even_a, even_b);
        out[4 + e] = _mm512_shuffle_i32x4::<0x88>(odd_a, odd_b);
        out[12 + e] = _mm512_shuffle_i32x4::<0xdd>(odd_a, odd_b);
    }
    out
}

/// One output channel: where its blocks are, what its sums lack, and its
/// requantization's terms.
struct Row {
    /// Its blocks' range in the entries.
    blocks: core::ops::Range<usize>,
    /// Bias plus `(offset - 128) * sum(w)`: VPDPBUSD sums `(x + 128) * w`.
    base: i32,
    channel: usize,
    multiplier: i32,
    left: i32,
    right: i32,
    mask: i32,
}

impl Row {
    fn new(w: &Blocks, stage: &OutputStage, bias: Option<&[i32]>, o: usize) -> Row {
        let sum = weight_sum(w.row(o));
        let q = stage.requant[o];
        let right = (-q.shift).max(0);
        Row {
            blocks: 2 * w.row_ptr[o] as usize..2 * w.row_ptr[o + 1] as usize,
            base: bias
                .map_or(0, |b| b[o])
                .wrapping_add(sum.wrapping_mul(stage.input_offset.wrapping_sub(128))),
            channel: o,
            multiplier: q.multiplier,
            left: q.shift.max(0),
            right,
            mask: ((1u64 << right) - 1) as i32,
        }
    }

    /// The row's sums (base included) of the group's pixels, a vector of
    /// 32-bit lanes per [`LANES`] pixels.
    #[inline(always)]
    unsafe fn sums(&self, quads: &Quads, w: &Blocks) -> [__m512i; VECTORS] {
        let entries = w.entries.get_unchecked(self.blocks.clone());
        // Even and odd blocks into separate sums, added at the end.
        let mut acc = [[_mm512_setzero_si512(); VECTORS]; 2];
        acc[0] = [_mm512_set1_epi32(self.base); VECTORS];
        let mut pairs = entries.chunks_exact(4);
        for b in pairs.by_ref() {
            for (half, acc) in acc.iter_mut().enumerate() {
                let x = quads.get_unchecked(b[2 * half] as usize / BLOCK);
                let weights = _mm512_set1_epi32(b[2 * half + 1] as i32);
                for v in 0..VECTORS {
                    acc[v] = _mm512_dpbusd_epi32(acc[v], x[v], weights);
                }
            }
        }
        if let [offset, weights] = *pairs.remainder() {
            let x = quads.get_unchecked(offset as usize / BLOCK);
            let weights = _mm512_set1_epi32(weights as i32);
            for v in 0..VECTORS {
                acc[1][v] = _mm512_dpbusd_epi32(acc[1][v], x[v], weights);
            }
        }
        let mut sums = acc[0];
        for v in 0..VECTORS {
            sums[v] = _mm512_add_epi32(sums[v], acc[1][v]);
        }
        sums
    }

    /// The row's outputs of `sums`, requantized (offset added, clamped).
    #[inline(always)]
    unsafe fn requantize(
        &self,
        mut sums: [__m512i; VECTORS],
        stage: &OutputStage,
    ) -> [__m512i; VECTORS] {
        if stage.rounding != Rounding::Double {
            for s in &mut sums {
                *s = self.finish_scalar(*s, stage);
            }
            return sums;
        }
        let terms = Terms {
            multiplier: _mm512_set1_epi32(self.multiplier),
            odd_multiplier: _mm512_set1_epi32(self.multiplier),
            left: (self.left > 0).then(|| _mm512_set1_epi32(self.left)),
            right: _mm512_set1_epi32(self.right),
            mask: _mm512_set1_epi32(self.mask),
            half: _mm512_set1_epi32(self.mask >> 1),
        };
        let (offset, min, max) = (
            _mm512_set1_epi32(stage.output_offset),
            _mm512_set1_epi32(stage.act_min),
            _mm512_set1_epi32(stage.act_max),
        );
        for s in &mut sums {
            let y = _mm512_add_epi32(Avx512::requantize(*s, &terms), offset);
            *s = _mm512_min_epi32(_mm512_max_epi32(y, min), max);
        }
        sums
    }

    /// Single rounding: value by value through the stage.
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn finish_scalar(&self, acc: __m512i, stage: &OutputStage) -> __m512i {
        let mut sums = [0i32; LANES];
        _mm512_storeu_si512(sums.as_mut_ptr().cast(), acc);
        let y = sums.map(|s| stage.finish(s, self.channel) as i32);
        _mm512_loadu_si512(y.as_ptr().cast())
    }
}

/// Four rows' values (32-bit lanes, in int8 range) as one word per pixel,
/// row `j` in byte `j`.
#[inline(always)]
unsafe fn interleave([r0, r1, r2, r3]: [__m512i; ROWS]) -> __m512i {
    let byte = _mm512_set1_epi32(0xff);
    let low = |r: __m512i| _mm512_and_si512(r, byte);
    _mm512_or_si512(
        _mm512_or_si512(low(r0), _mm512_slli_epi32::<8>(low(r1))),
        _mm512_or_si512(
            _mm512_slli_epi32::<16>(low(r2)),
            _mm512_slli_epi32::<24>(r3),
        ),
    )
}
