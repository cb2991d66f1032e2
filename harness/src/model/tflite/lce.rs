//! The custom operators of the Larq Compute Engine (LCE), which converts
//! Larq's binary networks to `.tflite`, mapped onto bench's binary layers:
//!
//! - `LceQuantize`: float or int8 to packed signs, a [`LayerOp::Sign`]
//!   (bench packs signs as LCE does: channel `c` in bit `c % 32` of word
//!   `c / 32`, set for -1, that is below the zero point for int8).
//! - `LceBconv2d`: a binary convolution with LCE's options (a FlexBuffers
//!   map: strides, dilations, `padding`, `pad_values`, `channels_in`,
//!   `fused_activation_function`). Float output: LCE's
//!   `dot * post_activation_multiplier + post_activation_bias`, the
//!   multiplier as the weights' scale. Int8 output (LCE's int8 models):
//!   the same transform, then the output's quantization. Packed output (LCE's
//!   `output_threshold`): the bit is set when LCE's accumulator
//!   `popcount > threshold`, that is when `dot < K - 2 threshold`, which a
//!   float margin `dot + 0.5 - (K - 2 threshold)` and a Sign give exactly.
//! - `LceBMaxPool2d`: the AND of packed signs over a window, which is the
//!   sign of the max-pooled values the signs were taken of.
//! - `LceDequantize`: signs read as +-1 by the layer after it, which must
//!   be a binary layer (LCE writes a binary dense layer as LceQuantize,
//!   LceDequantize and a FULLY_CONNECTED with weights +-alpha).

use super::{fb, nhwc, tensor_name, OpContext, Result};
use crate::model::graph::{Graph, Layer, LayerOp, LayerWeights, Precision, Tensor, TensorId};
use kernels::binary::BinaryPadding;
use kernels::geometry::{Activation, Padding, Shape, Window};

/// Whether [`add`] imports the custom operator `name`.
pub fn handles(name: &str) -> bool {
    matches!(
        name,
        "LceQuantize" | "LceDequantize" | "LceBconv2d" | "LceBMaxPool2d"
    )
}

/// The operators LCE writes that bench does not read yet, and what it does instead.
pub const UNSUPPORTED: &str =
    "bench reads LCE's LceQuantize, LceDequantize, LceBconv2d and LceBMaxPool2d";

/// Imports the custom operator `custom` as its layers, named `name`.
pub fn add(
    ctx: &OpContext,
    custom: &str,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    name: &str,
) -> Result<()> {
    let x = input(ctx, written, 0)?;
    let out = *ctx.outputs.first().ok_or("it has no output")?;
    // The output must be a tensor of the file before anything names it.
    ctx.reader.tensor(out)?;
    match custom {
        // An int8 input's sign is its comparison with the zero point.
        "LceQuantize" => {
            let s = graph.tensors[x].shape;
            let t = new_tensor(ctx, graph, written, out, s, "", None)?;
            graph
                .layers
                .push(Layer::new(name, LayerOp::Sign, vec![x], t));
            Ok(())
        }
        // The +-1 values of the signs are what the binary layer after it reads.
        "LceDequantize" => match ctx.reader.tensor(out)?.dtype {
            fb::TensorType::FLOAT32 => record(written, out, x),
            other => Err(format!(
                "LceDequantize to {other:?} is not supported; bench reads it to float32 before a binary layer"
            )),
        },
        "LceBconv2d" => bconv2d(ctx, op, graph, written, name, x, out),
        "LceBMaxPool2d" => bmaxpool(ctx, op, graph, written, name, x, out),
        other => Err(format!(
            "custom operator {other} is not supported; {UNSUPPORTED}"
        )),
    }
}

/// The graph tensor an earlier operator (or the input) wrote for input `i`.
fn input(ctx: &OpContext, written: &[Option<TensorId>], i: usize) -> Result<TensorId> {
    let t = ctx.input(i)?;
    written.get(t as usize).copied().flatten().ok_or(format!(
        "input {i} (tensor {t}) is not written by an earlier operator or the model input"
    ))
}

fn record(written: &mut [Option<TensorId>], out: i32, t: TensorId) -> Result<()> {
    let slot = written
        .get_mut(out as usize)
        .ok_or(format!("output tensor {out} is out of range"))?;
    if slot.is_some() {
        return Err(format!("writes tensor {out}, which is already written"));
    }
    *slot = Some(t);
    Ok(())
}

/// A graph tensor for file tensor `out` (or, with a `suffix`, an
/// intermediate one named after it), of logical shape `shape`, int8 with
/// `quant` or else float32 or packed signs.
fn new_tensor(
    ctx: &OpContext,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    out: i32,
    shape: Shape,
    suffix: &str,
    quant: Option<(f32, i32)>,
) -> Result<TensorId> {
    graph.tensors.push(Tensor {
        name: format!("{}{suffix}", tensor_name(ctx.reader, out)),
        shape,
        quant,
    });
    let t = graph.tensors.len() - 1;
    if suffix.is_empty() {
        record(written, out, t)?;
    }
    Ok(t)
}

/// The custom options: a FlexBuffers map of integers (LCE writes nothing
/// else bench reads). Read by hand because the bytes come from the model
/// file: every read is bounds-checked, so a malformed map is an error (the
/// `flexbuffers` crate 25.12 panics on some; see the test below).
struct Options<'b> {
    bytes: &'b [u8],
    /// Where the map's values start, their byte width and count.
    values: usize,
    width: usize,
    len: usize,
    /// Where the keys vector starts and its byte width.
    keys: usize,
    key_width: usize,
}

/// FlexBuffers type codes bench reads.
const FLEX_INT: u8 = 1;
const FLEX_UINT: u8 = 2;
const FLEX_INDIRECT_INT: u8 = 6;
const FLEX_INDIRECT_UINT: u8 = 7;
const FLEX_MAP: u8 = 9;
const FLEX_BOOL: u8 = 26;

impl<'b> Options<'b> {
    fn of(op: &'b fb::Operator) -> Result<Self> {
        let bytes = op
            .custom_options()
            .ok_or("it has no custom options")?
            .bytes();
        Self::read(bytes).ok_or_else(|| "its custom options are not a FlexBuffers map".into())
    }

    fn read(bytes: &'b [u8]) -> Option<Self> {
        let n = bytes.len();
        let root_width = usize::from(*bytes.last()?);
        let packed = *bytes.get(n.checked_sub(2)?)?;
        let at = n.checked_sub(2 + root_width)?;
        if packed >> 2 != FLEX_MAP {
            return None;
        }
        let values = at.checked_sub(uint(bytes, at, root_width)? as usize)?;
        let width = 1usize << (packed & 3);
        let len = uint(bytes, values.checked_sub(width)?, width)? as usize;
        let key_width = uint(bytes, values.checked_sub(2 * width)?, width)? as usize;
        let keys_at = values.checked_sub(3 * width)?;
        let keys = keys_at.checked_sub(uint(bytes, keys_at, width)? as usize)?;
        Some(Self {
            bytes,
            values,
            width,
            len,
            keys,
            key_width,
        })
    }

    /// The index of `key` among the map's keys.
    fn find(&self, key: &str) -> Option<usize> {
        (0..self.len).find(|&i| {
            let at = self.keys + i * self.key_width;
            let start =
                uint(self.bytes, at, self.key_width).and_then(|o| at.checked_sub(o as usize));
            start.is_some_and(|s| {
                let name = self.bytes.get(s..).unwrap_or_default();
                name.split(|&b| b == 0).next() == Some(key.as_bytes()) && name.len() > key.len()
            })
        })
    }

    fn int(&self, key: &str) -> Result<i64> {
        let i = self
            .find(key)
            .ok_or(format!("its options have no `{key}`"))?;
        let at = self.values + i * self.width;
        let packed = *self
            .bytes
            .get(self.values + self.len * self.width + i)
            .ok_or("its custom options are cut short")?;
        let value = match packed >> 2 {
            FLEX_INT => int(self.bytes, at, self.width),
            FLEX_UINT | FLEX_BOOL => uint(self.bytes, at, self.width).map(|v| v as i64),
            kind @ (FLEX_INDIRECT_INT | FLEX_INDIRECT_UINT) => {
                let target =
                    uint(self.bytes, at, self.width).and_then(|o| at.checked_sub(o as usize));
                let width = 1usize << (packed & 3);
                match kind {
                    FLEX_INDIRECT_INT => target.and_then(|t| int(self.bytes, t, width)),
                    _ => target
                        .and_then(|t| uint(self.bytes, t, width))
                        .map(|v| v as i64),
                }
            }
            _ => None,
        };
        value.ok_or(format!("its option `{key}` is not an integer"))
    }

    fn positive(&self, key: &str) -> Result<u32> {
        let v = self.int(key)?;
        u32::try_from(v)
            .ok()
            .filter(|&v| (1..=1 << 16).contains(&v))
            .ok_or(format!("its option `{key}` is {v}"))
    }

    /// TFLite's `Padding` enum: SAME 0, VALID 1.
    fn padding(&self) -> Result<Padding> {
        match self.int("padding")? {
            0 => Ok(Padding::Same),
            1 => Ok(Padding::Valid),
            p => Err(format!("its padding is {p}; SAME (0) or VALID (1)")),
        }
    }
}

/// A little-endian unsigned integer of `width` bytes (1, 2, 4 or 8) at `at`.
fn uint(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    let mut v = [0u8; 8];
    v.get_mut(..width)?.copy_from_slice(b);
    matches!(width, 1 | 2 | 4 | 8).then(|| u64::from_le_bytes(v))
}

/// A little-endian signed integer of `width` bytes at `at`.
fn int(bytes: &[u8], at: usize, width: usize) -> Option<i64> {
    let v = uint(bytes, at, width)?;
    let shift = 64 - 8 * width as u32;
    Some(((v << shift) as i64) >> shift)
}

/// A constant input's int32 or float32 values.
fn values<T: bytemuck::Pod>(
    ctx: &OpContext,
    i: usize,
    dtype: fb::TensorType,
) -> Result<(Vec<u32>, Vec<T>)> {
    let t = ctx.constant(i, dtype, std::mem::size_of::<T>())?;
    let v = t
        .data
        .chunks_exact(std::mem::size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
        .collect();
    Ok((t.dims.clone(), v))
}

fn bconv2d(
    ctx: &OpContext,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    name: &str,
    x: TensorId,
    out: i32,
) -> Result<()> {
    let o = Options::of(op)?;
    let s = graph.tensors[x].shape;
    let channels_in = o.positive("channels_in")?;
    if graph.sign_source(x).is_none() || s.c != channels_in {
        return Err(format!(
            "its input must be the packed signs of {channels_in} channels (an LceQuantize's output)"
        ));
    }
    if o.int("fused_activation_function")? != 0 {
        return Err("a fused activation is not supported (LCE clamps the accumulator before its multiplier; put the activation after the batch norm)".into());
    }
    let padding = o.padding()?;
    // VALID has no padded taps: what they would be is moot.
    let pad_with = match padding {
        Padding::Same => match o.int("pad_values")? {
            1 => BinaryPadding::One,
            0 => BinaryPadding::Zero,
            other => return Err(format!("pad_values = {other}; Larq pads with 0 or 1")),
        },
        _ => BinaryPadding::One,
    };
    let stride = (o.positive("stride_height")?, o.positive("stride_width")?);
    let dilation = (
        o.positive("dilation_height_factor")?,
        o.positive("dilation_width_factor")?,
    );
    let (dims, filter) = values::<u32>(ctx, 1, fb::TensorType::INT32)?;
    let [filters, kh, kw, words] = dims[..] else {
        return Err(format!(
            "its filter has shape {dims:?}; [O, KH, KW, words] is needed"
        ));
    };
    if words as usize != kernels::binary::words(channels_in as usize) {
        return Err(format!(
            "its filter packs {words} words per tap; {channels_in} channels need {}",
            kernels::binary::words(channels_in as usize)
        ));
    }
    let (_, (oh, ow)) = Window::new((kh, kw), stride, dilation, padding, (s.h, s.w));
    let shape = Shape::new(s.n, oh, ow, filters);
    let k = (kh * kw * channels_in) as i64;
    let bits_out = ctx.optional(4).is_some();
    // int8 output (LCE's int8 models): the float transform, then the output's quantization.
    let out_type = ctx.reader.tensor(out)?;
    let quant = match (bits_out, out_type.dtype) {
        (true, _) | (false, fb::TensorType::FLOAT32) => None,
        (false, fb::TensorType::INT8) => Some(out_type.activation_quant()?),
        (false, other) => {
            return Err(format!(
                "its output is {other:?}; float32, int8 or packed signs"
            ))
        }
    };
    // Per output channel: the scale of its +-1 weights and the bias.
    let (scale, bias): (Vec<f32>, Vec<f32>) = if bits_out {
        let (_, thresholds) = values::<i32>(ctx, 4, fb::TensorType::INT32)?;
        if thresholds.len() != filters as usize {
            return Err(format!(
                "it has {} thresholds for {filters} filters",
                thresholds.len()
            ));
        }
        let margin = |t: i32| (0.5 - (k - 2 * i64::from(t)) as f64) as f32;
        (
            vec![1.0; filters as usize],
            thresholds.iter().map(|&t| margin(t)).collect(),
        )
    } else {
        let (_, multiplier) = values::<f32>(ctx, 2, fb::TensorType::FLOAT32)?;
        let (_, bias) = values::<f32>(ctx, 3, fb::TensorType::FLOAT32)?;
        if multiplier.len() != filters as usize || bias.len() != filters as usize {
            return Err(format!(
                "its post-activation multiplier and bias must have {filters} values"
            ));
        }
        if multiplier.iter().any(|&m| m == 0.0 || !m.is_finite()) {
            return Err("a post-activation multiplier is 0 or not finite".into());
        }
        (multiplier, bias)
    };
    let per_tap = words as usize;
    let mut kernel = Vec::with_capacity((filters * kh * kw * channels_in) as usize);
    for f in 0..filters as usize {
        for tap in 0..(kh * kw) as usize {
            let word = |c: usize| filter[(f * (kh * kw) as usize + tap) * per_tap + c / 32];
            kernel.extend((0..channels_in as usize).map(|c| {
                let negative = word(c) >> (c % 32) & 1 == 1;
                if negative {
                    -scale[f]
                } else {
                    scale[f]
                }
            }));
        }
    }
    let conv = LayerOp::Conv2d {
        filters,
        kernel: (kh, kw),
        stride,
        dilation,
        padding,
        activation: Activation::None,
    };
    let suffix = if bits_out { "/margin" } else { "" };
    let t = new_tensor(ctx, graph, written, out, shape, suffix, quant)?;
    let mut layer = Layer::new(name, conv, vec![x], t);
    layer.weights = Some(LayerWeights { kernel, bias });
    layer.precision = Precision::Binary;
    layer.binary_padding = pad_with;
    graph.layers.push(layer);
    if bits_out {
        let bits = new_tensor(ctx, graph, written, out, shape, "", None)?;
        graph.layers.push(Layer::new(
            &format!("{name}/sign"),
            LayerOp::Sign,
            vec![t],
            bits,
        ));
    }
    Ok(())
}

fn bmaxpool(
    ctx: &OpContext,
    op: &fb::Operator,
    graph: &mut Graph,
    written: &mut [Option<TensorId>],
    name: &str,
    x: TensorId,
    out: i32,
) -> Result<()> {
    let o = Options::of(op)?;
    // The signs' source: the max of the values is what the AND of their signs is the sign of.
    let Some(values) = graph.sign_source(x) else {
        return Err("its input must be packed signs an earlier layer took".into());
    };
    let s = graph.tensors[values].shape;
    let (kernel, stride) = (
        (o.positive("filter_height")?, o.positive("filter_width")?),
        (o.positive("stride_height")?, o.positive("stride_width")?),
    );
    let padding = o.padding()?;
    let (_, (oh, ow)) = Window::new(kernel, stride, (1, 1), padding, (s.h, s.w));
    let shape = Shape::new(s.n, oh, ow, s.c);
    let declared = nhwc(&ctx.reader.tensor(out)?.dims)?;
    if (declared.h, declared.w) != (oh, ow) {
        return Err(format!(
            "its output is {declared:?}, its options give {oh}x{ow}"
        ));
    }
    let pool = LayerOp::MaxPool {
        kernel,
        stride,
        padding,
        activation: Activation::None,
    };
    let quant = graph.tensors[values].quant;
    let pooled = new_tensor(ctx, graph, written, out, shape, "/pooled", quant)?;
    graph
        .layers
        .push(Layer::new(name, pool, vec![values], pooled));
    let bits = new_tensor(ctx, graph, written, out, shape, "", None)?;
    graph.layers.push(Layer::new(
        &format!("{name}/sign"),
        LayerOp::Sign,
        vec![pooled],
        bits,
    ));
    Ok(())
}

/// A layer that reads packed signs is binary: a convolution or a dense
/// layer with weights +-alpha per output channel (LCE's binary dense
/// layer after LceDequantize). Anything else reading signs is refused.
pub fn mark_binary_layers(graph: &mut Graph) -> Result<()> {
    let signs: Vec<TensorId> = graph
        .layers
        .iter()
        .filter(|l| l.op == LayerOp::Sign)
        .map(|l| l.output)
        .collect();
    for layer in &mut graph.layers {
        if !layer.inputs.iter().any(|t| signs.contains(t)) || layer.precision == Precision::Binary {
            continue;
        }
        let dense = matches!(layer.op, LayerOp::Dense { .. });
        let plus_minus_alpha = layer.weights.as_ref().is_some_and(|w| {
            let rows = w.bias.len().max(1);
            w.kernel.chunks(w.kernel.len() / rows).all(|row| {
                let a = row[0].abs();
                a > 0.0 && row.iter().all(|v| v.abs() == a)
            })
        });
        if !(dense && plus_minus_alpha) {
            return Err(format!(
                "layer '{}' reads the +-1 values of an LceDequantize; bench runs only a binary FULLY_CONNECTED there (weights +-alpha per output)",
                layer.name
            ));
        }
        layer.precision = Precision::Binary;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Options;

    /// A FlexBuffers map as LCE's converter writes one, by the official builder.
    fn map(entries: &[(&str, i64)]) -> Vec<u8> {
        let mut builder = flexbuffers::Builder::default();
        let mut map = builder.start_map();
        for &(k, v) in entries {
            map.push(k, v);
        }
        map.end_map();
        builder.view().to_vec()
    }

    #[test]
    fn options_read_what_the_flexbuffers_builder_writes() {
        let entries = [
            ("channels_in", 40),
            ("dilation_height_factor", 1),
            ("padding", 0),
            ("pad_values", 1),
            ("stride_height", 2),
            ("big", 1 << 40),
            ("negative", -3),
            ("wide", 300),
        ];
        let bytes = map(&entries);
        let o = Options::read(&bytes).unwrap();
        for (k, v) in entries {
            assert_eq!(o.int(k), Ok(v), "{k}");
        }
        assert_eq!(
            o.int("missing"),
            Err("its options have no `missing`".into())
        );
        // `padding` is a prefix of `pad_values`' neighbour: keys match whole.
        assert_eq!(o.int("pad"), Err("its options have no `pad`".into()));
    }

    /// The options are bytes of the model file: malformed ones give an
    /// error, never a panic (a seeded sweep of corrupted and truncated maps;
    /// the `flexbuffers` crate's own reader panics on some of these).
    #[test]
    fn malformed_custom_options_never_panic() {
        let valid = map(&[("stride_height", 1), ("padding", 0), ("channels_in", 300)]);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut read = 0;
        for i in 0..50_000 {
            let mut bytes = valid.clone();
            if i % 2 == 0 {
                for _ in 0..1 + next() % 3 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
            } else {
                bytes.truncate(next() as usize % (bytes.len() + 1));
            }
            if let Some(o) = Options::read(&bytes) {
                read += usize::from(o.int("padding").is_ok());
                let _ = o.int("channels_in");
            }
        }
        // Most single-byte corruptions leave a readable map.
        assert!(read > 1000, "{read}");
    }
}
