//! The AVX2 block kernel's inputs: where a group of output pixels
//! finds its receptive fields, and their quads widened to 16 bits (input
//! offset added) in the layout the kernel multiplies, quad `q` of pixels
//! `4v..4v + 4` in vector `q * VECTORS + v`.
//!
//! A field is read as runs of whole quads: a 1x1 window's is its input
//! pixel's row; a window whose kernel rows are contiguous runs of
//! whole quads is read in place from a padded copy of the input, already
//! widened (as the dense kernels' is); any other is gathered first.

use super::super::gemm::pad_image;
use super::super::simd::Avx2;
use super::avx2::{GROUP, PIXELS, VECTORS};
use crate::geometry::ConvGeometry;
use crate::int8::conv::gather;
use crate::sparse::blocks::BLOCK;
use core::arch::x86_64::*;
use std::vec::Vec;

/// Quads widened at a time: four of a pixel per load.
const CHUNK: usize = 4;

/// A group's receptive fields (see the module).
pub(super) struct Fields<'a> {
    g: ConvGeometry,
    offset: i32,
    source: Source<'a>,
}

enum Source<'a> {
    /// 1x1 windows (pointwise and dense layers, strided shortcuts): each
    /// pixel's input row in place.
    Rows(&'a [i8]),
    /// The padded input widened to 16 bits (`x + offset`, padding 0):
    /// a field is `kernel_h` runs of `kernel_w * ic` values.
    Padded {
        image: Vec<i16>,
        /// Padded rows and columns per image.
        size: (usize, usize),
        /// Each kernel row's start from a field's first value.
        runs: Vec<usize>,
    },
    /// The pixels' fields gathered into one buffer (padding at the zero
    /// point, `x + offset = 0`).
    Gathered { input: &'a [i8], fields: Vec<i8> },
}

impl<'a> Fields<'a> {
    /// The fields of `g`'s output pixels over `input`.
    ///
    /// # Safety
    /// The CPU must have AVX2; `input` must be `g`'s.
    #[target_feature(enable = "avx2")]
    pub unsafe fn new(g: &ConvGeometry, input: &'a [i8], offset: i32) -> Fields<'a> {
        let (ic, w) = (g.input.c as usize, &g.window);
        let (kh, kw) = (w.kernel_h as usize, w.kernel_w as usize);
        let source = if g.single_pixel_windows() {
            Source::Rows(input)
        } else if w.dilation_w == 1 && (kw * ic).is_multiple_of(BLOCK) {
            let (rows, columns) = g.window_span();
            let per_image = rows * columns * ic;
            let mut image = std::vec![0i16; g.output.n as usize * per_image];
            for (b, padded) in image.chunks_exact_mut(per_image).enumerate() {
                // `padded` holds `rows x columns x ic` values.
                pad_image::<Avx2>(
                    g,
                    &input[b * g.input.features()..],
                    offset,
                    (rows, columns, ic),
                    padded.as_mut_ptr(),
                );
            }
            let row = w.dilation_h as usize * columns * ic;
            Source::Padded {
                image,
                size: (rows, columns),
                runs: (0..kh).map(|ky| ky * row).collect(),
            }
        } else {
            Source::Gathered {
                input,
                fields: std::vec![(-offset) as i8; GROUP * g.depth()],
            }
        };
        Fields {
            g: *g,
            offset,
            source,
        }
    }

    /// Widens the fields of the `n <= GROUP` pixels from `first` into
    /// `wide` (which holds the field's quads plus one chunk); lanes past
    /// `n` repeat the last pixel.
    ///
    /// # Safety
    /// The CPU must have AVX2; the pixels must be the layer's.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn widen(&mut self, first: usize, n: usize, wide: &mut [__m256i]) {
        let g = &self.g;
        let depth = g.depth();
        // Lanes past `n` repeat the last pixel.
        let mut at = [(0, 0, 0); GROUP];
        for (at, position) in at.iter_mut().zip(g.output_positions(first)).take(n) {
            *at = position;
        }
        for j in n..GROUP {
            at[j] = at[n - 1];
        }
        let offset = _mm256_set1_epi16(self.offset as i16);
        match &mut self.source {
            Source::Rows(input) => {
                let mut rows = [input.as_ptr(); GROUP];
                // A 1x1 window's field is its pixel's `depth` channels.
                for (row, &at) in rows.iter_mut().zip(&at) {
                    *row = input.as_ptr().add(g.padded_origin(at));
                }
                widen_runs(&rows, &[0], depth / BLOCK, offset, wide);
            }
            Source::Padded { image, size, runs } => {
                let (rows, columns) = *size;
                let (ic, w) = (g.input.c as usize, &g.window);
                let mut bases = [image.as_ptr(); GROUP];
                for (base, &(b, oy, ox)) in bases.iter_mut().zip(&at) {
                    let (b, oy, ox) = (b as usize, oy as usize, ox as usize);
                    let y = oy * w.stride_h as usize;
                    let pixel = (b * rows + y) * columns + ox * w.stride_w as usize;
                    *base = image.as_ptr().add(pixel * ic);
                }
                let run_quads = w.kernel_w as usize * ic / BLOCK;
                widen_runs(&bases, runs, run_quads, offset, wide);
            }
            Source::Gathered { input, fields } => {
                let pad = (-self.offset) as i8;
                for (j, &(b, oy, ox)) in at.iter().enumerate().take(n) {
                    let field = &mut fields[j * depth..][..depth];
                    gather(g, input, b, oy, ox, pad, field);
                }
                let mut rows = [fields.as_ptr(); GROUP];
                for (j, row) in rows.iter_mut().enumerate() {
                    *row = fields.as_ptr().add(j.min(n - 1) * depth);
                }
                widen_runs(&rows, &[0], depth / BLOCK, offset, wide);
            }
        }
    }
}

/// A value type fields are read from: a chunk of one to four quads at a
/// pointer, as sixteen 16-bit lanes (`x + offset`; lanes past the chunk 0).
trait Value: Copy {
    unsafe fn chunk(at: *const Self, quads: usize, offset: __m256i) -> __m256i;
}

// The implementations are compiled for AVX2 themselves: one inlined
// without would leave its intrinsics as calls.
impl Value for i8 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn chunk(at: *const i8, quads: usize, offset: __m256i) -> __m256i {
        let bytes = match quads {
            4 => _mm_loadu_si128(at.cast()),
            1 => _mm_cvtsi32_si128(at.cast::<i32>().read_unaligned()),
            2 => _mm_loadl_epi64(at.cast()),
            _ => _mm_insert_epi32::<2>(
                _mm_loadl_epi64(at.cast()),
                at.add(8).cast::<i32>().read_unaligned(),
            ),
        };
        _mm256_add_epi16(_mm256_cvtepi8_epi16(bytes), offset)
    }
}

impl Value for i16 {
    /// Already widened, the offset added.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn chunk(at: *const i16, quads: usize, _offset: __m256i) -> __m256i {
        match quads {
            4 => _mm256_loadu_si256(at.cast()),
            1 => _mm256_zextsi128_si256(_mm_loadl_epi64(at.cast())),
            2 => _mm256_zextsi128_si256(_mm_loadu_si128(at.cast())),
            _ => _mm256_inserti128_si256::<1>(
                _mm256_zextsi128_si256(_mm_loadu_si128(at.cast())),
                _mm_loadl_epi64(at.add(8).cast()),
            ),
        }
    }
}

/// Widens runs of `run_quads` quads starting `runs[r]` values after each
/// of the group's `bases`, run after run, into `wide`: four quads of four
/// pixels at a time by a 4x4 transpose of 64-bit elements. A run's last
/// chunk may write zeros past it, which the next run overwrites (and
/// `wide`'s extra chunk takes after the last).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn widen_runs<T: Value>(
    bases: &[*const T; GROUP],
    runs: &[usize],
    run_quads: usize,
    offset: __m256i,
    wide: &mut [__m256i],
) {
    debug_assert!(wide.len() >= (runs.len() * run_quads + CHUNK) * VECTORS);
    for (r, &start) in runs.iter().enumerate() {
        let out = wide.as_mut_ptr().add(r * run_quads * VECTORS);
        for k in 0..run_quads.div_ceil(CHUNK) {
            let quads = (run_quads - k * CHUNK).min(CHUNK);
            for v in 0..VECTORS {
                let mut rows = [_mm256_setzero_si256(); PIXELS];
                for (i, row) in rows.iter_mut().enumerate() {
                    let at = bases[v * PIXELS + i].add(start + k * CHUNK * BLOCK);
                    *row = T::chunk(at, quads, offset);
                }
                let low01 = _mm256_unpacklo_epi64(rows[0], rows[1]);
                let high01 = _mm256_unpackhi_epi64(rows[0], rows[1]);
                let low23 = _mm256_unpacklo_epi64(rows[2], rows[3]);
                let high23 = _mm256_unpackhi_epi64(rows[2], rows[3]);
                let at = out.add(k * CHUNK * VECTORS + v);
                at.write(_mm256_permute2x128_si256::<0x20>(low01, low23));
                at.add(VECTORS)
                    .write(_mm256_permute2x128_si256::<0x20>(high01, high23));
                at.add(2 * VECTORS)
                    .write(_mm256_permute2x128_si256::<0x31>(low01, low23));
                at.add(3 * VECTORS)
                    .write(_mm256_permute2x128_si256::<0x31>(high01, high23));
            }
        }
    }
}

/// Quads a group's widened fields take: the field's, plus the chunk a
/// run's last load may write past it.
pub(super) fn wide_quads(g: &ConvGeometry) -> usize {
    g.depth() / BLOCK + CHUNK
}
