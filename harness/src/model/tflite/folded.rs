//! Weights stored compressed in a float model: a DEQUANTIZE of a constant
//! float16 or int8 tensor in front of the layer that reads it (TFLite's
//! float16 and weight-only quantization). The importer evaluates each such
//! DEQUANTIZE once, as LiteRT does at preparation, and the layer reads the
//! float32 values as if the file held them.

use super::{code, fb, opcode_of, OperatorCodes, Reader, Result};
use std::collections::HashMap;

/// Float32 bytes of each DEQUANTIZE output whose input is a constant.
pub type Folded = HashMap<i32, Vec<u8>>;

/// Evaluates every DEQUANTIZE of a constant in `sg`.
pub fn fold(reader: &Reader, codes: OperatorCodes, sg: &fb::SubGraph) -> Result<Folded> {
    let mut folded = Folded::new();
    for op in sg.operators().iter().flatten() {
        if opcode_of(codes, &op) != Some(Ok(code::DEQUANTIZE)) {
            continue;
        }
        let (ins, outs) = (super::ends(op.inputs()), super::ends(op.outputs()));
        let (&[input], &[output]) = (&ins[..], &outs[..]) else {
            continue;
        };
        let t = reader.tensor(input)?;
        if t.data.is_empty() {
            continue;
        }
        let values = match t.dtype {
            fb::TensorType::FLOAT16 => t
                .data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            fb::TensorType::INT8 => dequantize_int8(&t)?,
            other => {
                return Err(format!(
                    "a DEQUANTIZE of a constant {} tensor is not supported",
                    super::type_name(other)
                ))
            }
        };
        let bytes: Vec<u8> = values.iter().flat_map(|v: &f32| v.to_le_bytes()).collect();
        folded.insert(output, bytes);
    }
    Ok(folded)
}

/// `scale * (q - zero_point)` per tensor, or per channel along the
/// quantized dimension; each the correctly rounded float of the exact
/// product, as TFLite's double (per tensor) and float (per channel) forms both give.
fn dequantize_int8(t: &super::TensorInfo) -> Result<Vec<f32>> {
    let q = t
        .quant
        .ok_or("a constant int8 tensor has no quantization")?;
    let scales: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    let zero_points = t.zero_points();
    if scales.is_empty() || zero_points.len() != scales.len() && zero_points.len() > 1 {
        return Err("a constant int8 tensor's scales and zero points do not match".into());
    }
    let axis = q.quantized_dimension() as usize;
    let dims = &t.dims;
    let inner: usize = dims
        .get(axis + 1..)
        .map_or(1, |d| d.iter().map(|&v| v as usize).product());
    let channels = dims.get(axis).copied().unwrap_or(1) as usize;
    if scales.len() != 1 && scales.len() != channels {
        return Err(format!(
            "a constant int8 tensor has {} scales for {channels} channels",
            scales.len()
        ));
    }
    let pick = |v: &[f32], c: usize| v[if v.len() == 1 { 0 } else { c }];
    Ok(t.data
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let c = (i / inner.max(1)) % channels.max(1);
            let zp = zero_points
                .get(if zero_points.len() == 1 { 0 } else { c })
                .copied()
                .unwrap_or(0);
            (f64::from(pick(&scales, c)) * (i64::from(b as i8) - zp) as f64) as f32
        })
        .collect())
}

/// IEEE half to single precision (exact: every half is a single).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1F);
    let frac = u32::from(h & 0x3FF);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalize the fraction.
            let shift = f.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | ((f << shift) & 0x3FF) << 13
        }
        (31, f) => sign | 0x7F80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn halves_convert_exactly() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03FF), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7C00), f32::INFINITY);
        assert!(f16_to_f32(0x7E00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }
}
