//! Memory schedules: partial execution by rows (`memory = "partial"`) must
//! give every output byte the whole-tensor schedule gives, with an arena
//! no larger, on every zoo model and precision and on random convolution
//! chains; DS-CNN's arena halves.

use harness::model::graph::{GraphBuilder, Win};
use harness::model::prepare::{self, Calibration, Pruning, Recipe, Schedule, Scheme};
use harness::model::zoo;
use kernels::geometry::{Activation, Padding, Shape};
use kernels::model::{Model, Op};

fn recipe(scheme: Scheme, memory: Schedule) -> Recipe {
    Recipe {
        scheme,
        overrides: vec![],
        pruning: None,
        exits: None,
        weight_seed: 3,
        calibration: Calibration::Synthetic(4, 9),
        input_seed: 5,
        memory,
    }
}

/// Output and arena of a graph prepared with `r`, and how many of its
/// convolutions and adds write over their input.
fn run(g: &harness::model::graph::Graph, r: &Recipe) -> (Vec<u8>, usize, usize) {
    let p = prepare::prepare(g, r).unwrap();
    let (out, _) = prepare::reference(&p, &[]).unwrap();
    let in_place = Model::parse(p.lowered.blob.as_bytes())
        .unwrap()
        .ops()
        .filter(|op| {
            let (inputs, output) = op.io();
            let over = |i: Option<kernels::model::TensorDesc>| {
                i.zip(output).is_some_and(|(i, o)| i.offset == o.offset)
            };
            match op {
                Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } => over(inputs[0]),
                Op::Add { .. } => over(inputs[0]) || over(inputs[1]),
                _ => false,
            }
        })
        .count();
    (out, p.lowered.arena_bytes, in_place)
}

/// Tensor and partial side by side: the same bytes out, no more arena;
/// returns both arenas and the operators run in place.
fn same_output_no_more_arena(
    g: &harness::model::graph::Graph,
    base: Recipe,
) -> (usize, usize, usize) {
    let tensor = Recipe {
        memory: Schedule::Tensor,
        ..base.clone()
    };
    let partial = Recipe {
        memory: Schedule::Partial,
        ..base
    };
    let (tensor_out, tensor_arena, none) = run(g, &tensor);
    let (partial_out, partial_arena, in_place) = run(g, &partial);
    assert_eq!(none, 0, "{}: the tensor schedule ran in place", g.name);
    assert_eq!(tensor_out, partial_out, "{}: outputs differ", g.name);
    assert!(
        partial_arena <= tensor_arena,
        "{}: {partial_arena} > {tensor_arena}",
        g.name
    );
    (tensor_arena, partial_arena, in_place)
}

#[test]
fn ds_cnns_arena_halves_with_every_output_byte_the_same() {
    let int8 = Scheme::Int8 { per_channel: true };
    // conv1's 25x5x64 output (8,000 bytes) and the 49x10 input (496
    // aligned) are the peak once every depthwise and pointwise layer runs
    // over its own input; whole tensors need two 8,000-byte buffers.
    let arenas = same_output_no_more_arena(&zoo::ds_cnn(), recipe(int8, Schedule::Tensor));
    // All eight depthwise and pointwise layers.
    assert_eq!(arenas, (16_000, 8_496, 8));
}

#[test]
fn resnet8s_residual_adds_write_over_their_input() {
    let int8 = Scheme::Int8 { per_channel: true };
    // Whole tensors: a block's input, its second convolution's output and
    // the sum, 16,384 bytes each, at every add. Partially, the sum takes
    // the convolution's bytes; 5 convolutions and all 3 adds run in place.
    let arenas = same_output_no_more_arena(&zoo::resnet8(), recipe(int8, Schedule::Tensor));
    assert_eq!(arenas, (49_152, 32_768, 8));
}

#[test]
fn every_zoo_model_and_precision_gives_the_same_output_partially() {
    let schemes = [
        Scheme::Int8 { per_channel: true },
        Scheme::Int8 { per_channel: false },
        Scheme::Float32,
        Scheme::Int4,
        Scheme::Binary { keep: None },
    ];
    for name in zoo::NAMES {
        let g = zoo::build(name).unwrap();
        for scheme in schemes.clone() {
            same_output_no_more_arena(&g, recipe(scheme, Schedule::Tensor));
        }
        // Sparse kernels over bands too.
        let blocks = Recipe {
            pruning: Some(Pruning::Block {
                block: [1, 4],
                sparsity: 0.8,
                sparse_kernels: true,
            }),
            ..recipe(Scheme::Int8 { per_channel: true }, Schedule::Tensor)
        };
        same_output_no_more_arena(&g, blocks);
        let sparse = Recipe {
            pruning: Some(Pruning::Magnitude {
                sparsity: 0.8,
                sparse_kernels: true,
            }),
            ..recipe(Scheme::Int8 { per_channel: true }, Schedule::Tensor)
        };
        same_output_no_more_arena(&g, sparse);
    }
}

/// A small xorshift, so the shapes below are the same on every run.
struct Shapes(u64);

impl Shapes {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as u32
    }
}

/// Random chains of depthwise (kernel 1-5, stride 1-2, same or valid) and
/// pointwise layers (fewer, as many or more output channels) over random
/// images: partial execution, where it applies, changes no output byte.
#[test]
fn random_convolution_chains_give_the_same_output_partially() {
    let mut rng = Shapes(0x9e37_79b9_7f4a_7c15);
    let (mut in_place, mut layers) = (0, 0);
    for case in 0..60 {
        let (h, w, c) = (2 + rng.below(20), 1 + rng.below(12), 4 + rng.below(40));
        // A narrow input widened by the stem, so the peak lies in the chain
        // (the plan shares buffers only where that lowers the peak).
        let input = Shape::new(1, h, w, 1 + rng.below(3));
        let mut b = GraphBuilder::new(&format!("chain{case}"), input);
        let mut x = b.conv("stem", 0, c, Win::same((1, 1)), Activation::Relu);
        for i in 0..3 {
            let k = 1 + rng.below(5);
            let padding = if rng.below(2) == 0 {
                Padding::Same
            } else {
                Padding::Valid
            };
            let s = b.shape(x);
            let win = Win {
                kernel: (k.min(s.h), k.min(s.w)),
                stride: 1 + rng.below(2),
                padding,
            };
            x = b.depthwise(&format!("dw{i}"), x, win, Activation::Relu);
            let filters = (b.shape(x).c * (2 + rng.below(3)) / 3).max(1);
            x = b.conv(
                &format!("pw{i}"),
                x,
                filters,
                Win::same((1, 1)),
                Activation::Relu,
            );
        }
        let g = b.finish(x);
        let int8 = recipe(Scheme::Int8 { per_channel: true }, Schedule::Tensor);
        let (_, _, n) = same_output_no_more_arena(&g, int8);
        let (_, _, n_f) = same_output_no_more_arena(&g, recipe(Scheme::Float32, Schedule::Tensor));
        (in_place, layers) = (in_place + n + n_f, layers + 2 * 6);
    }
    // The chains exercise the bands: many of their layers ran in place.
    assert!(
        in_place * 3 >= layers,
        "only {in_place} of {layers} layers ran in place"
    );
}
