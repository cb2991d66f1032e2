//! Deterministic seeded weights, so that zoo models can be benchmarked for
//! latency, memory and size without training. The stream is ChaCha8, which
//! `rand_chacha` keeps value-stable across versions: a seed gives the same
//! weights on every machine and every release.

use super::graph::{Graph, LayerWeights};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A uniform value in `[-limit, limit)`.
fn uniform(rng: &mut ChaCha8Rng, limit: f32) -> f32 {
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((unit * 2.0 - 1.0) * limit as f64) as f32
}

/// FNV-1a of a layer name: the ChaCha stream the layer draws from.
fn stream_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Gives every parameterized layer He-uniform weights (`limit =
/// sqrt(6 / fan_in)`, which keeps activations in a realistic range through
/// deep ReLU stacks) and small uniform biases, to every layer that has no
/// weights yet. Each layer draws from its
/// own stream, named by the layer, so adding an exit head or pruning one
/// layer leaves every other layer's weights as they were.
pub fn seeded(graph: &mut Graph, seed: u64) {
    for layer in &mut graph.layers {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream_of(&layer.name));
        let (input, output) = (
            graph.tensors[layer.inputs[0]].shape,
            graph.tensors[layer.output].shape,
        );
        let (kernel, bias) = layer.parameter_counts(input, output);
        if kernel == 0 || layer.weights.is_some() {
            continue;
        }
        let fan_in = (kernel / bias.max(1)).max(1);
        let limit = (6.0 / fan_in as f32).sqrt();
        let kernel = (0..kernel).map(|_| uniform(&mut rng, limit)).collect();
        let bias = (0..bias).map(|_| uniform(&mut rng, 0.05)).collect();
        layer.weights = Some(LayerWeights { kernel, bias });
    }
}
