//! Graphs with seeded weights lower to blobs that the kernel crate's
//! executor loads and runs on the host.

use harness::model::{init, lower, zoo, GraphBuilder, LayerWeights, Win};
use kernels::geometry::{Activation, Shape};
use kernels::model::Model;

/// Runs a lowered float model on `input`; returns the output values.
fn run(lowered: &lower::Lowered, input: &[f32]) -> Vec<f32> {
    let model = Model::parse(lowered.blob.as_bytes()).unwrap();
    let mut words = vec![0u32; model.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    model.input_mut(arena).unwrap().copy_from_slice(bytemuck::cast_slice(input));
    let outcome = model.run(arena, &[]).unwrap();
    bytemuck::cast_slice(model.tensor(arena, &outcome.output).unwrap()).to_vec()
}

#[test]
fn a_hand_sized_graph_computes_what_it_says() {
    // [1, 2, 2, 1] -> conv 2x2 VALID to 1 channel (ReLU) -> flatten -> dense 2 -> softmax
    let mut b = GraphBuilder::new("tiny", Shape::new(1, 2, 2, 1));
    let x = b.conv("conv", 0, 1, Win::valid((2, 2)), Activation::Relu);
    let x = b.flatten("flatten", x);
    let x = b.dense("fc", x, 2, Activation::None);
    let y = b.softmax("softmax", x);
    let mut g = b.finish(y);
    g.layers[0].weights = Some(LayerWeights { kernel: vec![1.0, -1.0, 0.5, 2.0], bias: vec![0.25] });
    g.layers[2].weights = Some(LayerWeights { kernel: vec![1.0, -1.0], bias: vec![0.0, 1.0] });
    let out = run(&lower::lower_f32(&g).unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    // conv: 1 - 2 + 1.5 + 8 + 0.25 = 8.75; logits [8.75, -7.75]; softmax.
    let p0 = 1.0 / (1.0 + (-16.5f32).exp());
    assert!((out[0] - p0).abs() < 1e-6 && (out[1] - (1.0 - p0)).abs() < 1e-6, "{out:?}");
}

#[test]
fn every_zoo_model_lowers_and_runs() {
    for name in zoo::NAMES {
        let mut g = zoo::build(name).unwrap();
        init::seeded(&mut g, 7);
        let lowered = lower::lower_f32(&g).unwrap();
        let n = g.tensors[g.input].shape.elements().unwrap();
        let input: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let out = run(&lowered, &input);
        assert!(out.iter().all(|v| v.is_finite()), "{name}: {out:?}");
        if name != "autoencoder" {
            let sum: f32 = out.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{name}: softmax sums to {sum}");
        }
        assert!(lowered.arena_bytes < lowered.activation_bytes / 2, "{name}: arena {} of {}", lowered.arena_bytes, lowered.activation_bytes);
        // Same seed, same bytes; another seed, other weights.
        let mut again = zoo::build(name).unwrap();
        init::seeded(&mut again, 7);
        assert_eq!(lower::lower_f32(&again).unwrap().blob, lowered.blob, "{name}");
        init::seeded(&mut again, 8);
        assert_ne!(run(&lower::lower_f32(&again).unwrap(), &input), out, "{name}");
    }
}

#[test]
fn float_arena_of_ds_cnn_is_two_feature_maps() {
    // Every DS-CNN block maps 25x5x64 floats (32,000 bytes) to the same size,
    // so the planned arena is exactly two of them.
    let mut g = zoo::ds_cnn();
    init::seeded(&mut g, 1);
    assert_eq!(lower::lower_f32(&g).unwrap().arena_bytes, 64_000);
}

#[test]
fn missing_weights_are_named() {
    let g = zoo::autoencoder();
    assert_eq!(lower::lower_f32(&g).unwrap_err().to_string(), "failed to lower layer 'dense1': it has no weights");
}
