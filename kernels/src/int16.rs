//! TFLite's 16x8 scheme: int16 activations (symmetric, zero point 0) with
//! int8 weights and int64 biases, bit-exact with LiteRT's reference kernels.
//!
//! These are portable reference loops (the scheme exists for accuracy, not
//! speed: TFLM has no optimized int16 kernels either). Convolutions sum in
//! int64 and rescale with TFLite's 64-bit `MultiplyByQuantizedMultiplier`;
//! LiteRT's dense layer rescales in double precision instead
//! ([`Rescale::Double`]), and so does this one. The `op-int16` family:
//! a firmware links it only when its model has int16 tensors.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::ConvGeometry;
use crate::int8::{AddParams, Clamp, DenseGeometry, PoolRounding};
use crate::quant::{round_half_away, ChannelRequant, Requant, Rounding};
use serde::{Deserialize, Serialize};

/// An int64 or f64 constant as two little-endian `u32` words: a blob is
/// only 4-byte aligned, so 8-byte values are not read in place.
pub type Wide = [u32; 2];

/// The `Wide` words of `v`'s bits.
pub fn wide(bits: u64) -> Wide {
    [bits as u32, (bits >> 32) as u32]
}

fn bits(w: Wide) -> u64 {
    u64::from(w[0]) | (u64::from(w[1]) << 32)
}

/// The full int16 range.
pub const FULL: Clamp = Clamp {
    min: i16::MIN as i32,
    max: i16::MAX as i32,
};

/// Checks an activation range lies inside int16.
pub fn check_clamp(c: Clamp) -> Result<(), KernelError> {
    ensure(
        FULL.min <= c.min && c.min <= c.max && c.max <= FULL.max,
        "activation range: must be inside int16",
    )
}

/// How int64 accumulators become int16 outputs, per output channel (one
/// entry for the whole tensor is repeated).
#[derive(Clone, Copy, Debug)]
pub enum Rescale<'a> {
    /// TFLite's `MultiplyByQuantizedMultiplier(int64, ...)` (convolutions).
    Multiplier(&'a [Requant]),
    /// `round(acc * scale)` in double precision, halves away from zero
    /// (LiteRT's reference `FullyConnected`, with `scale = s_in * s_w / s_out`),
    /// each f64 as [`Wide`] words.
    Double(&'a [Wide]),
}

impl Rescale<'_> {
    fn len(&self) -> usize {
        match self {
            Rescale::Multiplier(r) => r.len(),
            Rescale::Double(s) => s.len(),
        }
    }

    fn check(&self, channels: usize) -> Result<(), KernelError> {
        let n = self.len();
        ensure(
            n == channels || n == 1,
            "int16 output stage: one scale per output channel or one for all",
        )?;
        match self {
            Rescale::Multiplier(r) => ensure(
                r.iter()
                    .all(|r| r.multiplier >= 0 && (-31..8).contains(&r.shift)),
                "int16 output stage: multiplier shifts must be in -31..8",
            ),
            Rescale::Double(s) => ensure(
                s.iter().all(|&s| f64::from_bits(bits(s)).is_finite()),
                "int16 output stage: scales must be finite",
            ),
        }
    }

    /// The output value of accumulator `acc` of channel `c`, before clamping.
    #[inline]
    fn apply(&self, acc: i64, c: usize) -> i64 {
        match self {
            Rescale::Multiplier(r) => {
                let r = r[if r.len() == 1 { 0 } else { c }];
                multiply_by_quantized_multiplier_64(acc, r.multiplier, r.shift)
            }
            Rescale::Double(s) => {
                let s = f64::from_bits(bits(s[if s.len() == 1 { 0 } else { c }]));
                // An `as` cast saturates, as the conversion to int32 of any
                // value TFLite's clamp would keep.
                round_half_away(acc as f64 * s) as i32 as i64
            }
        }
    }
}

/// TFLite's `MultiplyByQuantizedMultiplier` for an int64 input: the
/// multiplier reduced to 16 bits, one rounding shift.
pub fn multiply_by_quantized_multiplier_64(x: i64, multiplier: i32, shift: i32) -> i64 {
    let reduced = if multiplier < 0x7FFF_0000 {
        ((multiplier + (1 << 15)) >> 16) as i64
    } else {
        0x7FFF
    };
    let total_shift = 15 - shift;
    let round = 1i64 << (total_shift - 1);
    x.wrapping_mul(reduced).wrapping_add(round) >> total_shift
}

/// A convolution's or dense layer's int16 output stage.
#[derive(Clone, Copy, Debug)]
pub struct Stage16<'a> {
    /// int64 bias per output channel, as [`Wide`] words.
    pub bias: Option<&'a [Wide]>,
    /// The rescaling.
    pub rescale: Rescale<'a>,
    /// The fused activation, in output units.
    pub clamp: Clamp,
}

impl Stage16<'_> {
    fn check(&self, channels: usize) -> Result<(), KernelError> {
        check_clamp(self.clamp)?;
        self.rescale.check(channels)?;
        if let Some(b) = self.bias {
            expect_len("bias", b.len(), channels)?;
        }
        Ok(())
    }

    #[inline]
    fn finish(&self, acc: i64, c: usize) -> i16 {
        let acc = acc.wrapping_add(self.bias.map_or(0, |b| bits(b[c]) as i64));
        self.rescale
            .apply(acc, c)
            .clamp(self.clamp.min as i64, self.clamp.max as i64) as i16
    }
}

/// Checks a convolution's arguments by their lengths.
pub fn check_conv2d(
    g: &ConvGeometry,
    depth_multiplier: Option<u32>,
    stage: &Stage16,
    input: usize,
    filter: usize,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let taps_in = match depth_multiplier {
        Some(m) => {
            ensure(
                m >= 1 && ic * m as usize == oc,
                "depthwise: output channels must be input channels x multiplier",
            )?;
            1
        }
        None => ic,
    };
    let w = &g.window;
    expect_len(
        "filter",
        filter,
        oc * (w.kernel_h * w.kernel_w) as usize * taps_in,
    )?;
    stage.check(oc)
}

/// CONV_2D (`depth_multiplier` `None`, OHWI filter) or DEPTHWISE_CONV_2D
/// (`[1, KH, KW, C * m]` filter) with int16 activations.
pub fn conv2d(
    g: &ConvGeometry,
    depth_multiplier: Option<u32>,
    stage: &Stage16,
    input: &[i16],
    filter: &[i8],
    output: &mut [i16],
) -> Result<(), KernelError> {
    check_conv2d(
        g,
        depth_multiplier,
        stage,
        input.len(),
        filter.len(),
        output.len(),
    )?;
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let w = &g.window;
    let (kh, kw) = (w.kernel_h as usize, w.kernel_w as usize);
    let (ih, iw) = (g.input.h as i32, g.input.w as i32);
    let mut at = 0;
    for b in 0..g.input.n as usize {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for o in 0..oc {
                    let mut acc = 0i64;
                    for ky in 0..kh {
                        let y = w.in_y(oy, ky as u32);
                        for kx in 0..kw {
                            let x = w.in_x(ox, kx as u32);
                            if y < 0 || y >= ih || x < 0 || x >= iw {
                                continue;
                            }
                            let pixel =
                                ((b * ih as usize + y as usize) * iw as usize + x as usize) * ic;
                            acc += match depth_multiplier {
                                Some(m) => {
                                    let tap = (ky * kw + kx) * oc + o;
                                    let c = o / m as usize;
                                    i64::from(filter[tap]) * i64::from(input[pixel + c])
                                }
                                None => {
                                    let taps = &filter[((o * kh + ky) * kw + kx) * ic..][..ic];
                                    taps.iter()
                                        .zip(&input[pixel..pixel + ic])
                                        .map(|(&f, &v)| i64::from(f) * i64::from(v))
                                        .sum::<i64>()
                                }
                            };
                        }
                    }
                    output[at] = stage.finish(acc, o);
                    at += 1;
                }
            }
        }
    }
    Ok(())
}

/// Checks a dense layer's arguments by their lengths.
pub fn check_fully_connected(
    g: &DenseGeometry,
    stage: &Stage16,
    input: usize,
    filter: usize,
    output: usize,
) -> Result<(), KernelError> {
    g.check()?;
    let (n, k, m) = (
        g.batch as usize,
        g.in_features as usize,
        g.out_features as usize,
    );
    expect_len("input", input, n * k)?;
    expect_len("filter", filter, m * k)?;
    expect_len("output", output, n * m)?;
    stage.check(m)
}

/// FULLY_CONNECTED with int16 activations: `[batch, in]` x `[out, in]`.
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &Stage16,
    input: &[i16],
    filter: &[i8],
    output: &mut [i16],
) -> Result<(), KernelError> {
    check_fully_connected(g, stage, input.len(), filter.len(), output.len())?;
    let (k, m) = (g.in_features as usize, g.out_features as usize);
    for (row, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(m)) {
        for (o, (y, weights)) in out.iter_mut().zip(filter.chunks_exact(k)).enumerate() {
            let acc: i64 = weights
                .iter()
                .zip(row)
                .map(|(&f, &v)| i64::from(f) * i64::from(v))
                .sum();
            *y = stage.finish(acc, o);
        }
    }
    Ok(())
}

/// Checks a pool's arguments by their lengths.
pub fn check_pool(
    g: &ConvGeometry,
    clamp: Clamp,
    input: usize,
    output: usize,
) -> Result<(), KernelError> {
    crate::int8::check_pool(g, Clamp::FULL, input, output)?;
    check_clamp(clamp)
}

/// AVERAGE_POOL_2D (`max` false) or MAX_POOL_2D over the valid taps, int16.
pub fn pool(
    g: &ConvGeometry,
    max: bool,
    clamp: Clamp,
    input: &[i16],
    output: &mut [i16],
) -> Result<(), KernelError> {
    check_pool(g, clamp, input.len(), output.len())?;
    let c = g.input.c as usize;
    let iw = g.input.w as usize;
    crate::int8::for_each_window(g, |pixel, base, ys, xs| {
        let count = (ys.len() * xs.len()) as i32;
        for ch in 0..c {
            let taps = ys.clone().flat_map(|ky| {
                xs.clone()
                    .map(move |kx| base.wrapping_add(ky as usize * iw + kx as usize) * c + ch)
            });
            let v = if max {
                taps.map(|at| i32::from(input[at]))
                    .max()
                    .unwrap_or(FULL.min)
            } else {
                let sum = taps.map(|at| i32::from(input[at])).sum();
                PoolRounding::AwayFromZero.mean(sum, count)
            };
            output[pixel * c + ch] = v.clamp(clamp.min, clamp.max) as i16;
        }
    });
    Ok(())
}

/// ADD's parameters for int16 (TFLite's general int16 scaling): 15 bits
/// of headroom instead of int8's 20, zero points 0.
pub fn add_params(input1: f32, input2: f32, output: f32, act: (i32, i32)) -> AddParams {
    let twice_max = 2.0 * f64::from(input1.max(input2));
    let left_shift = 15;
    AddParams {
        left_shift,
        input1: crate::quant::quantize_multiplier(f64::from(input1) / twice_max),
        input2: crate::quant::quantize_multiplier(f64::from(input2) / twice_max),
        output: crate::quant::quantize_multiplier(
            twice_max / ((1i64 << left_shift) as f64 * f64::from(output)),
        ),
        ..AddParams::new((input1, 0), (input2, 0), (output, 0), act)
    }
}

/// ADD or SUB (`subtract`) of int16 `x` and `y`, each index mapped by
/// `each` (broadcasting), with TFLite's rescaling.
pub fn add(
    p: &AddParams,
    subtract: bool,
    views: (
        crate::geometry::Shape,
        crate::geometry::Shape,
        crate::geometry::Shape,
    ),
    x: &[i16],
    y: &[i16],
    out: &mut [i16],
) -> Result<(), KernelError> {
    let (a, b, o) = views;
    crate::broadcast::check(a, b, o, [x.len(), y.len(), out.len()])?;
    let below_one = |r: &Requant| r.multiplier >= 0 && (-31..=0).contains(&r.shift);
    ensure(
        p.input1_offset == 0 && p.input2_offset == 0 && p.output_offset == 0,
        "int16 add: zero points must be 0",
    )?;
    ensure(
        p.left_shift == 15 && below_one(&p.input1) && below_one(&p.input2) && p.output.is_valid(),
        "int16 add: parameters out of range",
    )?;
    check_clamp(Clamp {
        min: p.act_min,
        max: p.act_max,
    })?;
    let [r1, r2, ro] =
        [p.input1, p.input2, p.output].map(|r| ChannelRequant::new(r, Rounding::Double));
    crate::broadcast::each(a, b, o, |i, j, k| {
        let v1 = r1.apply_double(i32::from(x[j]) << 15);
        let v2 = r2.apply_double(i32::from(y[k]) << 15);
        let raw = if subtract {
            v1.wrapping_sub(v2)
        } else {
            v1.wrapping_add(v2)
        };
        out[i] = ro.apply_double(raw).max(p.act_min).min(p.act_max) as i16;
    });
    Ok(())
}

/// A requantization between integer tensors (TFLite's QUANTIZE from int8
/// or int16 to int8 or int16): `MultiplyByQuantizedMultiplier(q - zp_in)
/// + zp_out`, clamped to the output type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requantize {
    /// The input's zero point.
    pub input_zero_point: i32,
    /// The output's zero point.
    pub output_zero_point: i32,
    /// `s_in / s_out`.
    pub multiplier: Requant,
}

impl Requantize {
    /// The parameters TFLite's QUANTIZE prepare derives.
    pub fn new(input: (f32, i32), output: (f32, i32)) -> Self {
        Requantize {
            input_zero_point: input.1,
            output_zero_point: output.1,
            multiplier: crate::quant::quantize_multiplier(f64::from(input.0) / f64::from(output.0)),
        }
    }

    /// Requantizes `x` into `out`, each an int8 or int16 slice.
    pub fn run<I: Copy + Into<i32>, O: TryFrom<i32>>(
        &self,
        (min, max): (i32, i32),
        x: &[I],
        out: &mut [O],
    ) -> Result<(), KernelError> {
        expect_len("output", out.len(), x.len())?;
        ensure(
            self.multiplier.is_valid(),
            "requantize: shift must be in -31..=31",
        )?;
        let r = ChannelRequant::new(self.multiplier, Rounding::Double);
        for (y, &v) in out.iter_mut().zip(x) {
            let q = r
                .apply_double(v.into() - self.input_zero_point)
                .saturating_add(self.output_zero_point)
                .clamp(min, max);
            // In range by the clamp: the conversion cannot fail.
            *y = O::try_from(q).map_err(|_| KernelError::Param {
                what: "requantize: output range wider than its type",
            })?;
        }
        Ok(())
    }
}

/// QUANTIZE float32 to int16: `clamp(round(x / scale) + zero_point)`.
pub fn quantize(
    scale: f32,
    zero_point: i32,
    input: &[f32],
    output: &mut [i16],
) -> Result<(), KernelError> {
    expect_len("output", output.len(), input.len())?;
    ensure(
        scale > 0.0 && (FULL.min..=FULL.max).contains(&zero_point),
        "quantize: scale must be positive and the zero point int16",
    )?;
    for (y, &x) in output.iter_mut().zip(input) {
        let q = crate::float::round_to_i32(x / scale);
        *y = q.saturating_add(zero_point).clamp(FULL.min, FULL.max) as i16;
    }
    Ok(())
}

/// DEQUANTIZE int16 to float32: `scale * (q - zero_point)`.
pub fn dequantize(
    scale: f32,
    zero_point: i32,
    input: &[i16],
    output: &mut [f32],
) -> Result<(), KernelError> {
    expect_len("output", output.len(), input.len())?;
    for (y, &q) in output.iter_mut().zip(input) {
        *y = scale * (i32::from(q) - zero_point) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_64_bit_multiplier_rounds_as_tflite_does() {
        // 0.75 as a Q31 multiplier (shift 0): 1000 * 0.75 = 750.
        let m = (0.75 * (1u64 << 31) as f64) as i32;
        assert_eq!(multiply_by_quantized_multiplier_64(1000, m, 0), 750);
        // Halves round up: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1.
        let half = 1 << 30;
        assert_eq!(multiply_by_quantized_multiplier_64(3, half, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier_64(-3, half, 0), -1);
        // A multiplier at the top saturates to 0x7FFF before the shift.
        assert_eq!(
            multiply_by_quantized_multiplier_64(1 << 15, i32::MAX, 0),
            0x7FFF
        );
    }

    #[test]
    fn the_double_rescale_rounds_halves_away_from_zero() {
        let s = [wide(0.5f64.to_bits())];
        let r = Rescale::Double(&s);
        assert_eq!((r.apply(3, 0), r.apply(-3, 0), r.apply(4, 0)), (2, -2, 2));
    }

    #[test]
    fn requantize_between_int8_and_int16_clamps_to_the_output_type() {
        let r = Requantize::new((1.0, 0), (1.0 / 256.0, 0));
        let mut out = [0i16; 3];
        r.run((FULL.min, FULL.max), &[1i8, -128, 127], &mut out)
            .unwrap();
        assert_eq!(out, [256, -32768, 32512]);
        let back = Requantize::new((1.0 / 256.0, 0), (1.0, 3));
        let mut out8 = [0i8; 3];
        back.run((-128, 127), &[256i16, -32768, 32767], &mut out8)
            .unwrap();
        assert_eq!(out8, [4, -125, 127]);
    }
}
