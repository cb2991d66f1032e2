//! Memory schedules: partial execution by rows (`memory = "partial"`:
//! layers over their own input, runs of layers through line buffers) and
//! patches of the first stage (`memory = "patch"`) must give every output
//! byte the whole-tensor schedule gives, with an arena no larger, on every zoo model and precision, on imported models and
//! on random convolution chains and residual stages; DS-CNN's arena
//! halves, ResNet-8's falls to half.

use harness::model::graph::{GraphBuilder, Win};
use harness::model::host::HostModel;
use harness::model::lower::{self, Placement};
use harness::model::prepare::{self, Calibration, Pruning, Recipe, Schedule, Scheme};
use harness::model::{patch, zoo};
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

/// How a partial schedule ran a model's layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Partially {
    /// Convolutions and adds that wrote over their input.
    in_place: usize,
    /// Layers run a band at a time in row-fused segments.
    fused: usize,
}

/// Output and arena of a graph prepared with `r`, and how its layers ran.
fn run(g: &harness::model::graph::Graph, r: &Recipe) -> (Vec<u8>, usize, Partially) {
    let p = prepare::prepare(g, r).unwrap();
    let (out, _) = prepare::reference(&p, &[]).unwrap();
    let model = Model::parse(p.lowered.blob.as_bytes()).unwrap();
    let fused = model
        .ops()
        .map(|op| match op {
            Op::Fused { layers, .. } => layers as usize,
            _ => 0,
        })
        .sum();
    let in_place = model
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
    (out, p.lowered.arena_bytes, Partially { in_place, fused })
}

/// Arenas of one model under the three schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Arenas {
    tensor: usize,
    partial: usize,
    patch: usize,
}

/// Tensor, partial and patch side by side: the same bytes out, no more
/// arena (patch runs the layers after its stage as partial does, and is
/// partial where patches would not lower the peak); returns the arenas
/// and how the partial schedule ran.
fn same_output_no_more_arena(
    g: &harness::model::graph::Graph,
    base: Recipe,
) -> (Arenas, Partially) {
    let under = |memory| Recipe {
        memory,
        ..base.clone()
    };
    let (tensor_out, tensor, none) = run(g, &under(Schedule::Tensor));
    let (partial_out, partial, ran) = run(g, &under(Schedule::Partial));
    let (patch_out, patch, _) = run(g, &under(Schedule::Patch));
    assert_eq!(
        none,
        Partially::default(),
        "{}: the tensor schedule ran partially",
        g.name
    );
    assert_eq!(
        tensor_out, partial_out,
        "{}: outputs differ (partial)",
        g.name
    );
    assert_eq!(tensor_out, patch_out, "{}: outputs differ (patch)", g.name);
    assert!(partial <= tensor, "{}: {partial} > {tensor}", g.name);
    assert!(patch <= partial, "{}: {patch} > {partial}", g.name);
    let arenas = Arenas {
        tensor,
        partial,
        patch,
    };
    (arenas, ran)
}

#[test]
fn ds_cnns_arena_halves_with_every_output_byte_the_same() {
    let int8 = Scheme::Int8 { per_channel: true };
    // conv1's 25x5x64 output (8,000 bytes) and the 49x10 input (496
    // aligned) are the peak once every depthwise and pointwise layer runs
    // over its own input; whole tensors need two 8,000-byte buffers.
    // conv1 runs as a run of its own whose output takes its input's bytes
    // as their rows die: 8,064 bytes for both. Patches cannot go lower:
    // conv1's input and output are whole under them too.
    let arenas = same_output_no_more_arena(&zoo::ds_cnn(), recipe(int8, Schedule::Tensor));
    let ran = Partially {
        in_place: 8,
        fused: 1,
    };
    let expected = Arenas {
        tensor: 16_000,
        partial: 8_064,
        patch: 8_064,
    };
    assert_eq!(arenas, (expected, ran));
}

#[test]
fn resnet8s_blocks_run_by_rows_through_line_buffers() {
    let int8 = Scheme::Int8 { per_channel: true };
    // Whole tensors: a block's input, its second convolution's output and
    // the sum, 16,384 bytes each, at every add. Partially, the residual
    // blocks run a band of rows at a time, their convolutions' outputs
    // held as line buffers and each sum written over the block's input as
    // its rows die; the peak is the stem's 3,072-byte input beside its
    // 16,384-byte output, less what the stem's own rows free. Patches of
    // the stem and first block would save 1,744 bytes at 3.2x the
    // model's MACs, past the recomputation budget: patch is partial here.
    let arenas = same_output_no_more_arena(&zoo::resnet8(), recipe(int8, Schedule::Tensor));
    let ran = Partially {
        in_place: 4,
        fused: 8,
    };
    let expected = Arenas {
        tensor: 49_152,
        partial: 18_944,
        patch: 18_944,
    };
    assert_eq!(arenas, (expected, ran));
}

/// The repository's copy of a public model.
fn model_file(path: &str) -> harness::model::graph::Graph {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    harness::model::import::load(&root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn imported_models_fuse_where_their_activations_peak() {
    let int8 = Scheme::Int8 { per_channel: true };
    // (file, arenas: whole-tensor, partial, patch; layers fused under
    // partial). TFLite Micro's arena_used_bytes for the same files on
    // qemu-m4: 54,996, 9,316, 219,808 and 49,604 bytes (README, memory
    // schedules).
    let arenas = |tensor, partial, patch| Arenas {
        tensor,
        partial,
        patch,
    };
    let cases = [
        // The stem over its input's dying rows, the three residual blocks
        // by rows, each sum over its block's input; patches would cost
        // more MACs than the budget allows.
        (
            "models/mlperf-tiny/pretrainedResnet_quant.tflite",
            arenas(49_152, 18_944, 18_944),
            12,
        ),
        // Both stride-2 convolutions by rows, the output written over the
        // input's rows as they die: 3,072 input bytes, 2,048 output bytes
        // over them, the first convolution's rows between.
        (
            "models/public/arduino_magic_wand.tflite",
            arenas(7_168, 3_840, 3_840),
            2,
        ),
        // The float input's quantization and the stem by rows, the int8
        // copy a line buffer and the stem's output over the 76,800-byte
        // float input as its rows die; then the first bottlenecks. The
        // float input alone is most of the peak under patches too.
        (
            "models/public/tinyengine_mcunet_vww.tflite",
            arenas(96_000, 77_040, 77_040),
            7,
        ),
        // The same for a uint8 input's requantization; patches of its
        // first layers hold less than their line buffers.
        (
            "models/public/coral_mobilenet_v1_025_128_uint8.tflite",
            arenas(98_304, 69_120, 65_488),
            5,
        ),
        // Two inputs packed into one buffer: the sum goes over the first.
        (
            "models/public/tfm_simple_add.tflite",
            arenas(49_152, 32_768, 32_768),
            0,
        ),
    ];
    for (path, expected, fused) in cases {
        let (arenas, ran) =
            same_output_no_more_arena(&model_file(path), recipe(int8.clone(), Schedule::Tensor));
        assert_eq!((arenas, ran.fused), (expected, fused), "{path}");
    }
}

/// A random residual stage (a stride-1 or stride-2 convolution, a 3x3 or
/// 5x5 one, a max or average pool, an add with the stage's input or its
/// 1x1 shortcut) over a random image.
fn residual_stages(rng: &mut Shapes, case: usize) -> harness::model::graph::Graph {
    let (h, w, c) = (4 + rng.below(28), 2 + rng.below(16), 2 + rng.below(24));
    let mut b = GraphBuilder::new(
        &format!("stages{case}"),
        Shape::new(1, h, w, 1 + rng.below(3)),
    );
    let mut x = b.conv("stem", 0, c, Win::same((3, 3)), Activation::Relu);
    for i in 0..2 {
        let stride = 1 + rng.below(2);
        let k = [3, 5][rng.below(2) as usize];
        let win = Win {
            kernel: (k, k),
            stride,
            padding: Padding::Same,
        };
        let filters = b.shape(x).c + rng.below(9);
        let y = b.conv(&format!("a{i}"), x, filters, win, Activation::Relu);
        let y = b.conv(
            &format!("b{i}"),
            y,
            filters,
            Win::same((3, 3)),
            Activation::None,
        );
        let skip = if stride == 1 && filters == b.shape(x).c {
            x
        } else {
            let one = Win {
                kernel: (1, 1),
                stride,
                padding: Padding::Same,
            };
            b.conv(&format!("short{i}"), x, filters, one, Activation::None)
        };
        x = b.add(&format!("add{i}"), y, skip, Activation::Relu);
        if rng.below(2) == 0 {
            let pool = Win::same((3, 3));
            x = if rng.below(2) == 0 {
                b.max_pool(&format!("pool{i}"), x, pool)
            } else {
                b.avg_pool(&format!("pool{i}"), x, pool)
            };
        }
    }
    b.finish(x)
}

/// Random residual stages (a stride-1 or stride-2 convolution, a 3x3 or
/// 5x5 one, a max or average pool, an add with the stage's input or its
/// 1x1 shortcut) over random images: fused or not, every output byte as
/// the whole-tensor schedule gives it.
#[test]
fn random_residual_stages_give_the_same_output_by_rows() {
    let mut rng = Shapes(0x2545_f491_4f6c_dd1d);
    let mut fused = 0;
    for case in 0..40 {
        let g = residual_stages(&mut rng, case);
        for scheme in [Scheme::Int8 { per_channel: true }, Scheme::Float32] {
            let (_, ran) = same_output_no_more_arena(&g, recipe(scheme, Schedule::Tensor));
            fused += ran.fused;
        }
    }
    // The stages exercise the segments: most of their layers ran by rows.
    assert!(fused >= 40 * 2 * 4, "only {fused} layers fused");
}

/// Runs `p`'s graph with each of `stages` patched 2x2 and 3x3 (int8 with
/// its own fixed quantization, or float), asserting each output equals the
/// whole tensors' byte for byte; returns how many graphs ran.
fn patches_give_the_whole_output(
    p: &prepare::Prepared,
    stages: &[(usize, usize)],
    int8: bool,
    placement: Placement,
) -> usize {
    let (whole, _) = prepare::reference(p, &[]).unwrap();
    let mut patched = 0;
    for &(start, end) in stages {
        for grid in 2..=3 {
            let stage = patch::Stage { start, end, grid };
            let rewritten = patch::rewrite(&p.graph, stage).unwrap();
            let lowered = if int8 {
                let options = lower::Int8Options {
                    per_channel: true,
                    sparse_from: None,
                    placement,
                };
                lower::lower_int8(&rewritten.graph, &[], options)
            } else {
                lower::lower_f32_placed(&rewritten.graph, placement)
            };
            let blob = lowered.unwrap().blob;
            let mut host = HostModel::new(blob.as_bytes()).unwrap();
            let outcome = host.run(&p.input, &[]).unwrap();
            let name = &p.graph.name;
            assert_eq!(host.tensor(&outcome.output), &whole[..], "{name} {stage:?}");
            patched += 1;
        }
    }
    patched
}

/// Every first stage and grid of the random residual stages, patched
/// whatever it costs (the schedule itself stops at a recomputation
/// budget): the float output byte for byte as the whole tensors give it,
/// since each output value is the same sum in the same order.
#[test]
fn every_stage_and_grid_of_random_residual_stages_gives_the_same_output_by_patches() {
    let mut rng = Shapes(0x2545_f491_4f6c_dd1d);
    let mut patched = 0;
    for case in 0..40 {
        let g = residual_stages(&mut rng, case);
        let p = prepare::prepare(&g, &recipe(Scheme::Float32, Schedule::Tensor)).unwrap();
        let stages = patch::stages(&p.graph);
        patched += patches_give_the_whole_output(&p, &stages, false, Placement::Planned);
    }
    // Most stages have two or more ends, each tried with two grids.
    assert!(patched >= 200, "only {patched} patched graphs");
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
    let (mut in_place, mut layers, mut patched) = (0, 0, 0);
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
        let (a, n) = same_output_no_more_arena(&g, int8);
        let (a_f, n_f) = same_output_no_more_arena(&g, recipe(Scheme::Float32, Schedule::Tensor));
        patched += usize::from(a.patch < a.partial) + usize::from(a_f.patch < a_f.partial);
        let partially = |p: Partially| p.in_place + p.fused;
        (in_place, layers) = (in_place + partially(n) + partially(n_f), layers + 2 * 6);
    }
    // The chains exercise the bands: many of their layers ran in place
    // or by rows.
    assert!(
        in_place * 3 >= layers,
        "only {in_place} of {layers} layers ran in place or by rows"
    );
    // Patches beat the line buffers on some chains (34 of 120 runs).
    assert!(patched >= 30, "patches lowered only {patched} arenas");
}

/// Every stage (the first twelve) of imported models of every kind,
/// patched 2x2 and 3x3 whatever it costs: int8 with its own quantization,
/// int16x8, uint8-free ONNX QDQ, and float models (Larq, PyTorch) in
/// float, each byte for byte as its whole tensors give it. (A float input
/// read through a window is float: the rewrite's first Slice once had the
/// int8 type and its blob did not load.)
#[test]
fn every_stage_of_imported_models_gives_the_same_output_by_patches() {
    let files = [
        ("models/exported/kws_dscnn_int16x8.tflite", 12),
        ("models/public/tinyengine_mcunet_vww.tflite", 24),
        ("models/mlperf-tiny/kws_ref_model.tflite", 20),
        ("models/public/arduino_magic_wand.tflite", 6),
        ("models/byo/pytorch_cnn_qdq.onnx", 8),
        ("models/byo/pytorch_kws1d_qdq.onnx", 10),
        ("models/byo/larq_dscnn_kws.tflite", 4),
        ("models/byo/larq_binarynet.tflite", 2),
        ("models/byo/pytorch_shuffle_upsample.onnx", 2),
        ("models/public/onnx2c_conv_k2_maxpool_k2.onnx", 4),
    ];
    for (path, graphs) in files {
        let g = model_file(path);
        let int8 = prepare::is_imported_int8(&g);
        let scheme = if int8 {
            Scheme::Int8 { per_channel: true }
        } else {
            Scheme::Float32
        };
        let p = prepare::prepare(&g, &recipe(scheme, Schedule::Tensor)).unwrap();
        let stages: Vec<_> = patch::stages(&p.graph).into_iter().take(12).collect();
        let patched = patches_give_the_whole_output(&p, &stages, int8, Placement::InPlace);
        assert_eq!(patched, graphs, "{path}");
    }
}
