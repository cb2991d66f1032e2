//! The operators with several inputs or outputs of one kind, imported as
//! several layers: CONCATENATION and PACK as one INSERT per input into
//! their one output; SPLIT, SPLIT_V and UNPACK as one SLICE per output.
//! Every part is a copy of bytes, so int8 parts keep one quantization (as
//! TFLite requires of them).

use super::{along_axis, axis_in, code, fb, int_values, nhwc, tensor_name, OpContext, Result};
use crate::model::graph::{Graph, Layer, LayerOp, Tensor, TensorId};

/// Whether [`add`] imports `builtin`.
pub fn handles(builtin: i32) -> bool {
    [
        code::CONCATENATION,
        code::PACK,
        code::SPLIT,
        code::SPLIT_V,
        code::UNPACK,
    ]
    .contains(&builtin)
}

/// One TFLite tensor the operator reads or writes: its dimensions, type and
/// quantization (`None`: float32).
struct Part {
    dims: Vec<u32>,
    dtype: fb::TensorType,
    quant: Option<(f32, i32)>,
}

fn part(ctx: &OpContext, t: i32) -> Result<Part> {
    let info = ctx.reader.tensor(t)?;
    let quant = match info.dtype {
        fb::TensorType::INT8 | fb::TensorType::INT16 => Some(info.activation_quant()?),
        fb::TensorType::FLOAT32 => None,
        other => {
            return Err(format!(
                "tensor {t} is {}; int8, int16 and float32 are supported",
                super::type_name(other)
            ))
        }
    };
    Ok(Part {
        dims: info.dims,
        dtype: info.dtype,
        quant,
    })
}

/// The graph tensor an earlier operator (or the input) wrote for file tensor `t`.
fn written_tensor(written: &[Option<TensorId>], t: i32) -> Result<TensorId> {
    written
        .get(t as usize)
        .copied()
        .flatten()
        .ok_or(format!("input tensor {t} is not written by an earlier operator or the model input (constant inputs are not supported here)"))
}

/// A new graph tensor for file tensor `t`, recorded as written.
fn new_tensor(
    ctx: &OpContext,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    t: i32,
    p: &Part,
) -> Result<TensorId> {
    let slot = written
        .get_mut(t as usize)
        .ok_or(format!("output tensor {t} is out of range"))?;
    if slot.is_some() {
        return Err(format!("writes tensor {t}, which is already written"));
    }
    graph.tensors.push(Tensor {
        name: tensor_name(ctx.reader, t),
        shape: nhwc(&p.dims)?,
        quant: p.quant,
    });
    *slot = Some(graph.tensors.len() - 1);
    Ok(graph.tensors.len() - 1)
}

/// Imports the operator as its layers, named `name` with a part number.
pub fn add(
    ctx: &OpContext,
    builtin: i32,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    name: &str,
) -> Result<()> {
    match builtin {
        code::CONCATENATION | code::PACK => join(ctx, builtin, op, graph, written, name),
        _ => split(ctx, builtin, op, graph, written, name),
    }
}

/// CONCATENATION (along an axis) and PACK (along a new axis).
fn join(
    ctx: &OpContext,
    builtin: i32,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    name: &str,
) -> Result<()> {
    let [out] = ctx.outputs[..] else {
        return Err(format!(
            "has {} outputs; one is expected",
            ctx.outputs.len()
        ));
    };
    let out_part = part(ctx, out)?;
    let rank = out_part.dims.len();
    let pack = builtin == code::PACK;
    let axis = if pack {
        op.builtin_options_as_pack_options().map_or(0, |o| o.axis())
    } else {
        let o = op.builtin_options_as_concatenation_options();
        if o.is_some_and(|o| o.fused_activation_function() != fb::ActivationFunctionType::NONE) {
            return Err("a fused activation on a concatenation is not supported".into());
        }
        o.map_or(0, |o| o.axis())
    };
    let axis = axis_in(i64::from(axis), rank)?;
    let inputs: Vec<Part> = ctx
        .inputs
        .iter()
        .map(|&t| part(ctx, t))
        .collect::<Result<_>>()?;
    let mut offset = 0u32;
    let mut parts = Vec::new();
    for (k, p) in inputs.iter().enumerate() {
        if p.quant != out_part.quant || p.dtype != out_part.dtype {
            return Err(format!("its input {k} is typed or quantized differently from its output (TFLite requires them alike)"));
        }
        let mut dims = p.dims.clone();
        if pack {
            dims.insert(axis.min(dims.len()), 1);
        }
        let fits = dims.len() == rank
            && (0..rank).all(|d| {
                if d == axis {
                    true
                } else {
                    dims[d] == out_part.dims[d]
                }
            });
        if !fits {
            return Err(format!(
                "its input {k} of shape {:?} does not fit its output {:?}",
                p.dims, out_part.dims
            ));
        }
        let mut before = [0u32; 4];
        before[along_axis(rank, axis as i64)?] = offset;
        offset += dims[axis];
        parts.push((
            written_tensor(written, ctx.inputs[k])?,
            nhwc(&dims)?,
            before,
        ));
    }
    if offset != out_part.dims[axis] {
        return Err(format!(
            "its inputs fill {offset} of the {} places of its output's axis {axis}",
            out_part.dims[axis]
        ));
    }
    let output_view = nhwc(&out_part.dims)?;
    let t = new_tensor(ctx, graph, written, out, &out_part)?;
    for (k, (x, input_view, before)) in parts.into_iter().enumerate() {
        let op = LayerOp::Insert {
            before,
            input_view,
            output_view,
        };
        graph
            .layers
            .push(Layer::new(&format!("{name}.{k}"), op, vec![x], t));
    }
    Ok(())
}

/// SPLIT (equal parts), SPLIT_V (given sizes, one may be -1) and UNPACK
/// (parts of one, the axis dropped).
fn split(
    ctx: &OpContext,
    builtin: i32,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    name: &str,
) -> Result<()> {
    // SPLIT's operands are (axis, input); SPLIT_V's (input, sizes, axis).
    let (x_at, axis) = match builtin {
        code::SPLIT => (1, scalar(ctx, 0)?),
        code::SPLIT_V => (0, scalar(ctx, 2)?),
        _ => (
            0,
            op.builtin_options_as_unpack_options()
                .map_or(0, |o| i64::from(o.axis())),
        ),
    };
    let x_file = ctx.input(x_at)?;
    let x = written_tensor(written, x_file)?;
    let input = part(ctx, x_file)?;
    let rank = input.dims.len();
    let axis = axis_in(axis, rank)?;
    let extent = i64::from(input.dims[axis]);
    let count = ctx.outputs.len() as i64;
    let sizes: Vec<i64> = match builtin {
        code::SPLIT_V => {
            let mut sizes = int_values(ctx, 1)?;
            let known: i64 = sizes.iter().filter(|&&s| s >= 0).sum();
            if let Some(rest) = sizes.iter_mut().find(|s| **s == -1) {
                *rest = extent - known;
            }
            sizes
        }
        code::SPLIT if count > 0 && extent % count == 0 => vec![extent / count; count as usize],
        code::SPLIT => return Err(format!("it splits an axis of {extent} into {count} parts")),
        _ => vec![1; count as usize],
    };
    if sizes.len() as i64 != count
        || sizes.iter().any(|&s| s < 1)
        || sizes.iter().sum::<i64>() != extent
    {
        return Err(format!(
            "its parts {sizes:?} do not divide an axis of {extent} into {count}"
        ));
    }
    let mut offset = 0i64;
    for (k, (&out, size)) in ctx.outputs.iter().zip(sizes).enumerate() {
        let out_part = part(ctx, out)?;
        if out_part.quant != input.quant || out_part.dtype != input.dtype {
            return Err(format!("its output {k} is typed or quantized differently from its input (TFLite requires them alike)"));
        }
        let mut dims = input.dims.clone();
        dims[axis] = size as u32;
        let view = nhwc(&dims)?;
        if view.elements() != nhwc(&out_part.dims)?.elements() {
            return Err(format!(
                "its output {k} of shape {:?} does not hold the part {dims:?}",
                out_part.dims
            ));
        }
        let mut begin = [0u32; 4];
        begin[along_axis(rank, axis as i64)?] = offset as u32;
        offset += size;
        let t = new_tensor(ctx, graph, written, out, &out_part)?;
        let op = LayerOp::Slice {
            begin,
            stride: [1; 4],
            view,
        };
        graph
            .layers
            .push(Layer::new(&format!("{name}.{k}"), op, vec![x], t));
    }
    Ok(())
}

/// A constant scalar (or one-element) int input.
fn scalar(ctx: &OpContext, i: usize) -> Result<i64> {
    match int_values(ctx, i)?[..] {
        [v] => Ok(v),
        ref v => Err(format!(
            "its input {i} holds {} values; one is expected",
            v.len()
        )),
    }
}
