//! Binary, int4, sparse and float kernels against exact references.

mod common;

use common::{geometry, Quant, Rng};
use kernels::binary::{self, BinaryOutput, BinaryPadding};
use kernels::geometry::Padding;
use kernels::int8::{Clamp, DenseGeometry};
use kernels::{float, int4, naive, sparse};
use proptest::prelude::*;

fn pack_signs(signs: &[f32], channels: usize) -> Vec<u32> {
    let mut packed = vec![0u32; signs.len() / channels * binary::words(channels)];
    binary::pack_f32(signs, channels, &mut packed).unwrap();
    packed
}

/// Sets random bits past the last channel of every packed pixel.
fn with_unused_bits(mut packed: Vec<u32>, channels: usize, rng: &mut Rng) -> Vec<u32> {
    if !channels.is_multiple_of(32) {
        let unused = !((1u32 << (channels % 32)) - 1);
        for pixel in packed.chunks_exact_mut(binary::words(channels)) {
            *pixel.last_mut().unwrap() |= rng.next_u64() as u32 & unused;
        }
    }
    packed
}

/// Channel counts from `range`, or in a third of cases whole words of 32
/// to 96 channels (the x86 kernels' tiled path takes only those).
fn whole_words_or(range: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = u32> {
    prop_oneof![2 => range, 1 => (1u32..=3).prop_map(|words| 32 * words)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// `K - 2 * popcount` equals the float convolution on +-1 values exactly
    /// (zero padding), and the +1-padded form equals the naive reference.
    #[test]
    fn binary_conv2d_equals_float_on_signs(
        n in 1u32..=2, h in 1u32..=8, w in 1u32..=8, ic in whole_words_or(1..=80), oc in 1u32..=72,
        kh in 1u32..=6, kw in 1u32..=6, sh in 1u32..=2, sw in 1u32..=2, dh in 1u32..=2, padding in common::paddings(), seed: u64,
    ) {
        let Some(g) = geometry(n, h, w, ic, oc, (kh, kw), (sh, sw), (dh, 1), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let input = rng.signs(g.input.elements().unwrap());
        let filter = rng.signs(oc as usize * g.depth());
        // The bits past the last channel are set at random: kernels ignore them.
        let (packed_in, packed_filter) = (
            with_unused_bits(pack_signs(&input, ic as usize), ic as usize, &mut rng),
            with_unused_bits(pack_signs(&filter, ic as usize), ic as usize, &mut rng),
        );

        let mut float_out = vec![0f32; g.output.elements().unwrap()];
        float::conv2d(&g, &input, &filter, None, (f32::MIN, f32::MAX), &mut float_out).unwrap();
        let to_i8 = |v: &[f32]| v.iter().map(|&x| x as i8).collect::<Vec<_>>();
        let want = naive::binary_conv2d_dots(&g, &to_i8(&input), &to_i8(&filter), true);
        let oc = oc as usize;
        let thresholds = rng.i32s(oc, 20);
        let (multiplier, bias): (Vec<f32>, Vec<f32>) = (0..oc).map(|_| (rng.unit() as f32 * 4.0 - 2.0, rng.unit() as f32 * 20.0 - 10.0)).unzip();
        for isa in common::isas() {
            let mut dots = vec![0i32; float_out.len()];
            binary::conv2d(&g, BinaryPadding::Zero, &packed_in, &packed_filter, BinaryOutput::Dots(&mut dots)).unwrap();
            prop_assert_eq!(dots.iter().map(|&d| d as f32).collect::<Vec<_>>(), float_out.clone(), "{:?}", isa);

            binary::conv2d(&g, BinaryPadding::One, &packed_in, &packed_filter, BinaryOutput::Dots(&mut dots)).unwrap();
            prop_assert_eq!(&dots, &want, "{:?}", isa);

            // Bit and int8 outputs carry the same dot products.
            let mut bits = vec![0u32; dots.len() / oc * binary::words(oc)];
            binary::conv2d(&g, BinaryPadding::One, &packed_in, &packed_filter, BinaryOutput::Bits { thresholds: &thresholds, out: &mut bits }).unwrap();
            let mut as_i8 = vec![0i8; dots.len()];
            let output = BinaryOutput::Int8 { multiplier: &multiplier, bias: &bias, zero_point: 5, clamp: Clamp::FULL, out: &mut as_i8 };
            binary::conv2d(&g, BinaryPadding::One, &packed_in, &packed_filter, output).unwrap();
            let mut as_f32 = vec![0f32; dots.len()];
            let output = BinaryOutput::Float { multiplier: &multiplier, bias: &bias, range: (-6.0, 6.0), out: &mut as_f32 };
            binary::conv2d(&g, BinaryPadding::One, &packed_in, &packed_filter, output).unwrap();
            for (at, &dot) in dots.iter().enumerate() {
                let (pixel, c) = (at / oc, at % oc);
                prop_assert_eq!(as_f32[at], (dot as f32 * multiplier[c] + bias[c]).clamp(-6.0, 6.0), "{:?}", isa);
                prop_assert_eq!(binary::sign_at(&bits[pixel * binary::words(oc)..], c), if dot < thresholds[c] { -1 } else { 1 }, "{:?}", isa);
                let y = libm::roundf(dot as f32 * multiplier[c] + bias[c]) as i32 + 5;
                prop_assert_eq!(as_i8[at] as i32, y.clamp(-128, 127), "{:?}", isa);
            }
        }
    }

    /// Maps with more pixels than a field has counts, where the portable
    /// kernels (and the DSP cores) look int8 outputs up by popcount in
    /// per-block tables: every output equals the arithmetic, border windows
    /// of zero padding (fewer bits counted) included, over several blocks
    /// of channels.
    #[test]
    fn binary_int8_outputs_looked_up_equal_the_arithmetic(
        n in 1u32..=2, h in 4u32..=16, w in 4u32..=16, ic in whole_words_or(1..=70), oc in 1u32..=48,
        k in 1u32..=2, padding in common::paddings(), one in any::<bool>(), seed: u64,
    ) {
        let Some(g) = geometry(n, h, w, ic, oc, (k, k), (1, 1), (1, 1), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let packed_in = pack_signs(&rng.signs(g.input.elements().unwrap()), ic as usize);
        let packed_filter = pack_signs(&rng.signs(oc as usize * g.depth()), ic as usize);
        let padding = if one { BinaryPadding::One } else { BinaryPadding::Zero };
        let oc = oc as usize;
        let (multiplier, bias): (Vec<f32>, Vec<f32>) = (0..oc).map(|_| (rng.unit() as f32 * 4.0 - 2.0, rng.unit() as f32 * 20.0 - 10.0)).unzip();
        let clamp = Clamp { min: -100, max: 90 };
        for isa in common::isas() {
            let mut dots = vec![0i32; g.output.elements().unwrap()];
            binary::conv2d(&g, padding, &packed_in, &packed_filter, BinaryOutput::Dots(&mut dots)).unwrap();
            let mut as_i8 = vec![0i8; dots.len()];
            let output = BinaryOutput::Int8 { multiplier: &multiplier, bias: &bias, zero_point: -7, clamp, out: &mut as_i8 };
            binary::conv2d(&g, padding, &packed_in, &packed_filter, output).unwrap();
            for (at, &dot) in dots.iter().enumerate() {
                let c = at % oc;
                let y = libm::roundf(dot as f32 * multiplier[c] + bias[c]) as i32 - 7;
                prop_assert_eq!(as_i8[at] as i32, y.clamp(-100, 90), "{:?} at {}", isa, at);
            }
        }
    }

    #[test]
    fn binary_dense_equals_float_on_signs(batch in 1u32..=3, k in 1u32..=300, n in 1u32..=20, seed: u64) {
        let g = DenseGeometry { batch, in_features: k, out_features: n };
        let mut rng = Rng(seed);
        let input = rng.signs((batch * k) as usize);
        let weights = rng.signs((n * k) as usize);
        let mut float_out = vec![0f32; (batch * n) as usize];
        float::fully_connected(&g, &input, &weights, None, (f32::MIN, f32::MAX), &mut float_out).unwrap();
        let mut dots = vec![0i32; float_out.len()];
        let (packed_in, packed_weights) = (
            with_unused_bits(pack_signs(&input, k as usize), k as usize, &mut rng),
            with_unused_bits(pack_signs(&weights, k as usize), k as usize, &mut rng),
        );
        binary::fully_connected(&g, &packed_in, &packed_weights, BinaryOutput::Dots(&mut dots)).unwrap();
        prop_assert_eq!(dots.iter().map(|&d| d as f32).collect::<Vec<_>>(), float_out);
    }

    /// The folded threshold gives the sign of the float transform for every
    /// possible dot product, and bit output agrees with float output.
    /// Max pooling packed signs gives the signs of the float max pool,
    /// whatever the padding (windows that see no input included) and
    /// whatever bits lie past the last channel.
    #[test]
    fn binary_max_pool_is_the_sign_of_the_float_max_pool(
        n in 1u32..=2, h in 1u32..=7, w in 1u32..=7, c in 1u32..=70, kh in 1u32..=3, kw in 1u32..=3,
        s in 1u32..=3, padding in common::paddings(), seed: u64,
    ) {
        let Some(g) = geometry(n, h, w, c, c, (kh, kw), (s, s), (1, 1), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..g.input.elements().unwrap()).map(|_| rng.unit() as f32 - 0.5).collect();
        let mut pooled = vec![0f32; g.output.elements().unwrap()];
        float::max_pool(&g, (f32::NEG_INFINITY, f32::INFINITY), &x, &mut pooled).unwrap();
        let c = c as usize;
        let packed = with_unused_bits(pack_signs(&x, c), c, &mut rng);
        let mut got = vec![0u32; g.output.pixels().unwrap() * binary::words(c)];
        binary::max_pool(&g, &packed, &mut got).unwrap();
        prop_assert_eq!(got, pack_signs(&pooled, c));
    }

    /// int8 values packed to signs, whole words or not, every zero point:
    /// bit set exactly where the value lies below the zero point.
    #[test]
    fn int8_packing_sets_the_bits_below_the_zero_point(
        pixels in 1usize..=4, channels in 1usize..=130, zero_point in -128i32..=127, seed: u64,
    ) {
        let mut rng = Rng(seed);
        let mut x: Vec<i8> = (0..pixels * channels).map(|_| rng.next_u64() as i8).collect();
        // The extremes and the zero point itself in every pixel.
        x[0] = -128;
        x[channels - 1] = 127;
        x[channels / 2] = zero_point as i8;
        let mut packed = vec![0u32; pixels * binary::words(channels)];
        binary::pack_i8(&x, channels, zero_point, &mut packed).unwrap();
        for (at, &v) in x.iter().enumerate() {
            let (pixel, c) = (at / channels, at % channels);
            let want = if (v as i32) < zero_point { -1 } else { 1 };
            prop_assert_eq!(binary::sign_at(&packed[pixel * binary::words(channels)..], c), want, "value {} at {}", v, at);
        }
    }

    /// Counting and looking up in one pass equals the count looked up, for
    /// fields of 1 to 6 words, counts from 0 to every bit (rows equal to
    /// the field and its complement among them).
    #[test]
    fn count_lookup_looks_up_each_rows_count(words in 1usize..=6, rows in 1usize..=40, extra in 1usize..=3, seed: u64) {
        let mut rng = Rng(seed);
        let field: Vec<u32> = (0..words).map(|_| rng.next_u64() as u32).collect();
        let mut packed: Vec<u32> = (0..rows * words).map(|_| rng.next_u64() as u32).collect();
        packed[..words].copy_from_slice(&field);
        if rows > 1 {
            for (w, f) in packed[words..2 * words].iter_mut().zip(&field) {
                *w = !f;
            }
        }
        let stride = words * 32 + extra;
        let table: Vec<i8> = (0..rows * stride).map(|_| rng.next_u64() as i8).collect();
        let mut out = vec![0i8; rows];
        binary::popcount::count_lookup(&field, &packed, &table, &mut out);
        for (r, &y) in out.iter().enumerate() {
            let pop = binary::popcount::xor_popcount(&field, &packed[r * words..][..words]) as usize;
            prop_assert_eq!(y, table[r * stride + pop], "row {}", r);
        }
    }

    #[test]
    fn folded_thresholds_agree_with_float_transform(m in -4.0f32..4.0, b in -40.0f32..40.0, k in 1i32..=200) {
        let (t, negate) = binary::fold_threshold(m, b, k);
        for dot in -k..=k {
            let seen = if negate { -dot } else { dot };
            prop_assert_eq!(seen < t, dot as f32 * m + b < 0.0, "dot {}", dot);
        }
    }

    #[test]
    fn binary_output_transforms(batch in 1u32..=2, k in 1u32..=100, n in 1u32..=40, seed: u64) {
        let g = DenseGeometry { batch, in_features: k, out_features: n };
        let mut rng = Rng(seed);
        let (input, weights) = (rng.signs((batch * k) as usize), rng.signs((n * k) as usize));
        let multiplier: Vec<f32> = (0..n).map(|_| (rng.unit() as f32 - 0.5) * 0.2).collect();
        let bias: Vec<f32> = (0..n).map(|_| (rng.unit() as f32 - 0.5) * 4.0).collect();
        let (pin, pw) = (pack_signs(&input, k as usize), pack_signs(&weights, k as usize));
        let mut dots = vec![0i32; (batch * n) as usize];
        binary::fully_connected(&g, &pin, &pw, BinaryOutput::Dots(&mut dots)).unwrap();

        let mut as_f32 = vec![0f32; dots.len()];
        binary::fully_connected(&g, &pin, &pw, BinaryOutput::Float { multiplier: &multiplier, bias: &bias, range: (-1.0, 1.0), out: &mut as_f32 }).unwrap();
        let mut as_i8 = vec![0i8; dots.len()];
        binary::fully_connected(&g, &pin, &pw, BinaryOutput::Int8 { multiplier: &multiplier, bias: &bias, zero_point: -3, clamp: Clamp::FULL, out: &mut as_i8 }).unwrap();

        // Bits: fold each channel, negating its weights where asked.
        let folds: Vec<(i32, bool)> = (0..n as usize).map(|c| binary::fold_threshold(multiplier[c], bias[c], k as i32)).collect();
        let mut folded_w = weights.clone();
        for (c, row) in folded_w.chunks_mut(k as usize).enumerate() {
            if folds[c].1 { row.iter_mut().for_each(|v| *v = -*v) }
        }
        let thresholds: Vec<i32> = folds.iter().map(|f| f.0).collect();
        let mut bits = vec![0u32; batch as usize * binary::words(n as usize)];
        binary::fully_connected(&g, &pin, &pack_signs(&folded_w, k as usize), BinaryOutput::Bits { thresholds: &thresholds, out: &mut bits }).unwrap();

        for (i, &d) in dots.iter().enumerate() {
            let (row, c) = (i / n as usize, i % n as usize);
            let y = d as f32 * multiplier[c] + bias[c];
            prop_assert_eq!(as_f32[i], y.clamp(-1.0, 1.0));
            prop_assert_eq!(as_i8[i] as i32, (y.round() as i32 - 3).clamp(-128, 127));
            let pixel = &bits[row * binary::words(n as usize)..][..binary::words(n as usize)];
            prop_assert_eq!(binary::sign_at(pixel, c), if y < 0.0 { -1 } else { 1 });
        }
    }

    #[test]
    fn int4_conv_and_dense_match_reference(
        h in 1u32..=7, w in 1u32..=7, ic in 1u32..=9, oc in 1u32..=6, kh in 1u32..=3, kw in 1u32..=3, s in 1u32..=2, padding in common::paddings(), seed: u64,
    ) {
        let Some(g) = geometry(1, h, w, ic, oc, (kh, kw), (s, s), (1, 1), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let q = Quant::random(&mut rng, oc as usize);
        let input = rng.i8s(g.input.elements().unwrap());
        let filter = rng.i8s_in(oc as usize * g.depth(), -8, 7);
        let bias = rng.i32s(oc as usize, 5_000);
        let mut packed = vec![0u8; oc as usize * int4::row_bytes(g.depth())];
        int4::pack(&filter, g.depth(), &mut packed).unwrap();
        let mut want = vec![0i8; g.output.elements().unwrap()];
        let mut got = vec![0i8; want.len()];
        naive::conv2d(&g, &q.stage(), &input, &filter, Some(&bias), &mut want);
        int4::conv2d(&g, &q.stage(), &input, &packed, Some(&bias), &mut got).unwrap();
        prop_assert_eq!(&got, &want);

        // The same weights as a dense layer over the flattened patch.
        let dg = DenseGeometry { batch: 1, in_features: g.depth() as u32, out_features: oc };
        let x = rng.i8s(g.depth());
        let (mut want, mut got) = (vec![0i8; oc as usize], vec![0i8; oc as usize]);
        naive::fully_connected(&dg, &q.stage(), &x, &filter, Some(&bias), &mut want);
        int4::fully_connected(&dg, &q.stage(), &x, &packed, Some(&bias), &mut got).unwrap();
        prop_assert_eq!(got, want);
    }

    /// Wide and deep int4 layers: rows unpacked in several blocks, windows
    /// deeper than the stack buffers (nibble by nibble), 1x1 windows over
    /// many channels; on every instruction-set level this CPU has.
    #[test]
    fn int4_blocks_match_reference(
        ic in 1u32..=700, oc in 1u32..=12, k in prop_oneof![Just(1u32), Just(3u32)], k_dense in 1u32..=1500, seed: u64,
    ) {
        let Some(g) = geometry(1, 3, 4, ic, oc, (k, k), (1, 1), (1, 1), kernels::geometry::Padding::Same) else { return Ok(()) };
        let mut rng = Rng(seed);
        let q = Quant::random(&mut rng, oc as usize);
        let input = rng.i8s(g.input.elements().unwrap());
        let filter = rng.i8s_in(oc as usize * g.depth(), -8, 7);
        let bias = rng.i32s(oc as usize, 5_000);
        let mut packed = vec![0u8; oc as usize * int4::row_bytes(g.depth())];
        int4::pack(&filter, g.depth(), &mut packed).unwrap();
        let mut want = vec![0i8; g.output.elements().unwrap()];
        naive::conv2d(&g, &q.stage(), &input, &filter, Some(&bias), &mut want);
        let dg = DenseGeometry { batch: 2, in_features: k_dense, out_features: oc };
        let x = rng.i8s(2 * k_dense as usize);
        let w = rng.i8s_in(oc as usize * k_dense as usize, -8, 7);
        let mut w_packed = vec![0u8; oc as usize * int4::row_bytes(k_dense as usize)];
        int4::pack(&w, k_dense as usize, &mut w_packed).unwrap();
        let mut want_dense = vec![0i8; 2 * oc as usize];
        naive::fully_connected(&dg, &q.stage(), &x, &w, Some(&bias), &mut want_dense);
        for isa in common::isas() {
            let mut got = vec![0i8; want.len()];
            int4::conv2d(&g, &q.stage(), &input, &packed, Some(&bias), &mut got).unwrap();
            prop_assert_eq!(&got, &want, "conv, {:?}", isa);
            let mut got = vec![0i8; want_dense.len()];
            int4::fully_connected(&dg, &q.stage(), &x, &w_packed, Some(&bias), &mut got).unwrap();
            prop_assert_eq!(&got, &want_dense, "dense, {:?}", isa);
        }
    }

    #[test]
    fn sparse_depthwise_matches_reference(
        // Deep windows (4x4 over 150+ channels) are read in place, not gathered.
        n in 1u32..=2, h in 1u32..=9, w in 1u32..=9, ic in prop_oneof![3 => 1u32..=40, 1 => 150u32..=200], m in 1u32..=3, kh in 1u32..=4, kw in 1u32..=4,
        sh in 1u32..=3, sw in 1u32..=3, d in 1u32..=2, padding in common::paddings(), sparsity in 0.0f64..1.0, full: bool, with_bias: bool, seed: u64,
        // A quarter over one input channel with many outputs (an audio
        // model's first layer as a depthwise one).
        one_channel in prop::bool::weighted(0.25), wide_m in 4u32..=80,
    ) {
        let (ic, m) = if one_channel { (1, wide_m) } else { (ic, m) };
        let Some(g) = geometry(n, h, w, ic, ic * m, (kh, kw), (sh, sw), (d, d), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let oc = g.output.c as usize;
        let mut q = Quant::random(&mut rng, oc);
        if full {
            q.act = (-128, 127);
        }
        let input = rng.i8s(g.input.elements().unwrap());
        let filter: Vec<i8> = rng.i8s(g.window.taps() * oc).into_iter().map(|v| if rng.unit() < sparsity { 0 } else { v }).collect();
        let bias = rng.i32s(oc, 20_000);
        let bias = with_bias.then_some(&bias[..]);
        let (row_ptr, entries) = sparse::Csr::depthwise(&filter, &g, m).unwrap();
        prop_assert_eq!(entries.len(), filter.iter().filter(|&&v| v != 0).count());
        let csr = sparse::Csr { row_ptr: &row_ptr, entries: &entries };
        let mut want = vec![0i8; g.output.elements().unwrap()];
        naive::depthwise_conv2d(&g, m, &q.stage(), &input, &filter, bias, &mut want);
        sparse::check_depthwise_conv2d(&g, m, &q.stage(), input.len(), &csr, bias, want.len()).unwrap();
        for isa in common::isas() {
            let mut got = vec![0i8; want.len()];
            sparse::depthwise_conv2d(&g, m, &q.stage(), &input, &csr, bias, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "{:?}", isa);
        }
        // Written out dense ahead of the runs, as a prepared model's filter is.
        #[cfg(target_arch = "x86_64")]
        {
            let csr = sparse::Csr { row_ptr: row_ptr.leak(), entries: entries.leak() };
            sparse::depthwise::prepared::densify(&g, &csr);
            prop_assert!(sparse::depthwise::prepared::find(&g, &csr).is_some());
            for isa in common::isas() {
                let mut got = vec![0i8; want.len()];
                sparse::depthwise_conv2d(&g, m, &q.stage(), &input, &csr, bias, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{:?}, prepared", isa);
            }
        }
    }

    #[test]
    fn sparse_conv_and_dense_match_reference(
        // Kernels up to 5x5 over maps as small as 1x1: windows that cross
        // the padding on one side, both, or see no input.
        n in 1u32..=2, h in 1u32..=9, w in 1u32..=9, ic in 1u32..=40, oc in 1u32..=40, kh in 1u32..=5, kw in 1u32..=5, s in 1u32..=2,
        d in 1u32..=2, padding in common::paddings(), sparsity in 0.0f64..1.0, with_bias: bool, seed: u64,
        // Pointwise layers (on DSP cores quads of pixels laid out channel
        // by channel), some wider than that path takes, and deep windows;
        // half of all with the clamp all of int8.
        pointwise in prop::bool::weighted(0.3), wide in prop::bool::weighted(0.2), full: bool,
        // Stride-1 windows along long rows, which the x86 kernels read in
        // place from the input laid out channel by channel.
        planar in prop::bool::weighted(0.3),
    ) {
        // (rows long enough that few positions past a row's outputs are computed).
        let (w, s, d) = if planar && !pointwise { (24 + 5 * w, 1, 1) } else { (w, s, d) };
        let (ic, oc, kernel, s, d, padding) = match (pointwise, wide) {
            (true, true) => (ic + 480, oc + 220, (1, 1), 1, 1, Padding::Valid),
            (true, false) => (ic, oc, (1, 1), 1, 1, Padding::Valid),
            // Windows too deep to gather four (or one) side by side.
            (false, true) => (ic + 60, oc, (kh, kw), s, d, padding),
            (false, false) => (ic, oc, (kh, kw), s, d, padding),
        };
        let Some(g) = geometry(n, h, w, ic, oc, kernel, (s, s), (d, d), padding) else { return Ok(()) };
        let mut rng = Rng(seed);
        let mut q = Quant::random(&mut rng, oc as usize);
        if full {
            q.act = (-128, 127);
        }
        let input = rng.i8s(g.input.elements().unwrap());
        let filter: Vec<i8> = rng.i8s(oc as usize * g.depth()).into_iter().map(|v| if rng.unit() < sparsity { 0 } else { v }).collect();
        let bias = rng.i32s(oc as usize, 20_000);
        let bias = with_bias.then_some(&bias[..]);
        let mut want = vec![0i8; g.output.elements().unwrap()];
        naive::conv2d(&g, &q.stage(), &input, &filter, bias, &mut want);
        // Both forms: a row per channel and tap read in place, and the
        // field form over gathered windows.
        type Form = fn(&[i8], &kernels::geometry::ConvGeometry) -> Option<(Vec<u32>, Vec<u32>)>;
        for (form, csr_of) in [("per tap", sparse::Csr::conv as Form), ("fields", sparse::Csr::conv_fields)] {
            let (row_ptr, entries) = csr_of(&filter, &g).unwrap();
            let csr = sparse::Csr { row_ptr: &row_ptr, entries: &entries };
            sparse::check_conv2d(&g, &q.stage(), input.len(), &csr, bias, want.len()).unwrap();
            for isa in common::isas() {
                let mut got = vec![0i8; want.len()];
                sparse::conv2d(&g, &q.stage(), &input, &csr, bias, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{:?}, {}", isa, form);
            }
            // Written out dense ahead of the runs (as a prepared model's
            // filter is), where the selected level's dense kernels are the
            // faster.
            #[cfg(target_arch = "x86_64")]
            {
                let csr = sparse::Csr { row_ptr: row_ptr.leak(), entries: entries.leak() };
                let dense = sparse::prepared::densify(&g, &csr).unwrap();
                prop_assert_eq!(dense, &filter[..], "{}", form);
                prop_assert_eq!(sparse::prepared::find(&g, &csr), Some(dense));
                for isa in common::isas() {
                    let mut got = vec![0i8; want.len()];
                    sparse::conv2d(&g, &q.stage(), &input, &csr, bias, &mut got).unwrap();
                    prop_assert_eq!(&got, &want, "{:?}, {}, dense: {}", isa, form, sparse::prefers_dense(&g, &csr));
                }
            }
            // Prepared as a model's filter at each level: its pairs of
            // non-zeros made once where it runs sparse, else written out
            // dense and packed.
            #[cfg(target_arch = "x86_64")]
            if !wide {
                let (row_ptr, entries) = csr_of(&filter, &g).unwrap();
                let csr = sparse::Csr { row_ptr: row_ptr.leak(), entries: entries.leak() };
                for isa in common::isas() {
                    kernels::int8::x86::prepare_sparse_filter(&g, &csr);
                    let mut got = vec![0i8; want.len()];
                    sparse::conv2d(&g, &q.stage(), &input, &csr, bias, &mut got).unwrap();
                    prop_assert_eq!(&got, &want, "{:?}, {}, prepared, dense: {}", isa, form, sparse::prefers_dense(&g, &csr));
                }
            }
        }

        let dg = DenseGeometry { batch: 1, in_features: g.depth() as u32, out_features: oc };
        let (row_ptr, entries) = sparse::Csr::dense_layer(&filter, g.depth()).unwrap();
        let csr = sparse::Csr { row_ptr: &row_ptr, entries: &entries };
        let x = rng.i8s(g.depth());
        let (mut want, mut got) = (vec![0i8; oc as usize], vec![0i8; oc as usize]);
        naive::fully_connected(&dg, &q.stage(), &x, &filter, None, &mut want);
        sparse::fully_connected(&dg, &q.stage(), &x, &csr, None, &mut got).unwrap();
        prop_assert_eq!(&got, &want);
        // A prepared model's sparse dense layers are written out dense.
        #[cfg(target_arch = "x86_64")]
        {
            let csr = sparse::Csr { row_ptr: row_ptr.leak(), entries: entries.leak() };
            prop_assert!(sparse::prepared::densify(&dg.as_conv(), &csr).is_some());
            for isa in common::isas() {
                sparse::fully_connected(&dg, &q.stage(), &x, &csr, None, &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{:?}", isa);
            }
        }
    }

    /// Block-sparse pointwise convolutions and dense layers equal the
    /// reference on the same weights: whole blocks of four zeroed, and
    /// single zeros inside the kept ones.
    #[test]
    fn block_sparse_conv_and_dense_match_reference(
        n in 1u32..=2, h in 1u32..=9, w in 1u32..=9, quads in 1u32..=24, oc in 1u32..=40, batch in 1u32..=35,
        sparsity in 0.0f64..1.0, seed: u64,
    ) {
        let ic = 4 * quads;
        let g = geometry(n, h, w, ic, oc, (1, 1), (1, 1), (1, 1), kernels::geometry::Padding::Valid).unwrap();
        let mut rng = Rng(seed);
        let q = Quant::random(&mut rng, oc as usize);
        let input = rng.i8s(g.input.elements().unwrap());
        let mut filter = rng.i8s(oc as usize * ic as usize);
        for block in filter.chunks_exact_mut(4) {
            if rng.unit() < sparsity {
                block.fill(0);
            } else if rng.unit() < 0.3 {
                block[rng.next_u64() as usize % 4] = 0;
            }
        }
        let (row_ptr, entries) = sparse::blocks::Blocks::pack(&filter, ic as usize).unwrap();
        let blocks = sparse::blocks::Blocks { row_ptr: &row_ptr, entries: &entries };
        let kept = filter.chunks_exact(4).filter(|b| b.iter().any(|&v| v != 0)).count();
        prop_assert_eq!(entries.len(), 2 * kept);
        let bias = rng.i32s(oc as usize, 5_000);
        let mut want = vec![0i8; g.output.elements().unwrap()];
        naive::conv2d(&g, &q.stage(), &input, &filter, Some(&bias), &mut want);
        let dg = DenseGeometry { batch, in_features: ic, out_features: oc };
        let x = rng.i8s((batch * ic) as usize);
        let mut want_dense = vec![0i8; (batch * oc) as usize];
        naive::fully_connected(&dg, &q.stage(), &x, &filter, Some(&bias), &mut want_dense);
        for isa in common::isas() {
            let mut got = vec![0i8; want.len()];
            sparse::blocks::conv2d(&g, &q.stage(), &input, &blocks, Some(&bias), &mut got).unwrap();
            prop_assert_eq!(&got, &want, "conv, {:?}", isa);
            let mut got = vec![0i8; want_dense.len()];
            sparse::blocks::fully_connected(&dg, &q.stage(), &x, &blocks, Some(&bias), &mut got).unwrap();
            prop_assert_eq!(&got, &want_dense, "dense, {:?}", isa);
        }
        // Written out dense ahead of the runs (as a prepared model's are),
        // where the selected level's dense kernels are the faster.
        #[cfg(target_arch = "x86_64")]
        {
            let blocks = sparse::blocks::Blocks { row_ptr: row_ptr.leak(), entries: entries.leak() };
            let written = sparse::blocks::prepared::densify(&g, &blocks).unwrap();
            prop_assert_eq!(written, filter.as_slice());
            prop_assert!(sparse::blocks::prepared::densify(&dg.as_conv(), &blocks).is_some());
            for isa in common::isas() {
                let mut got = vec![0i8; want.len()];
                sparse::blocks::conv2d(&g, &q.stage(), &input, &blocks, Some(&bias), &mut got).unwrap();
                prop_assert_eq!(&got, &want, "conv, {:?}, dense: {}", isa, sparse::blocks::prefers_dense(&g, &blocks));
                let mut got = vec![0i8; want_dense.len()];
                sparse::blocks::fully_connected(&dg, &q.stage(), &x, &blocks, Some(&bias), &mut got).unwrap();
                prop_assert_eq!(&got, &want_dense, "dense, {:?}", isa);
            }
        }
    }

    /// Block-sparse convolutions of any window (the receptive field
    /// `kh * kw * ic` a multiple of four, blocks crossing taps where `ic`
    /// is not) equal the reference: fields up to 720 deep, so that DSP
    /// cores run both their widened quads and the pixel-by-pixel loop.
    #[test]
    fn block_sparse_conv_with_any_window_matches_reference(
        n in 1u32..=2, h in 1u32..=8, w in 1u32..=8, ic in 1u32..=80, oc in 1u32..=24,
        kh in 1u32..=3, kw in 1u32..=3, s in 1u32..=2, d in 1u32..=2, padding in common::paddings(),
        sparsity in 0.0f64..1.0, seed: u64,
    ) {
        let Some(g) = geometry(n, h, w, ic, oc, (kh, kw), (s, s), (d, d), padding) else { return Ok(()) };
        if !g.depth().is_multiple_of(4) {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let q = Quant::random(&mut rng, oc as usize);
        let input = rng.i8s(g.input.elements().unwrap());
        let mut filter = rng.i8s(oc as usize * g.depth());
        for block in filter.chunks_exact_mut(4) {
            if rng.unit() < sparsity {
                block.fill(0);
            }
        }
        let (row_ptr, entries) = sparse::blocks::Blocks::pack(&filter, g.depth()).unwrap();
        let blocks = sparse::blocks::Blocks { row_ptr: &row_ptr, entries: &entries };
        let bias = rng.i32s(oc as usize, 5_000);
        let mut want = vec![0i8; g.output.elements().unwrap()];
        naive::conv2d(&g, &q.stage(), &input, &filter, Some(&bias), &mut want);
        for isa in common::isas() {
            let mut got = vec![0i8; want.len()];
            sparse::blocks::conv2d(&g, &q.stage(), &input, &blocks, Some(&bias), &mut got).unwrap();
            prop_assert_eq!(&got, &want, "{:?}", isa);
        }
        // Checked once ahead of the runs, as a prepared model's are.
        #[cfg(target_arch = "x86_64")]
        {
            let blocks = sparse::blocks::Blocks { row_ptr: row_ptr.leak(), entries: entries.leak() };
            prop_assert!(sparse::blocks::prepared::check_once(&g, &blocks));
            for isa in common::isas() {
                let mut got = vec![0i8; want.len()];
                sparse::blocks::conv2d(&g, &q.stage(), &input, &blocks, Some(&bias), &mut got).unwrap();
                prop_assert_eq!(&got, &want, "{:?}, checked once", isa);
            }
        }
    }

    /// On small integers float arithmetic is exact, so the float kernels must
    /// equal the integer reference exactly.
    #[test]
    fn float_kernels_equal_integer_reference_on_small_integers(
        h in 1u32..=7, w in 1u32..=7, ic in 1u32..=8, m in 1u32..=2, kh in 1u32..=3, kw in 1u32..=3, s in 1u32..=2, padding in common::paddings(), seed: u64,
    ) {
        let mut rng = Rng(seed);
        let Some(g) = geometry(1, h, w, ic, ic * m, (kh, kw), (s, s), (1, 1), padding) else { return Ok(()) };
        let input = rng.i8s_in(g.input.elements().unwrap(), -8, 8);
        let to_f = |v: &[i8]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let full = (f32::MIN, f32::MAX);

        let filter = rng.i8s_in(g.output.c as usize * g.depth(), -8, 8);
        let mut want = vec![0f32; g.output.elements().unwrap()];
        naive::conv_accumulate(&g, &input, |oc, ky, kx, c, x| filter[(((oc as u32 * kh + ky) * kw + kx) * ic + c) as usize] as i64 * x, |at, _, acc| want[at] = acc as f32);
        let mut got = vec![0f32; want.len()];
        float::conv2d(&g, &to_f(&input), &to_f(&filter), None, full, &mut got).unwrap();
        prop_assert_eq!(&got, &want);

        // Depthwise via the int8 reference with unit requantization.
        let dw_filter = rng.i8s_in(g.window.taps() * g.output.c as usize, -8, 8);
        let requant = vec![kernels::quant::Requant { multiplier: 1 << 30, shift: 1 }; g.output.c as usize];
        let stage = kernels::int8::OutputStage { input_offset: 0, filter_offset: 0, output_offset: 0, requant: &requant, act_min: -128, act_max: 127, rounding: kernels::quant::Rounding::Double };
        let mut want_i8 = vec![0i8; want.len()];
        naive::depthwise_conv2d(&g, m, &stage, &input, &dw_filter, None, &mut want_i8);
        float::depthwise_conv2d(&g, m, &to_f(&input), &to_f(&dw_filter), None, (-128.0, 127.0), &mut got).unwrap();
        prop_assert_eq!(got, to_f(&want_i8));
    }
}

/// Block-sparse weights need whole blocks: columns (a receptive field) a
/// multiple of four, blocks inside their rows, offsets rising.
#[test]
fn block_sparse_rejects_what_it_cannot_run() {
    use kernels::geometry::Padding;
    use sparse::blocks::Blocks;
    assert!(Blocks::pack(&[1; 12], 6).is_none());
    let (row_ptr, entries) =
        Blocks::pack(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -2], 8).unwrap();
    assert_eq!(
        (row_ptr.as_slice(), entries.as_slice()),
        ([0, 1, 2].as_slice(), [0, 1, 4, 0xfe << 24].as_slice())
    );
    let blocks = Blocks {
        row_ptr: &row_ptr,
        entries: &entries,
    };
    assert!(
        blocks.check(2, 4).is_err(),
        "the second row's block lies past 4 columns"
    );
    assert!(blocks.check(2, 8).is_ok());
    assert!(blocks.check(3, 8).is_err(), "two rows, not three");
    assert!(
        blocks.check(2, 6).is_err(),
        "6 columns are not whole blocks"
    );
    // Offsets must rise within a row (the convolution walks them beside the taps).
    let falling = [4, 2, 0, 1, 4, 1];
    assert!(Blocks {
        row_ptr: &[0, 2, 3],
        entries: &falling
    }
    .check(2, 8)
    .is_err());
    assert!(Blocks {
        row_ptr: &[0, 1, 3],
        entries: &falling
    }
    .check(2, 8)
    .is_ok());
    // A 3x3 window over 3 channels is 27 values deep: not whole blocks.
    let q = Quant::random(&mut Rng(1), 2);
    let g = geometry(1, 4, 4, 3, 2, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let mut out = vec![0i8; g.output.elements().unwrap()];
    let err =
        sparse::blocks::conv2d(&g, &q.stage(), &[0; 48], &blocks, None, &mut out).unwrap_err();
    assert!(err.to_string().contains("multiple of four"), "{err}");
    // Blocks that do not fit are not taken as checked by a preparation:
    // every call still refuses them.
    #[cfg(target_arch = "x86_64")]
    {
        let blocks = Blocks {
            row_ptr: row_ptr.leak(),
            entries: entries.leak(),
        };
        assert!(!sparse::blocks::prepared::check_once(&g, &blocks));
        let err =
            sparse::blocks::conv2d(&g, &q.stage(), &[0; 48], &blocks, None, &mut out).unwrap_err();
        assert!(err.to_string().contains("multiple of four"), "{err}");
    }
}

#[test]
fn float_pools_softmax_and_quantize() {
    use kernels::geometry::{ConvGeometry, Padding, Shape};
    let g = ConvGeometry::new(
        Shape::new(1, 2, 3, 1),
        1,
        (2, 2),
        (2, 2),
        (1, 1),
        Padding::Same,
    );
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut out = [0.0; 2];
    float::avg_pool(&g, (f32::MIN, f32::MAX), &x, &mut out).unwrap();
    assert_eq!(out, [3.0, 4.5]); // (1+2+4+5)/4, (3+6)/2 over valid taps only
    float::max_pool(&g, (f32::MIN, 5.5), &x, &mut out).unwrap();
    assert_eq!(out, [5.0, 5.5]);
    let mut p = [0.0; 2];
    float::softmax(1.0, 2, &[0.0, libm::logf(3.0)], &mut p).unwrap();
    assert!((p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.75).abs() < 1e-6);
    let mut q = [0i8; 4];
    float::quantize(0.5, -1, &[0.25, -0.25, 100.0, -0.75], &mut q).unwrap();
    assert_eq!(q, [0, -2, 127, -3]); // round half away from zero: 0.5 -> 1, -0.5 -> -1, -1.5 -> -2
    let mut d = [0.0; 2];
    float::dequantize(0.5, -1, &[3, -1], &mut d).unwrap();
    assert_eq!(d, [2.0, 0.0]);
}

#[test]
fn int4_packing_layout() {
    let mut packed = [0u8; 4];
    int4::pack(&[1, -1, 7, -8, 3], 5, &mut packed[..3]).unwrap();
    // low nibble first: (1, -1) -> 0xF1, (7, -8) -> 0x87, (3, pad) -> 0x03
    assert_eq!(&packed[..3], &[0xF1, 0x87, 0x03]);
    assert_eq!(
        (0..5).map(|i| int4::get(&packed, i)).collect::<Vec<_>>(),
        vec![1, -1, 7, -8, 3]
    );
    assert!(int4::pack(&[8], 1, &mut packed[..1]).is_err());
}

#[test]
fn bit_packing_layout() {
    // Channel c in bit c % 32 of word c / 32; negative sets the bit; sign(0) = +1.
    let mut x = vec![1.0f32; 40];
    x[0] = -1.0;
    x[31] = -0.5;
    x[33] = -2.0;
    x[5] = 0.0;
    let mut packed = [0u32; 2];
    binary::pack_f32(&x, 40, &mut packed).unwrap();
    assert_eq!(packed, [0x8000_0001, 0x0000_0002]);
    let mut q = [0u32; 1];
    binary::pack_i8(&[-5, -4, -3, 0], 4, -4, &mut q).unwrap();
    assert_eq!(q, [0b0001]); // only -5 is below the zero point -4
}

#[test]
fn malformed_sparse_indices_are_errors() {
    let dg = DenseGeometry {
        batch: 1,
        in_features: 4,
        out_features: 1,
    };
    let q = Quant::random(&mut Rng(3), 1);
    let csr = sparse::Csr {
        row_ptr: &[0, 1],
        entries: &[sparse::entry(4, 1)],
    };
    let err = sparse::fully_connected(&dg, &q.stage(), &[0; 4], &csr, None, &mut [0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid sparse entries: must read inside their row's columns"
    );
    let csr = sparse::Csr {
        row_ptr: &[1, 0],
        entries: &[],
    };
    assert!(sparse::fully_connected(&dg, &q.stage(), &[0; 4], &csr, None, &mut [0]).is_err());
}

/// Windows almost wholly in their padding (a 2x2 window dilated 16,384
/// times over one pixel, as only a corrupted model has): the AVX-512 path
/// would lay out a padded copy of 16,385 x 16,385 pixels, so such layers
/// go tap by tap; the dot products stay those of the reference.
#[test]
fn binary_conv2d_of_windows_mostly_in_padding() {
    use kernels::geometry::{ConvGeometry, Shape};
    let g = ConvGeometry::new(
        Shape::new(1, 1, 1, 32),
        3,
        (2, 2),
        (1, 1),
        (16_384, 16_384),
        Padding::Same,
    );
    let mut rng = Rng(11);
    let (input, filter) = (rng.signs(32), rng.signs(3 * 4 * 32));
    let to_i8 = |v: &[f32]| v.iter().map(|&x| x as i8).collect::<Vec<_>>();
    let want = naive::binary_conv2d_dots(&g, &to_i8(&input), &to_i8(&filter), true);
    let (packed_in, packed_filter) = (pack_signs(&input, 32), pack_signs(&filter, 32));
    for isa in common::isas() {
        let mut dots = vec![0i32; 3];
        binary::conv2d(
            &g,
            BinaryPadding::One,
            &packed_in,
            &packed_filter,
            BinaryOutput::Dots(&mut dots),
        )
        .unwrap();
        assert_eq!(dots, want, "{isa:?}");
    }
}

/// Multipliers and biases whose outputs overflow int32 or are not
/// numbers (a corrupted or hostile model's): every level's int8 outputs
/// equal the portable transform's (saturated, NaN as 0), whole vectors of
/// channels and the last ones, zero padding at the border included.
#[test]
fn binary_int8_outputs_of_extreme_transforms() {
    use kernels::geometry::{ConvGeometry, Shape};
    let g = ConvGeometry::new(
        Shape::new(1, 4, 5, 64),
        40,
        (3, 3),
        (1, 1),
        (1, 1),
        Padding::Same,
    );
    let mut rng = Rng(12);
    let packed_in = pack_signs(&rng.signs(g.input.elements().unwrap()), 64);
    let packed_filter = pack_signs(&rng.signs(40 * g.depth()), 64);
    let extremes = [1e30, -1e30, f32::NAN, f32::INFINITY, 3e7, -0.37, 2.5, 0.0];
    let multiplier: Vec<f32> = (0..40).map(|c| extremes[c % 8]).collect();
    let bias: Vec<f32> = (0..40).map(|c| extremes[(c / 8 + c) % 8]).collect();
    let clamp = Clamp {
        min: -120,
        max: 100,
    };
    for padding in [BinaryPadding::One, BinaryPadding::Zero] {
        for isa in common::isas() {
            let mut dots = vec![0i32; g.output.elements().unwrap()];
            let output = BinaryOutput::Dots(&mut dots);
            binary::conv2d(&g, padding, &packed_in, &packed_filter, output).unwrap();
            let mut as_i8 = vec![0i8; dots.len()];
            let output = BinaryOutput::Int8 {
                multiplier: &multiplier,
                bias: &bias,
                zero_point: 7,
                clamp,
                out: &mut as_i8,
            };
            binary::conv2d(&g, padding, &packed_in, &packed_filter, output).unwrap();
            for (at, &dot) in dots.iter().enumerate() {
                let c = at % 40;
                // `as` saturates and takes NaN to 0.
                let y = libm::roundf(dot as f32 * multiplier[c] + bias[c]) as i32;
                let want = y.saturating_add(7).clamp(-120, 100);
                assert_eq!(as_i8[at] as i32, want, "{isa:?} {padding:?} at {at}");
            }
        }
    }
}
