//! The int16 (16x8) convolutions and dense layer against the plain
//! definition: every product summed in int64 over the in-bounds taps, then
//! TFLite's 64-bit rescale. Random shapes, paddings, strides, dilations
//! and depth multipliers, values at the int16 and int8 extremes among
//! them, windows long enough for several int32 runs, and windows of more
//! than 511 taps (the depthwise kernel's int64 path).

mod common;

use common::{geometry, Rng};
use kernels::geometry::ConvGeometry;
use kernels::int16::{self, wide, Rescale, Stage16};
use kernels::int8::{Clamp, DenseGeometry};
use kernels::quant::{quantize_multiplier, Requant};
use proptest::prelude::*;

/// Random values, one in four at an end of the type's range.
fn i16s(rng: &mut Rng, n: usize) -> Vec<i16> {
    (0..n)
        .map(|_| match rng.range(0, 7) {
            0 => i16::MIN,
            1 => i16::MAX,
            _ => rng.next_u64() as i16,
        })
        .collect()
}

fn i8s(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| match rng.range(0, 7) {
            0 => i8::MIN,
            _ => rng.next_u64() as i8,
        })
        .collect()
}

/// Per-channel multipliers small enough that some outputs land inside
/// the int16 range.
fn requants(rng: &mut Rng, n: usize, depth: usize) -> Vec<Requant> {
    (0..n)
        .map(|_| {
            let scale = rng.unit() * 4.0 / (depth as f64 * 4.0e3);
            quantize_multiplier(scale.max(1e-9))
        })
        .collect()
}

/// The definition: `out[o] = rescale(bias[o] + sum(w * x))` in int64.
fn reference(
    g: &ConvGeometry,
    multiplier: Option<u32>,
    stage: &Stage16,
    input: &[i16],
    filter: &[i8],
) -> Vec<i16> {
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let mut out = vec![0i16; g.output.elements().unwrap()];
    let Rescale::Multiplier(requant) = stage.rescale else {
        unreachable!()
    };
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let mut acc = 0i64;
            g.for_each_tap(b, oy, ox, |tap, at| {
                acc += match multiplier {
                    Some(m) => {
                        i64::from(filter[tap * oc + o]) * i64::from(input[at * ic + o / m as usize])
                    }
                    None => (0..ic)
                        .map(|c| {
                            let w = filter[(o * g.window.taps() + tap) * ic + c];
                            i64::from(w) * i64::from(input[at * ic + c])
                        })
                        .sum(),
                };
            });
            let bias = stage.bias.map_or(0, |b| {
                (u64::from(b[o][0]) | u64::from(b[o][1]) << 32) as i64
            });
            let r = requant[o];
            let v = int16::multiply_by_quantized_multiplier_64(acc + bias, r.multiplier, r.shift);
            out[pixel * oc + o] = v.clamp(stage.clamp.min.into(), stage.clamp.max.into()) as i16;
        }
    });
    out
}

fn stage<'a>(requant: &'a [Requant], bias: Option<&'a [[u32; 2]]>, relu: bool) -> Stage16<'a> {
    Stage16 {
        bias,
        rescale: Rescale::Multiplier(requant),
        clamp: if relu {
            Clamp { min: 0, max: 32767 }
        } else {
            int16::FULL
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn conv2d_equals_the_definition(
        n in 1u32..=2, h in 1u32..=8, w in 1u32..=8, ic in 1u32..=40, oc in 1u32..=12,
        kh in 1u32..=4, kw in 1u32..=5, sh in 1u32..=2, sw in 1u32..=3, dh in 1u32..=2, dw in 1u32..=2,
        padding in common::paddings(), multiplier in 0u32..=3, with_bias: bool, relu: bool, seed: u64,
    ) {
        // Depthwise with multiplier 1 to 3 (its output channels are
        // input channels x multiplier), or a dense convolution.
        let depthwise = (multiplier > 0).then_some(multiplier);
        let oc = depthwise.map_or(oc, |m| ic.min(12) * m);
        let ic = if depthwise.is_some() { ic.min(12) } else { ic };
        let Some(g) = geometry(n, h, w, ic, oc, (kh, kw), (sh, sw), (dh, dw), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let input = i16s(&mut rng, g.input.elements().unwrap());
        let per_filter = if depthwise.is_some() { g.window.taps() } else { g.depth() };
        let filter = i8s(&mut rng, oc as usize * per_filter);
        let requant = requants(&mut rng, oc as usize, per_filter);
        let bias: Vec<[u32; 2]> = (0..oc).map(|_| wide(rng.range(-1 << 40, 1 << 40) as u64)).collect();
        let stage = stage(&requant, with_bias.then_some(&bias[..]), relu);
        let mut got = vec![0i16; g.output.elements().unwrap()];
        int16::conv2d(&g, depthwise, &stage, &input, &filter, &mut got).unwrap();
        prop_assert_eq!(got, reference(&g, depthwise, &stage, &input, &filter));
    }
}

/// Dot products of more than 511 terms (several int32 runs), all at the
/// extremes where int32 would overflow, and a depthwise window of 600
/// taps (summed in int64).
#[test]
fn long_sums_stay_exact() {
    let mut rng = Rng(11);
    let g = geometry(
        1,
        3,
        3,
        700,
        3,
        (3, 3),
        (1, 1),
        (1, 1),
        kernels::geometry::Padding::Same,
    )
    .unwrap();
    let input = vec![i16::MIN; g.input.elements().unwrap()];
    let filter = vec![i8::MIN; 3 * g.depth()];
    let requant = requants(&mut rng, 3, g.depth());
    let stage = stage(&requant, None, false);
    let mut got = vec![0i16; g.output.elements().unwrap()];
    int16::conv2d(&g, None, &stage, &input, &filter, &mut got).unwrap();
    assert_eq!(got, reference(&g, None, &stage, &input, &filter));

    let g = geometry(
        1,
        20,
        30,
        2,
        2,
        (20, 30),
        (1, 1),
        (1, 1),
        kernels::geometry::Padding::Valid,
    )
    .unwrap();
    let input = vec![i16::MIN; g.input.elements().unwrap()];
    let filter = vec![i8::MIN; 2 * g.window.taps()];
    let requant = requants(&mut rng, 2, g.window.taps());
    let stage = self::stage(&requant, None, false);
    let mut got = vec![0i16; 2];
    int16::conv2d(&g, Some(1), &stage, &input, &filter, &mut got).unwrap();
    assert_eq!(got, reference(&g, Some(1), &stage, &input, &filter));

    let dense = DenseGeometry {
        batch: 2,
        in_features: 1500,
        out_features: 3,
    };
    let input = vec![i16::MIN; 3000];
    let filter = vec![i8::MIN; 4500];
    let requant = [quantize_multiplier(1e-7)];
    let Requant { multiplier, shift } = requant[0];
    let stage = self::stage(&requant, None, false);
    let mut got = vec![0i16; 6];
    int16::fully_connected(&dense, &stage, &input, &filter, &mut got).unwrap();
    let acc = 1500 * 32768i64 * 128;
    let want = int16::multiply_by_quantized_multiplier_64(acc, multiplier, shift)
        .clamp(-32768, 32767) as i16;
    assert_eq!(got, vec![want; 6]);
}
