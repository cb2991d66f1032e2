//! The AVX-512 tiles: sixteen filters a vector, counted by VPOPCNTD, the
//! output form chosen once per layer (its constants then stay in
//! registers) as on AVX2: through the shared transform of sixteen values
//! a call, matched on the form at every call, the output took more than
//! the counting on DS-CNN's 64-channel pointwise layers.

use super::{tame, Layer, Tiles, PIXELS};
use crate::binary::x86::forms512::{Bits, Dots, Emit, Float, Int8};
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
            let form = Int8::new(multiplier, bias, *zero_point, *clamp, out);
            match tame(multiplier, bias, k) {
                true => emit_each::<_, false>(layer, g, form),
                false => emit_each::<_, true>(layer, g, form),
            }
        }
        Out::Float {
            multiplier,
            bias,
            range,
            out,
        } => emit_each::<_, false>(layer, g, Float::new(multiplier, bias, *range, out)),
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
