//! Every int8 kernel implementation must equal the naive TFLite-reference
//! oracle bit for bit. `int8_kernel_suite!` generates the property tests for
//! one implementation; architecture-specific kernels add one line below.
//! `kernels::int8` is the implementation the target compiles: the portable
//! kernels on the host, the Armv7 DSP kernels when these tests run under
//! `qemu-arm` for `thumbv7neon-unknown-linux-gnueabihf` (`scripts/test.sh`).

mod common;

use common::{geometry, Quant, Rng};
use kernels::geometry::{ConvGeometry, Padding, Shape};
use kernels::int8::{AddParams, Clamp, DenseGeometry, PoolRounding, SoftmaxParams};
use kernels::naive;
use proptest::prelude::*;

/// Generates the bit-exactness property tests for one module of int8 kernels.
/// `$available` says whether this machine can run them (tests pass
/// vacuously where it cannot).
macro_rules! int8_kernel_suite {
    ($suite:ident, $k:path, $available:expr, $built_with:meta) => {
        mod $suite {
            use super::*;
            use $k as k;

            /// A convolution of `g` (no filter offset, with a bias) over
            /// values drawn from `seed`, against the naive kernel.
            fn conv_with_bias_matches(g: &ConvGeometry, seed: u64) -> Result<(), TestCaseError> {
                let oc = g.output.c as usize;
                let mut rng = Rng(seed);
                let q = Quant::random(&mut rng, oc);
                let input = rng.i8s(g.input.elements().unwrap());
                let filter = rng.i8s(oc * g.depth());
                let bias = rng.i32s(oc, 20_000);
                let mut want = vec![0; g.output.elements().unwrap()];
                let mut got = vec![0; want.len()];
                naive::conv2d(g, &q.stage(), &input, &filter, Some(&bias), &mut want);
                k::conv2d(g, &q.stage(), &input, &filter, Some(&bias), &mut got).unwrap();
                prop_assert_eq!(got, want);
                Ok(())
            }

            /// A depthwise convolution of `g` (multiplier 1, with a bias)
            /// over values drawn from `seed`, against the naive kernel.
            fn depthwise_with_bias_matches(g: &ConvGeometry, seed: u64) -> Result<(), TestCaseError> {
                let c = g.output.c as usize;
                let mut rng = Rng(seed);
                let q = Quant::random_with_filter_offset(&mut rng, c);
                let input = rng.i8s(g.input.elements().unwrap());
                let filter = rng.i8s(g.window.taps() * c);
                let bias = rng.i32s(c, 20_000);
                let mut want = vec![0; g.output.elements().unwrap()];
                let mut got = vec![0; want.len()];
                naive::depthwise_conv2d(g, 1, &q.stage(), &input, &filter, Some(&bias), &mut want);
                k::depthwise_conv2d(g, 1, &q.stage(), &input, &filter, Some(&bias), &mut got).unwrap();
                prop_assert_eq!(got, want);
                Ok(())
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(160))]

                /// Receptive fields near the deepest the gathered-field
                /// kernels take, whose channels the kernels pad to whole
                /// steps past it (a 3x3 window over 453 channels is 4,077
                /// values, 4,104 padded): they must still be right, and
                /// stay inside the kernels' buffers.
                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn deep_fields_match_reference(
                    k in 1u32..=3, extra in 0u32..=12, oc in 1u32..=20, h in 1u32..=4, w in 1u32..=4,
                    padding in common::paddings(), seed: u64,
                ) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    // Channels from just below to just above 4096 / k^2.
                    let ic = (4096 / (k * k)).saturating_sub(6) + extra;
                    let Some(g) = geometry(1, h, w, ic, oc, (k, k), (1, 1), (1, 1), padding) else { return Ok(()) };
                    conv_with_bias_matches(&g, seed)?;
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn conv2d_matches_reference(
                    n in 1u32..=2, h in 1u32..=9, w in 1u32..=9, ic in 1u32..=12, oc in 1u32..=40,
                    kh in 1u32..=4, kw in 1u32..=4, sh in 1u32..=3, sw in 1u32..=3, dh in 1u32..=2, dw in 1u32..=2,
                    padding in common::paddings(), with_bias: bool, seed: u64,
                ) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    let Some(g) = geometry(n, h, w, ic, oc, (kh, kw), (sh, sw), (dh, dw), padding) else { return Ok(()) };
                    let mut rng = Rng(seed);
                    let q = Quant::random_with_filter_offset(&mut rng, oc as usize);
                    let input = rng.i8s(g.input.elements().unwrap());
                    let filter = rng.i8s(oc as usize * g.depth());
                    let bias = rng.i32s(oc as usize, 20_000);
                    let bias = with_bias.then_some(&bias[..]);
                    let mut want = vec![0; g.output.elements().unwrap()];
                    let mut got = vec![0; want.len()];
                    naive::conv2d(&g, &q.stage(), &input, &filter, bias, &mut want);
                    k::conv2d(&g, &q.stage(), &input, &filter, bias, &mut got).unwrap();
                    prop_assert_eq!(got, want);
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn deep_conv2d_matches_reference(
                    h in 2u32..=6, w in 2u32..=6, ic in 37u32..=80, oc in 1u32..=9, padding in common::paddings(), with_bias: bool, seed: u64,
                ) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    // Receptive fields of 592 to 1280 values: past the
                    // gathered columns, the per-tap path.
                    let Some(g) = geometry(1, h, w, ic, oc, (4, 4), (1, 1), (1, 1), padding) else { return Ok(()) };
                    let mut rng = Rng(seed);
                    let q = Quant::random_with_filter_offset(&mut rng, oc as usize);
                    let input = rng.i8s(g.input.elements().unwrap());
                    let filter = rng.i8s(oc as usize * g.depth());
                    let bias = rng.i32s(oc as usize, 20_000);
                    let bias = with_bias.then_some(&bias[..]);
                    let mut want = vec![0; g.output.elements().unwrap()];
                    let mut got = vec![0; want.len()];
                    naive::conv2d(&g, &q.stage(), &input, &filter, bias, &mut want);
                    k::conv2d(&g, &q.stage(), &input, &filter, bias, &mut got).unwrap();
                    prop_assert_eq!(got, want);
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn depthwise_conv2d_matches_reference(
                    n in 1u32..=2, h in 1u32..=9, w in 1u32..=9, ic in 1u32..=70, m in 1u32..=3,
                    kh in 1u32..=4, kw in 1u32..=9, sh in 1u32..=3, sw in 1u32..=3, dh in 1u32..=2, dw in 1u32..=2,
                    padding in common::paddings(), with_bias: bool, zero_blocks in prop_oneof![0.0f64..=0.0, 0.0f64..1.0], seed: u64,
                ) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    let Some(g) = geometry(n, h, w, ic, ic * m, (kh, kw), (sh, sw), (dh, dw), padding) else { return Ok(()) };
                    let mut rng = Rng(seed);
                    let q = Quant::random_with_filter_offset(&mut rng, g.output.c as usize);
                    let input = rng.i8s(g.input.elements().unwrap());
                    let mut filter = rng.i8s(g.window.taps() * g.output.c as usize);
                    // Blocks of four channels at one tap zeroed, as block
                    // pruning leaves them (kernels may skip them).
                    for block in filter.chunks_mut(4) {
                        if rng.unit() < zero_blocks {
                            block.fill(0);
                        }
                    }
                    let bias = rng.i32s(g.output.c as usize, 20_000);
                    let bias = with_bias.then_some(&bias[..]);
                    let mut want = vec![0; g.output.elements().unwrap()];
                    let mut got = vec![0; want.len()];
                    naive::depthwise_conv2d(&g, m, &q.stage(), &input, &filter, bias, &mut want);
                    k::depthwise_conv2d(&g, m, &q.stage(), &input, &filter, bias, &mut got).unwrap();
                    prop_assert_eq!(got, want);
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn wide_depthwise_conv2d_matches_reference(h in 1u32..=4, w in 1u32..=4, c in 250u32..=300, k in 1u32..=3, padding in common::paddings(), seed: u64) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    // More channels than the x86 kernels requantize at once (256).
                    let Some(g) = geometry(1, h, w, c, c, (k, k), (1, 1), (1, 1), padding) else { return Ok(()) };
                    depthwise_with_bias_matches(&g, seed)?;
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn large_map_depthwise_conv2d_matches_reference(
                    h in 20u32..=30, w in 20u32..=30, blocks in 1u32..=2, k in 1u32..=5, s in 1u32..=2, d in 1u32..=2, padding in common::paddings(), seed: u64,
                ) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    // Maps of 400 to 900 output pixels over whole blocks of 64
                    // channels: where the AVX-512 kernels lay the input out
                    // as quads of taps (from 512 pixels) and where not.
                    let c = 64 * blocks;
                    let Some(g) = geometry(1, h, w, c, c, (k, k), (1, 1), (d, d), padding) else { return Ok(()) };
                    let g = if s == 1 { g } else {
                        let Some(g) = geometry(1, h * 2, w * 2, c, c, (k, k), (2, 2), (d, d), padding) else { return Ok(()) };
                        g
                    };
                    depthwise_with_bias_matches(&g, seed)?;
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn fully_connected_matches_reference(batch in 1u32..=3, k_in in 1u32..=300, k_out in 1u32..=40, with_bias: bool, seed: u64) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    let g = DenseGeometry { batch, in_features: k_in, out_features: k_out };
                    let mut rng = Rng(seed);
                    let q = Quant::random_with_filter_offset(&mut rng, k_out as usize);
                    let input = rng.i8s((batch * k_in) as usize);
                    let weights = rng.i8s((k_out * k_in) as usize);
                    let bias = rng.i32s(k_out as usize, 50_000);
                    let bias = with_bias.then_some(&bias[..]);
                    let mut want = vec![0; (batch * k_out) as usize];
                    let mut got = vec![0; want.len()];
                    naive::fully_connected(&g, &q.stage(), &input, &weights, bias, &mut want);
                    k::fully_connected(&g, &q.stage(), &input, &weights, bias, &mut got).unwrap();
                    prop_assert_eq!(got, want);
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn pools_match_reference(
                    n in 1u32..=2, h in 1u32..=10, w in 1u32..=10, c in 1u32..=70,
                    kh in 1u32..=4, kw in 1u32..=4, sh in 1u32..=3, sw in 1u32..=3, padding in common::paddings(), lo in -128i32..=127, hi in -128i32..=127, seed: u64,
                ) {
                    let Some(g) = geometry(n, h, w, c, c, (kh, kw), (sh, sw), (1, 1), padding) else { return Ok(()) };
                    let clamp = Clamp { min: lo.min(hi), max: lo.max(hi) };
                    let input = Rng(seed).i8s(g.input.elements().unwrap());
                    let mut want = vec![0; g.output.elements().unwrap()];
                    let mut got = vec![0; want.len()];
                    for rounding in [PoolRounding::AwayFromZero, PoolRounding::Up] {
                        naive::avg_pool(&g, clamp, rounding, &input, &mut want);
                        k::avg_pool(&g, clamp, rounding, &input, &mut got).unwrap();
                        prop_assert_eq!(&got, &want);
                    }
                    naive::max_pool(&g, clamp, &input, &mut want);
                    k::max_pool(&g, clamp, &input, &mut got).unwrap();
                    prop_assert_eq!(&got, &want);
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn add_matches_reference(len in 1usize..=1500, s1 in 1e-3f32..1.0, s2 in 1e-3f32..1.0, so in 1e-3f32..2.0,
                                         z1 in -128i32..=127, z2 in -128i32..=127, zo in -128i32..=127, relu: bool, seed: u64) {
                                             prop_assert!($available, "this CPU lacks the kernels' instructions");
                    let act = if relu { (zo, 127) } else { (-128, 127) };
                    let p = AddParams::new((s1, z1), (s2, z2), (so, zo), act);
                    let mut rng = Rng(seed);
                    let (a, b) = (rng.i8s(len), rng.i8s(len));
                    // TFLite's headroom of 20 bits, and a small one (other arithmetic on x86).
                    for p in [p, AddParams { left_shift: 4, ..p }] {
                        let mut want = vec![0; len];
                        let mut got = vec![0; len];
                        naive::add(&p, &a, &b, &mut want);
                        k::add(&p, &a, &b, &mut got).unwrap();
                        prop_assert_eq!(got, want);
                    }
                }

                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn softmax_matches_reference(rows in 1usize..=4, depth in 1usize..=40, scale in 1e-3f32..1.0, beta in 0.5f32..2.0, seed: u64) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    let p = SoftmaxParams::new(beta, scale);
                    let input = Rng(seed).i8s(rows * depth);
                    let mut want = vec![0; rows * depth];
                    let mut got = vec![0; rows * depth];
                    naive::softmax(&p, depth, &input, &mut want);
                    k::softmax(&p, depth, &input, &mut got).unwrap();
                    prop_assert_eq!(got, want);
                }
            }
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(12))]

                /// Inputs of more than 64 Ki values (a MobileNet's first
                /// layers), whose fields the x86 kernels read in place from
                /// a padded copy in a per-thread buffer rather than gather
                /// pixel by pixel.
                #[test]
                #[cfg_attr(not($built_with), ignore = "this CPU lacks the kernels' instructions")]
                fn large_map_conv2d_matches_reference(
                    h in 130u32..=160, w in 130u32..=160, ic in 3u32..=6, oc in 1u32..=8, k in 1u32..=3, s in 1u32..=2,
                    padding in common::paddings(), seed: u64,
                ) {
                    prop_assert!($available, "this CPU lacks the kernels' instructions");
                    let Some(g) = geometry(1, h, w, ic, oc, (k, k), (s, s), (1, 1), padding) else { return Ok(()) };
                    conv_with_bias_matches(&g, seed)?;
                }
            }
        }
    };
}

int8_kernel_suite!(selected, kernels::int8, true, all());
#[cfg(target_arch = "x86_64")]
int8_kernel_suite!(
    avx2,
    kernels::int8::x86::avx2,
    kernels::x86::Isa::Avx2.is_available(),
    host_avx2
);
#[cfg(target_arch = "x86_64")]
int8_kernel_suite!(
    avx512,
    kernels::int8::x86::avx512,
    kernels::x86::Isa::Avx512.is_available(),
    host_avx512
);

/// The int8 softmax approximates the real softmax of the dequantized input
/// to within 1/256 (one output step) plus the fixed-point error.
#[test]
fn softmax_tracks_float_softmax() {
    let scale = 0.1f32;
    let p = SoftmaxParams::new(1.0, scale);
    let input: Vec<i8> = vec![-100, -20, 0, 5, 10, 30, 31, 127, -128, 64];
    let mut got = vec![0i8; input.len()];
    kernels::int8::softmax(&p, input.len(), &input, &mut got).unwrap();
    let max = input
        .iter()
        .map(|&q| q as f64 * scale as f64)
        .fold(f64::MIN, f64::max);
    let sum: f64 = input
        .iter()
        .map(|&q| (q as f64 * scale as f64 - max).exp())
        .sum();
    for (&q, &y) in input.iter().zip(&got) {
        let want = (q as f64 * scale as f64 - max).exp() / sum;
        let have = (y as f64 + 128.0) / 256.0;
        assert!(
            (want - have).abs() <= 1.0 / 256.0,
            "p({q}) = {want}, int8 gives {have}"
        );
    }
}

/// Hand-computed int8 convolution: one 2x2 VALID window, per-channel scales.
#[test]
fn conv2d_golden_values() {
    let g = ConvGeometry::new(
        Shape::new(1, 2, 2, 1),
        2,
        (2, 2),
        (1, 1),
        (1, 1),
        Padding::Valid,
    );
    let input = [1i8, 2, 3, 4]; // zero point -1 -> values 2, 3, 4, 5
    let filter = [1i8, 1, 1, 1, -1, 0, 0, 2];
    let requant = [
        kernels::quant::quantize_multiplier(0.5),
        kernels::quant::quantize_multiplier(0.25),
    ];
    let stage = kernels::int8::OutputStage {
        input_offset: 1,
        filter_offset: 0,
        output_offset: 3,
        requant: &requant,
        act_min: -128,
        act_max: 127,
        rounding: kernels::quant::Rounding::Double,
    };
    let mut out = [0i8; 2];
    kernels::int8::conv2d(&g, &stage, &input, &filter, Some(&[10, -3]), &mut out).unwrap();
    // channel 0: (2+3+4+5 + 10) * 0.5 + 3 = 15.
    // channel 1: (-2 + 10 - 3) = 5, times 0.25 = (2^30, shift -1). TFLite rounds
    // twice: SRDHM(5, 2^30) = round(2.5) = 3, then 3 / 2 = 1.5 rounds to 2; + 3 = 5
    // (a single rounding of 1.25 would give 4).
    assert_eq!(out, [15, 5]);
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    let g = ConvGeometry::new(
        Shape::new(1, 4, 4, 3),
        2,
        (3, 3),
        (1, 1),
        (1, 1),
        Padding::Same,
    );
    let q = Quant::random(&mut Rng(1), 2);
    let mut out = vec![0i8; 32];
    let err =
        kernels::int8::conv2d(&g, &q.stage(), &[0; 47], &[0; 54], None, &mut out).unwrap_err();
    assert_eq!(err.to_string(), "input holds 47 elements, expected 48");
    let err = kernels::int8::conv2d(&g, &q.stage(), &[0; 48], &[0; 54], Some(&[0]), &mut out)
        .unwrap_err();
    assert_eq!(err.to_string(), "bias holds 1 elements, expected 2");
}

/// kernels/build.rs decides which ISA suites are ignored with its own copy
/// of `Isa::is_available`'s feature lists (a build script cannot call the
/// crate): on the machine that built the tests, both must agree.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_build_scripts_isa_view_is_the_runtime_check() {
    assert_eq!(cfg!(host_avx2), kernels::x86::Isa::Avx2.is_available());
    assert_eq!(cfg!(host_avx512), kernels::x86::Isa::Avx512.is_available());
}
