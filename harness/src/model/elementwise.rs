//! Elementwise activations as standalone operators (RELU, RELU6,
//! RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU, LOGISTIC, TANH): what each
//! computes, its int8 form as the 256-entry table the kernels index
//! (every entry computed with TFLite's own arithmetic for that input
//! byte), and its float form.

use kernels::float::Activation;
use kernels::int16::Requantize;
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
    /// x min(max(x + 3, 0), 6) / 6.
    HardSwish,
    /// max(0, min(1, alpha x + beta)).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// x for x >= 0, else alpha (e^x - 1).
    Elu {
        /// Scale of the negative part (TFLite's ELU: 1).
        alpha: f32,
    },
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
            Elementwise::HardSwish => "HARD_SWISH",
            Elementwise::Elu { .. } => "ELU",
            Elementwise::HardSigmoid { .. } => "HARD_SIGMOID",
        }
    }

    /// The clamp bounds of the RELU kinds.
    fn bounds(self) -> Option<(f32, f32)> {
        match self.float() {
            Activation::Clamp { lo, hi } => Some((lo, hi)),
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

    /// The float kernel's form (LOGISTIC and TANH with glibc's `expf` and
    /// `tanhf`, as LiteRT's reference gets them on Linux).
    pub fn float(self) -> Activation {
        match self {
            Elementwise::LeakyRelu { alpha } => Activation::Leaky { alpha },
            Elementwise::HardSwish => Activation::HardSwish,
            Elementwise::Logistic => Activation::Logistic,
            Elementwise::Tanh => Activation::Tanh,
            Elementwise::Elu { alpha } => Activation::Elu { alpha },
            Elementwise::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha, beta },
            Elementwise::Relu => Activation::Clamp {
                lo: 0.0,
                hi: f32::INFINITY,
            },
            Elementwise::Relu6 => Activation::Clamp { lo: 0.0, hi: 6.0 },
            Elementwise::ReluN1To1 => Activation::Clamp { lo: -1.0, hi: 1.0 },
            Elementwise::Relu0To1 => Activation::Clamp { lo: 0.0, hi: 1.0 },
        }
    }

    /// Why TFLite refuses this int8 operator with these scales, if it does.
    pub fn int8_refusal(self, s_in: f32, s_out: f32) -> Option<&'static str> {
        let scaled_up = quantize_multiplier(f64::from((1.0f32 / 128.0) * s_in / s_out)).shift > 0;
        (self == Elementwise::HardSwish && scaled_up).then_some(
            "an int8 HARD_SWISH needs input_scale / 128 below output_scale (TFLite refuses others)",
        )
    }

    /// A RELU kind's or LEAKY_RELU's quantized form, as TFLite's `ReluX`
    /// and `QuantizeLeakyRelu` compute it for an output type of range
    /// `(type_min, type_max)`: `zp_out + MultiplyByQuantizedMultiplier(x -
    /// zp_in)` with the identity multiplier `s_in / s_out` (LEAKY_RELU's
    /// `alpha s_in / s_out` below the zero point), clamped to the bounds
    /// quantized with `roundf`. `None` for the other activations.
    pub fn piecewise_linear(
        self,
        (s_in, zp_in): (f32, i32),
        (s_out, zp_out): (f32, i32),
        (type_min, type_max): (i32, i32),
    ) -> Option<Requantize> {
        // TFLite computes its multipliers from float quotients.
        let identity = quantize_multiplier(f64::from(s_in / s_out));
        let (below_zero, range) = match self {
            Elementwise::LeakyRelu { alpha } => (
                quantize_multiplier(f64::from(s_in * alpha / s_out)),
                (type_min, type_max),
            ),
            relu => {
                let (lo, hi) = relu.bounds()?;
                let q = |bound: f32| zp_out + (bound / s_out).round() as i32;
                let hi = if hi.is_infinite() {
                    type_max
                } else {
                    q(hi).min(type_max)
                };
                (identity, (q(lo).max(type_min), hi))
            }
        };
        Some(Requantize {
            input_zero_point: zp_in,
            output_zero_point: zp_out,
            multiplier: identity,
            below_zero,
            range,
        })
    }

    /// The int8 table: entry `x as u8` is the output for input `x`.
    pub fn int8_table(self, (s_in, zp_in): (f32, i32), (s_out, zp_out): (f32, i32)) -> Vec<i8> {
        let (q_in, q_out) = ((s_in, zp_in), (s_out, zp_out));
        let mut table = vec![0i8; 256];
        if let Some(linear) = self.piecewise_linear(q_in, q_out, (-128, 127)) {
            let (lo, hi) = linear.range;
            for x in -128i32..=127 {
                let v = x - zp_in;
                let m = if v >= 0 {
                    linear.multiplier
                } else {
                    linear.below_zero
                };
                let y = zp_out + multiply_by_quantized_multiplier(v, m.multiplier, m.shift);
                // TFLite's order (max, then min): with lo > hi the result is hi.
                table[x as u8 as usize] = y.max(lo).min(hi) as i8;
            }
            return table;
        }
        for x in -128i32..=127 {
            let y = match self {
                Elementwise::Logistic => lut(x, q_in, q_out, |v| 1.0 / (1.0 + (-v).exp())),
                Elementwise::Tanh => lut(x, q_in, q_out, f32::tanh),
                Elementwise::HardSigmoid { alpha, beta } => {
                    lut(x, q_in, q_out, |v| (alpha * v + beta).clamp(0.0, 1.0))
                }
                Elementwise::Elu { alpha } => {
                    lut(
                        x,
                        q_in,
                        q_out,
                        |v| {
                            if v < 0.0 {
                                alpha * v.exp_m1()
                            } else {
                                v
                            }
                        },
                    )
                }
                // HARD_SWISH, the one other curve.
                _ => hard_swish(x, &HardSwish::new(s_in, zp_in, s_out, zp_out)),
            };
            table[x as u8 as usize] = y;
        }
        table
    }
}

/// TFLite's QUANTIZE between int8 and uint8 tensors (`reference_ops::Requantize`,
/// multiplier from the double quotient of the scales) as the table the
/// kernels index by the input byte. A uint8 side's zero point is its own
/// (0..=255); the arithmetic runs on int8 shifted by 128, which changes no
/// difference `q - zero_point` and maps uint8's clamp onto int8's.
pub fn requantize_table(
    (s_in, zp_in): (f32, i32),
    (s_out, zp_out): (f32, i32),
    input_uint8: bool,
    output_uint8: bool,
) -> Vec<i8> {
    let shift = |uint8: bool| if uint8 { 128 } else { 0 };
    let (zp_in, zp_out) = (zp_in - shift(input_uint8), zp_out - shift(output_uint8));
    let m = quantize_multiplier(f64::from(s_in) / f64::from(s_out));
    let flip = |uint8: bool| if uint8 { 0x80 } else { 0 };
    let mut table = vec![0i8; 256];
    for x in -128i32..=127 {
        let y = (zp_out + multiply_by_quantized_multiplier(x - zp_in, m.multiplier, m.shift))
            .clamp(-128, 127);
        table[(x as u8 ^ flip(input_uint8)) as usize] = (y as u8 ^ flip(output_uint8)) as i8;
    }
    table
}

/// TFLite's int8 HARD_SWISH parameters (`HardSwishPrepare`): the output
/// and "relu-ish" multipliers, quantized then cut to 16 bits.
struct HardSwish {
    input_zero_point: i32,
    output_zero_point: i32,
    output_multiplier: i16,
    output_exponent: i32,
    reluish_multiplier: i16,
    reluish_exponent: i32,
}

impl HardSwish {
    fn new(s_in: f32, zp_in: i32, s_out: f32, zp_out: i32) -> Self {
        let hires_input_scale = (1.0f32 / 128.0) * s_in;
        let reluish_scale = 3.0f32 / 32768.0;
        let output = quantize_multiplier(f64::from(hires_input_scale / s_out));
        let reluish = quantize_multiplier(f64::from(hires_input_scale / reluish_scale));
        Self {
            input_zero_point: zp_in,
            output_zero_point: zp_out,
            output_multiplier: down_scale_to_i16(output.multiplier),
            output_exponent: output.shift,
            reluish_multiplier: down_scale_to_i16(reluish.multiplier),
            reluish_exponent: reluish.shift,
        }
    }
}

/// TFLite's `DownScaleInt32ToInt16Multiplier`: the top 16 bits, rounded.
fn down_scale_to_i16(m: i32) -> i16 {
    if m >= i32::MAX - (1 << 15) {
        i16::MAX
    } else {
        ((m + (1 << 15)) >> 16) as i16
    }
}

/// gemmlowp's 16-bit `SaturatingRoundingDoublingHighMul`.
fn rounding_doubling_high_mul_i16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = i32::from(a) * i32::from(b);
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite's 16-bit `SaturatingDoublingHighMul` (truncating).
fn doubling_high_mul_i16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    ((i32::from(a) * i32::from(b)) / (1 << 15)) as i16
}

/// TFLite's `SaturatingLeftShift` on 16 bits.
fn saturating_left_shift_i16(v: i16, amount: i32) -> i16 {
    (i64::from(v) * (1i64 << amount)).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// gemmlowp's `RoundingDivideByPOT` on 16 bits.
fn rounding_divide_by_pot_i16(x: i16, exponent: i32) -> i16 {
    let mask = ((1i32 << exponent) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i16::from(x < 0);
    (x >> exponent) + i16::from(remainder > threshold)
}

/// TFLite's reference int8 HARD_SWISH for one input value.
fn hard_swish(x: i32, p: &HardSwish) -> i8 {
    let input = (x - p.input_zero_point) as i16;
    let hires = input.wrapping_mul(1 << 7);
    let preshift_output = rounding_doubling_high_mul_i16(hires, p.output_multiplier);
    let mut reluish = hires;
    if p.reluish_exponent > 0 {
        reluish = saturating_left_shift_i16(reluish, p.reluish_exponent - 1);
    }
    reluish = rounding_doubling_high_mul_i16(reluish, p.reluish_multiplier);
    if p.reluish_exponent > 0 {
        reluish = saturating_left_shift_i16(reluish, 1);
    }
    if p.reluish_exponent < 0 {
        reluish = rounding_divide_by_pot_i16(reluish, -p.reluish_exponent);
    }
    let reluish = ((i32::from(reluish) + (1 << 15)) >> 1) as i16;
    let preshift = doubling_high_mul_i16(reluish, preshift_output);
    let out =
        i32::from(rounding_divide_by_pot_i16(preshift, -p.output_exponent)) + p.output_zero_point;
    out.clamp(-128, 127) as i8
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
