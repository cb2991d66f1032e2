//! The AVX2 tiles: eight filters a vector (one 32-bit word each), counted
//! by nibble tables (VPSHUFB) into byte sums, which widen to 32 bits once
//! every 31 words (a byte holds up to 8 a word); two vectors of filters
//! against four pixels keep eight byte sums in registers.

use super::{tame, Layer, Tiles, PIXELS};
use crate::binary::x86::{affine8, byte_counts, dots8, round8, signs8};
use crate::binary::BinaryOutput;
use crate::geometry::ConvGeometry;
use core::arch::x86_64::*;

/// Filters a vector.
const LANES: usize = 8;

/// Words whose byte counts add up in one byte: 31 * 8 = 248.
const BYTE_WORDS: usize = 31;

/// The layer's tiles, the output form chosen once (its constants then stay
/// in registers across the layer).
///
/// # Safety
/// The CPU must have AVX2; `layer`'s padded image must hold every window
/// of `g`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn run(layer: &Layer, g: &ConvGeometry, output: &mut BinaryOutput) {
    use BinaryOutput as Out;
    let k = g.window.taps() * g.input.c as usize;
    match output {
        Out::Int8 {
            multiplier,
            bias,
            zero_point,
            clamp,
            out,
        } => {
            let (m, b, zero_point, clamp) = (*multiplier, *bias, *zero_point, *clamp);
            if tame(m, b, k) {
                emit_each(layer, g, Int8::<false>::new(m, b, zero_point, clamp, out))
            } else {
                emit_each(layer, g, Int8::<true>::new(m, b, zero_point, clamp, out))
            }
        }
        Out::Float {
            multiplier,
            bias,
            range,
            out,
        } => {
            let form = Float {
                m: multiplier,
                b: bias,
                range: (_mm256_set1_ps(range.0), _mm256_set1_ps(range.1)),
                given: *range,
                out,
            };
            emit_each(layer, g, form)
        }
        Out::Bits { thresholds, out } => emit_each(layer, g, Bits { thresholds, out }),
        Out::Dots(out) => emit_each(layer, g, Dots { out }),
    }
}

struct Avx2;

impl Tiles for Avx2 {
    type Sums = [__m256i; 2];

    #[inline(always)]
    unsafe fn count(
        layer: &Layer,
        origins: &[usize; PIXELS],
        group: usize,
    ) -> [[__m256i; 2]; PIXELS] {
        let rows = layer.lanes.as_ptr().add(group * layer.n * LANES);
        let next = rows.add(layer.n * LANES);
        let image = layer.padded.as_ptr();
        let mut sums = [[_mm256_setzero_si256(); 2]; PIXELS];
        for start in (0..layer.n).step_by(BYTE_WORDS) {
            let mut bytes = [[_mm256_setzero_si256(); 2]; PIXELS];
            let end = (start + BYTE_WORDS).min(layer.n);
            for (j, &offset) in layer.offsets[start..end].iter().enumerate() {
                let j = start + j;
                let a = _mm256_loadu_si256(rows.add(j * LANES).cast());
                let b = _mm256_loadu_si256(next.add(j * LANES).cast());
                for (bytes, &origin) in bytes.iter_mut().zip(origins) {
                    let word = _mm256_set1_epi32(*image.add(origin + offset) as i32);
                    let (ca, cb) = (
                        byte_counts(_mm256_xor_si256(a, word)),
                        byte_counts(_mm256_xor_si256(b, word)),
                    );
                    bytes[0] = _mm256_add_epi8(bytes[0], ca);
                    bytes[1] = _mm256_add_epi8(bytes[1], cb);
                }
            }
            for (sums, bytes) in sums.iter_mut().zip(&bytes) {
                for (sum, &bytes) in sums.iter_mut().zip(bytes) {
                    *sum = _mm256_add_epi32(*sum, lane_sums(bytes));
                }
            }
        }
        sums
    }
}

/// The four 32-bit sums of the byte counts of each lane.
#[inline(always)]
unsafe fn lane_sums(bytes: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// Every tile of the layer, emitted in `form`: sixteen channels at a time,
/// the last ones of a layer whose channels are not a multiple of sixteen
/// through the portable transforms.
#[inline(always)]
unsafe fn emit_each<F: Emit>(layer: &Layer, g: &ConvGeometry, mut form: F) {
    let oc = g.output.c as usize;
    layer.each_tile::<Avx2>(g, |at, first, mut pops: [__m256i; 2]| {
        let group = first / LANES;
        let (pixel, k) = layer.counted_pixel(g, at, |t| {
            for (half, pops) in pops.iter_mut().enumerate() {
                let counts = layer.tap_counts(g, group + half, t);
                *pops = _mm256_sub_epi32(*pops, _mm256_loadu_si256(counts.cast()));
            }
        });
        if first + 2 * LANES <= oc {
            form.emit16((pixel, oc, first), k, pops);
        } else {
            let mut counts = [0u32; 2 * LANES];
            _mm256_storeu_si256(counts.as_mut_ptr().cast(), pops[0]);
            _mm256_storeu_si256(counts.as_mut_ptr().add(LANES).cast(), pops[1]);
            form.output()
                .emit_block(pixel, oc, first, k, &counts[..oc - first]);
        }
    })
}

/// An output form: sixteen channels' counts `pops` as channels `c..c +
/// 16` of output pixel `pixel` (of `channels`), `dot = k - 2 pop`.
trait Emit {
    unsafe fn emit16(&mut self, at: (usize, usize, usize), k: i32, pops: [__m256i; 2]);

    /// The form as a [`BinaryOutput`], for the channels past the last
    /// sixteen.
    fn output(&mut self) -> BinaryOutput<'_, '_>;
}

struct Int8<'a, 'o, const GUARD: bool> {
    m: &'a [f32],
    b: &'a [f32],
    zero_point: __m256i,
    /// The clamp's bounds in every byte.
    clamp: (__m128i, __m128i),
    /// The zero point and clamp as given, for the portable transform.
    given: (i32, crate::int8::Clamp),
    out: &'o mut [i8],
}

impl<'a, 'o, const GUARD: bool> Int8<'a, 'o, GUARD> {
    #[inline(always)]
    unsafe fn new(
        m: &'a [f32],
        b: &'a [f32],
        zero_point: i32,
        clamp: crate::int8::Clamp,
        out: &'o mut [i8],
    ) -> Self {
        Int8 {
            m,
            b,
            zero_point: _mm256_set1_epi32(zero_point),
            clamp: (
                _mm_set1_epi8(clamp.min as i8),
                _mm_set1_epi8(clamp.max as i8),
            ),
            given: (zero_point, clamp),
            out,
        }
    }
}

impl<const GUARD: bool> Emit for Int8<'_, '_, GUARD> {
    #[inline(always)]
    unsafe fn emit16(
        &mut self,
        (pixel, channels, c): (usize, usize, usize),
        k: i32,
        pops: [__m256i; 2],
    ) {
        let (m, b) = (self.m[c..][..16].as_ptr(), self.b[c..][..16].as_ptr());
        let round = |y| _mm256_add_epi32(round8::<GUARD>(y), self.zero_point);
        let q0 = round(affine8(k, pops[0], m, b));
        let q1 = round(affine8(k, pops[1], m.add(LANES), b.add(LANES)));
        // The saturating packs and then the clamp in bytes give what the
        // clamp gives (its bounds are int8 values); the permutes undo the
        // packs' interleaving of 128-bit halves.
        let words = _mm256_permute4x64_epi64::<0xd8>(_mm256_packs_epi32(q0, q1));
        let bytes = _mm256_permute4x64_epi64::<0x08>(_mm256_packs_epi16(words, words));
        let (lo, hi) = self.clamp;
        let bytes = _mm_min_epi8(hi, _mm_max_epi8(lo, _mm256_castsi256_si128(bytes)));
        let out = self.out[pixel * channels + c..][..2 * LANES].as_mut_ptr();
        _mm_storeu_si128(out.cast(), bytes);
    }

    fn output(&mut self) -> BinaryOutput<'_, '_> {
        let (zero_point, clamp) = self.given;
        BinaryOutput::Int8 {
            multiplier: self.m,
            bias: self.b,
            zero_point,
            clamp,
            out: self.out,
        }
    }
}

struct Float<'a, 'o> {
    m: &'a [f32],
    b: &'a [f32],
    range: (__m256, __m256),
    given: crate::float::Range,
    out: &'o mut [f32],
}

impl Emit for Float<'_, '_> {
    #[inline(always)]
    unsafe fn emit16(
        &mut self,
        (pixel, channels, c): (usize, usize, usize),
        k: i32,
        pops: [__m256i; 2],
    ) {
        let (m, b) = (self.m[c..][..16].as_ptr(), self.b[c..][..16].as_ptr());
        let out = self.out[pixel * channels + c..][..2 * LANES].as_mut_ptr();
        let (lo, hi) = self.range;
        for (half, &pops) in pops.iter().enumerate() {
            let y = affine8(k, pops, m.add(half * LANES), b.add(half * LANES));
            // MAXPS(lo, y) keeps y unless lo > y, as `y < lo` in f32::clamp.
            let y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
            _mm256_storeu_ps(out.add(half * LANES), y);
        }
    }

    fn output(&mut self) -> BinaryOutput<'_, '_> {
        BinaryOutput::Float {
            multiplier: self.m,
            bias: self.b,
            range: self.given,
            out: self.out,
        }
    }
}

struct Bits<'a, 'o> {
    thresholds: &'a [i32],
    out: &'o mut [u32],
}

impl Emit for Bits<'_, '_> {
    #[inline(always)]
    unsafe fn emit16(
        &mut self,
        (pixel, channels, c): (usize, usize, usize),
        k: i32,
        pops: [__m256i; 2],
    ) {
        let t = self.thresholds[c..][..16].as_ptr();
        let below = signs8(k, pops[0], t) | signs8(k, pops[1], t.add(LANES)) << LANES;
        // Sixteen channels from a multiple of sixteen: never across a word.
        let words = crate::binary::words(channels);
        self.out[pixel * words + c / 32] |= below << (c % 32);
    }

    fn output(&mut self) -> BinaryOutput<'_, '_> {
        BinaryOutput::Bits {
            thresholds: self.thresholds,
            out: self.out,
        }
    }
}

struct Dots<'o> {
    out: &'o mut [i32],
}

impl Emit for Dots<'_> {
    #[inline(always)]
    unsafe fn emit16(
        &mut self,
        (pixel, channels, c): (usize, usize, usize),
        k: i32,
        pops: [__m256i; 2],
    ) {
        let out = self.out[pixel * channels + c..][..2 * LANES].as_mut_ptr();
        _mm256_storeu_si256(out.cast(), dots8(k, pops[0]));
        _mm256_storeu_si256(out.add(LANES).cast(), dots8(k, pops[1]));
    }

    fn output(&mut self) -> BinaryOutput<'_, '_> {
        BinaryOutput::Dots(self.out)
    }
}
