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

/// Gives every parameterized layer He-uniform weights (`limit =
/// sqrt(6 / fan_in)`, which keeps activations in a realistic range through
/// deep ReLU stacks) and small uniform biases, drawn in layer order.
pub fn seeded(graph: &mut Graph, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for layer in &mut graph.layers {
        let (input, output) = (graph.tensors[layer.inputs[0]].shape, graph.tensors[layer.output].shape);
        let (kernel, bias) = layer.parameter_counts(input, output);
        if kernel == 0 {
            continue;
        }
        let fan_in = (kernel / bias.max(1)).max(1);
        let limit = (6.0 / fan_in as f32).sqrt();
        let kernel = (0..kernel).map(|_| uniform(&mut rng, limit)).collect();
        let bias = (0..bias).map(|_| uniform(&mut rng, 0.05)).collect();
        layer.weights = Some(LayerWeights { kernel, bias });
    }
}
