//! The AVX-512 tiles: sixteen filters a vector, counted by VPOPCNTD.

use super::{Layer, Tiles, PIXELS};
use crate::binary::x86::emit16;
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
                emit16(output, (pixel, oc, c), (oc - c).min(LANES), k, pops);
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
