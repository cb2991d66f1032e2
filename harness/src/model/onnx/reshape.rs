//! Reshape of activations. bench holds a value in its own layout (NHWC;
//! `[N, 1, L, C]` for `[N, C, L]`, ...), so a Reshape that is not a
//! relabelling puts the values in ONNX's row-major order, reshapes, and
//! brings the result into the layout of its new rank: at most a transpose
//! on each side, none where an extent of 1 makes the orders agree.
//!
//! A channel shuffle (ShuffleNet: Reshape to `[N, G, C / G, H, W]`,
//! Transpose `[0, 2, 1, 3, 4]`, Reshape back) is one transpose of the
//! channels; the 5-D values between are relabellings ([`Layout::Grouped`]).

use super::folding::reshaped;
use super::{Importer, Layout, Result, Value};
use crate::model::graph::LayerOp;
use crate::model::onnx_proto::NodeProto;
use kernels::geometry::Shape;

impl Importer<'_> {
    /// Reshape to a constant shape (folded from a Shape chain or not).
    pub(super) fn reshape(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let target = self.constant(node, 1)?.ok_or(
            "its shape must be a constant (or Shape, Gather, Concat, ... of static shapes)",
        )?;
        let input: Vec<u32> = self
            .onnx_dims(&node.input[0], x)
            .iter()
            .map(|&d| d as u32)
            .collect();
        let allow_zero = super::int(node, "allowzero").unwrap_or(0) == 1;
        let dims = reshaped(&input, &target.ints, allow_zero)?;
        let s = self.graph.tensors[x.tensor].shape;
        if dims[0] != s.n {
            return Err(format!(
                "Reshape of {input:?} to {dims:?} moves the batch; bench keeps it first"
            ));
        }
        match (x.layout, &dims[..]) {
            _ if dims == input => self.alias(node, x),
            (_, [_, _]) => return self.flatten(node, x),
            (Layout::Plain, &[_, g, k, h, w]) if g * k == s.c && (h, w) == (s.h, s.w) => {
                self.alias(node, Value { layout: Layout::Grouped { groups: g }, ..x })
            }
            (Layout::Grouped { .. }, &[_, c, h, w]) if (c, h, w) == (s.c, s.h, s.w) => {
                self.alias(node, Value { layout: Layout::Plain, ..x })
            }
            (Layout::Grouped { .. }, _) => {
                return Err(format!(
                    "a [N, G, C/G, H, W] value reshaped to {dims:?}; only back to [N, C, H, W] is supported"
                ))
            }
            (_, [_, _, _] | [_, _, _, _]) => self.general_reshape(node, x, &dims),
            _ => {
                return Err(format!(
                    "Reshape to {dims:?} is not supported (ranks 2 to 4, or a channel shuffle's [N, G, C/G, H, W])"
                ))
            }
        }
        Ok(())
    }

    /// A Reshape that moves values: to ONNX order, reshaped, to bench's
    /// layout of rank 3 (`[N, T, F]`, held in its own order) or 4.
    fn general_reshape(&mut self, node: &NodeProto, x: Value, dims: &[u32]) {
        let ordered = self.in_onnx_order(node, x);
        match *dims {
            [n, t, f] => {
                let op = LayerOp::Reshape;
                self.push(node, op, vec![ordered], Shape::new(n, 1, t, f));
                self.values
                    .get_mut(&node.output[0])
                    .expect("just written")
                    .layout = Layout::Ntf;
            }
            [n, c, h, w] if c > 1 && h * w > 1 => {
                let chw = Shape::new(n, c, h, w);
                let held = self.side_layer(node, "chw", LayerOp::Reshape, vec![ordered], chw);
                let op = LayerOp::Transpose { perm: [0, 2, 3, 1] };
                self.push(node, op, vec![held], Shape::new(n, h, w, c));
            }
            [n, c, h, w] => {
                self.push(
                    node,
                    LayerOp::Reshape,
                    vec![ordered],
                    Shape::new(n, h, w, c),
                );
            }
            _ => unreachable!("rank 3 or 4"),
        }
    }

    /// `x`'s values in ONNX's row-major order (a tensor whose memory
    /// holds them so), transposed where bench's order differs.
    fn in_onnx_order(&mut self, node: &NodeProto, x: Value) -> usize {
        let s = self.graph.tensors[x.tensor].shape;
        let (held, perm, shape) = match x.layout {
            Layout::Plain | Layout::Grouped { .. }
                if s.c > 1 && u64::from(s.h) * u64::from(s.w) > 1 =>
            {
                (x.tensor, [0, 3, 1, 2], Shape::new(s.n, s.c, s.h, s.w))
            }
            Layout::FlatChw { c, h, w } if c > 1 && u64::from(h) * u64::from(w) > 1 => {
                let hwc = Shape::new(s.n, h, w, c);
                let t = self.side_layer(node, "hwc", LayerOp::Reshape, vec![x.tensor], hwc);
                (t, [0, 3, 1, 2], Shape::new(s.n, c, h, w))
            }
            Layout::Ncl if s.c > 1 && s.w > 1 => {
                (x.tensor, [0, 1, 3, 2], Shape::new(s.n, 1, s.c, s.w))
            }
            _ => return x.tensor,
        };
        let op = LayerOp::Transpose { perm };
        self.side_layer(node, "to-onnx-order", op, vec![held], shape)
    }

    /// Transpose `[0, 2, 1, 3, 4]` of a `[N, G, K, H, W]` value: channel
    /// `g * K + k` goes to `k * G + g` (the transpose of a G x K matrix
    /// at every pixel), which leaves a `[N, K, G, H, W]` value.
    pub(super) fn shuffle_channels(&mut self, node: &NodeProto, x: Value, groups: u32) {
        let s = self.graph.tensors[x.tensor].shape;
        let per_group = s.c / groups;
        let pixels = s.h * s.w;
        let matrices = Shape::new(s.n, pixels, groups, per_group);
        let held = self.side_layer(node, "groups", LayerOp::Reshape, vec![x.tensor], matrices);
        let transposed = Shape::new(s.n, pixels, per_group, groups);
        let op = LayerOp::Transpose { perm: [0, 1, 3, 2] };
        let t = self.side_layer(node, "shuffle", op, vec![held], transposed);
        self.push(node, LayerOp::Reshape, vec![t], s);
        self.values
            .get_mut(&node.output[0])
            .expect("just written")
            .layout = Layout::Grouped { groups: per_group };
    }
}
