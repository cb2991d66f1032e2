//! The sparse convolution with sixteen output pixels in two AVX2 vectors:
//! the receptive fields of sixteen pixels are gathered and transposed so
//! that each field element holds its pixels' values side by side (16
//! bytes), and every pair of an output channel's non-zeros is two
//! VPMADDWD over the two elements' interleaved bytes, eight pixels each.
//! The requantization runs on the eight lanes of one channel.

use super::simd::{Avx2, Simd, Terms};
use crate::geometry::ConvGeometry;
use crate::int8::conv::gather;
use crate::int8::OutputStage;
use crate::quant::Rounding;
use crate::sparse::{Csr, Field};
use core::arch::x86_64::*;
use std::vec::Vec;

/// Output pixels per vector.
const LANES: usize = 8;

/// Output pixels per group: two vectors.
const GROUP: usize = 2 * LANES;

/// One output channel's non-zeros by pairs: the two field elements each
/// pair reads and the two weights in one word (the first in the low half),
/// as VPMADDWD multiplies them.
struct Pairs {
    /// Field elements `(first, second)` of each pair.
    at: Vec<(u32, u32)>,
    /// `w_first | w_second << 16` of each pair.
    weights: Vec<i32>,
    /// Where each channel's pairs start, plus the end.
    start: Vec<usize>,
}

impl Pairs {
    /// Every channel's non-zeros by pairs (an odd one pairs with a zero
    /// weight at element 0).
    fn new(field: &Field, oc: usize) -> Pairs {
        let mut pairs = Pairs {
            at: Vec::with_capacity(field.nonzeros() / 2 + oc),
            weights: Vec::with_capacity(field.nonzeros() / 2 + oc),
            start: Vec::with_capacity(oc + 1),
        };
        for o in 0..oc {
            pairs.start.push(pairs.at.len());
            let mut pending = None;
            field.for_each_element(o, |k, w| match pending.take() {
                None => pending = Some((k, w)),
                Some(first) => pairs.push(first, (k, w)),
            });
            if let Some(first) = pending {
                pairs.push(first, (0, 0));
            }
        }
        pairs.start.push(pairs.at.len());
        pairs
    }

    fn push(&mut self, (k0, w0): (usize, i8), (k1, w1): (usize, i8)) {
        self.at.push((k0 as u32, k1 as u32));
        self.weights
            .push((w0 as u16 as u32 | (w1 as u16 as u32) << 16) as i32);
    }
}

/// The sparse convolution (arguments checked by the caller) on AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (oc, depth) = (g.output.c as usize, g.depth());
    let field = Field::new(g, filter);
    let pairs = Pairs::new(&field, oc);
    // Bias plus the input offset times the weights' sum: padded elements
    // hold the input's zero point, `-offset`, so every product is of the
    // raw input and the offset enters once per channel.
    let base: Vec<i32> = (0..oc)
        .map(|o| {
            let offset = field.weight_sum(o).wrapping_mul(stage.input_offset);
            bias.map_or(0, |b| b[o]).wrapping_add(offset)
        })
        .collect();
    let terms: Vec<Terms<__m256i>> = stage
        .requant
        .iter()
        .map(|&r| Terms::uniform::<Avx2>(r, 0))
        .collect();
    let pad = (-stage.input_offset) as i8;
    // A pointwise layer's fields are its input pixels; others are gathered.
    let pointwise = crate::sparse::is_pointwise(g);
    let mut columns = std::vec![pad; if pointwise { 0 } else { depth * GROUP }];
    let mut lanes = std::vec![0i8; depth * GROUP];
    let mut tile = std::vec![0i8; oc * GROUP];
    let (oh, ow) = (g.output.h, g.output.w);
    let pixels = (g.output.n * oh * ow) as usize;
    for first in (0..pixels).step_by(GROUP) {
        let n = GROUP.min(pixels - first);
        // Lanes past the last pixel repeat it; their sums are not stored.
        let fields: [*const i8; GROUP] = core::array::from_fn(|j| {
            let p = first + j.min(n - 1);
            if pointwise {
                return input.as_ptr().add(p * depth);
            }
            let column = &mut columns[j * depth..][..depth];
            if j < n {
                let (b, oy, ox) = (p as u32 / (oh * ow), p as u32 / ow % oh, p as u32 % ow);
                gather(g, input, b, oy, ox, pad, column);
            }
            columns.as_ptr().add(j.min(n - 1) * depth)
        });
        transpose_into(&fields, depth, lanes.as_mut_ptr());
        for o in 0..oc {
            let range = pairs.start[o]..pairs.start[o + 1];
            let acc = dot16(&lanes, &pairs.at[range.clone()], &pairs.weights[range]);
            let row = tile.as_mut_ptr().add(o * GROUP);
            for (half, acc) in acc.into_iter().enumerate() {
                let acc = Avx2::add(acc, Avx2::splat(base[o]));
                finish(stage, &terms[o], o, acc, row.add(half * LANES));
            }
        }
        // The tile's rows are channels: transposed, pixels.
        transpose_out(&tile, oc, n, output.as_mut_ptr().add(first * oc));
    }
}

/// Writes `depth` values of each of the 16 `fields` transposed to `lanes`:
/// element `k` of field `j` at `k * 16 + j`. Sixteen elements at a time
/// by 16x16 byte transposes, the rest one by one.
#[inline(always)]
unsafe fn transpose_into(fields: &[*const i8; GROUP], depth: usize, lanes: *mut i8) {
    let mut k = 0;
    while k + GROUP <= depth {
        let rows = fields.map(|f| _mm_loadu_si128(f.add(k).cast()));
        for (i, v) in transpose16(rows).into_iter().enumerate() {
            _mm_storeu_si128(lanes.add((k + i) * GROUP).cast(), v);
        }
        k += GROUP;
    }
    for k in k..depth {
        for (j, f) in fields.iter().enumerate() {
            lanes.add(k * GROUP + j).write(f.add(k).read());
        }
    }
}

/// Stores the first `n` pixels of `tile` (`oc` rows of 16 pixels) as
/// pixels of `oc` channels at `out`: 16 channels at a time by 16x16 byte
/// transposes, the rest one by one.
#[inline(always)]
unsafe fn transpose_out(tile: &[i8], oc: usize, n: usize, out: *mut i8) {
    let mut o = 0;
    while o + GROUP <= oc {
        let rows: [__m128i; GROUP] =
            core::array::from_fn(|i| _mm_loadu_si128(tile.as_ptr().add((o + i) * GROUP).cast()));
        for (j, v) in transpose16(rows).into_iter().take(n).enumerate() {
            _mm_storeu_si128(out.add(j * oc + o).cast(), v);
        }
        o += GROUP;
    }
    for o in o..oc {
        for j in 0..n {
            out.add(j * oc + o).write(tile[o * GROUP + j]);
        }
    }
}

/// The transpose of a 16x16 byte matrix (one row per vector): four rounds
/// of interleaving row pairs, bytes, then pairs, quads and halves.
#[inline(always)]
unsafe fn transpose16(r: [__m128i; 16]) -> [__m128i; 16] {
    let mut a = [_mm_setzero_si128(); 16];
    for i in 0..8 {
        a[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
        a[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
    }
    let mut b = [_mm_setzero_si128(); 16];
    for i in 0..8 {
        b[i] = _mm_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
        b[i + 8] = _mm_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
    }
    for i in 0..8 {
        a[i] = _mm_unpacklo_epi32(b[2 * i], b[2 * i + 1]);
        a[i + 8] = _mm_unpackhi_epi32(b[2 * i], b[2 * i + 1]);
    }
    for i in 0..8 {
        b[i] = _mm_unpacklo_epi64(a[2 * i], a[2 * i + 1]);
        b[i + 8] = _mm_unpackhi_epi64(a[2 * i], a[2 * i + 1]);
    }
    // The rounds leave column c in vector bit-reverse(c) (4 bits).
    [
        b[0], b[8], b[4], b[12], b[2], b[10], b[6], b[14], b[1], b[9], b[5], b[13], b[3], b[11],
        b[7], b[15],
    ]
}

/// The sixteen pixels' sums of one channel's pairs over the transposed
/// fields `lanes` (16 bytes per field element), eight per vector.
#[inline(always)]
unsafe fn dot16(lanes: &[i8], at: &[(u32, u32)], weights: &[i32]) -> [__m256i; 2] {
    let (mut low, mut high) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for (&(k0, k1), &w) in at.iter().zip(weights) {
        debug_assert!((k0.max(k1) as usize + 1) * GROUP <= lanes.len());
        let x0 = _mm_loadu_si128(lanes.as_ptr().add(k0 as usize * GROUP).cast());
        let x1 = _mm_loadu_si128(lanes.as_ptr().add(k1 as usize * GROUP).cast());
        let w = _mm256_set1_epi32(w);
        // Pixel j's two values side by side in 16-bit lane pair j.
        let x = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1));
        low = _mm256_add_epi32(low, _mm256_madd_epi16(x, w));
        let x = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1));
        high = _mm256_add_epi32(high, _mm256_madd_epi16(x, w));
    }
    [low, high]
}

/// Requantizes one channel's eight sums and stores them at `out`.
#[inline(always)]
unsafe fn finish(
    stage: &OutputStage,
    terms: &Terms<__m256i>,
    o: usize,
    acc: __m256i,
    out: *mut i8,
) {
    if matches!(stage.rounding, Rounding::Double) {
        let y = Avx2::requantize(acc, terms);
        return Avx2::store_i8(
            y,
            stage.output_offset,
            stage.act_min,
            stage.act_max,
            LANES,
            out,
        );
    }
    let mut sums = [0i32; LANES];
    Avx2::store32(acc, sums.as_mut_ptr());
    for (j, &s) in sums.iter().enumerate() {
        out.add(j).write(stage.finish(s, o));
    }
}
