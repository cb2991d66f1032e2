//! The sparse convolution with 32 output pixels a group: the receptive
//! fields of sixteen pixels at a time are read (in place from a padded
//! copy of the input where a kernel row is a run of whole sixteens of
//! values, else gathered) and transposed so that each field element holds
//! its pixels' values side by side, widened to
//! 16 bits with the input offset added (`|x + offset| <= 255`, padding 0);
//! every pair of an output channel's non-zeros is then one VPUNPCK and one
//! VPMADDWD per eight pixels over the two elements' values, the pair's
//! weights and entries loaded once for all 32. The requantization runs on
//! the eight lanes of one channel.

use super::gemm::{pad_image, Bytes};
use super::planar::{Layout, Planar};
use super::simd::{Avx2, Simd, Terms};
use crate::geometry::ConvGeometry;
use crate::int8::conv::gather;
use crate::int8::OutputStage;
use crate::quant::Rounding;
use crate::sparse::{Csr, Field};
use crate::x86::Copies;
use core::arch::x86_64::*;
use std::vec::Vec;

/// Output pixels per vector of sums.
const LANES: usize = 8;

/// Pixels transposed at a time (16x16 byte transposes).
const HALF: usize = 16;

/// Output pixels per group.
pub(super) const GROUP: usize = 2 * HALF;

/// One output channel's non-zeros by pairs: where the two field elements
/// each pair reads lie and the two weights in one word (the first in the
/// low half), as VPMADDWD multiplies them.
struct Pairs {
    /// Values from a group's first to each pair's two elements'.
    at: Vec<(u32, u32)>,
    /// `w_first | w_second << 16` of each pair.
    weights: Vec<i32>,
    /// Where each channel's pairs start, plus the end.
    start: Vec<usize>,
}

impl Pairs {
    /// Every channel's non-zeros by pairs (an odd one pairs with a zero
    /// weight at element 0), field element `k` at `place(k)`.
    fn new(field: &Field, oc: usize, place: impl Fn(usize) -> usize) -> Pairs {
        let mut pairs = Pairs {
            at: Vec::with_capacity(field.nonzeros() / 2 + oc),
            weights: Vec::with_capacity(field.nonzeros() / 2 + oc),
            start: Vec::with_capacity(oc + 1),
        };
        for o in 0..oc {
            pairs.start.push(pairs.at.len());
            let mut pending = None;
            field.for_each_element(o, |k, w| match pending.take() {
                None => pending = Some((place(k), w)),
                Some(first) => pairs.push(first, (place(k), w)),
            });
            if let Some(first) = pending {
                pairs.push(first, (place(0), 0));
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

/// The pairs of prepared models' filters, made once ([`prepare`]): on
/// ResNet-8's 8x8x64 layer at 80% zeros, making them took about a third of
/// each call. Keyed as [`crate::sparse::prepared`]'s dense copies.
static PREPARED: Copies<crate::sparse::prepared::Key, Pairs> = Copies::new();

/// Makes the pairs of a `'static` filter once, for every later call (a
/// prepared model's, whose memory is never freed nor changed); nothing
/// for entries that do not fit `g` (left for the kernel's check).
pub(super) fn prepare(g: &ConvGeometry, filter: &Csr<'static>) {
    if crate::sparse::check_filter(g, filter).is_err() {
        return;
    }
    let key = crate::sparse::prepared::key(g, filter);
    PREPARED.get_or_make(key, || Pairs::made(g, filter));
}

impl Pairs {
    /// `filter`'s pairs where `g`'s fields are read ([`Source`]).
    fn made(g: &ConvGeometry, filter: &Csr) -> Pairs {
        let field = Field::new(g, filter);
        let oc = g.output.c as usize;
        if Layout::fits(g) {
            let elements = Layout::new(g).elements();
            return Pairs::new(&field, oc, |k| elements[k] as usize);
        }
        Pairs::new(&field, oc, |k| k * GROUP)
    }
}

/// Whether `filter`'s pairs were made for `g` by [`prepare`], its entries
/// checked then.
pub(super) fn is_prepared(g: &ConvGeometry, filter: &Csr) -> bool {
    PREPARED
        .find(&crate::sparse::prepared::key(g, filter))
        .is_some()
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
    let made;
    let pairs = match PREPARED.find(&crate::sparse::prepared::key(g, filter)) {
        Some(pairs) => pairs,
        None => {
            made = Pairs::made(g, filter);
            &made
        }
    };
    // The widened values hold the input offset: the sums need the bias only.
    let base: Vec<i32> = (0..oc).map(|o| bias.map_or(0, |b| b[o])).collect();
    let terms: Vec<Terms<__m256i>> = stage
        .requant
        .iter()
        .map(|&r| Terms::uniform::<Avx2>(r, 0))
        .collect();
    let channels = Channels {
        pairs,
        base: &base,
        terms: &terms,
        stage,
    };
    let mut tile = std::vec![0i8; oc * GROUP];
    if Layout::fits(g) {
        let layout = Layout::new(g);
        let planar = Planar::new(g, layout, input, stage.input_offset);
        for first in (0..layout.positions()).step_by(GROUP) {
            channels.tile(planar.at(first), &mut tile);
            let to = layout.output_pixels(first);
            transpose_out(&tile, oc, &to, output.as_mut_ptr());
        }
        return;
    }
    let pad = (-stage.input_offset) as i8;
    let source = Source::new(g, input, stage.input_offset);
    let mut columns = match source {
        Source::Gathered => std::vec![pad; depth * GROUP],
        _ => Vec::new(),
    };
    let mut lanes = std::vec![0i16; depth * GROUP];
    let pixels = g.output.pixels().unwrap_or(0);
    for first in (0..pixels).step_by(GROUP) {
        let n = GROUP.min(pixels - first);
        // Lanes past the last pixel repeat it; their sums are not stored.
        let mut fields = [input.as_ptr(); GROUP];
        let mut positions = g.output_positions(first);
        let mut last = (0, 0, 0);
        for (j, field) in fields.iter_mut().enumerate() {
            if j < n {
                last = positions.next().unwrap_or(last);
            }
            let (b, oy, ox) = last;
            *field = match &source {
                // A 1x1 window's field is its pixel's `depth` channels.
                Source::Rows => input.as_ptr().add(g.padded_origin(last)),
                Source::Padded { image, .. } => image.as_ptr().add(source.origin(g, b, oy, ox)),
                Source::Gathered => {
                    let column = &mut columns[j * depth..][..depth];
                    if j < n {
                        gather(g, input, b, oy, ox, pad, column);
                    }
                    columns.as_ptr().add(j.min(n - 1) * depth)
                }
            };
        }
        let runs = source.runs(g);
        widen_into(&fields, depth, runs, stage.input_offset, lanes.as_mut_ptr());
        channels.tile(lanes.as_ptr(), &mut tile);
        // The tile's rows are channels: transposed, pixels.
        let to = core::array::from_fn(|j| (j < n).then_some(first + j));
        transpose_out(&tile, oc, &to, output.as_mut_ptr());
    }
}

/// What every group's output channels need: their pairs, bias and
/// requantization.
struct Channels<'a> {
    pairs: &'a Pairs,
    base: &'a [i32],
    terms: &'a [Terms<__m256i>],
    stage: &'a OutputStage<'a>,
}

impl Channels<'_> {
    /// Every channel's outputs of the group whose values start at `lanes`
    /// (each pair's `at` on) into `tile` (`oc` rows of 32 pixels).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn tile(&self, lanes: *const i16, tile: &mut [i8]) {
        let pairs = self.pairs;
        for o in 0..self.base.len() {
            let range = pairs.start[o]..pairs.start[o + 1];
            let sums = dot32(lanes, &pairs.at[range.clone()], &pairs.weights[range]);
            let row = tile.as_mut_ptr().add(o * GROUP);
            for (v, sums) in sums.into_iter().enumerate() {
                let acc = _mm256_add_epi32(sums, _mm256_set1_epi32(self.base[o]));
                finish(self.stage, &self.terms[o], o, acc, row.add(v * LANES));
            }
        }
    }
}

/// Where the fields of a layer's pixels are read.
enum Source {
    /// 1x1 windows, strided or not: each pixel's input row.
    Rows,
    /// In place from a copy of the input with the padding written out
    /// (the zero point), where a kernel row is a run of whole sixteens of
    /// values: a field is `kernel_h` such runs.
    Padded {
        image: Vec<i8>,
        /// Padded rows and columns per image.
        size: (usize, usize),
    },
    /// Gathered pixel by pixel.
    Gathered,
}

impl Source {
    /// Where `g`'s fields are read from, the padded copy made here.
    ///
    /// # Safety
    /// The CPU must have AVX2; `input` must be `g`'s.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn new(g: &ConvGeometry, input: &[i8], offset: i32) -> Source {
        let (ic, w) = (g.input.c as usize, &g.window);
        if g.single_pixel_windows() {
            return Source::Rows;
        }
        if w.dilation_w != 1 || !(w.kernel_w as usize * ic).is_multiple_of(HALF) {
            return Source::Gathered;
        }
        let (rows, columns) = g.window_span();
        let per_image = rows * columns * ic;
        let mut image = std::vec![0i8; g.output.n as usize * per_image];
        for (b, padded) in image.chunks_exact_mut(per_image).enumerate() {
            let image = &input[b * g.input.features()..];
            pad_image::<Bytes>(g, image, offset, (rows, columns, ic), padded.as_mut_ptr());
        }
        Source::Padded {
            image,
            size: (rows, columns),
        }
    }

    /// Where pixel `(b, oy, ox)`'s field starts in the padded image.
    fn origin(&self, g: &ConvGeometry, b: u32, oy: u32, ox: u32) -> usize {
        let Source::Padded {
            size: (rows, columns),
            ..
        } = *self
        else {
            return 0;
        };
        let (w, ic) = (&g.window, g.input.c as usize);
        let (y, x) = ((oy * w.stride_h) as usize, (ox * w.stride_w) as usize);
        ((b as usize * rows + y) * columns + x) * ic
    }

    /// A field's runs: their length and how far apart they start.
    fn runs(&self, g: &ConvGeometry) -> (usize, usize) {
        match *self {
            Source::Padded {
                size: (_, columns), ..
            } => {
                let (w, ic) = (&g.window, g.input.c as usize);
                let run = w.kernel_w as usize * ic;
                (run, w.dilation_h as usize * columns * ic)
            }
            _ => (g.depth(), g.depth()),
        }
    }
}

/// Writes `depth` values of each of the 32 `fields`, transposed and
/// widened, plus `offset`, to `lanes`: element `k` of field `j` at
/// `k * 32 + j`. A field is runs of `runs.0` values `runs.1` apart (sixteen
/// values never cross a run). Sixteen fields and sixteen elements at a
/// time by 16x16 byte transposes, the rest one by one.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn widen_into(
    fields: &[*const i8; GROUP],
    depth: usize,
    (run, stride): (usize, usize),
    offset: i32,
    lanes: *mut i16,
) {
    let at = |k: usize| k / run * stride + k % run;
    let wide_offset = _mm256_set1_epi16(offset as i16);
    for half in 0..GROUP / HALF {
        let fields = &fields[half * HALF..][..HALF];
        let lanes = lanes.add(half * HALF);
        let mut k = 0;
        while k + HALF <= depth {
            let mut rows = [_mm_setzero_si128(); HALF];
            for (row, field) in rows.iter_mut().zip(fields) {
                *row = _mm_loadu_si128(field.add(at(k)).cast());
            }
            for (i, v) in transpose16(rows).into_iter().enumerate() {
                let wide = _mm256_add_epi16(_mm256_cvtepi8_epi16(v), wide_offset);
                _mm256_storeu_si256(lanes.add((k + i) * GROUP).cast(), wide);
            }
            k += HALF;
        }
        for k in k..depth {
            for (j, field) in fields.iter().enumerate() {
                let x = field.add(at(k)).read() as i32 + offset;
                lanes.add(k * GROUP + j).write(x as i16);
            }
        }
    }
}

/// Stores the pixels of `tile` (`oc` rows of 32 pixels) that are outputs
/// (`to[j]`: pixel `j`'s output pixel) as pixels of `oc` channels from
/// `out`: sixteen channels and pixels at a time by 16x16 byte
/// transposes, the rest one by one.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose_out(tile: &[i8], oc: usize, to: &[Option<usize>; GROUP], out: *mut i8) {
    for half in 0..GROUP / HALF {
        let first = half * HALF;
        let to = &to[first..first + HALF];
        if to.iter().all(Option::is_none) {
            continue;
        }
        let mut o = 0;
        while o + HALF <= oc {
            let mut rows = [_mm_setzero_si128(); HALF];
            for (i, row) in rows.iter_mut().enumerate() {
                *row = _mm_loadu_si128(tile.as_ptr().add((o + i) * GROUP + first).cast());
            }
            for (v, to) in transpose16(rows).into_iter().zip(to) {
                if let Some(p) = to {
                    _mm_storeu_si128(out.add(p * oc + o).cast(), v);
                }
            }
            o += HALF;
        }
        for o in o..oc {
            for (j, to) in to.iter().enumerate() {
                if let Some(p) = to {
                    out.add(p * oc + o).write(tile[o * GROUP + first + j]);
                }
            }
        }
    }
}

/// The transpose of a 16x16 byte matrix (one row per vector): four rounds
/// of interleaving row pairs, bytes, then pairs, quads and halves.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose16(r: [__m128i; 16]) -> [__m128i; 16] {
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

/// The 32 pixels' sums of one channel's pairs over the widened fields
/// from `lanes` (a field element's 32 values side by side, each pair's
/// `at` on), eight per vector in order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot32(lanes: *const i16, at: &[(u32, u32)], weights: &[i32]) -> [__m256i; 4] {
    // acc[2h]: pixels 16h + 0-3 and 8-11; acc[2h + 1]: 4-7 and 12-15.
    let mut acc = [_mm256_setzero_si256(); 4];
    for (&(k0, k1), &w) in at.iter().zip(weights) {
        let x0 = lanes.add(k0 as usize);
        let x1 = lanes.add(k1 as usize);
        let w = _mm256_set1_epi32(w);
        for half in 0..GROUP / HALF {
            let a = _mm256_loadu_si256(x0.add(half * HALF).cast());
            let b = _mm256_loadu_si256(x1.add(half * HALF).cast());
            // Pixel j's two values side by side in 16-bit lane pair j.
            let low = _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), w);
            let high = _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), w);
            acc[2 * half] = _mm256_add_epi32(acc[2 * half], low);
            acc[2 * half + 1] = _mm256_add_epi32(acc[2 * half + 1], high);
        }
    }
    [
        _mm256_permute2x128_si256::<0x20>(acc[0], acc[1]),
        _mm256_permute2x128_si256::<0x31>(acc[0], acc[1]),
        _mm256_permute2x128_si256::<0x20>(acc[2], acc[3]),
        _mm256_permute2x128_si256::<0x31>(acc[2], acc[3]),
    ]
}

/// Requantizes one channel's eight sums and stores them at `out`.
#[inline]
#[target_feature(enable = "avx2")]
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
