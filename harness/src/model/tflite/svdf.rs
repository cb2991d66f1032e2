//! SVDF, integer (int8 input, output and feature weights, int16 time
//! weights and state, int32 bias): the multipliers LiteRT's prepare derives
//! (both scale products in single precision, as there), for `kernels::svdf`.

use super::{fb, le_words, positive, NewLayer, Result, Site};
use crate::model::graph::{Graph, LayerOp, Tensor, TensorId};
use kernels::geometry::Shape;
use kernels::quant::quantize_multiplier;
use kernels::svdf::SvdfParams;

/// The index of the activation state among an SVDF's inputs (a variable
/// int16 tensor: the kernel's scratch, not a model activation).
pub const STATE_INPUT: usize = 4;

/// The SVDF's layer: sizes, multipliers and weights.
pub(super) fn import(site: &Site, layer: &mut NewLayer) -> Result<()> {
    let ctx = site.ctx;
    let (s_in, zp_in) = site.x_quant.ok_or("its input must be int8")?;
    let (s_out, zp_out) = site.quant.ok_or("its output must be int8")?;
    let o = site
        .op
        .builtin_options_as_svdfoptions()
        .ok_or("it has no SVDFOptions")?;
    let rank = positive(o.rank(), "rank")?;
    let feature = ctx.constant(1, fb::TensorType::INT8, 1)?;
    let time = ctx.constant(2, fb::TensorType::INT16, 2)?;
    let state = ctx.reader.tensor(ctx.input(STATE_INPUT)?)?;
    let (&[filters, n_input], &[time_filters, memory]) = (&feature.dims[..], &time.dims[..]) else {
        return Err(
            "its feature weights must be [filters, input] and its time weights [filters, memory]"
                .into(),
        );
    };
    let units = filters / rank;
    let s = site.s;
    if time_filters != filters || !filters.is_multiple_of(rank) || s.features() != n_input as usize
    {
        return Err(format!(
            "its weights ([{filters}, {n_input}] and [{time_filters}, {memory}], rank {rank}) do not fit its input {s:?}"
        ));
    }
    if state.dtype != fb::TensorType::INT16 || state.elements() != (s.n * filters * memory) as usize
    {
        return Err("its activation state must be int16 [batch, memory x filters]".into());
    }
    let s_feature = single_scale(&feature, "feature weights")?;
    let (s_time, _) = time.activation_quant()?;
    let (s_state, _) = state.activation_quant()?;
    let bias = match ctx.optional(3) {
        Some(_) => Some(le_words(
            &ctx.constant(3, fb::TensorType::INT32, 4)?.data,
            i32::from_le_bytes,
        )),
        None => None,
    };
    if bias.as_ref().is_some_and(|b| b.len() != units as usize) {
        return Err(format!("its bias does not have {units} values"));
    }
    site.check_shape(Shape::flat(s.n, units))?;
    let params = SvdfParams {
        rank,
        memory,
        input_zero_point: zp_in,
        output_zero_point: zp_out,
        feature_scale: quantize_multiplier(f64::from(s_in * s_feature / s_state)),
        output_scale: quantize_multiplier(f64::from(s_state * s_time / s_out)),
    };
    layer.op = LayerOp::Svdf {
        params,
        feature: bytemuck::cast_slice(&feature.data).to_vec(),
        time: time
            .data
            .chunks_exact(2)
            .map(|w| i16::from_le_bytes([w[0], w[1]]))
            .collect(),
        bias,
    };
    Ok(())
}

/// The one scale of symmetric per-tensor weights.
fn single_scale(t: &super::TensorInfo, what: &str) -> Result<f32> {
    let q = t
        .quant
        .ok_or(format!("its {what} have no quantization parameters"))?;
    match q.scale().map(|s| s.iter().collect::<Vec<f32>>()).as_deref() {
        Some(&[scale])
            if scale.is_finite() && scale > 0.0 && t.zero_points().iter().all(|&z| z == 0) =>
        {
            Ok(scale)
        }
        _ => Err(format!(
            "its {what} must have one positive scale and zero point 0"
        )),
    }
}

/// The scratch tensor of the SVDF writing `output` (its state and sums,
/// as bytes), added to the graph.
pub(super) fn scratch(
    graph: &mut Graph,
    params: &SvdfParams,
    time_weights: usize,
    output: TensorId,
) -> TensorId {
    let batch = graph.tensors[output].shape.n as usize;
    let filters = time_weights / params.memory.max(1) as usize;
    let bytes = kernels::svdf::scratch_len(batch, filters, params.memory as usize);
    graph.tensors.push(Tensor {
        name: format!("{}/svdf_scratch", graph.tensors[output].name),
        shape: Shape::flat(1, bytes as u32),
        // Bytes, not values: a quantization only so the model reads as int8 throughout.
        quant: Some((1.0, 0)),
    });
    graph.tensors.len() - 1
}
