//! Elementwise activations as standalone operators (RELU, RELU6,
//! RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU, LOGISTIC, TANH): what each
//! computes, its int8 form as the 256-entry table the kernels index
//! (every entry computed with TFLite's own arithmetic for that input
//! byte), and its float form.

use kernels::float::Activation;
use kernels::quant::{multiply_by_quantized_multiplier, quantize_multiplier};

/// An elementwise activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elementwise {
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// min(max(x, -1), 1).
    ReluN1To1,
    /// min(max(x, 0), 1).
    Relu0To1,
    /// x for x > 0, else alpha x.
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
    /// 1 / (1 + e^-x).
    Logistic,
    /// tanh x.
    Tanh,
}

impl Elementwise {
    /// The operator's TFLite name.
    pub fn name(self) -> &'static str {
        match self {
            Elementwise::Relu => "RELU",
            Elementwise::Relu6 => "RELU6",
            Elementwise::ReluN1To1 => "RELU_N1_TO_1",
            Elementwise::Relu0To1 => "RELU_0_TO_1",
            Elementwise::LeakyRelu { .. } => "LEAKY_RELU",
            Elementwise::Logistic => "LOGISTIC",
            Elementwise::Tanh => "TANH",
        }
    }

    /// The clamp bounds of the RELU kinds.
    fn bounds(self) -> Option<(f32, f32)> {
        match self {
            Elementwise::Relu => Some((0.0, f32::INFINITY)),
            Elementwise::Relu6 => Some((0.0, 6.0)),
            Elementwise::ReluN1To1 => Some((-1.0, 1.0)),
            Elementwise::Relu0To1 => Some((0.0, 1.0)),
            _ => None,
        }
    }

    /// The int8 output quantization TFLite fixes, if it fixes one
    /// (LOGISTIC: 1/256 and -128; TANH: 1/128 and 0).
    pub fn fixed_output_quant(self) -> Option<(f32, i32)> {
        match self {
            Elementwise::Logistic => Some((1.0 / 256.0, -128)),
            Elementwise::Tanh => Some((1.0 / 128.0, 0)),
            _ => None,
        }
    }

    /// The float kernel's form, or `None` for LOGISTIC and TANH, whose float
    /// results would depend on each target's `exp` and `tanh`.
    pub fn float(self) -> Option<Activation> {
        match self {
            Elementwise::LeakyRelu { alpha } => Some(Activation::Leaky { alpha }),
            other => other.bounds().map(|(lo, hi)| Activation::Clamp { lo, hi }),
        }
    }

    /// The int8 table: entry `x as u8` is the output for input `x`.
    pub fn int8_table(self, (s_in, zp_in): (f32, i32), (s_out, zp_out): (f32, i32)) -> Vec<i8> {
        let out = |v: i32| v.clamp(-128, 127) as i8;
        let mut table = vec![0i8; 256];
        // TFLite computes its multipliers from float quotients.
        let identity = quantize_multiplier(f64::from(s_in / s_out));
        for x in -128i32..=127 {
            let y = match self {
                Elementwise::LeakyRelu { alpha } => {
                    let alpha = quantize_multiplier(f64::from(s_in * alpha / s_out));
                    let v = x - zp_in;
                    let m = if v >= 0 { identity } else { alpha };
                    out(zp_out + multiply_by_quantized_multiplier(v, m.multiplier, m.shift))
                }
                Elementwise::Logistic => lut(x, (s_in, zp_in), (s_out, zp_out), |v| {
                    1.0 / (1.0 + (-v).exp())
                }),
                Elementwise::Tanh => lut(x, (s_in, zp_in), (s_out, zp_out), f32::tanh),
                relu => {
                    let (lo, hi) = relu.bounds().expect("the RELU kinds");
                    let q = |bound: f32| zp_out + (bound / s_out).round() as i32;
                    let lo = q(lo).max(-128);
                    let hi = if hi.is_infinite() {
                        127
                    } else {
                        q(hi).min(127)
                    };
                    let v = zp_out
                        + multiply_by_quantized_multiplier(
                            x - zp_in,
                            identity.multiplier,
                            identity.shift,
                        );
                    v.max(lo).min(hi) as i8
                }
            };
            table[x as u8 as usize] = y;
        }
        table
    }
}

/// TFLite's `LUTPopulate`: dequantize, transform in float, requantize with
/// rounding half away from zero, clamp.
fn lut(
    x: i32,
    (s_in, zp_in): (f32, i32),
    (s_out, zp_out): (f32, i32),
    f: impl Fn(f32) -> f32,
) -> i8 {
    let dequantized = s_in * (x - zp_in) as f32;
    let rescaled = (f(dequantized) * (1.0 / s_out)).round();
    ((rescaled + zp_out as f32) as i32).clamp(-128, 127) as i8
}
