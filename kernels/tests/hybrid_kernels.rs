//! The x86 hybrid (dynamic-range) dense layer, whose rows are quantized by
//! AVX2 and multiplied by the selected level's matrix-vector kernel, must
//! give the portable loops' outputs bit for bit (the portable loops are
//! TFLite's reference order, which the LiteRT goldens of
//! `harness/tests/one_op_models.rs` check): random shapes past the
//! kernels' chunks of 256 outputs, rows of zeros, rows with a NaN or an
//! infinity, values whose products with the row's inverse scale land on
//! halves, weights of -128.
#![cfg(target_arch = "x86_64")]

mod common;

use common::Rng;
use kernels::int8::DenseGeometry;
use kernels::x86::{select, Isa};

/// A row of `k` values of one of several kinds.
fn row(rng: &mut Rng, k: usize) -> Vec<f32> {
    let kind = rng.range(0, 7);
    (0..k)
        .map(|i| match kind {
            // All zero (the products are skipped or zero), signed zeros.
            0 => [0.0, -0.0][i % 2],
            // Multiples of 1/2 scaled so that x * 127 / max lands on halves.
            1 => rng.range(-254, 255) as f32 * 0.5,
            // One NaN or infinity among ordinary values.
            2 if i == k / 2 => {
                [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.range(0, 2) as usize]
            }
            // Tiny values: a subnormal largest magnitude, an infinite inverse.
            3 => (rng.unit() as f32 - 0.5) * 1e-39,
            _ => (rng.unit() * 8.0 - 4.0) as f32,
        })
        .collect()
}

fn run(
    isa: Isa,
    g: &DenseGeometry,
    x: &[f32],
    w: &[i8],
    b: Option<&[f32]>,
    act: (f32, f32),
) -> Vec<u32> {
    assert_eq!(select(isa), isa);
    let mut out = vec![0f32; (g.batch * g.out_features) as usize];
    kernels::hybrid::fully_connected(g, 0.013, x, w, b, act, &mut out).unwrap();
    out.iter().map(|v| v.to_bits()).collect()
}

/// The only test in this binary, so the level it selects is not shared.
#[test]
fn simd_hybrid_dense_equals_portable() {
    let levels: Vec<Isa> = [Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|l| l.is_available())
        .collect();
    if levels.is_empty() {
        eprintln!("this CPU lacks AVX2: nothing to compare");
        return;
    }
    let mut rng = Rng(0x5eed_4b1d);
    for case in 0..400 {
        let batch = rng.range(1, 4) as u32;
        let k = [rng.range(1, 40), rng.range(40, 700)][rng.range(0, 1) as usize] as u32;
        let n = [rng.range(1, 20), rng.range(250, 300)][rng.range(0, 1) as usize] as u32;
        let g = DenseGeometry {
            batch,
            in_features: k,
            out_features: n,
        };
        let x: Vec<f32> = (0..batch).flat_map(|_| row(&mut rng, k as usize)).collect();
        let w = rng.i8s((k * n) as usize);
        let bias: Vec<f32> = (0..n).map(|_| rng.unit() as f32 - 0.5).collect();
        let bias = (case % 3 != 0).then_some(&bias[..]);
        let act = [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 6.0), (-1.0, 1.0)][case % 3];
        let want = run(Isa::Portable, &g, &x, &w, bias, act);
        for &level in &levels {
            let got = run(level, &g, &x, &w, bias, act);
            assert_eq!(
                got, want,
                "case {case}: {level:?}, batch {batch}, {k} -> {n}"
            );
        }
    }
}
