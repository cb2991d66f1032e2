//! The executor runs a serialized model over a planned arena exactly as
//! calling the kernels one by one would, follows exit heads at run time,
//! stamps operators, and refuses malformed blobs without panicking.

mod common;

use common::{Quant, Rng};
use kernels::clock::{Clock, StampProfiler};
use kernels::exit::Confidence;
use kernels::geometry::{ConvGeometry, Padding, Shape, Window};
use kernels::int8::{Clamp, DenseGeometry, SoftmaxParams};
use kernels::model::*;
use kernels::planner::{self, Buffer};
use kernels::quant::Rounding;
use kernels::{int4, int8, sparse};

/// The test model, its blob, and the data needed to recompute it by hand.
struct Fixture {
    blob: Blob,
    input: Vec<i8>,
    want_final: Vec<i8>,
    want_head: Vec<i8>,
    head_scale: f32,
}

/// input [1,8,8,3] -> conv 3x3 (8) -> depthwise 3x3 -> [exit: avgpool 8x8 -> fc 4 -> head 0]
///   -> int4 conv 1x1 (8) -> maxpool 2x2/2 -> reshape [1,128] -> sparse fc 4 -> softmax
fn fixture() -> Fixture {
    let mut rng = Rng(42);
    let s = |h, w, c| Shape::new(1, h, w, c);
    let shapes = [
        s(8, 8, 3),
        s(8, 8, 8),
        s(8, 8, 8),
        s(1, 1, 8),
        s(1, 1, 4),
        s(8, 8, 8),
        s(4, 4, 8),
        Shape::flat(1, 128),
        Shape::flat(1, 4),
        Shape::flat(1, 4),
    ];
    // (inputs, output) per op, by tensor index; the exit head reads tensor 4.
    let io: [(&[usize], Option<usize>); 10] = [
        (&[0], Some(1)),
        (&[1], Some(2)),
        (&[2], Some(3)),
        (&[3], Some(4)),
        (&[4], None),
        (&[2], Some(5)),
        (&[5], Some(6)),
        (&[6], Some(7)),
        (&[7], Some(8)),
        (&[8], Some(9)),
    ];
    let mut buffers: Vec<Buffer> = shapes
        .iter()
        .map(|s| Buffer {
            size: s.elements().unwrap(),
            first: usize::MAX,
            last: 0,
        })
        .collect();
    for (step, (inputs, output)) in io.iter().enumerate() {
        for &t in inputs.iter().chain(output.iter()) {
            buffers[t].first = buffers[t].first.min(step);
            buffers[t].last = buffers[t].last.max(step);
        }
    }
    buffers[9].last = io.len(); // the final output must survive the run
    let plan = planner::plan(&buffers, 16);
    assert!(planner::is_valid(&buffers, &plan));
    let t = |i: usize| TensorDesc {
        dtype: DType::I8,
        shape: shapes[i],
        offset: plan.offsets[i] as u32,
    };

    let mut w = ModelWriter::new();
    let input = rng.i8s(shapes[0].elements().unwrap());
    let q: Vec<Quant> = (0..6)
        .map(|i| Quant::random(&mut rng, [8, 8, 4, 8, 4, 0][i].max(1)))
        .collect();
    // Feed each layer the zero point the previous layer produced, as a real model does.
    let stage = |w: &mut ModelWriter, q: &Quant, input_zp: i32| Stage::Int8 {
        input_offset: -input_zp,
        filter_offset: q.filter_offset,
        output_offset: q.output_offset,
        requant: w.constant(&q.requant),
        clamp: Clamp {
            min: q.act.0,
            max: q.act.1,
        },
        rounding: Rounding::Double,
    };

    let g1 = ConvGeometry::new(shapes[0], 8, (3, 3), (1, 1), (1, 1), Padding::Same);
    let f1 = rng.i8s(8 * 27);
    let b1 = rng.i32s(8, 3000);
    let g2 = ConvGeometry::new(shapes[1], 8, (3, 3), (1, 1), (1, 1), Padding::Same);
    let f2 = rng.i8s(9 * 8);
    let g3 = ConvGeometry {
        input: shapes[2],
        output: shapes[3],
        window: Window::new((8, 8), (8, 8), (1, 1), Padding::Valid, (8, 8)).0,
    };
    let dg4 = DenseGeometry {
        batch: 1,
        in_features: 8,
        out_features: 4,
    };
    let f4 = rng.i8s(32);
    let g5 = ConvGeometry::new(shapes[2], 8, (1, 1), (1, 1), (1, 1), Padding::Valid);
    let f5 = rng.i8s_in(64, -8, 7);
    let mut f5_packed = vec![0u8; 8 * int4::row_bytes(8)];
    int4::pack(&f5, 8, &mut f5_packed).unwrap();
    let g6 = ConvGeometry {
        input: shapes[5],
        output: shapes[6],
        window: Window::new((2, 2), (2, 2), (1, 1), Padding::Valid, (8, 8)).0,
    };
    let dg8 = DenseGeometry {
        batch: 1,
        in_features: 128,
        out_features: 4,
    };
    let f8: Vec<i8> = rng
        .i8s(512)
        .into_iter()
        .enumerate()
        .map(|(i, v)| if i % 10 < 9 { 0 } else { v })
        .collect();
    let (rp, entries) = sparse::Csr::dense_layer(&f8, 128).unwrap();
    let sm = SoftmaxParams::new(1.0, 0.05);
    let zp_in = 7;

    let ops = [
        Op::Conv2d {
            input: t(0),
            output: t(1),
            window: g1.window,
            weights: Weights::Int8 {
                filter: w.constant(&f1),
                bias: Some(w.constant(&b1)),
            },
            stage: stage(&mut w, &q[0], zp_in),
        },
        Op::DepthwiseConv2d {
            input: t(1),
            output: t(2),
            window: g2.window,
            depth_multiplier: 1,
            weights: Weights::Int8 {
                filter: w.constant(&f2),
                bias: None,
            },
            stage: stage(&mut w, &q[1], q[0].output_offset),
        },
        Op::AvgPool {
            input: t(2),
            output: t(3),
            window: g3.window,
            act: Act::I8(Clamp::FULL),
            rounding: int8::PoolRounding::AwayFromZero,
        },
        Op::FullyConnected {
            input: t(3),
            output: t(4),
            weights: Weights::Int8 {
                filter: w.constant(&f4),
                bias: None,
            },
            stage: stage(&mut w, &q[2], q[1].output_offset),
        },
        Op::ExitHead {
            head: 0,
            logits: t(4),
            measure: Confidence::MaxSoftmax,
            scale: 0.1,
            zero_point: q[2].output_offset,
        },
        Op::Conv2d {
            input: t(2),
            output: t(5),
            window: g5.window,
            weights: Weights::Int4 {
                filter: w.constant(&f5_packed),
                bias: None,
            },
            stage: stage(&mut w, &q[3], q[1].output_offset),
        },
        Op::MaxPool {
            input: t(5),
            output: t(6),
            window: g6.window,
            act: Act::I8(Clamp::FULL),
        },
        Op::Reshape {
            input: t(6),
            output: t(7),
        },
        Op::FullyConnected {
            input: t(7),
            output: t(8),
            weights: Weights::Sparse {
                row_ptr: w.constant(&rp),
                entries: w.constant(&entries),
                bias: None,
            },
            stage: stage(&mut w, &q[4], q[3].output_offset),
        },
        Op::Softmax {
            input: t(8),
            output: t(9),
            int8: Some(sm),
            beta: 1.0,
        },
    ];
    ops.iter().for_each(|&op| w.push(op));
    let blob = w.finish(GraphHeader {
        arena_bytes: plan.peak as u32,
        op_count: 0,
        exit_heads: 1,
        input: t(0),
        output: t(9),
    });

    // The same computation, kernel by kernel, in separate buffers.
    let buf = |i: usize| vec![0i8; shapes[i].elements().unwrap()];
    let (mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x8, mut x9) = (
        buf(1),
        buf(2),
        buf(3),
        buf(4),
        buf(5),
        buf(6),
        buf(8),
        buf(9),
    );
    int8::conv2d(
        &g1,
        &stage_of(&q[0], zp_in),
        &input,
        &f1,
        Some(&b1),
        &mut x1,
    )
    .unwrap();
    int8::depthwise_conv2d(
        &g2,
        1,
        &stage_of(&q[1], q[0].output_offset),
        &x1,
        &f2,
        None,
        &mut x2,
    )
    .unwrap();
    int8::avg_pool(
        &g3,
        Clamp::FULL,
        int8::PoolRounding::AwayFromZero,
        &x2,
        &mut x3,
    )
    .unwrap();
    int8::fully_connected(
        &dg4,
        &stage_of(&q[2], q[1].output_offset),
        &x3,
        &f4,
        None,
        &mut x4,
    )
    .unwrap();
    int4::conv2d(
        &g5,
        &stage_of(&q[3], q[1].output_offset),
        &x2,
        &f5_packed,
        None,
        &mut x5,
    )
    .unwrap();
    int8::max_pool(&g6, Clamp::FULL, &x5, &mut x6).unwrap();
    let csr = sparse::Csr {
        row_ptr: &rp,
        entries: &entries,
    };
    sparse::fully_connected(
        &dg8,
        &stage_of(&q[4], q[3].output_offset),
        &x6,
        &csr,
        None,
        &mut x8,
    )
    .unwrap();
    int8::softmax(&sm, 4, &x8, &mut x9).unwrap();
    Fixture {
        blob,
        input,
        want_final: x9,
        want_head: x4,
        head_scale: 0.1,
    }
}

fn stage_of(q: &Quant, input_zp: i32) -> int8::OutputStage<'_> {
    int8::OutputStage {
        input_offset: -input_zp,
        filter_offset: 0,
        output_offset: q.output_offset,
        requant: &q.requant,
        act_min: q.act.0,
        act_max: q.act.1,
        rounding: Rounding::Double,
    }
}

fn arena_for(model: &Model) -> Vec<u32> {
    vec![0u32; model.arena_bytes().div_ceil(4)]
}

fn run(model: &Model, input: &[i8], thresholds: &[f32]) -> (Outcome, Vec<i8>) {
    let mut words = arena_for(model);
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    model
        .input_mut(arena)
        .unwrap()
        .copy_from_slice(bytemuck::cast_slice(input));
    let outcome = model.run(arena, thresholds).unwrap();
    let out = bytemuck::cast_slice(model.tensor(arena, &outcome.output).unwrap()).to_vec();
    (outcome, out)
}

#[test]
fn executor_equals_kernels_called_one_by_one() {
    let f = fixture();
    let model = Model::parse(f.blob.as_bytes()).unwrap();
    assert_eq!(model.header().op_count, 10);
    // All activations sum to 2004 bytes; the optimum is 1024, forced at the
    // int4 conv where its 512-byte input and 512-byte output are both alive.
    assert_eq!(model.arena_bytes(), 1024);

    let (outcome, out) = run(&model, &f.input, &[]);
    assert_eq!(outcome.exit, None);
    assert_eq!(outcome.ops_run, 10);
    assert_eq!(out, f.want_final);
}

/// On x86-64, each SIMD level this CPU has gives the same outputs with its
/// filters packed per call and packed once ahead of the runs.
#[cfg(target_arch = "x86_64")]
#[test]
fn filters_packed_ahead_give_the_same_outputs() {
    use kernels::x86::{select, Isa};
    let f = fixture();
    let model = Model::parse(f.blob.clone().leak()).unwrap();
    for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
        assert_eq!(select(isa), isa);
        assert_eq!(
            run(&model, &f.input, &[]).1,
            f.want_final,
            "{} kernels, packed per call",
            isa.name()
        );
        // The 3x3 convolution and the exit head's dense layer (int8), the
        // int4 convolution, unpacked once first, and the sparse dense
        // layer, written out dense first (the sparse convolution stays).
        let packed = kernels::int8::x86::prepare(&model);
        assert_eq!(packed, if isa == Isa::Portable { 0 } else { 4 });
        let (g, int4) = model.int4_filters().next().unwrap();
        assert_eq!(
            kernels::int4::prepared::find(int4, g.output.c as usize, g.depth()).is_some(),
            isa != Isa::Portable
        );
        assert_eq!(
            run(&model, &f.input, &[]).1,
            f.want_final,
            "{} kernels, packed ahead",
            isa.name()
        );
        let (outcome, head) = run(&model, &f.input, &[0.0]);
        assert_eq!(
            (outcome.exit, head),
            (Some(0), f.want_head.clone()),
            "{} kernels, exit head",
            isa.name()
        );
    }
    select(Isa::Portable);
}

#[test]
fn exit_thresholds_are_run_time_values() {
    let f = fixture();
    let model = Model::parse(f.blob.as_bytes()).unwrap();
    let zp = match model.ops().nth(4) {
        Some(Op::ExitHead { zero_point, .. }) => zero_point,
        other => panic!("op 4 is {other:?}"),
    };
    let confidence_zp = Confidence::MaxSoftmax.score_i8(&f.want_head, f.head_scale, zp);
    // A threshold just below the head's confidence exits there, with the head's logits.
    let (outcome, out) = run(&model, &f.input, &[confidence_zp.next_down()]);
    assert_eq!((outcome.exit, outcome.ops_run), (Some(0), 5));
    assert_eq!(out, f.want_head);
    // At it (the comparison is strict), the same blob runs to the end.
    let (outcome, out) = run(&model, &f.input, &[confidence_zp]);
    assert_eq!(outcome.exit, None);
    assert_eq!(out, f.want_final);
}

struct Counter(u64);

impl Clock for Counter {
    fn now(&mut self) -> u64 {
        self.0 += 10;
        self.0
    }
}

#[test]
fn profiling_stamps_every_operator() {
    let f = fixture();
    let model = Model::parse(f.blob.as_bytes()).unwrap();
    let mut words = arena_for(&model);
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    let mut stamps = [0u64; 11];
    let mut clock = Counter(0);
    model
        .run_profiled(arena, &[], &mut StampProfiler::new(&mut clock, &mut stamps))
        .unwrap();
    assert_eq!(stamps, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]);

    // The host clock: stamps never go backwards, and the model took time.
    let mut host = kernels::clock::HostClock::new();
    let mut stamps = [0u64; 11];
    model
        .run_profiled(arena, &[], &mut StampProfiler::new(&mut host, &mut stamps))
        .unwrap();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]) && stamps[10] > stamps[0],
        "{stamps:?}"
    );
}

#[test]
fn header_errors_are_specific() {
    let f = fixture();
    let bytes = f.blob.as_bytes().to_vec();
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(
        Model::parse(Blob::from_bytes(&bad).as_bytes()).unwrap_err(),
        LoadError::BadMagic
    );
    let mut bad = bytes.clone();
    bad[8] = 9;
    assert_eq!(
        Model::parse(Blob::from_bytes(&bad).as_bytes())
            .unwrap_err()
            .to_string(),
        "failed to load model: format version 9 is not supported (expected 2)"
    );
    let short = Blob::from_bytes(&bytes[..bytes.len() - 1]);
    assert!(matches!(
        Model::parse(short.as_bytes()),
        Err(LoadError::Truncated { .. })
    ));
    // An arena that is too small is refused before anything runs.
    let model = Model::parse(f.blob.as_bytes()).unwrap();
    let mut small = vec![0u32; 4];
    let err = model
        .run(bytemuck::cast_slice_mut(&mut small), &[])
        .unwrap_err();
    assert_eq!(
        err,
        RunError::Arena {
            need: model.arena_bytes(),
            have: 16
        }
    );
}

#[test]
fn overlapping_output_is_refused_at_load() {
    let mut w = ModelWriter::new();
    let a = TensorDesc {
        dtype: DType::I8,
        shape: Shape::flat(1, 8),
        offset: 0,
    };
    let b = TensorDesc { offset: 4, ..a };
    w.push(Op::Reshape {
        input: a,
        output: b,
    });
    let blob = w.finish(GraphHeader {
        arena_bytes: 16,
        op_count: 0,
        exit_heads: 0,
        input: a,
        output: b,
    });
    assert_eq!(
        Model::parse(blob.as_bytes()).unwrap_err().to_string(),
        "failed to load model: operator 0 (reshape): output overlaps an input"
    );
}

#[test]
fn inconsistent_shapes_are_refused_at_load() {
    let mut w = ModelWriter::new();
    let input = TensorDesc {
        dtype: DType::I8,
        shape: Shape::new(1, 4, 4, 3),
        offset: 0,
    };
    let output = TensorDesc {
        dtype: DType::I8,
        shape: Shape::new(1, 4, 4, 2),
        offset: 48,
    };
    let g = ConvGeometry::new(input.shape, 2, (3, 3), (1, 1), (1, 1), Padding::Same);
    let requant = w.constant(&[kernels::quant::quantize_multiplier(0.5); 2]);
    // 53 filter bytes where 2 x 3 x 3 x 3 = 54 are needed.
    let filter = w.constant(&[1i8; 53]);
    let stage = Stage::Int8 {
        input_offset: 0,
        filter_offset: 0,
        output_offset: 0,
        requant,
        clamp: Clamp::FULL,
        rounding: Rounding::Double,
    };
    w.push(Op::Conv2d {
        input,
        output,
        window: g.window,
        weights: Weights::Int8 { filter, bias: None },
        stage,
    });
    let blob = w.finish(GraphHeader {
        arena_bytes: 80,
        op_count: 0,
        exit_heads: 0,
        input,
        output,
    });
    assert_eq!(
        Model::parse(blob.as_bytes()).unwrap_err().to_string(),
        "failed to load model: operator 0 (conv2d): filter holds 53 elements, expected 54"
    );
}

/// Every truncation and thousands of random corruptions either fail to load
/// or run to an `Ok` or an `Err`: never a panic, never a read out of bounds.
#[test]
fn truncated_and_corrupted_blobs_never_panic() {
    let f = fixture();
    let bytes = f.blob.as_bytes().to_vec();
    for len in 0..bytes.len() {
        assert!(
            Model::parse(Blob::from_bytes(&bytes[..len]).as_bytes()).is_err(),
            "truncated to {len} bytes it still loaded"
        );
    }
    let mut rng = Rng(7);
    let (mut loaded, mut ran) = (0, 0);
    for _ in 0..3000 {
        let mut bad = bytes.clone();
        for _ in 0..rng.range(1, 4) {
            // Most flips go into the graph section, where structure lives.
            let at = rng.range(0, (bytes.len().min(600) - 1) as i64) as usize;
            bad[at] ^= 1 << rng.range(0, 7);
        }
        let blob = Blob::from_bytes(&bad);
        let Ok(model) = Model::parse(blob.as_bytes()) else {
            continue;
        };
        loaded += 1;
        if model.arena_bytes() > 1 << 20 {
            continue;
        }
        let mut words = vec![0u32; model.arena_bytes().div_ceil(4)];
        if model
            .run(bytemuck::cast_slice_mut(&mut words), &[0.5])
            .is_ok()
        {
            ran += 1;
        }
    }
    println!("of 3000 corrupted blobs, {loaded} loaded and {ran} ran");
    // Some corruptions only change values (weights, zero points) and still run.
    assert!(loaded > 100 && ran > 50, "loaded {loaded}, ran {ran}");
}

/// Float and binary paths: float input -> conv -> depthwise -> add -> max pool
/// -> quantize -> pack bits -> binary conv (bits) -> binary conv (int8)
/// -> dequantize -> avg pool -> float dense -> softmax, with a float exit head.
#[test]
fn float_and_binary_paths_equal_kernels_called_one_by_one() {
    use kernels::binary::{self, BinaryOutput, BinaryPadding};
    use kernels::float;
    let mut rng = Rng(9);
    let mut floats = |n: usize| {
        (0..n)
            .map(|_| rng.unit() as f32 * 2.0 - 1.0)
            .collect::<Vec<f32>>()
    };
    let s = |h, w, c| Shape::new(1, h, w, c);
    let (f, i, b) = (DType::F32, DType::I8, DType::Bits);
    let specs = [
        (f, s(6, 6, 4)),
        (f, s(6, 6, 8)),
        (f, s(6, 6, 8)),
        (f, s(6, 6, 8)),
        (f, s(3, 3, 8)),
        (i, s(3, 3, 8)),
        (b, s(3, 3, 8)),
        (b, s(3, 3, 40)),
        (i, s(3, 3, 16)),
        (f, s(3, 3, 16)),
        (f, s(1, 1, 16)),
        (f, Shape::flat(1, 5)),
        (f, Shape::flat(1, 5)),
    ];
    let mut offset = 0u32;
    let t: Vec<TensorDesc> = specs
        .iter()
        .map(|&(dtype, shape)| {
            let d = TensorDesc {
                dtype,
                shape,
                offset,
            };
            offset += d.byte_len().unwrap().next_multiple_of(16) as u32;
            d
        })
        .collect();
    let same =
        |k, input: Shape| Window::new((k, k), (1, 1), (1, 1), Padding::Same, (input.h, input.w)).0;
    let geo = |a: usize, o: usize, window| ConvGeometry {
        input: t[a].shape,
        output: t[o].shape,
        window,
    };
    let full = (f32::MIN, f32::MAX);

    let (w1, b1, w2) = (floats(8 * 9 * 4), floats(8), floats(9 * 8));
    let bits_w1: Vec<f32> = floats(40 * 9 * 8);
    let (m1, c1) = (floats(40), floats(40));
    let bits_w2: Vec<f32> = floats(16 * 9 * 40);
    let (m2, c2) = (
        floats(16).iter().map(|v| v * 0.5).collect::<Vec<_>>(),
        floats(16).iter().map(|v| v * 3.0).collect::<Vec<_>>(),
    );
    let (w_fc, b_fc) = (floats(5 * 16), floats(5));
    let pack = |v: &[f32], c: usize| {
        let mut out = vec![0u32; v.len() / c * binary::words(c)];
        binary::pack_f32(v, c, &mut out).unwrap();
        out
    };
    // Threshold output: fold each channel's (m, c) and negate its weights where asked.
    let folds: Vec<(i32, bool)> = (0..40)
        .map(|o| binary::fold_threshold(m1[o], c1[o], 72))
        .collect();
    let mut folded = bits_w1.clone();
    for (o, row) in folded.chunks_mut(72).enumerate() {
        if folds[o].1 {
            row.iter_mut().for_each(|v| *v = -*v);
        }
    }
    let thresholds: Vec<i32> = folds.iter().map(|f| f.0).collect();
    let (packed1, packed2) = (pack(&folded, 8), pack(&bits_w2, 40));

    let mut w = ModelWriter::new();
    let ops = [
        Op::Conv2d {
            input: t[0],
            output: t[1],
            window: same(3, t[0].shape),
            weights: Weights::F32 {
                filter: w.constant(&w1),
                bias: Some(w.constant(&b1)),
            },
            stage: Stage::F32 {
                min: -1.0,
                max: 1.0,
            },
        },
        Op::DepthwiseConv2d {
            input: t[1],
            output: t[2],
            window: same(3, t[1].shape),
            depth_multiplier: 1,
            weights: Weights::F32 {
                filter: w.constant(&w2),
                bias: None,
            },
            stage: Stage::F32 {
                min: full.0,
                max: full.1,
            },
        },
        Op::Add {
            a: t[1],
            b: t[2],
            output: t[3],
            int8: None,
            act: Act::F32 { min: 0.0, max: 6.0 },
        },
        Op::MaxPool {
            input: t[3],
            output: t[4],
            window: Window::new((2, 2), (2, 2), (1, 1), Padding::Valid, (6, 6)).0,
            act: Act::F32 {
                min: full.0,
                max: full.1,
            },
        },
        Op::Quantize {
            input: t[4],
            output: t[5],
            scale: 0.05,
            zero_point: -10,
        },
        Op::PackBits {
            input: t[5],
            output: t[6],
            zero_point: -10,
        },
        Op::Conv2d {
            input: t[6],
            output: t[7],
            window: same(3, t[6].shape),
            weights: Weights::Binary {
                filter: w.constant(&packed1),
                padding: BinaryPadding::One,
            },
            stage: Stage::BinaryToBits {
                thresholds: w.constant(&thresholds),
            },
        },
        Op::Conv2d {
            input: t[7],
            output: t[8],
            window: same(3, t[7].shape),
            weights: Weights::Binary {
                filter: w.constant(&packed2),
                padding: BinaryPadding::Zero,
            },
            stage: Stage::BinaryToI8 {
                multiplier: w.constant(&m2),
                bias: w.constant(&c2),
                zero_point: 3,
                clamp: Clamp::FULL,
            },
        },
        Op::Dequantize {
            input: t[8],
            output: t[9],
            scale: 0.1,
            zero_point: 3,
        },
        Op::AvgPool {
            input: t[9],
            output: t[10],
            window: Window::new((3, 3), (3, 3), (1, 1), Padding::Valid, (3, 3)).0,
            act: Act::F32 {
                min: full.0,
                max: full.1,
            },
            rounding: int8::PoolRounding::AwayFromZero,
        },
        Op::FullyConnected {
            input: t[10],
            output: t[11],
            weights: Weights::F32 {
                filter: w.constant(&w_fc),
                bias: Some(w.constant(&b_fc)),
            },
            stage: Stage::F32 {
                min: full.0,
                max: full.1,
            },
        },
        Op::ExitHead {
            head: 0,
            logits: t[11],
            measure: Confidence::Entropy,
            scale: 1.0,
            zero_point: 0,
        },
        Op::Softmax {
            input: t[11],
            output: t[12],
            int8: None,
            beta: 1.0,
        },
    ];
    ops.iter().for_each(|&op| w.push(op));
    let blob = w.finish(GraphHeader {
        arena_bytes: offset,
        op_count: 0,
        exit_heads: 1,
        input: t[0],
        output: t[12],
    });
    let model = Model::parse(blob.as_bytes()).unwrap();

    // By hand.
    let x0 = floats(144);
    let zeros = |k: usize| vec![0f32; t[k].shape.elements().unwrap()];
    let (mut x1, mut x2, mut x3, mut x4, mut x9, mut x10, mut x11, mut x12) = (
        zeros(1),
        zeros(2),
        zeros(3),
        zeros(4),
        zeros(9),
        zeros(10),
        zeros(11),
        zeros(12),
    );
    float::conv2d(
        &geo(0, 1, same(3, t[0].shape)),
        &x0,
        &w1,
        Some(&b1),
        (-1.0, 1.0),
        &mut x1,
    )
    .unwrap();
    float::depthwise_conv2d(
        &geo(1, 2, same(3, t[1].shape)),
        1,
        &x1,
        &w2,
        None,
        full,
        &mut x2,
    )
    .unwrap();
    float::add(&x1, &x2, (0.0, 6.0), &mut x3).unwrap();
    float::max_pool(
        &geo(
            3,
            4,
            Window::new((2, 2), (2, 2), (1, 1), Padding::Valid, (6, 6)).0,
        ),
        full,
        &x3,
        &mut x4,
    )
    .unwrap();
    let mut x5 = vec![0i8; 72];
    float::quantize(0.05, -10, &x4, &mut x5).unwrap();
    let mut x6 = vec![0u32; 9];
    binary::pack_i8(&x5, 8, -10, &mut x6).unwrap();
    let mut x7 = vec![0u32; 9 * 2];
    binary::conv2d(
        &geo(6, 7, same(3, t[6].shape)),
        BinaryPadding::One,
        &x6,
        &packed1,
        BinaryOutput::Bits {
            thresholds: &thresholds,
            out: &mut x7,
        },
    )
    .unwrap();
    let mut x8 = vec![0i8; 144];
    binary::conv2d(
        &geo(7, 8, same(3, t[7].shape)),
        BinaryPadding::Zero,
        &x7,
        &packed2,
        BinaryOutput::Int8 {
            multiplier: &m2,
            bias: &c2,
            zero_point: 3,
            clamp: Clamp::FULL,
            out: &mut x8,
        },
    )
    .unwrap();
    float::dequantize(0.1, 3, &x8, &mut x9).unwrap();
    float::avg_pool(
        &geo(
            9,
            10,
            Window::new((3, 3), (3, 3), (1, 1), Padding::Valid, (3, 3)).0,
        ),
        full,
        &x9,
        &mut x10,
    )
    .unwrap();
    float::fully_connected(
        &DenseGeometry {
            batch: 1,
            in_features: 16,
            out_features: 5,
        },
        &x10,
        &w_fc,
        Some(&b_fc),
        full,
        &mut x11,
    )
    .unwrap();
    float::softmax(1.0, 5, &x11, &mut x12).unwrap();
    assert!(
        x8.iter().any(|&v| v != x8[0]),
        "the binary int8 output should not be constant"
    );

    let run_f32 = |thresholds: &[f32]| {
        let mut words = arena_for(&model);
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        model
            .input_mut(arena)
            .unwrap()
            .copy_from_slice(bytemuck::cast_slice(&x0));
        let outcome = model.run(arena, thresholds).unwrap();
        (
            outcome,
            bytemuck::cast_slice::<u8, f32>(model.tensor(arena, &outcome.output).unwrap()).to_vec(),
        )
    };
    let (outcome, out) = run_f32(&[]);
    assert_eq!((outcome.exit, out), (None, x12));
    // Entropy exits when the head is more certain than the threshold.
    let entropy = Confidence::Entropy.score(x11.iter().copied());
    let (outcome, out) = run_f32(&[entropy.next_up()]);
    assert_eq!((outcome.exit, outcome.ops_run, out), (Some(0), 12, x11));
}

/// A fused segment (a 3x3 max pool into a line buffer of one row, added
/// to the pool's input) over `x` at 0: its blob, with the line buffer at
/// `line` and the band `band`, or unfused with `y` whole at `line`.
fn pool_add_blob(fused: Option<u32>, line: u32, extra: Option<Op>) -> Blob {
    let x = TensorDesc {
        dtype: DType::F32,
        shape: Shape::new(1, 8, 4, 2),
        offset: 0,
    };
    let y = TensorDesc { offset: line, ..x };
    let out = TensorDesc { offset: 512, ..x };
    let full = Act::F32 {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    let mut w = ModelWriter::new();
    if let Some(band) = fused {
        w.push(Op::Fused { layers: 2, band });
    }
    w.push(Op::MaxPool {
        input: x,
        output: y,
        window: Window::new((3, 3), (1, 1), (1, 1), Padding::Same, (8, 4)).0,
        act: full,
    });
    w.push(extra.unwrap_or(Op::Add {
        a: y,
        b: x,
        output: out,
        int8: None,
        act: full,
    }));
    w.finish(GraphHeader {
        arena_bytes: 768,
        op_count: 0,
        exit_heads: 0,
        input: x,
        output: out,
    })
}

#[test]
fn fused_segments_run_by_rows_and_refuse_what_does_not() {
    let run_floats = |blob: &Blob| {
        let model = Model::parse(blob.as_bytes()).unwrap();
        let mut arena = arena_for(&model);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
        let input: Vec<f32> = (0..64).map(|i| ((i * 37) % 19) as f32 - 9.0).collect();
        bytes[..256].copy_from_slice(bytemuck::cast_slice(&input));
        let outcome = model.run(bytes, &[]).unwrap();
        let out: Vec<f32> =
            bytemuck::cast_slice(model.tensor(bytes, &outcome.output).unwrap()).to_vec();
        out
    };
    let whole = run_floats(&pool_add_blob(None, 256, None));
    // The pool's output held a row (32 bytes) at a time, or two rows a band.
    assert_eq!(run_floats(&pool_add_blob(Some(1), 256, None)), whole);
    assert_eq!(run_floats(&pool_add_blob(Some(2), 256, None)), whole);
    let refusal = |blob: Blob| Model::parse(blob.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        refusal(pool_add_blob(Some(0), 256, None)),
        "failed to load model: operator 0 (fused): a fused segment holds 1 to 12 layers and bands of at least a row"
    );
    // The line buffer over the pool's input.
    assert_eq!(
        refusal(pool_add_blob(Some(1), 224, None)),
        "failed to load model: operator 0 (fused): a fused segment's buffers overlap or lie outside the arena"
    );
    // Past the end of the arena: a band of 8 rows needs all 256 bytes.
    assert_eq!(
        refusal(pool_add_blob(Some(8), 760, None)),
        "failed to load model: operator 0 (fused): a fused segment's buffers overlap or lie outside the arena"
    );
    let x = TensorDesc {
        dtype: DType::F32,
        shape: Shape::new(1, 8, 4, 2),
        offset: 256,
    };
    let softmax = Op::Softmax {
        input: x,
        output: TensorDesc { offset: 512, ..x },
        int8: None,
        beta: 1.0,
    };
    assert_eq!(
        refusal(pool_add_blob(Some(1), 256, Some(softmax))),
        "failed to load model: operator 0 (fused): a fused segment holds a layer that does not run by rows"
    );
}
