//! The AVX-512 tiles: sixteen filters a vector, counted by VPOPCNTD, the
//! output form chosen once per layer (its constants then stay in
//! registers) as on AVX2: through the shared transform of sixteen values
//! a call, matched on the form at every call, the output took more than
//! the counting on DS-CNN's 64-channel pointwise layers.

use super::{tame, Layer, Tiles, PIXELS};
use crate::binary::x86::{affine16, dots16, round16, words16};
use crate::binary::BinaryOutput;
use crate::geometry::ConvGeometry;
use core::arch::x86_64::*;

/// Filters a vector.
const LANES: usize = 16;

/// The layer's tiles.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VPOPCNTDQ; `layer`'s padded
/// image must hold every window of `g`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
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
            let (m, b) = (*multiplier, *bias);
            let form = |out| Int8 {
                m,
                b,
                zero_point: _mm512_set1_epi32(*zero_point),
                clamp: (_mm512_set1_epi32(clamp.min), _mm512_set1_epi32(clamp.max)),
                out,
            };
            match tame(m, b, k) {
                true => emit_each::<_, false>(layer, g, form(out)),
                false => emit_each::<_, true>(layer, g, form(out)),
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
                range: (_mm512_set1_ps(range.0), _mm512_set1_ps(range.1)),
                out,
            };
            emit_each::<_, false>(layer, g, form)
        }
        Out::Bits { thresholds, out } => emit_each::<_, false>(layer, g, Bits { thresholds, out }),
        Out::Dots(out) => emit_each::<_, false>(layer, g, Dots { out }),
    }
}

/// Every tile of the layer, emitted in `form` sixteen channels at a time
/// (the last of a layer whose channels are not a multiple of sixteen
/// under a mask); `GUARD` as [`Int8::emit`] takes it.
#[inline(always)]
unsafe fn emit_each<F: Emit, const GUARD: bool>(layer: &Layer, g: &ConvGeometry, mut form: F) {
    let oc = g.output.c as usize;
    layer.each_tile::<Avx512>(g, |at, first, mut pops| {
        let group = first / LANES;
        let (pixel, k) = layer.counted_pixel(g, at, |t| {
            for (half, pops) in pops.iter_mut().enumerate() {
                let counts = layer.tap_counts(g, group + half, t);
                *pops = _mm512_sub_epi32(*pops, _mm512_loadu_si512(counts.cast()));
            }
        });
        for (half, &pops) in pops.iter().enumerate() {
            let c = first + half * LANES;
            if c < oc {
                let len = (oc - c).min(LANES);
                form.emit::<GUARD>((pixel * oc + c, c, len), (pixel, oc), k, pops);
            }
        }
    })
}

/// An output form: sixteen channels' counts `pops` (the first `len`
/// real) as channels `c..` of output pixel `pixel` (of `channels`), at
/// element `at` of an output of values, `dot = k - 2 pop`.
trait Emit {
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        at_c_len: (usize, usize, usize),
        pixel_channels: (usize, usize),
        k: i32,
        pops: __m512i,
    );
}

struct Int8<'a, 'o> {
    m: &'a [f32],
    b: &'a [f32],
    zero_point: __m512i,
    clamp: (__m512i, __m512i),
    out: &'o mut [i8],
}

impl Emit for Int8<'_, '_> {
    /// [`crate::binary::int8_value`] of sixteen values: `m * dot + b`
    /// rounded, the zero point added and clamped; without `GUARD` (a layer
    /// whose outputs are all finite and within +-1e9, [`tame`]) NaN and
    /// overflow are not looked for.
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (at, c, len): (usize, usize, usize),
        _: (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let mask = words16(len);
        let r = round16::<GUARD>(affine16(k, pops, (self.m, self.b), c, mask));
        let (lo, hi) = self.clamp;
        let q = _mm512_min_epi32(
            hi,
            _mm512_max_epi32(lo, _mm512_add_epi32(r, self.zero_point)),
        );
        // Narrowed in a register, then stored: VPMOVDB to memory is
        // microcoded on AMD's Zen 4.
        let out = self.out[at..][..len].as_mut_ptr();
        _mm_mask_storeu_epi8(out, mask, _mm512_cvtepi32_epi8(q));
    }
}

struct Float<'a, 'o> {
    m: &'a [f32],
    b: &'a [f32],
    range: (__m512, __m512),
    out: &'o mut [f32],
}

impl Emit for Float<'_, '_> {
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (at, c, len): (usize, usize, usize),
        _: (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let mask = words16(len);
        let y = affine16(k, pops, (self.m, self.b), c, mask);
        // MAXPS(lo, y) keeps y unless lo > y, as `y < lo` in f32::clamp.
        let (lo, hi) = self.range;
        let y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
        _mm512_mask_storeu_ps(self.out[at..][..len].as_mut_ptr(), mask, y);
    }
}

struct Bits<'a, 'o> {
    thresholds: &'a [i32],
    out: &'o mut [u32],
}

impl Emit for Bits<'_, '_> {
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (_, c, len): (usize, usize, usize),
        (pixel, channels): (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let mask = words16(len);
        let t = _mm512_maskz_loadu_epi32(mask, self.thresholds[c..][..len].as_ptr().cast());
        let below = _mm512_mask_cmpgt_epi32_mask(mask, t, dots16(k, pops));
        // Sixteen channels from a multiple of sixteen: never across a word.
        let words = crate::binary::words(channels);
        self.out[pixel * words + c / 32] |= (below as u32) << (c % 32);
    }
}

struct Dots<'o> {
    out: &'o mut [i32],
}

impl Emit for Dots<'_> {
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (at, _, len): (usize, usize, usize),
        _: (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let out = self.out[at..][..len].as_mut_ptr();
        _mm512_mask_storeu_epi32(out.cast(), words16(len), dots16(k, pops));
    }
}

struct Avx512;

impl Tiles for Avx512 {
    type Sums = [__m512i; 2];

    #[inline(always)]
    unsafe fn count(
        layer: &Layer,
        origins: &[usize; PIXELS],
        group: usize,
    ) -> [[__m512i; 2]; PIXELS] {
        let rows = layer.lanes.as_ptr().add(group * layer.n * LANES);
        let next = rows.add(layer.n * LANES);
        let image = layer.padded.as_ptr();
        let mut sums = [[_mm512_setzero_si512(); 2]; PIXELS];
        for (j, &offset) in layer.offsets.iter().enumerate() {
            let a = _mm512_loadu_si512(rows.add(j * LANES).cast());
            let b = _mm512_loadu_si512(next.add(j * LANES).cast());
            for (sum, &origin) in sums.iter_mut().zip(origins) {
                let word = _mm512_set1_epi32(*image.add(origin + offset) as i32);
                sum[0] = _mm512_add_epi32(sum[0], _mm512_popcnt_epi32(_mm512_xor_si512(a, word)));
                sum[1] = _mm512_add_epi32(sum[1], _mm512_popcnt_epi32(_mm512_xor_si512(b, word)));
            }
        }
        sums
    }
}
