//! Grouped convolutions (TFLite's CONV_2D with a filter of fewer input
//! channels than its input, ONNX's Conv with `1 < group < channels`), imported as one
//! convolution per group over a slice of the input's channels, each
//! written into its place in the output. Each output channel reads only its
//! group's inputs, so the parts compute exactly what TFLite's grouped
//! kernel does, and the MACs counted are the grouped convolution's.

use crate::model::graph::{Graph, Int8Weights, Layer, LayerOp, LayerWeights, Tensor};
use kernels::geometry::Shape;

/// Pushes `conv` (a whole grouped convolution, its weights for every
/// output channel) as `groups` slices, convolutions and inserts.
pub fn push(graph: &mut Graph, conv: Layer, groups: u32) {
    let LayerOp::Conv2d { filters, .. } = conv.op else {
        unreachable!("only CONV_2D has groups")
    };
    let (x, out) = (conv.inputs[0], conv.output);
    let (s, o) = (graph.tensors[x].shape, graph.tensors[out].shape);
    let (group_in, group_out) = (s.c / groups, filters / groups);
    for g in 0..groups {
        let name = format!("{}_group{g}", conv.name);
        let part_in = Shape::new(s.n, s.h, s.w, group_in);
        let sliced = push_tensor(graph, &format!("{name}/input"), part_in, x);
        let slice = LayerOp::Slice {
            begin: [0, 0, 0, g * group_in],
            stride: [1; 4],
            view: part_in,
        };
        graph
            .layers
            .push(Layer::new(&format!("{name}_slice"), slice, vec![x], sliced));
        let part_out = Shape::new(o.n, o.h, o.w, group_out);
        let convolved = push_tensor(graph, &name, part_out, out);
        let mut op = conv.op.clone();
        if let LayerOp::Conv2d { filters, .. } = &mut op {
            *filters = group_out;
        }
        let rows = (g * group_out) as usize..((g + 1) * group_out) as usize;
        let mut part = Layer::new(&name, op, vec![sliced], convolved);
        let total = filters as usize;
        part.weights = conv
            .weights
            .as_ref()
            .map(|w| weights_rows(w, total, rows.clone()));
        part.int8 = conv
            .int8
            .as_ref()
            .map(|q| int8_rows(q, total, rows.clone()));
        part.precision = conv.precision;
        graph.layers.push(part);
        let insert = LayerOp::Insert {
            before: [0, 0, 0, g * group_out],
            input_view: part_out,
            output_view: o,
        };
        let insert_name = format!("{name}_insert");
        graph
            .layers
            .push(Layer::new(&insert_name, insert, vec![convolved], out));
    }
}

/// A new tensor of `shape`, quantized as `like`.
fn push_tensor(graph: &mut Graph, name: &str, shape: Shape, like: usize) -> usize {
    graph.tensors.push(Tensor {
        name: name.into(),
        shape,
        quant: graph.tensors[like].quant,
    });
    graph.tensors.len() - 1
}

/// Output channels `rows` of the `filters` of float weights (OHWI: a row
/// per output channel).
fn weights_rows(w: &LayerWeights, filters: usize, rows: std::ops::Range<usize>) -> LayerWeights {
    let per_row = w.kernel.len() / filters;
    LayerWeights {
        kernel: w.kernel[rows.start * per_row..rows.end * per_row].to_vec(),
        bias: w.bias[rows].to_vec(),
    }
}

/// Output channels `rows` of the `filters` of exact int8 weights (one
/// scale stays one).
fn int8_rows(q: &Int8Weights, filters: usize, rows: std::ops::Range<usize>) -> Int8Weights {
    let per_row = q.values.len() / filters;
    Int8Weights {
        values: q.values[rows.start * per_row..rows.end * per_row].to_vec(),
        scales: match q.scales.len() {
            1 => q.scales.clone(),
            _ => q.scales[rows.clone()].to_vec(),
        },
        zero_point: q.zero_point,
        bias: q.bias[rows].to_vec(),
        dynamic_range: q.dynamic_range,
    }
}
