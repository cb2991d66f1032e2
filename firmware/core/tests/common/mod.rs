//! What the device server tests share: a model small enough to check by hand.

use kernels::geometry::Shape;
use kernels::int8::Clamp;
use kernels::model::{DType, GraphHeader, ModelWriter, Op, Stage, TensorDesc, Weights};
use kernels::quant::{quantize_multiplier, Rounding};

/// A 4 -> 2 int8 dense layer: y = clamp(round((x . w) / 2)).
pub fn blob() -> kernels::model::Blob {
    let input = TensorDesc {
        dtype: DType::I8,
        shape: Shape::flat(1, 4),
        offset: 0,
    };
    let output = TensorDesc {
        dtype: DType::I8,
        shape: Shape::flat(1, 2),
        offset: 16,
    };
    let mut w = ModelWriter::new();
    let weights = Weights::Int8 {
        filter: w.constant(&[1i8, 1, 1, 1, 2, 0, 0, -2]),
        bias: None,
    };
    let requant = w.constant(&[quantize_multiplier(0.5); 2]);
    let stage = Stage::Int8 {
        input_offset: 0,
        filter_offset: 0,
        output_offset: 0,
        requant,
        clamp: Clamp::FULL,
        rounding: Rounding::Single,
    };
    w.push(Op::FullyConnected {
        input,
        output,
        weights,
        stage,
    });
    w.finish(GraphHeader {
        arena_bytes: 32,
        op_count: 0,
        exit_heads: 0,
        input,
        output,
    })
}
