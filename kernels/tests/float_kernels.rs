//! The SIMD float kernels must equal the portable ones bit for bit (the
//! portable kernels sum in TFLite's order, which the LiteRT goldens check):
//! random shapes, paddings, dilations, activations and values, zeros and
//! signed zeros among them. The SIMD float kernels are x86-64's.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{geometry, Rng};
use kernels::float::portable;
use kernels::int8::DenseGeometry;
use proptest::prelude::*;

/// Random values: mostly in [-2, 2), some exact zeros of either sign.
fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.range(0, 15) {
            0 => 0.0,
            1 => -0.0,
            _ => (rng.unit() * 4.0 - 2.0) as f32,
        })
        .collect()
}

/// No clamp, ReLU, ReLU6 or a narrow range.
fn activation(choice: u8) -> (f32, f32) {
    match choice % 4 {
        0 => (f32::NEG_INFINITY, f32::INFINITY),
        1 => (0.0, f32::INFINITY),
        2 => (0.0, 6.0),
        _ => (-0.5, 0.5),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The tests every SIMD level's float kernels pass (`$level` names the
/// level's module of `kernels::float::x86`; a CPU without the level skips
/// them).
macro_rules! float_kernel_tests {
    ($level:ident, $isa:expr) => {
        mod $level {
            use super::*;
            use kernels::float::x86::$level as k;
            use kernels::x86::Isa;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn conv2d_equals_portable(
            n in 1u32..=2, h in 1u32..=9, w in 1u32..=12, ic in 1u32..=9, oc in 1u32..=40,
            kh in 1u32..=4, kw in 1u32..=4, sh in 1u32..=3, sw in 1u32..=3, dh in 1u32..=2, dw in 1u32..=2,
            padding in common::paddings(), with_bias: bool, act: u8, seed: u64,
        ) {
            if !$isa.is_available() { return Ok(()) }
            let Some(g) = geometry(n, h, w, ic, oc, (kh, kw), (sh, sw), (dh, dw), padding) else { return Ok(()) };
            let mut rng = Rng(seed);
            let input = values(&mut rng, g.input.elements().unwrap());
            let filter = values(&mut rng, oc as usize * g.depth());
            let bias = values(&mut rng, oc as usize);
            let bias = with_bias.then_some(&bias[..]);
            let mut want = vec![0.0; g.output.elements().unwrap()];
            let mut got = vec![f32::NAN; want.len()];
            portable::conv2d(&g, &input, &filter, bias, activation(act), &mut want);
            k::conv2d(&g, &input, &filter, bias, activation(act), &mut got);
            prop_assert_eq!(bits(&got), bits(&want));
            // Packed once, as a prepared model's filter is.
            let filter: &'static [f32] = filter.leak();
            kernels::float::x86::prepare_filter(&g, filter);
            let mut got = vec![f32::NAN; want.len()];
            k::conv2d(&g, &input, filter, bias, activation(act), &mut got);
            prop_assert_eq!(bits(&got), bits(&want), "prepared");
        }

        #[test]
        fn depthwise_conv2d_equals_portable(
            n in 1u32..=2, h in 1u32..=9, w in 1u32..=9, c in 1u32..=80,
            kh in 1u32..=5, kw in 1u32..=5, sh in 1u32..=2, sw in 1u32..=2, dh in 1u32..=2, dw in 1u32..=2,
            padding in common::paddings(), with_bias: bool, act: u8, seed: u64,
        ) {
            if !$isa.is_available() { return Ok(()) }
            let Some(g) = geometry(n, h, w, c, c, (kh, kw), (sh, sw), (dh, dw), padding) else { return Ok(()) };
            let mut rng = Rng(seed);
            let input = values(&mut rng, g.input.elements().unwrap());
            let filter = values(&mut rng, (kh * kw * c) as usize);
            let bias = values(&mut rng, c as usize);
            let bias = with_bias.then_some(&bias[..]);
            let mut want = vec![0.0; g.output.elements().unwrap()];
            let mut got = vec![f32::NAN; want.len()];
            portable::depthwise_conv2d(&g, 1, &input, &filter, bias, activation(act), &mut want);
            k::depthwise_conv2d(&g, &input, &filter, bias, activation(act), &mut got);
            prop_assert_eq!(bits(&got), bits(&want));
        }

        #[test]
        fn fully_connected_equals_portable(
            batch in 1u32..=6, in_features in 1u32..=70, out_features in 1u32..=40,
            with_bias: bool, act: u8, seed: u64,
        ) {
            if !$isa.is_available() { return Ok(()) }
            let g = DenseGeometry { batch, in_features, out_features };
            let mut rng = Rng(seed);
            let input = values(&mut rng, (batch * in_features) as usize);
            let weights = values(&mut rng, (out_features * in_features) as usize);
            let bias = values(&mut rng, out_features as usize);
            let bias = with_bias.then_some(&bias[..]);
            let mut want = vec![0.0; (batch * out_features) as usize];
            let mut got = vec![f32::NAN; want.len()];
            portable::fully_connected(&g, &input, &weights, bias, activation(act), &mut want);
            k::fully_connected(&g, &input, &weights, bias, activation(act), &mut got);
            prop_assert_eq!(bits(&got), bits(&want));
        }
    }

    /// NaN and infinities go through the clamp as `f32::clamp` takes them.
    #[test]
    fn non_finite_values_clamp_as_the_portable_kernels() {
        if !$isa.is_available() {
            return;
        }
        let g = DenseGeometry {
            batch: 1,
            in_features: 3,
            out_features: 9,
        };
        let input = [1.0, f32::NAN, 2.0];
        let mut weights = vec![0.5f32; 27];
        weights[..3].copy_from_slice(&[1.0, 0.0, 1.0]);
        weights[3..6].copy_from_slice(&[f32::INFINITY, 1.0, 1.0]);
        let input_finite = [1.0, -3.0, f32::INFINITY];
        for (x, act) in [(input, (0.0, 6.0)), (input_finite, (-1.0, 1.0))] {
            let (mut want, mut got) = (vec![0.0; 9], vec![0.0; 9]);
            portable::fully_connected(&g, &x, &weights, None, act, &mut want);
            k::fully_connected(&g, &x, &weights, None, act, &mut got);
            assert_eq!(bits(&got), bits(&want), "input {x:?}");
        }
    }

    /// A padded layer whose weights are not all finite: `0 * inf` would be
    /// NaN in the padding, so the kernel must give the portable kernel's
    /// outputs (which skip padded taps) all the same.
    #[test]
    fn padded_layers_with_non_finite_weights_equal_portable() {
        if !$isa.is_available() {
            return;
        }
        let same = kernels::geometry::Padding::Same;
        let g = geometry(1, 5, 7, 3, 20, (3, 3), (1, 1), (1, 1), same).unwrap();
        let mut rng = Rng(7);
        let input = values(&mut rng, g.input.elements().unwrap());
        let mut filter = values(&mut rng, 20 * g.depth());
        filter[4] = f32::INFINITY;
        filter[40] = f32::NAN;
        let mut want = vec![0.0; g.output.elements().unwrap()];
        let mut got = vec![0.0; want.len()];
        portable::conv2d(&g, &input, &filter, None, activation(0), &mut want);
        k::conv2d(&g, &input, &filter, None, activation(0), &mut got);
        assert_eq!(bits(&got), bits(&want));
        let filter: &'static [f32] = filter.leak();
        kernels::float::x86::prepare_filter(&g, filter);
        k::conv2d(&g, &input, filter, None, activation(0), &mut got);
        assert_eq!(bits(&got), bits(&want), "prepared");
        let g = geometry(1, 5, 7, 20, 20, (3, 3), (1, 1), (1, 1), same).unwrap();
        let input = values(&mut rng, g.input.elements().unwrap());
        let mut filter = values(&mut rng, 9 * 20);
        filter[0] = f32::NEG_INFINITY;
        let mut want = vec![0.0; g.output.elements().unwrap()];
        let mut got = vec![0.0; want.len()];
        portable::depthwise_conv2d(&g, 1, &input, &filter, None, activation(0), &mut want);
        k::depthwise_conv2d(&g, &input, &filter, None, activation(0), &mut got);
        assert_eq!(bits(&got), bits(&want));
    }
        }
    };
}

float_kernel_tests!(avx2, Isa::Avx2);
float_kernel_tests!(avx512, Isa::Avx512);
