//! Quantized ONNX, as `onnxruntime.quantization.quantize_static` writes it.
//!
//! - **QDQ**: QuantizeLinear/DequantizeLinear pairs around float
//!   operators. A pair on an activation gives the tensor that the operator
//!   before it writes its int8 parameters; a DequantizeLinear of an integer
//!   initializer is a constant whose integers (weights, int32 biases) a
//!   Conv, Gemm or MatMul keeps exactly. The float operators in between run
//!   in int8, as the int8 layers of a TFLite model do; a unary curve
//!   between a pair (HardSigmoid, Sigmoid, ...) is a 256-entry table.
//! - **QOperator**: QLinearConv, QLinearMatMul, QGemm, QLinearAdd,
//!   QLinearMul, QLinearGlobalAveragePool, QLinearSoftmax, ... read each as
//!   its float operator over dequantized inputs, with the output's
//!   parameters on the tensor it writes.
//!
//! uint8 tensors are held as int8 shifted by 128 (zero point - 128), which
//! changes no difference `q - zero_point`; uint8 weights keep their zero
//! point, shifted the same way. The graph input is quantized by a Quantize
//! layer and a float output dequantized by a Dequantize layer.

use super::{int, ConstTensor, Importer, Result, TensorProto, Value, INT32};
use crate::model::graph::{Int8Weights, LayerOp, TensorId};
use crate::model::onnx_proto::{GraphProto, NodeProto};
use std::collections::HashMap;

/// The integers behind a dequantized constant.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct QuantizedConst {
    /// The stored integers (uint8 as stored, 0..=255).
    pub values: Vec<i64>,
    /// One scale, or one per index of `axis`.
    pub scales: Vec<f32>,
    /// Zero point per scale, as stored.
    pub zero_points: Vec<i64>,
    /// The axis the scales run along.
    pub axis: usize,
    /// The integers are uint8.
    pub uint8: bool,
    /// The integers are int32 (a bias).
    pub int32: bool,
}

/// The constants that DequantizeLinear nodes make of initializers, by the
/// node's output (an error is reported where a node reads it).
pub(super) fn fold_constants<'m>(
    g: &'m GraphProto,
    constants: &HashMap<&'m str, &'m TensorProto>,
) -> HashMap<&'m str, Result<ConstTensor>> {
    let mut folded = HashMap::new();
    for node in g.node.iter().filter(|n| n.op_type == "DequantizeLinear") {
        let (Some(x), Some(out)) = (node.input.first(), node.output.first()) else {
            continue;
        };
        let Some(t) = constants.get(x.as_str()) else {
            continue;
        };
        let read = |i: usize| -> Result<Option<ConstTensor>> {
            match node.input.get(i).filter(|n| !n.is_empty()) {
                None => Ok(None),
                Some(name) => constants
                    .get(name.as_str())
                    .ok_or(format!("its input {i} ('{name}') must be a constant"))
                    .and_then(|t| ConstTensor::read(t))
                    .map(Some),
            }
        };
        let made = (|| {
            let x = ConstTensor::read(t)?;
            let scale = read(1)?.ok_or("it has no scale")?;
            let axis = int(node, "axis").unwrap_or(1);
            dequantized(x, &scale, read(2)?.as_ref(), axis, t.data_type == INT32)
        })();
        folded.insert(
            out.as_str(),
            made.map_err(|why| format!("DequantizeLinear of '{x}': {why}")),
        );
    }
    folded
}

/// The real values of integers `x` under `scale` and `zero_point` (one of
/// each, or one per index of `axis`), remembering the integers.
pub(super) fn dequantized(
    x: ConstTensor,
    scale: &ConstTensor,
    zero_point: Option<&ConstTensor>,
    axis: i64,
    int32: bool,
) -> Result<ConstTensor> {
    if !x.floats.is_empty() {
        return Err("its values are float, not integers".into());
    }
    let scales = scale.floats.clone();
    let zero_points = zero_point.map_or(vec![0; scales.len()], |z| z.ints.clone());
    if scales.is_empty() || zero_points.len() != scales.len() {
        return Err(format!(
            "{} scales and {} zero points",
            scales.len(),
            zero_points.len()
        ));
    }
    if scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err("a scale is not positive".into());
    }
    let rank = x.dims.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let axis = usize::try_from(axis).unwrap_or(usize::MAX);
    let per_axis = scales.len() > 1;
    if per_axis && x.dims.get(axis).map(|&d| d as usize) != Some(scales.len()) {
        return Err(format!(
            "{} scales along axis {axis} of a tensor of shape {:?}",
            scales.len(),
            x.dims
        ));
    }
    let inner: usize = x.dims.iter().skip(axis + 1).map(|&d| d as usize).product();
    let channel = |i: usize| {
        if per_axis {
            i / inner % scales.len()
        } else {
            0
        }
    };
    let floats = x
        .ints
        .iter()
        .enumerate()
        .map(|(i, &q)| scales[channel(i)] * (q - zero_points[channel(i)]) as f32)
        .collect();
    let quantized = QuantizedConst {
        values: x.ints.clone(),
        scales,
        zero_points,
        axis: if per_axis { axis } else { 0 },
        uint8: x.uint8,
        int32,
    };
    Ok(ConstTensor {
        floats,
        ints: Vec::new(),
        quantized: Some(quantized),
        ..x
    })
}

/// bench's int8 parameters of an activation's `(scale, zero point)`: a
/// uint8 zero point shifted by 128.
fn int8_params(scale: &ConstTensor, zero_point: Option<&ConstTensor>) -> Result<(f32, i32)> {
    let [s] = scale.floats[..] else {
        return Err(format!(
            "its scale has {} values; activations are quantized per tensor",
            scale.floats.len()
        ));
    };
    // Without a zero point the type is uint8, zero point 0.
    let (zp, uint8) = match zero_point {
        None => (0, true),
        Some(z) => match z.ints[..] {
            [zp] => (zp, z.uint8),
            _ => return Err("its zero point must be one value".into()),
        },
    };
    if !(s.is_finite() && s > 0.0) {
        return Err(format!("scale {s} is not positive"));
    }
    let zp = if uint8 { zp - 128 } else { zp };
    Ok((s, zp as i32))
}

/// Whether a layer only moves or selects bytes, so its int8 output has its
/// input's parameters.
pub(super) fn moves_bytes(op: &LayerOp) -> bool {
    matches!(
        op,
        LayerOp::Pad { .. }
            | LayerOp::Transpose { .. }
            | LayerOp::Flatten
            | LayerOp::Reshape
            | LayerOp::MaxPool { .. }
            | LayerOp::Insert { .. }
    )
}

impl Importer<'_> {
    /// The int8 parameters a QuantizeLinear or DequantizeLinear node gives.
    fn node_params(&self, node: &NodeProto) -> Result<(f32, i32)> {
        let scale = self.constant(node, 1)?.ok_or("it has no scale")?;
        int8_params(&scale, self.constant(node, 2)?.as_ref())
    }

    /// QuantizeLinear of an activation: of the float graph input, a
    /// Quantize layer; of a tensor a layer wrote, its int8 parameters (a
    /// Requantize layer if it has others already).
    pub(super) fn quantize_linear(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let q = self.node_params(node)?;
        let s = self.graph.tensors[x.tensor].shape;
        let held = self.graph.tensors[x.tensor].quant;
        if x.tensor == self.graph.input && held.is_none() {
            let t = self.push(node, LayerOp::Quantize, vec![x.tensor], s);
            self.graph.tensors[t].quant = Some(q);
        } else if held.is_none() || held == Some(q) {
            self.graph.tensors[x.tensor].quant = Some(q);
            self.alias(node, x);
            return Ok(());
        } else {
            let op = LayerOp::Requantize {
                input_uint8: false,
                output_uint8: false,
            };
            let t = self.push(node, op, vec![x.tensor], s);
            self.graph.tensors[t].quant = Some(q);
        }
        self.keep_layout(node, x.layout);
        Ok(())
    }

    /// DequantizeLinear of an activation: the same int8 tensor, read as real
    /// values by the operator after it.
    pub(super) fn dequantize_linear(&mut self, node: &NodeProto, x: Value) -> Result<()> {
        let q = self.node_params(node)?;
        match self.graph.tensors[x.tensor].quant {
            Some(held) if held == q => {
                self.alias(node, x);
                Ok(())
            }
            Some(held) => Err(format!(
                "it dequantizes with {q:?} a tensor quantized with {held:?} (scale, int8 zero point)"
            )),
            None => Err("it dequantizes a tensor that no QuantizeLinear quantized".into()),
        }
    }

    /// A QOperator node read as its float operator over dequantized inputs
    /// (`Some`), with the output's parameters on the tensor it writes; `None`
    /// for other nodes.
    pub(super) fn qoperator(&mut self, node: &NodeProto) -> Option<Result<()>> {
        // Per operator: the float operator, each float input's (value,
        // scale, zero point) input indices, the output's, and the bias.
        let (op, inputs, output, bias): (&str, &[[usize; 3]], [usize; 2], Option<usize>) =
            match node.op_type.as_str() {
                "QLinearConv" => ("Conv", &[[0, 1, 2], [3, 4, 5]], [6, 7], Some(8)),
                "QLinearMatMul" => ("MatMul", &[[0, 1, 2], [3, 4, 5]], [6, 7], None),
                "QGemm" => ("Gemm", &[[0, 1, 2], [3, 4, 5]], [7, 8], Some(6)),
                "QLinearAdd" => ("Add", &[[0, 1, 2], [3, 4, 5]], [6, 7], None),
                "QLinearMul" => ("Mul", &[[0, 1, 2], [3, 4, 5]], [6, 7], None),
                "QLinearGlobalAveragePool" => ("GlobalAveragePool", &[[0, 1, 2]], [3, 4], None),
                "QLinearAveragePool" => ("AveragePool", &[[0, 1, 2]], [3, 4], None),
                "QLinearSigmoid" => ("Sigmoid", &[[0, 1, 2]], [3, 4], None),
                "QLinearLeakyRelu" => ("LeakyRelu", &[[0, 1, 2]], [3, 4], None),
                "QLinearSoftmax" => ("Softmax", &[[0, 1, 2]], [3, 4], None),
                "QLinearConcat" => return Some(Err(
                    "QLinearConcat is not supported; quantize in QDQ format (quant_format=QuantFormat.QDQ)".into(),
                )),
                _ => return None,
            };
        if node.output.len() != 1 {
            return Some(Err(format!(
                "has {} outputs; one is supported",
                node.output.len()
            )));
        }
        Some(self.as_float_operator(node, op, inputs, output, bias))
    }

    fn as_float_operator(
        &mut self,
        node: &NodeProto,
        op: &str,
        inputs: &[[usize; 3]],
        [out_scale, out_zero_point]: [usize; 2],
        bias: Option<usize>,
    ) -> Result<()> {
        let name = |i: usize| node.input.get(i).cloned().unwrap_or_default();
        let mut float = NodeProto {
            op_type: op.into(),
            domain: String::new(),
            input: Vec::new(),
            ..node.clone()
        };
        for (k, &[v, s, z]) in inputs.iter().enumerate() {
            let value = name(v);
            if !self.is_constant(&value) {
                // An activation: its tensor must hold these parameters.
                let x = self.value(&value)?;
                let q = int8_params(
                    &self.constant(node, s)?.ok_or("a scale is missing")?,
                    self.constant(node, z)?.as_ref(),
                )?;
                let held = self.graph.tensors[x.tensor].quant;
                if held != Some(q) {
                    return Err(format!(
                        "input '{value}' is quantized with {held:?}, the node reads it with {q:?}"
                    ));
                }
                float.input.push(value);
                continue;
            }
            let x = self.constant(node, v)?.expect("a constant");
            let scale = self.constant(node, s)?.ok_or("a scale is missing")?;
            // Per-channel weights run along the output axis: 0 for a Conv's
            // [O, I, KH, KW] and a transposed Gemm's [N, K], 1 for [K, N].
            let transposed = op == "Gemm" && int(node, "transB").unwrap_or(0) == 1;
            let axis = if op == "Conv" || transposed || k == 0 {
                0
            } else {
                1
            };
            let zero_point = self.constant(node, z)?;
            let folded = dequantized(x, &scale, zero_point.as_ref(), axis, false)?;
            self.synthetic
                .insert(format!("{}#{k}", node.output[0]), folded);
            float.input.push(format!("{}#{k}", node.output[0]));
        }
        if bias.map(name).is_some_and(|b| !b.is_empty()) {
            // An int32 bias in units of input scale x weight scale, zero point 0.
            let x = self
                .constant(node, bias.expect("a bias"))?
                .expect("a constant");
            let (s_in, s_w) = (
                self.constant(node, inputs[0][1])?
                    .ok_or("a scale is missing")?,
                self.constant(node, inputs[1][1])?
                    .ok_or("a scale is missing")?,
            );
            let s_in = *s_in.floats.first().ok_or("its input scale is empty")?;
            let scale = ConstTensor {
                floats: s_w.floats.iter().map(|w| w * s_in).collect(),
                ..s_w
            };
            let folded = if x.floats.is_empty() {
                dequantized(x, &scale, None, 0, true)?
            } else {
                x
            };
            self.synthetic
                .insert(format!("{}#bias", node.output[0]), folded);
            float.input.push(format!("{}#bias", node.output[0]));
        }
        float
            .attribute
            .retain(|a| !matches!(a.name.as_str(), "channels_last"));
        self.node(&float)?;
        let q = int8_params(
            &self
                .constant(node, out_scale)?
                .ok_or("the output scale is missing")?,
            self.constant(node, out_zero_point)?.as_ref(),
        )?;
        let t = self.value(&node.output[0])?.tensor;
        self.graph.tensors[t].quant = Some(q);
        Ok(())
    }

    /// The exact int8 parameters of a Conv, Gemm or MatMul whose weights
    /// are a dequantized constant, arranged as its float `kernel` is
    /// (`arrange` moves any element type the same way).
    pub(super) fn int8_weights(
        &self,
        layer: &str,
        input: TensorId,
        weights: &QuantizedConst,
        out_axis: usize,
        arrange: &dyn Fn(&[i64]) -> Vec<i64>,
        bias: Option<&ConstTensor>,
    ) -> Result<Int8Weights> {
        let Some((s_in, _)) = self.graph.tensors[input].quant else {
            return Err(format!("layer '{layer}' has int8 weights but its input is not quantized (no QuantizeLinear before it)"));
        };
        if weights.scales.len() > 1 && weights.axis != out_axis {
            return Err(format!(
                "its weights are quantized along axis {}; bench takes one scale per output channel (axis {out_axis})",
                weights.axis
            ));
        }
        let zero_point = weights.zero_points[0];
        if weights.zero_points.iter().any(|&z| z != zero_point) {
            return Err("its weights' zero points differ per channel".into());
        }
        let shift = if weights.uint8 { 128 } else { 0 };
        let values: Vec<i8> = arrange(&weights.values)
            .into_iter()
            .map(|q| (q - shift) as i8)
            .collect();
        let out = weights.scales.len().max(1);
        let units = |o: usize| s_in * weights.scales[o % out];
        let bias = match bias {
            Some(ConstTensor {
                quantized: Some(b), ..
            }) if b.int32 => b.values.clone(),
            Some(b) => b
                .floats
                .iter()
                .enumerate()
                .map(|(o, &v)| (v / units(o)).round() as i64)
                .collect(),
            None => Vec::new(),
        };
        Ok(Int8Weights {
            values,
            scales: weights.scales.clone(),
            zero_point: (zero_point - shift) as i32,
            bias,
            dynamic_range: false,
        })
    }

    /// A float graph output of a quantized model: a Dequantize layer after
    /// its int8 tensor `t`, which takes the output's name.
    pub(super) fn dequantized_output(&mut self, name: &str, t: TensorId) -> TensorId {
        let shape = self.graph.tensors[t].shape;
        self.output_layer(name, ("int8", "dequantize"), LayerOp::Dequantize, t, shape)
    }

    /// In a quantized model, every tensor bench computes in int8 has its
    /// parameters: layers that only move bytes (pads, transposes,
    /// reshapes, max pools, concatenations) pass theirs on; any other
    /// tensor without them is an operator no QuantizeLinear follows.
    pub(super) fn check_quantized(&mut self) -> Result<()> {
        if !self.graph.tensors.iter().any(|t| t.quant.is_some()) {
            return Ok(());
        }
        for i in 0..self.graph.layers.len() {
            let layer = &self.graph.layers[i];
            let (input, output) = (layer.inputs[0], layer.output);
            if moves_bytes(&layer.op) && self.graph.tensors[output].quant.is_none() {
                self.graph.tensors[output].quant = self.graph.tensors[input].quant;
            }
        }
        let float: Vec<TensorId> = std::iter::once(self.graph.input)
            .chain(
                self.graph
                    .layers
                    .iter()
                    .filter(|l| l.op == LayerOp::Dequantize)
                    .map(|l| l.output),
            )
            .collect();
        for layer in &self.graph.layers {
            let t = &self.graph.tensors[layer.output];
            if t.quant.is_none() && !float.contains(&layer.output) {
                return Err(format!(
                    "tensor '{}' (written by '{}') has no int8 parameters: in a quantized model bench runs every operator in int8, so a QuantizeLinear must follow it",
                    t.name, layer.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[i64], dims: &[u32], uint8: bool) -> ConstTensor {
        ConstTensor {
            dims: dims.to_vec(),
            floats: Vec::new(),
            ints: values.to_vec(),
            uint8,
            quantized: None,
        }
    }

    fn floats(values: &[f32]) -> ConstTensor {
        ConstTensor {
            dims: vec![values.len() as u32],
            floats: values.to_vec(),
            ints: Vec::new(),
            uint8: false,
            quantized: None,
        }
    }

    #[test]
    fn per_channel_integers_dequantize_along_their_axis() {
        // [2, 3] int8 weights, one scale per row (axis 0), zero point 0.
        let x = ints(&[1, -2, 3, 4, 5, -6], &[2, 3], false);
        let zp = ints(&[0, 0], &[2], false);
        let d = dequantized(x, &floats(&[0.5, 0.25]), Some(&zp), 0, false).unwrap();
        assert_eq!(d.floats, [0.5, -1.0, 1.5, 1.0, 1.25, -1.5]);
        assert_eq!(d.quantized.as_ref().unwrap().values, [1, -2, 3, 4, 5, -6]);
        // Along axis 1: one scale per column.
        let x = ints(&[1, 1, 1, 2, 2, 2], &[2, 3], false);
        let zp = ints(&[0, 0, 0], &[3], false);
        let d = dequantized(x, &floats(&[1.0, 2.0, 4.0]), Some(&zp), 1, false).unwrap();
        assert_eq!(d.floats, [1.0, 2.0, 4.0, 2.0, 4.0, 8.0]);
        // uint8 with a zero point.
        let x = ints(&[0, 128, 255], &[3], true);
        let zp = ints(&[128], &[], true);
        let d = dequantized(x, &floats(&[0.5]), Some(&zp), 1, false).unwrap();
        assert_eq!(d.floats, [-64.0, 0.0, 63.5]);
        let wrong = dequantized(
            ints(&[1, 2], &[2], false),
            &floats(&[1.0, 2.0, 3.0]),
            Some(&ints(&[0, 0, 0], &[3], false)),
            0,
            false,
        );
        assert_eq!(
            wrong.unwrap_err(),
            "3 scales along axis 0 of a tensor of shape [2]"
        );
    }

    #[test]
    fn uint8_activations_are_held_as_int8_shifted_by_128() {
        assert_eq!(
            int8_params(&floats(&[0.1]), Some(&ints(&[130], &[], true))),
            Ok((0.1, 2))
        );
        assert_eq!(
            int8_params(&floats(&[0.1]), Some(&ints(&[-3], &[], false))),
            Ok((0.1, -3))
        );
        // ONNX's default zero point is uint8 0.
        assert_eq!(int8_params(&floats(&[0.1]), None), Ok((0.1, -128)));
        assert!(int8_params(&floats(&[0.1, 0.2]), None).is_err());
    }
}
