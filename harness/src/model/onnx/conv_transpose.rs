//! ConvTranspose, where it is cheap with bench's kernels:
//!
//! - **stride 1**: a convolution with the kernel flipped and its input and
//!   output channels swapped, padded `dilation * (k - 1) - pad` on each
//!   side (plus `output_padding` at the end);
//! - **stride equal to the kernel, no padding** (U-Net's 2x2 stride-2
//!   upsampling): every input pixel writes its own `s x s` block, so a 1x1
//!   convolution to `s * s * O` channels followed by a depth-to-space
//!   rearrangement (one transpose).
//!
//! Other strides would need zeros between the input's pixels; they are
//! refused, saying what is supported.

use super::{int, ints, pair, Importer, Result, Value};
use crate::model::graph::{LayerOp, LayerWeights};
use crate::model::onnx_proto::NodeProto;
use kernels::geometry::{Activation, Padding, Shape, Window};

/// A ConvTranspose's attributes, per axis (height, width).
struct Attributes {
    kernel: (u32, u32),
    stride: (u32, u32),
    dilation: (u32, u32),
    /// `[top, left, bottom, right]`.
    pads: [u32; 4],
    output_padding: (u32, u32),
}

impl Importer<'_> {
    pub(super) fn conv_transpose(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        if x.layout != super::Layout::Plain || x.signs {
            return Err("ConvTranspose reads a [N, C, H, W] float value only".into());
        }
        let s = self.graph.tensors[x.tensor].shape;
        let w = self
            .constant(node, 1)?
            .ok_or("its weights must be a constant")?;
        if w.quantized.is_some() || self.graph.tensors[x.tensor].quant.is_some() {
            return Err("a quantized ConvTranspose is not supported; keep it float".into());
        }
        let [c_in, out, kh, kw] = w.dims[..] else {
            return Err(format!(
                "its weights have shape {:?}; [C, O, KH, KW] is needed",
                w.dims
            ));
        };
        if c_in != s.c || int(node, "group").unwrap_or(1) != 1 {
            return Err(format!(
                "its weights read {c_in} channels in one group; the input has {}",
                s.c
            ));
        }
        let a = attributes(node, (kh, kw))?;
        let bias = self.bias(node, 2, out)?;
        let conv = |filters, kernel, dilation, padding| LayerOp::Conv2d {
            filters,
            kernel,
            stride: (1, 1),
            dilation,
            padding,
            activation: Activation::None,
        };
        let weights = |kernel, bias| Some(LayerWeights { kernel, bias });
        let (input, flat) = ((s.h, s.w), (c_in, out, kh, kw));
        if a.stride == (1, 1) {
            let padding = stride_one_padding(&a)?;
            let (_, (oh, ow)) = Window::new(a.kernel, (1, 1), a.dilation, padding, input);
            self.check_output_shape(node, (oh, ow))?;
            let op = conv(out, a.kernel, a.dilation, padding);
            self.push(node, op, vec![x.tensor], Shape::new(s.n, oh, ow, out));
            let kernel = flipped_ohwi(&w.floats, flat);
            self.graph.layers.last_mut().expect("just pushed").weights = weights(kernel, bias);
            return Ok(());
        }
        let blocks = a.stride == a.kernel
            && a.dilation == (1, 1)
            && a.pads == [0; 4]
            && a.output_padding == (0, 0);
        if !blocks {
            return Err(format!(
                "ConvTranspose with strides {:?}, kernel {:?}, pads {:?} is not supported: stride 1, or stride equal to the kernel without padding (2x2 stride-2 upsampling), is",
                a.stride, a.kernel, a.pads
            ));
        }
        let (sh, sw) = a.stride;
        let filters = (sh * sw)
            .checked_mul(out)
            .filter(|&f| f <= kernels::geometry::MAX_EXTENT)
            .ok_or("its stride x stride x outputs channels exceed 16384")?;
        self.check_output_shape(node, (s.h * sh, s.w * sw))?;
        let op = conv(filters, (1, 1), (1, 1), Padding::Valid);
        let wide = Shape::new(s.n, s.h, s.w, filters);
        let t = self.side_layer(node, "blocks", op, vec![x.tensor], wide);
        let layer = self.graph.layers.last_mut().expect("just pushed");
        let bias = (0..sh * sw).flat_map(|_| bias.iter().copied()).collect();
        layer.weights = weights(block_weights(&w.floats, flat), bias);
        // Depth to space: [N*H, W, sh, sw*O] -> [N*H, sh, W, sw*O] is
        // [N, H*sh, W*sw, O] in memory.
        let rows = Shape::new(s.n * s.h, s.w, sh, sw * out);
        let t = self.side_layer(node, "rows", LayerOp::Reshape, vec![t], rows);
        let op = LayerOp::Transpose { perm: [0, 2, 1, 3] };
        let moved = Shape::new(s.n * s.h, sh, s.w, sw * out);
        let t = self.side_layer(node, "depth-to-space", op, vec![t], moved);
        let shape = Shape::new(s.n, s.h * sh, s.w * sw, out);
        self.push(node, LayerOp::Reshape, vec![t], shape);
        Ok(())
    }

    /// An `output_shape` attribute must agree with the shape bench computes.
    fn check_output_shape(&self, node: &NodeProto, (h, w): (u32, u32)) -> Result<()> {
        match ints(node, "output_shape").as_deref() {
            None => Ok(()),
            Some(&[oh, ow]) | Some(&[_, _, oh, ow]) if (oh, ow) == (h.into(), w.into()) => Ok(()),
            Some(other) => Err(format!(
                "its output_shape {other:?} differs from the {h}x{w} its pads give"
            )),
        }
    }
}

fn attributes(node: &NodeProto, kernel: (u32, u32)) -> Result<Attributes> {
    if let Some(k) = ints(node, "kernel_shape") {
        if pair(k, "kernel_shape")? != kernel {
            return Err("kernel_shape differs from the weights' shape".into());
        }
    }
    let auto =
        super::attribute(node, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).into_owned());
    if auto.is_some_and(|a| !a.is_empty() && a != "NOTSET") {
        return Err("auto_pad on a ConvTranspose is not supported; give pads".into());
    }
    let amount = |p: &i64| super::pad_amount(*p);
    let pads: Vec<u32> = ints(node, "pads")
        .unwrap_or(vec![0; 4])
        .iter()
        .map(amount)
        .collect::<Option<_>>()
        .ok_or("its pads must be 0 to 16384")?;
    let output_padding: Vec<u32> = ints(node, "output_padding")
        .unwrap_or(vec![0, 0])
        .iter()
        .map(amount)
        .collect::<Option<_>>()
        .ok_or("its output_padding must be 0 or more")?;
    let (Ok(pads), Ok([oh, ow])) = (
        <[u32; 4]>::try_from(pads),
        <[u32; 2]>::try_from(output_padding),
    ) else {
        return Err("its pads and output_padding must be 2-D".into());
    };
    Ok(Attributes {
        kernel,
        stride: pair(ints(node, "strides").unwrap_or(vec![1, 1]), "strides")?,
        dilation: pair(ints(node, "dilations").unwrap_or(vec![1, 1]), "dilations")?,
        pads,
        output_padding: (oh, ow),
    })
}

/// The padding of the stride-1 convolution equal to the ConvTranspose:
/// `dilation * (k - 1)` less its own pads on each side.
fn stride_one_padding(a: &Attributes) -> Result<Padding> {
    let reach = |k: u32, d: u32| d.saturating_mul(k - 1);
    let (rh, rw) = (
        reach(a.kernel.0, a.dilation.0),
        reach(a.kernel.1, a.dilation.1),
    );
    let [top, left, bottom, right] = a.pads;
    let side = |reach: u32, pad: u32| {
        reach.checked_sub(pad).ok_or(format!(
            "its pad {pad} crops more than the kernel reaches ({reach})"
        ))
    };
    Ok(Padding::Explicit {
        top: side(rh, top)?,
        bottom: side(rh, bottom)?.saturating_add(a.output_padding.0),
        left: side(rw, left)?,
        right: side(rw, right)?.saturating_add(a.output_padding.1),
    })
}

/// ConvTranspose weights `[C, O, KH, KW]` as a convolution's OHWI, the
/// kernel turned 180 degrees.
fn flipped_ohwi(w: &[f32], dims: (u32, u32, u32, u32)) -> Vec<f32> {
    let (c_in, _, kh, kw) = dims;
    rearranged(w, dims, |c, o, y, x| {
        ((o * kh + (kh - 1 - y)) * kw + (kw - 1 - x)) * c_in + c
    })
}

/// ConvTranspose weights `[C, O, S, S]` (kernel = stride) as a 1x1
/// convolution's `[(i, j, o), C]`: output channel `(i * SW + j) * O + o`
/// is the block position `(i, j)` of output `o`.
fn block_weights(w: &[f32], dims: (u32, u32, u32, u32)) -> Vec<f32> {
    let (c_in, out, _, kw) = dims;
    rearranged(w, dims, |c, o, i, j| ((i * kw + j) * out + o) * c_in + c)
}

/// Weights `[C, O, KH, KW]`, each moved to `to(c, o, y, x)`.
fn rearranged(
    w: &[f32],
    (c_in, out, kh, kw): (u32, u32, u32, u32),
    to: impl Fn(u32, u32, u32, u32) -> u32,
) -> Vec<f32> {
    let mut k = vec![0.0; w.len()];
    let mut from = 0;
    for c in 0..c_in {
        for o in 0..out {
            for y in 0..kh {
                for x in 0..kw {
                    k[to(c, o, y, x) as usize] = w[from];
                    from += 1;
                }
            }
        }
    }
    k
}
