//! In-place tensors: which tensors the memory planner lets live inside
//! another tensor's bytes instead of in a buffer of their own.
//!
//! Three layers move bytes without changing them and can be views:
//! a reshape (RESHAPE, SQUEEZE, EXPAND_DIMS, a flatten) whose input is not
//! read again; a slice that is one contiguous run of its input (the parts
//! a packed multi-input hands out, SPLIT along the outermost axis); and a
//! part of a CONCATENATION, PACK or packed multi-output that is one
//! contiguous run of the output, which its producer then writes in place,
//! as TFLM and TinyEngine do. The lowering turns a layer whose input and
//! output regions coincide into a no-op (`views::in_place`).

use super::fusion;
use super::graph::{Graph, Layer, LayerOp, Precision};
use super::lower::Placement;
use kernels::geometry::Shape;
use kernels::model::{DType, TensorDesc};
use kernels::planner::Buffer;

/// Offsets of views inside their buffer are kept to whole words, so a
/// view is as aligned as every kernel's word loads expect.
const VIEW_ALIGN: usize = 4;

/// Where each tensor of a graph lives: in its own buffer, or at a byte
/// offset inside another tensor's.
pub(crate) struct Homes {
    /// `(tensor, byte offset)` each tensor lives in, by tensor id
    /// (itself at 0 when it has its own buffer).
    parent: Vec<(usize, usize)>,
}

impl Homes {
    /// The buffer a tensor lives in, and its byte offset there.
    pub(crate) fn root(&self, mut t: usize) -> (usize, usize) {
        let mut offset = 0;
        while self.parent[t].0 != t {
            offset += self.parent[t].1;
            t = self.parent[t].0;
        }
        (t, offset)
    }
}

/// Finds the tensors of `graph` that can be views, and folds each view's
/// lifetime into its buffer's, emptying its own (`buffers` by tensor id;
/// `types` the element type of every tensor). `Unshared`: every tensor
/// keeps a buffer of its own; `InPlace`: convolutions that can write over
/// their input do. Layers of a row-fused segment write line buffers or
/// their segment's output: never views (an output over an input whose
/// rows die is a pair of buffers the planner may overlap,
/// `fusion::overlaps`).
pub(crate) fn plan(
    graph: &Graph,
    types: &[DType],
    buffers: &mut [Buffer],
    placement: Placement,
    segments: &[fusion::Segment],
) -> Homes {
    let mut homes = Homes {
        parent: (0..graph.tensors.len()).map(|t| (t, 0)).collect(),
    };
    if placement == Placement::Unshared {
        return homes;
    }
    let mut produced = vec![false; graph.tensors.len()];
    for layer in &graph.layers {
        produced[layer.output] = true;
    }
    produced[graph.input] = false;
    let bytes = |t: usize| tensor_bytes(graph, types, t).unwrap_or(0);
    for (step, layer) in graph.layers.iter().enumerate() {
        let (x, out) = (layer.inputs[0], layer.output);
        if fusion::segment_of(segments, step).is_some() {
            continue;
        }
        if buffers[x].size == 0 {
            continue;
        }
        // Slices and parts are placed by element; packed bits have none.
        let elem = elem_bytes(types[x]).filter(|_| types[x] == types[out]);
        match layer.op {
            LayerOp::Reshape | LayerOp::Flatten if buffers[x].last == step && x != graph.output => {
                homes.parent[out] = (x, 0);
            }
            LayerOp::Add { .. } if placement == Placement::InPlace => {
                if let Some(into) = add_target(graph, layer, types, &homes, buffers, step) {
                    homes.parent[out] = (into, 0);
                }
            }
            LayerOp::Conv2d { .. } | LayerOp::DepthwiseConv2d { .. }
                if placement == Placement::InPlace
                    && x != graph.input
                    && x != graph.output
                    && homes.root(x).1 == 0
                    && homes.root(out) == (out, 0)
                    && last_read_of_its_buffer(&homes, buffers, x, step)
                    && layer.precision != Precision::Binary
                    && runs_in_place(graph, layer, types) =>
            {
                homes.parent[out] = (x, 0);
            }
            LayerOp::Slice {
                begin,
                stride,
                view,
            } if stride == [1; 4] && out != graph.output => {
                let at = contiguous_block(graph.tensors[x].shape, begin, view);
                let at = at.zip(elem).map(|(e, elem)| e * elem);
                if let Some(at) = at.filter(|b| b % VIEW_ALIGN == 0) {
                    homes.parent[out] = (x, at);
                }
            }
            LayerOp::Insert {
                before,
                input_view,
                output_view,
            } => {
                // The part's own buffer moves into the output, views of it along.
                let (root, offset) = homes.root(x);
                let movable = offset == 0
                    && produced[root]
                    && bytes(root) == bytes(x)
                    && homes.root(out).0 != root;
                let at = contiguous_block(output_view, before, input_view);
                let at = at.zip(elem).map(|(e, elem)| e * elem);
                if let Some(at) = at.filter(|b| movable && b % VIEW_ALIGN == 0) {
                    homes.parent[root] = (out, at);
                }
            }
            _ => {}
        }
    }
    for t in 0..graph.tensors.len() {
        let (root, offset) = homes.root(t);
        if root != t {
            buffers[root].first = buffers[root].first.min(buffers[t].first);
            buffers[root].last = buffers[root].last.max(buffers[t].last);
            // A reshape of packed bits may take more words than its input;
            // a segment's input may lie past the start of its output.
            buffers[root].size = buffers[root].size.max(offset + buffers[t].size);
            buffers[t].size = 0;
        }
    }
    homes
}

/// Whether no tensor living in `x`'s buffer (`x` itself, the tensors it
/// is a view of, their other views) is read after `step`.
pub(crate) fn last_read_of_its_buffer(
    homes: &Homes,
    buffers: &[Buffer],
    x: usize,
    step: usize,
) -> bool {
    let root = homes.root(x).0;
    (0..buffers.len())
        .filter(|&t| homes.root(t).0 == root)
        .all(|t| buffers[t].last <= step)
}

/// The input an ADD may write its output over: one of the same shape and
/// element type as the output (int8 or float, which the executor adds a
/// scratch-full at a time), nothing reading it afterwards, its bytes apart
/// from the other input's.
fn add_target(
    graph: &Graph,
    layer: &Layer,
    types: &[DType],
    homes: &Homes,
    buffers: &[Buffer],
    step: usize,
) -> Option<usize> {
    let out = layer.output;
    let [a, b] = layer.inputs[..] else {
        return None;
    };
    let same = |t: usize| {
        types[t] == types[out]
            && matches!(types[t], DType::I8 | DType::F32)
            && graph.tensors[t].shape == graph.tensors[out].shape
    };
    // The operands may share a buffer (two parts of a packed input) as
    // long as their bytes do not overlap: the sum goes exactly over one.
    let ((root_a, at_a), (root_b, at_b)) = (homes.root(a), homes.root(b));
    let apart =
        root_a != root_b || tensor_bytes(graph, types, a).is_some_and(|n| at_a.abs_diff(at_b) >= n);
    if homes.root(out) != (out, 0) || !same(a) || !same(b) || !apart {
        return None;
    }
    [a, b].into_iter().find(|&x| {
        x != graph.input
            && x != graph.output
            && homes.root(x).1 == 0
            && last_read_of_its_buffer(homes, buffers, x, step)
    })
}

/// Whether a convolution can write its output over its input, band by band
/// (`kernels::model::in_place`): the executor runs it so when the planner
/// gives both the same bytes.
fn runs_in_place(graph: &Graph, layer: &Layer, types: &[DType]) -> bool {
    let (x, out) = (layer.inputs[0], layer.output);
    let (Some(in_elem), Some(out_elem)) = (elem_bytes(types[x]), elem_bytes(types[out])) else {
        return false;
    };
    let (input, output) = (graph.tensors[x].shape, graph.tensors[out].shape);
    let desc = TensorDesc {
        dtype: types[x],
        shape: input,
        offset: 0,
    };
    let Some(window) = super::lower::layer_window(layer, desc) else {
        return false;
    };
    let g = kernels::geometry::ConvGeometry {
        input,
        output,
        window,
    };
    kernels::model::in_place::RowSchedule::of(&g, in_elem, out_elem).is_some()
}

/// The element offset of `inner`, placed at `begin` inside `outer`, when
/// its elements are one contiguous run of `outer`'s (row-major NHWC):
/// the axes after the last one it does not span whole start at 0, the
/// axes before that one have extent 1.
pub(crate) fn contiguous_block(outer: Shape, begin: [u32; 4], inner: Shape) -> Option<usize> {
    let (outer, inner) = (dims(outer), dims(inner));
    let last_partial = (0..4).rev().find(|&a| inner[a] != outer[a]).unwrap_or(0);
    let contiguous = (0..last_partial).all(|a| inner[a] == 1)
        && (last_partial + 1..4).all(|a| begin[a] == 0)
        && (0..4).all(|a| begin[a] as usize + inner[a] as usize <= outer[a] as usize);
    contiguous.then(|| (0..4).fold(0, |at, a| at * outer[a] as usize + begin[a] as usize))
}

/// Bytes of tensor `t` of `graph`, whose element types are `types`.
pub(crate) fn tensor_bytes(graph: &Graph, types: &[DType], t: usize) -> Option<usize> {
    TensorDesc {
        dtype: types[t],
        shape: graph.tensors[t].shape,
        offset: 0,
    }
    .byte_len()
}

/// Bytes per element; packed bits have no element of their own.
fn elem_bytes(dtype: DType) -> Option<usize> {
    dtype.element_bytes().map(|b| b as usize)
}

fn dims(s: Shape) -> [u32; 4] {
    [s.n, s.h, s.w, s.c]
}

/// Whether a slice of `input` at `begin` (unit strides), written to
/// `output`, or a part `input` inserted into `output` at `begin`, already
/// sits where the copy would put it: the planner made it a view, and the
/// layer has nothing to do.
pub(crate) fn in_place(outer: &TensorDesc, begin: [u32; 4], inner: &TensorDesc) -> bool {
    let (Some(elem), true) = (elem_bytes(outer.dtype), outer.dtype == inner.dtype) else {
        return false;
    };
    contiguous_block(outer.shape, begin, inner.shape)
        .is_some_and(|at| outer.offset as usize + at * elem == inner.offset as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_blocks_are_runs_of_the_outer_tensor() {
        let outer = Shape::new(1, 4, 5, 8);
        // Whole rows of the outermost partial axis.
        assert_eq!(
            contiguous_block(outer, [0, 2, 0, 0], Shape::new(1, 2, 5, 8)),
            Some(80)
        );
        // Inside one row: the axes before the partial one have extent 1.
        assert_eq!(
            contiguous_block(outer, [0, 1, 3, 0], Shape::new(1, 1, 2, 8)),
            Some(64)
        );
        assert_eq!(
            contiguous_block(outer, [0, 1, 3, 2], Shape::new(1, 1, 1, 4)),
            Some(66)
        );
        // A channel range over several pixels is strided.
        assert_eq!(
            contiguous_block(outer, [0, 0, 0, 4], Shape::new(1, 4, 5, 4)),
            None
        );
        // Two rows but not whole ones.
        assert_eq!(
            contiguous_block(outer, [0, 1, 0, 0], Shape::new(1, 2, 3, 8)),
            None
        );
        // Out of bounds.
        assert_eq!(
            contiguous_block(outer, [0, 3, 0, 0], Shape::new(1, 2, 5, 8)),
            None
        );
        assert_eq!(contiguous_block(outer, [0; 4], outer), Some(0));
    }
}
