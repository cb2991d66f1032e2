//! A Pad of zeros before a convolution becomes the convolution's own
//! explicit padding (TFLite's PAD/PADV2 + CONV_2D pattern, Keras'
//! ZeroPadding2D, an ONNX Pad node): the kernels skip padded taps, which
//! is padding with zero (or the zero point), so the padded copy, its
//! memory and the time spent writing it go.

use super::graph::{Graph, LayerOp};
use kernels::geometry::{Padding, Window};

/// Folds every foldable Pad into the convolution after it; the number folded.
pub fn fold_pads(graph: &mut Graph) -> usize {
    let mut folded = 0;
    let mut i = 0;
    while i < graph.layers.len() {
        match reader_to_fold_into(graph, i) {
            Some(reader) => {
                fold(graph, i, reader);
                folded += 1;
            }
            None => i += 1,
        }
    }
    folded
}

/// The convolution that can take layer `i`'s padding: `i` pads only
/// height and width, with zeros, keeps its input's quantization, and its
/// output is read by that convolution alone (not a model output or head).
fn reader_to_fold_into(graph: &Graph, i: usize) -> Option<usize> {
    let pad = &graph.layers[i];
    let LayerOp::Pad {
        before,
        after,
        value,
    } = pad.op
    else {
        return None;
    };
    let spatial_only = before[0] == 0 && after[0] == 0 && before[3] == 0 && after[3] == 0;
    let (source, padded) = (pad.inputs[0], pad.output);
    let same_numbers = graph.tensors[source].quant == graph.tensors[padded].quant
        && graph.int16.contains(&source) == graph.int16.contains(&padded);
    let is_output = padded == graph.output || graph.exits.iter().any(|e| e.logits == padded);
    if value != 0.0 || !spatial_only || !same_numbers || is_output {
        return None;
    }
    let mut readers = graph.consumers(padded);
    let (j, reader) = readers.next()?;
    let convolution = matches!(
        reader.op,
        LayerOp::Conv2d { .. } | LayerOp::DepthwiseConv2d { .. }
    );
    (readers.next().is_none() && convolution && reader.inputs[0] == padded).then_some(j)
}

/// Moves layer `pad`'s amounts into layer `reader`'s window and removes it.
fn fold(graph: &mut Graph, pad: usize, reader: usize) {
    let LayerOp::Pad { before, after, .. } = graph.layers[pad].op else {
        unreachable!("not a Pad")
    };
    let source = graph.layers[pad].inputs[0];
    let padded = graph.tensors[graph.layers[pad].output].shape;
    let (input, output) = (
        graph.tensors[source].shape,
        graph.tensors[graph.layers[reader].output].shape,
    );
    let layer = &mut graph.layers[reader];
    layer.inputs[0] = source;
    if let LayerOp::Conv2d {
        kernel,
        stride,
        dilation,
        ref mut padding,
        ..
    }
    | LayerOp::DepthwiseConv2d {
        kernel,
        stride,
        dilation,
        ref mut padding,
        ..
    } = layer.op
    {
        let Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } = padding.explicit((padded.h, padded.w), kernel, stride, dilation)
        else {
            unreachable!("explicit() gives explicit amounts")
        };
        *padding = Padding::Explicit {
            top: top + before[1],
            bottom: bottom + after[1],
            left: left + before[2],
            right: right + after[2],
        };
        debug_assert_eq!(
            Window::new(kernel, stride, dilation, *padding, (input.h, input.w)).1,
            (output.h, output.w),
        );
    }
    graph.layers.remove(pad);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::{Layer, Tensor};
    use crate::model::host::HostModel;
    use crate::model::{init, lower};
    use kernels::geometry::{Activation, Shape};

    /// input [1, 5, 6, 2] -> Pad (`before`, `after`, `value`) -> a 3x3
    /// stride-2 conv, SAME or VALID, with seeded weights.
    fn padded_conv(before: [u32; 4], after: [u32; 4], value: f32, padding: Padding) -> Graph {
        let input = Shape::new(1, 5, 6, 2);
        let padded = kernels::layout::padded(input, before, after).unwrap();
        let conv = LayerOp::Conv2d {
            filters: 3,
            kernel: (3, 3),
            stride: (2, 2),
            dilation: (1, 1),
            padding,
            activation: Activation::None,
        };
        let out = Window::new((3, 3), (2, 2), (1, 1), padding, (padded.h, padded.w)).1;
        let tensor = |name: &str, shape| Tensor {
            name: name.into(),
            shape,
            quant: None,
        };
        let mut graph = Graph {
            name: "padded".into(),
            tensors: vec![
                tensor("input", input),
                tensor("padded", padded),
                tensor("conv", Shape::new(1, out.0, out.1, 3)),
            ],
            layers: vec![
                Layer::new(
                    "pad",
                    LayerOp::Pad {
                        before,
                        after,
                        value,
                    },
                    vec![0],
                    1,
                ),
                Layer::new("conv", conv, vec![1], 2),
            ],
            input: 0,
            output: 2,
            exits: Vec::new(),
            int16: Default::default(),
            int32: Default::default(),
            float32: Default::default(),
            layout: Default::default(),
        };
        init::seeded(&mut graph, 7);
        graph
    }

    fn run(graph: &Graph) -> Vec<u8> {
        let low = lower::lower_f32(graph).unwrap();
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        let x: Vec<f32> = (0..60).map(|i| (i as f32 * 0.37).sin()).collect();
        let outcome = host.run(bytemuck::cast_slice(&x), &[]).unwrap();
        host.tensor(&outcome.output).to_vec()
    }

    #[test]
    fn a_zero_pad_becomes_the_convolutions_padding_with_the_same_outputs() {
        for padding in [Padding::Valid, Padding::Same] {
            let unfolded = padded_conv([0, 2, 0, 0], [0, 1, 3, 0], 0.0, padding);
            let mut graph = unfolded.clone();
            assert_eq!(fold_pads(&mut graph), 1);
            assert_eq!(graph.layers.len(), 1);
            assert_eq!(graph.layers[0].inputs, [0]);
            let LayerOp::Conv2d {
                padding: folded, ..
            } = graph.layers[0].op
            else {
                panic!("not a conv")
            };
            // SAME on the padded 8x9 adds 1 below (4 rows: 9 needed), 1
            // left and 1 right (5 columns: 11 needed).
            let own = match padding {
                Padding::Same => [0, 1, 1, 1],
                _ => [0, 0, 0, 0],
            };
            let want = Padding::Explicit {
                top: 2 + own[0],
                bottom: 1 + own[1],
                left: own[2],
                right: 3 + own[3],
            };
            assert_eq!(folded, want);
            assert_eq!(run(&graph), run(&unfolded), "{padding:?}");
        }
    }

    #[test]
    fn pads_that_are_not_zeros_of_height_and_width_stay() {
        let cases = [
            ([0, 1, 1, 0], [0, 1, 1, 0], 0.5),
            ([0, 1, 1, 1], [0, 1, 1, 0], 0.0),
        ];
        for (before, after, value) in cases {
            let mut graph = padded_conv(before, after, value, Padding::Valid);
            assert_eq!(fold_pads(&mut graph), 0, "{before:?} {after:?} {value}");
        }
        // A padded tensor the model outputs, or another layer reads, stays.
        let mut graph = padded_conv([0, 1, 1, 0], [0, 1, 1, 0], 0.0, Padding::Valid);
        graph.output = 1;
        assert_eq!(fold_pads(&mut graph), 0);
    }
}
