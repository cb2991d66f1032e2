//! What the kernel benchmarks share: deterministic inputs, an output
//! stage, and weights pruned to a given density.

use kernels::binary;
use kernels::int8::OutputStage;
use kernels::quant::{Requant, Rounding};

/// Deterministic filler (SplitMix64).
pub fn bytes(n: usize, seed: u64) -> Vec<i8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (s ^ (s >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z >> 56) as i8
        })
        .collect()
}

/// `n` deterministic signs packed `channels` to a pixel.
#[allow(dead_code)] // not every bench packs signs
pub fn signs(n: usize, channels: usize, seed: u64) -> Vec<u32> {
    let values: Vec<f32> = bytes(n, seed).iter().map(|&v| v as f32).collect();
    let mut packed = vec![0u32; n / channels * binary::words(channels)];
    binary::pack_f32(&values, channels, &mut packed).unwrap();
    packed
}

pub fn stage(requant: &[Requant]) -> OutputStage<'_> {
    OutputStage {
        input_offset: 3,
        filter_offset: 0,
        output_offset: -5,
        requant,
        act_min: -128,
        act_max: 127,
        rounding: Rounding::Double,
    }
}

/// Zeroes all but one in `keep` weights, spread evenly (magnitude pruning's
/// pattern is irregular too; the kernel's work depends only on the count).
pub fn prune(w: &[i8], density_percent: usize) -> Vec<i8> {
    w.iter()
        .enumerate()
        .map(|(i, &v)| {
            if (i * 37) % 100 < density_percent {
                v.max(1)
            } else {
                0
            }
        })
        .collect()
}

/// Blocks of four kept where `(block * 37) % 100 < density_percent`, the
/// rest zeroed (1x4 block sparsity).
pub fn prune_blocks(w: &[i8], density_percent: usize) -> Vec<i8> {
    let mut w = w.to_vec();
    for (b, block) in w.chunks_exact_mut(4).enumerate() {
        if (b * 37) % 100 >= density_percent {
            block.fill(0);
        }
    }
    w
}
