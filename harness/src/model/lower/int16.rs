//! Lowering of TFLite's 16x8 layers (int16 activations, int8 weights,
//! int64 biases) to the kernel crate's int16 operators: the parameters
//! LiteRT's reference kernels derive at prepare, computed here once.

use super::{layout_op, pool_op, remap_op, weighted_op, LayerQuant, LowerError};
use crate::model::elementwise::Elementwise;
use crate::model::graph::{Layer, LayerOp};
use kernels::broadcast::{Binary, Int8Binary, MulParams};
use kernels::geometry::Activation;
use kernels::int16::{self as k16, wide};
use kernels::int8::Clamp;
use kernels::model::{Act, ModelWriter, Op, Stage, TensorDesc, Weights};
use kernels::quant::{activation_range, conv_output_multiplier, Requant};

/// The int16 operator of `layer`; `b` is a binary layer's second operand
/// and its quantization.
pub(super) fn op(
    w: &mut ModelWriter,
    layer: &Layer,
    (input, output): (TensorDesc, TensorDesc),
    b: Option<(TensorDesc, (f32, i32))>,
    q: LayerQuant,
) -> Result<Op, LowerError> {
    let unsupported = |why| LowerError::Unsupported {
        layer: layer.name.clone(),
        why,
    };
    Ok(match layer.op {
        LayerOp::Conv2d { activation, .. }
        | LayerOp::DepthwiseConv2d { activation, .. }
        | LayerOp::Dense { activation, .. } => {
            let (weights, stage) = weighted(w, layer, q, clamp(activation, q.output.0))?;
            weighted_op(layer, input, output, weights, stage)
        }
        LayerOp::AvgPool { .. } | LayerOp::MaxPool { .. } => {
            pool_op(layer, input, output, |a| Act::I8(clamp(a, q.output.0)))
        }
        LayerOp::Add { activation } => {
            let (b, b_quant) = b.ok_or_else(|| unsupported("an addition needs two operands"))?;
            add(Binary::Add, activation, (input, b, output), (input.shape, b.shape), (q, b_quant))
        }
        LayerOp::Binary {
            op: op @ (Binary::Add | Binary::Sub | Binary::Mul),
            activation,
            a_view,
            b_view,
            constant_b: None,
        } => {
            let (b, b_quant) = b.ok_or_else(|| unsupported("a binary operator needs two operands"))?;
            add(op, activation, (input, b, output), (a_view, b_view), (q, b_quant))
        }
        LayerOp::Activation {
            f: f @ (Elementwise::Logistic | Elementwise::Tanh),
        } => {
            if q.output != (1.0 / 32768.0, 0) {
                return Err(unsupported(
                    "an int16 LOGISTIC or TANH needs an output scale of 2^-15 and zero point 0 (as TFLite does)",
                ));
            }
            Op::Curve {
                input,
                output,
                curve: k16::Curve::new(f == Elementwise::Tanh, q.input.0),
            }
        }
        // RELU, RELU6 and LEAKY_RELU (the import admits no other in int16).
        LayerOp::Activation { f } => Op::Requantize {
            input,
            output,
            params: f
                .piecewise_linear(q.input, q.output, (i16::MIN.into(), i16::MAX.into()))
                .ok_or_else(|| unsupported("HARD_SWISH has no int16 kernel in TFLite"))?,
        },
        LayerOp::Softmax { beta } => {
            let (scale, zero_point) = q.output;
            if zero_point != 0 || (scale * 32768.0 - 1.0).abs() > 1e-3 {
                return Err(unsupported(
                    "an int16 SOFTMAX needs an output scale of 2^-15 and zero point 0 (as TFLite does)",
                ));
            }
            softmax(w, input, output, q.input.0, beta)
        }
        LayerOp::Quantize => Op::Quantize {
            input,
            output,
            scale: q.output.0,
            zero_point: q.output.1,
        },
        LayerOp::Dequantize => Op::Dequantize {
            input,
            output,
            scale: q.input.0,
            zero_point: q.input.1,
        },
        LayerOp::Requantize { .. } => Op::Requantize {
            input,
            output,
            params: k16::Requantize::new(q.input, q.output),
        },
        LayerOp::Flatten | LayerOp::Reshape => Op::Reshape { input, output },
        // PAD's 0, or PADV2's value, in the output's quantization.
        LayerOp::Pad { before, value, .. } => {
            let q = k16::quantize_one(value, q.output.0);
            let [lo, hi] = q.to_le_bytes();
            Op::Pad {
                input,
                output,
                before,
                value: [lo, hi, 0, 0],
            }
        }
        LayerOp::Transpose { .. }
        | LayerOp::Slice { .. }
        | LayerOp::Insert { .. }
        | LayerOp::Mean { .. } => layout_op(layer, input, output, Some(q)),
        LayerOp::Remap { ref maps, view } => remap_op(w, maps, input, output, view),
        LayerOp::Gather { .. } => super::gather_op(w, layer, input, output),
        // TFLite Micro's 16x8 LSTM: the block the importer wrote says so.
        LayerOp::Lstm { ref block } => Op::Lstm {
            input,
            output,
            scratch: b.ok_or_else(|| unsupported("an LSTM needs its scratch"))?.0,
            params: w.constant(block),
        },
        _ => {
            return Err(unsupported(
                "this operator has no int16 kernel (TFLite's 16x8 scheme runs conv, depthwise, dense, pools, ADD, SUB, MUL, RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, SOFTMAX, QUANTIZE, DEQUANTIZE, TFLM's LSTM and the operators that move bytes)",
            ))
        }
    })
}

/// TFLite's int16 SOFTMAX: the input rescaled so that `[-65535, 0]` spans
/// `[-10, 0]` (the scale and beta multiplied in single precision, as
/// there), and the exp and `1 / (1 + x)` tables LiteRT's prepare builds.
fn softmax(
    w: &mut ModelWriter,
    input: TensorDesc,
    output: TensorDesc,
    scale: f32,
    beta: f32,
) -> Op {
    let range = f64::from(i16::MAX) - f64::from(i16::MIN);
    let mut luts = lut_populate(10.0 / range, i16::MAX.into(), 2.0 / range, f64::exp).to_vec();
    luts.extend(lut_populate(
        1.0 / range,
        i16::MIN.into(),
        2.0 / range,
        |x| 1.0 / (1.0 + x),
    ));
    Op::Softmax16 {
        input,
        output,
        params: k16::Softmax16 {
            input: kernels::quant::quantize_multiplier(f64::from(scale * beta) / (10.0 / 65535.0)),
        },
        luts: w.constant(&luts),
    }
}

/// TFLite's `LUTPopulateInt16<double>`: 512 samples of `f` over the int16
/// input range (input scale and zero point), each corrected by half the
/// error of linear interpolation at its interval's midpoint, and the end.
fn lut_populate(
    input_scale: f64,
    input_zero_point: i32,
    output_scale: f64,
    f: impl Fn(f64) -> f64,
) -> [i16; k16::LUT_LEN] {
    let round = kernels::quant::round_half_away;
    let (lo, hi) = (f64::from(i16::MIN), f64::from(i16::MAX));
    let input_min = input_scale * f64::from(i32::from(i16::MIN) - input_zero_point);
    let input_max = input_scale * f64::from(i32::from(i16::MAX) - input_zero_point);
    let (output_min, output_max) = (output_scale * lo, output_scale * hi);
    let steps = (k16::LUT_LEN - 1) as f64;
    let step = (input_max - input_min) / steps;
    let inv = 65536.0 / (output_max - output_min);
    let mut lut = [0i16; k16::LUT_LEN];
    for (i, entry) in lut.iter_mut().enumerate().take(k16::LUT_LEN - 1) {
        let at = input_min + i as f64 * step;
        let (val, mid, next) = (
            f(at),
            f(at + step / 2.0),
            f(input_min + (i + 1) as f64 * step),
        );
        let sample = round(val * inv);
        let interpolated = round((next * inv + round(val * inv)) / 2.0);
        let bias = round((interpolated - round(mid * inv)) / 2.0);
        *entry = (sample - bias).clamp(lo, hi) as i16;
    }
    lut[k16::LUT_LEN - 1] = round(f(input_max) * inv).clamp(lo, hi) as i16;
    lut
}

/// The int16 clamp of a fused activation (zero point 0).
fn clamp(activation: Activation, scale: f32) -> Clamp {
    let (min, max) = activation_range(activation, scale, 0, (k16::FULL.min, k16::FULL.max));
    Clamp { min, max }
}

/// The int8 weights and int16 output stage of an imported conv, depthwise
/// or dense layer: convolutions rescale by per-channel multipliers, dense
/// layers by double-precision scales (LiteRT's reference kernels).
fn weighted(
    w: &mut ModelWriter,
    layer: &Layer,
    q: LayerQuant,
    clamp: Clamp,
) -> Result<(Weights, Stage), LowerError> {
    let exact = layer
        .int8
        .as_ref()
        .filter(|x| !x.dynamic_range && x.zero_point == 0)
        .ok_or_else(|| LowerError::Unsupported {
            layer: layer.name.clone(),
            why: "an int16 layer needs the symmetric int8 weights of an imported 16x8 model",
        })?;
    let (s_in, s_out) = (q.input.0, q.output.0);
    let dense = matches!(layer.op, LayerOp::Dense { .. });
    let rescale = if dense {
        let scales: Vec<_> = exact
            .scales
            .iter()
            .map(|&s_w| wide((f64::from(s_in) * f64::from(s_w) / f64::from(s_out)).to_bits()))
            .collect();
        w.constant(&scales)
    } else {
        let requant: Vec<Requant> = exact
            .scales
            .iter()
            .map(|&s_w| conv_output_multiplier(s_in, s_w, s_out))
            .collect();
        w.constant(&requant)
    };
    let bias: Vec<_> = exact.bias.iter().map(|&b| wide(b as u64)).collect();
    let weights = Weights::Int8 {
        filter: w.constant(&exact.values),
        bias: None,
    };
    let stage = Stage::Int16 {
        bias: Some(w.constant(&bias)),
        rescale,
        double: dense,
        clamp,
    };
    Ok((weights, stage))
}

/// ADD or SUB (TFLite's general int16 scaling) or MUL of two int16 tensors.
fn add(
    op: Binary,
    activation: Activation,
    (a, b, output): (TensorDesc, TensorDesc, TensorDesc),
    (a_view, b_view): (kernels::geometry::Shape, kernels::geometry::Shape),
    (q, b_quant): (LayerQuant, (f32, i32)),
) -> Op {
    let Clamp { min, max } = clamp(activation, q.output.0);
    let params = match op {
        Binary::Mul => Int8Binary::Mul(MulParams::new(q.input, b_quant, q.output, (min, max))),
        _ => Int8Binary::Add(k16::add_params(
            q.input.0,
            b_quant.0,
            q.output.0,
            (min, max),
        )),
    };
    Op::Binary {
        a,
        b,
        b_const: None,
        swapped: false,
        output,
        a_view,
        b_view,
        op,
        int8: Some(params),
        act: (f32::NEG_INFINITY, f32::INFINITY),
    }
}
