//! TFLite's 16x8 scheme: int16 activations (symmetric, zero point 0) with
//! int8 weights and int64 biases, bit-exact with LiteRT's reference kernels.
//!
//! These are portable loops: products summed in int32 where a sum has at
//! most 511 terms (exact), in int32 runs joining an int64 sum otherwise; a
//! convolution's receptive field gathered once per pixel into one run
//! (zeros in the padding) or, for deep windows, read as runs of taps
//! contiguous in the input and the filter; each channel's bias and 16-bit
//! multiplier worked out once per layer. Convolutions sum in
//! int64 and rescale with TFLite's 64-bit `MultiplyByQuantizedMultiplier`;
//! LiteRT's dense layer rescales in double precision instead
//! ([`Rescale::Double`]), and so does this one. The `op-int16` family:
//! a firmware links it only when its model has int16 tensors.

use crate::broadcast::{Binary, Int8Binary};
use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::{ConvGeometry, Shape};
use crate::int8::{AddParams, Clamp, DenseGeometry, PoolRounding};
use crate::quant::{
    multiply_by_quantized_multiplier, round_half_away, ChannelRequant, Requant, Rounding,
};
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
    let (reduced, total_shift) = reduced_multiplier(multiplier, shift);
    x.wrapping_mul(reduced).wrapping_add(1 << (total_shift - 1)) >> total_shift
}

/// The 16-bit multiplier and the right shift (in `1..=46` for a shift in
/// `-31..8`) of [`multiply_by_quantized_multiplier_64`].
#[inline(always)]
fn reduced_multiplier(multiplier: i32, shift: i32) -> (i64, u32) {
    let reduced = if multiplier < 0x7FFF_0000 {
        ((multiplier + (1 << 15)) >> 16) as i64
    } else {
        0x7FFF
    };
    (reduced, (15 - shift) as u32)
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

/// The output stage of a run of at most [`CHUNK`] channels with each
/// channel's constants worked out once: the bias, and for TFLite's 64-bit
/// `MultiplyByQuantizedMultiplier` the reduced multiplier and its shift,
/// so that a layer does not redo them for every pixel.
struct ChunkStage<'s, 'a> {
    stage: &'s Stage16<'a>,
    first: usize,
    /// Each channel's `(bias, reduced multiplier, total shift)`, the bias
    /// multiplied and the rounding added in: `(acc + bias) * m + round`
    /// is `acc * m + (bias * m + round)` in wrapping int64 arithmetic, so
    /// the output needs one multiply and one add (for
    /// [`Rescale::Double`] the plain bias, and no multiplier).
    channels: [(i64, i32, u32); CHUNK],
}

impl<'s, 'a> ChunkStage<'s, 'a> {
    fn new(stage: &'s Stage16<'a>, first: usize, n: usize) -> Self {
        let mut channels = [(0, 0, 0); CHUNK];
        for (j, channel) in channels[..n].iter_mut().enumerate() {
            let c = first + j;
            let bias = stage.bias.map_or(0, |b| bits(b[c]) as i64);
            *channel = match stage.rescale {
                Rescale::Multiplier(r) => {
                    let r = r[if r.len() == 1 { 0 } else { c }];
                    let (reduced, shift) = reduced_multiplier(r.multiplier, r.shift);
                    let offset = bias.wrapping_mul(reduced).wrapping_add(1 << (shift - 1));
                    (offset, reduced as i32, shift)
                }
                Rescale::Double(_) => (bias, 0, 0),
            };
        }
        ChunkStage {
            stage,
            first,
            channels,
        }
    }

    /// The output of channel `first + j` for accumulator `acc`.
    #[inline(always)]
    fn finish<A: Accumulator>(&self, acc: A, j: usize) -> i16 {
        let (offset, reduced, shift) = self.channels[j];
        let v = match self.stage.rescale {
            Rescale::Multiplier(_) => acc.scaled(reduced).wrapping_add(offset) >> shift,
            Rescale::Double(_) => {
                let acc: i64 = acc.into();
                self.stage
                    .rescale
                    .apply(acc.wrapping_add(offset), self.first + j)
            }
        };
        let clamp = self.stage.clamp;
        v.clamp(clamp.min as i64, clamp.max as i64) as i16
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

/// Products summed in int32 before they join an int64 sum: an `i16 * i8`
/// product is at most 2^22 in magnitude, so 511 of them fit in an int32
/// exactly, and an integer sum is the same in any grouping.
const EXACT_I32_TERMS: usize = 511;

/// An accumulator of `i16 * i8` products: int32 where a sum has at most
/// [`EXACT_I32_TERMS`] terms, int64 otherwise.
trait Accumulator: Copy + Default + core::ops::AddAssign + Into<i64> {
    /// `sum(x[i] * w[i])`, exact (within the term limit for int32).
    fn dot(x: &[i16], w: &[i8]) -> Self;
    /// `x * w`.
    fn product(x: i16, w: i8) -> Self;
    /// `self * m` in wrapping int64 (one 32 x 32 -> 64-bit multiply for int32).
    fn scaled(self, m: i32) -> i64;
}

impl Accumulator for i32 {
    #[inline(always)]
    fn dot(x: &[i16], w: &[i8]) -> i32 {
        x.iter()
            .zip(w)
            .map(|(&x, &w)| i32::from(x) * i32::from(w))
            .sum()
    }
    #[inline(always)]
    fn product(x: i16, w: i8) -> i32 {
        i32::from(x) * i32::from(w)
    }
    #[inline(always)]
    fn scaled(self, m: i32) -> i64 {
        i64::from(self) * i64::from(m)
    }
}

impl Accumulator for i64 {
    /// Runs of [`EXACT_I32_TERMS`] summed in int32, then in int64.
    #[inline(always)]
    fn dot(x: &[i16], w: &[i8]) -> i64 {
        x.chunks(EXACT_I32_TERMS)
            .zip(w.chunks(EXACT_I32_TERMS))
            .map(|(x, w)| i64::from(i32::dot(x, w)))
            .sum()
    }
    #[inline(always)]
    fn product(x: i16, w: i8) -> i64 {
        i64::from(i32::product(x, w))
    }
    #[inline(always)]
    fn scaled(self, m: i32) -> i64 {
        self.wrapping_mul(i64::from(m))
    }
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
    match depth_multiplier {
        None if g.depth() <= EXACT_I32_TERMS => gathered_conv(g, stage, input, filter, output),
        None => deep_conv(g, stage, input, filter, output),
        Some(m) if g.window.taps() <= EXACT_I32_TERMS => {
            depthwise::<i32>(g, m as usize, stage, input, filter, output)
        }
        Some(m) => depthwise::<i64>(g, m as usize, stage, input, filter, output),
    }
    Ok(())
}

/// Output channels whose sums are kept together (on the stack).
const CHUNK: usize = 32;

/// CONV_2D of more than [`EXACT_I32_TERMS`] terms per output: each output
/// the int64 sum over its window's runs of taps, each run one contiguous
/// dot product in the input and the OHWI filter; the runs of a pixel are
/// found once for a chunk of output channels.
fn deep_conv(g: &ConvGeometry, stage: &Stage16, input: &[i16], filter: &[i8], output: &mut [i16]) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    for first in (0..oc).step_by(CHUNK) {
        let n = (oc - first).min(CHUNK);
        let filters = &filter[first * depth..][..n * depth];
        let chunk = ChunkStage::new(stage, first, n);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let mut acc = [0i64; CHUNK];
            g.for_each_tap_run(b, oy, ox, |tap, at, len| {
                let x = &input[at * ic..][..len * ic];
                for (sum, f) in acc.iter_mut().zip(filters.chunks_exact(depth)) {
                    *sum += i64::dot(x, &f[tap * ic..][..len * ic]);
                }
            });
            let out = &mut output[pixel * oc + first..][..n];
            for (j, (y, &sum)) in out.iter_mut().zip(&acc).enumerate() {
                *y = chunk.finish(sum, j);
            }
        });
    }
}

/// CONV_2D of at most [`EXACT_I32_TERMS`] terms per output: each pixel's
/// receptive field gathered once into one contiguous run (zeros for taps
/// in the padding, which add nothing to an integer sum), unless it is one
/// already (a 1x1 window, or full input rows), then every filter one int32
/// dot product over it.
fn gathered_conv(
    g: &ConvGeometry,
    stage: &Stage16,
    input: &[i16],
    filter: &[i8],
    output: &mut [i16],
) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    let mut field = [0i16; EXACT_I32_TERMS];
    let one_row = g.window.kernel_h == 1;
    for first in (0..oc).step_by(CHUNK) {
        let n = (oc - first).min(CHUNK);
        let filters = &filter[first * depth..][..n * depth];
        let chunk = ChunkStage::new(stage, first, n);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            // Only a window of one kernel row can be one run already.
            let mut whole = None;
            let mut found = 0;
            if one_row {
                g.for_each_tap_run(b, oy, ox, |tap, at, len| {
                    whole = (tap == 0 && len * ic == depth).then_some(at * ic);
                    found += len * ic;
                });
            }
            let x = match whole {
                Some(at) if found == depth => &input[at..][..depth],
                _ => {
                    let field = &mut field[..depth];
                    field.fill(0);
                    g.for_each_tap_run(b, oy, ox, |tap, at, len| {
                        field[tap * ic..][..len * ic]
                            .copy_from_slice(&input[at * ic..][..len * ic]);
                    });
                    &field[..]
                }
            };
            let out = &mut output[pixel * oc + first..][..n];
            for (j, (y, f)) in out.iter_mut().zip(filters.chunks_exact(depth)).enumerate() {
                *y = chunk.finish(i32::dot(x, f), j);
            }
        });
    }
}

/// DEPTHWISE_CONV_2D: per pixel, chunks of channels summed tap by tap in
/// `A` (int32 when the window has at most [`EXACT_I32_TERMS`] taps).
fn depthwise<A: Accumulator>(
    g: &ConvGeometry,
    m: usize,
    stage: &Stage16,
    input: &[i16],
    filter: &[i8],
    output: &mut [i16],
) {
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    for first in (0..oc).step_by(CHUNK) {
        let n = (oc - first).min(CHUNK);
        let chunk = ChunkStage::new(stage, first, n);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let mut acc = [A::default(); CHUNK];
            g.for_each_tap(b, oy, ox, |tap, at| {
                let w = &filter[tap * oc + first..][..n];
                if m == 1 {
                    let x = &input[at * ic + first..][..n];
                    for ((sum, &w), &x) in acc.iter_mut().zip(w).zip(x) {
                        *sum += A::product(x, w);
                    }
                } else {
                    let x = &input[at * ic..][..ic];
                    for (j, (sum, &w)) in acc.iter_mut().zip(w).enumerate() {
                        *sum += A::product(x[(first + j) / m], w);
                    }
                }
            });
            let out = &mut output[pixel * oc + first..][..n];
            for (j, (y, &sum)) in out.iter_mut().zip(&acc).enumerate() {
                *y = chunk.finish(sum, j);
            }
        });
    }
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
            *y = stage.finish(i64::dot(row, weights), o);
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
    AddParams::with_left_shift(15, (input1, 0), (input2, 0), (output, 0), act)
}

/// ADD, SUB or MUL of int16 `x` and `y` (viewed as `views.0` and
/// `views.1`, broadcast to `views.2`) with TFLite's rescaling: ADD and SUB
/// take [`add_params`], MUL its int8 parameters with zero points 0.
pub fn binary(
    op: Binary,
    p: &Int8Binary,
    views: (Shape, Shape, Shape),
    x: &[i16],
    y: &[i16],
    out: &mut [i16],
) -> Result<(), KernelError> {
    let (a, b, o) = views;
    crate::broadcast::check(a, b, o, [x.len(), y.len(), out.len()])?;
    match (op, p) {
        (Binary::Add | Binary::Sub, Int8Binary::Add(p)) => {
            add(p, op == Binary::Sub, views, x, y, out)
        }
        (Binary::Mul, Int8Binary::Mul(p)) => {
            ensure(
                p.input1_offset == 0 && p.input2_offset == 0 && p.output_offset == 0,
                "int16 mul: zero points must be 0",
            )?;
            ensure(
                p.output.is_valid(),
                "int16 mul: output shift must be in -31..=31",
            )?;
            check_clamp(Clamp {
                min: p.act_min,
                max: p.act_max,
            })?;
            elementwise(views, x, y, out, |x, y| {
                // |x y| < 2^30: the product fits int32.
                let prod = i32::from(x) * i32::from(y);
                let v = multiply_by_quantized_multiplier(prod, p.output.multiplier, p.output.shift);
                v.max(p.act_min).min(p.act_max) as i16
            });
            Ok(())
        }
        _ => Err(KernelError::Param {
            what: "int16 binary: only ADD, SUB and MUL, with their own parameters",
        }),
    }
}

fn add(
    p: &AddParams,
    subtract: bool,
    (a, b, o): (Shape, Shape, Shape),
    x: &[i16],
    y: &[i16],
    out: &mut [i16],
) -> Result<(), KernelError> {
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
    let value = |x: i16, y: i16| {
        let v1 = r1.apply_double(i32::from(x) << 15);
        let v2 = r2.apply_double(i32::from(y) << 15);
        let raw = if subtract {
            v1.wrapping_sub(v2)
        } else {
            v1.wrapping_add(v2)
        };
        ro.apply_double(raw).max(p.act_min).min(p.act_max) as i16
    };
    elementwise((a, b, o), x, y, out, value);
    Ok(())
}

/// `out = value(x, y)` element by element, `x` and `y` broadcast to the
/// output's shape (a plain walk when all three shapes are the same).
#[inline(always)]
fn elementwise(
    (a, b, o): (Shape, Shape, Shape),
    x: &[i16],
    y: &[i16],
    out: &mut [i16],
    value: impl Fn(i16, i16) -> i16,
) {
    if a == o && b == o {
        for ((out, &x), &y) in out.iter_mut().zip(x).zip(y) {
            *out = value(x, y);
        }
    } else {
        crate::broadcast::each(a, b, o, |i, j, k| out[i] = value(x[j], y[k]));
    }
}

/// TFLite's table of `sigmoid(i / 24)` in unsigned 0.16 fixed point,
/// shared by its int16 LOGISTIC and TANH (`tanh(x) = 2 sigmoid(2x) - 1`).
/// The kernels interpolate between its entries, so their results depend on
/// these exact values (not all of them are `sigmoid(i / 24)` rounded to
/// nearest), which are TFLite's own.
const SIGMOID_TABLE: [u16; 256] = [
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
];

/// LOGISTIC or TANH on int16 values: TFLite's interpolation in
/// [`SIGMOID_TABLE`], after rescaling the input to `1 / (3 * 4096)` (or by
/// a power of two when its scale is one). Outputs have scale `2^-15`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Curve {
    /// TANH rather than LOGISTIC.
    pub tanh: bool,
    /// Input rescaling multiplier (0 for a power-of-two input scale).
    pub input_multiplier: i32,
    /// Its right shift.
    pub input_left_shift: i32,
}

impl Curve {
    /// The parameters LiteRT's `SigmoidPrepare`/`TanhPrepare` derive from
    /// the input scale (3 integer bits).
    pub fn new(tanh: bool, input_scale: f32) -> Self {
        // TFLite's CheckedLog2, in single precision as there.
        let log2 = libm::logf(input_scale) * (1.0 / libm::logf(2.0));
        let rounded = libm::roundf(log2);
        let mut input_left_shift = (15 - 3) + rounded as i32;
        let shift_ok = input_left_shift == 0 || (tanh && input_left_shift == 1);
        if (log2 - rounded).abs() < 1e-3 && shift_ok {
            return Curve {
                tanh,
                input_multiplier: 0,
                input_left_shift,
            };
        }
        let mut multiplier = f64::from(input_scale) * 4096.0 * 3.0;
        input_left_shift = 0;
        while multiplier <= 32767.0 / 2.0 && input_left_shift <= 30 {
            input_left_shift += 1;
            multiplier *= 2.0;
        }
        Curve {
            tanh,
            input_multiplier: multiplier as i32,
            input_left_shift,
        }
    }

    /// The curve of every element of `x`.
    pub fn run(&self, x: &[i16], out: &mut [i16]) -> Result<(), KernelError> {
        expect_len("output", out.len(), x.len())?;
        ensure(
            (0..=31).contains(&self.input_left_shift)
                && (0..=0xFFFF).contains(&self.input_multiplier),
            "int16 logistic/tanh: input rescaling out of range",
        )?;
        let (mut multiplier, mut shift) = (self.input_multiplier, self.input_left_shift);
        if multiplier == 0 {
            // A power-of-two input scale: only the 3/4 of the table's range.
            ensure(
                shift <= 1,
                "int16 logistic/tanh: power-of-two shift must be 0 or 1",
            )?;
            (multiplier, shift) = (3 << shift, 0);
        }
        let round = if shift > 0 { 1i64 << (shift - 1) } else { 0 };
        for (y, &v) in out.iter_mut().zip(x) {
            let input = ((i64::from(v) * i64::from(multiplier) + round) >> shift) as i32;
            *y = if self.tanh {
                tanh(input)
            } else {
                logistic(input)
            };
        }
        Ok(())
    }
}

/// TFLite's int16 logistic of a rescaled input (units of `1 / (3 * 4096)`:
/// `2^17` is 10.7): the bits above the low 9 index the table, the low 9
/// interpolate, and the 0.16 result loses 10 bits to become 0.15.
fn logistic(input: i32) -> i16 {
    let abs = input.unsigned_abs();
    let uh = (abs >> 9) as usize;
    let result = if uh >= 255 {
        0x7FFF << 10
    } else {
        let (ua, ub) = (
            u32::from(SIGMOID_TABLE[uh]),
            u32::from(SIGMOID_TABLE[uh + 1]),
        );
        (ua << 9).wrapping_add((abs & 0x1FF).wrapping_mul(ub.wrapping_sub(ua)))
    };
    let result = if input >= 0 {
        result + (1 << 9)
    } else {
        (1u32 << 25) - result + (1 << 9) - 1
    };
    (result >> 10) as i16
}

/// TFLite's int16 tanh: `2 sigmoid(2x) - 1` from the same table, 8
/// fractional bits.
fn tanh(input: i32) -> i16 {
    let abs = input.unsigned_abs();
    let uh = (abs >> 8) as usize;
    let result = if uh >= 255 {
        0xFFFF << 8
    } else {
        let (ua, ub) = (
            u32::from(SIGMOID_TABLE[uh]),
            u32::from(SIGMOID_TABLE[uh + 1]),
        );
        (ua << 8).wrapping_add((abs & 0xFF).wrapping_mul(ub.wrapping_sub(ua))) as i32
    };
    let result = if input >= 0 {
        result - (1 << 23) + (1 << 7)
    } else {
        -result + (1 << 23) + (1 << 7) - 1
    };
    (result >> 8) as i16
}

/// Entries of an int16 lookup table: 512 samples and one past the end,
/// indexed by the top 9 bits of an int16 and interpolated by the low 7.
pub const LUT_LEN: usize = 513;

/// TFLite's `LUTLookup` for int16: the sample at the top 9 bits of
/// `value` plus the slope to the next one times the low 7 bits, rounded.
#[inline]
pub fn lut_lookup(value: i16, lut: &[i16; LUT_LEN]) -> i16 {
    let index = (256 + (i32::from(value) >> 7)) as usize;
    let offset = i32::from(value & 0x7F);
    let base = lut[index];
    // The slope is kept in int16, as there (a difference that wraps, wraps).
    let slope = i32::from(lut[index + 1].wrapping_sub(base));
    base.wrapping_add(((slope * offset + 64) >> 7) as i16)
}

/// SOFTMAX on int16 (TFLite's `SoftmaxInt16`): `exp(x - max)` and
/// `1 / (1 + x)` from two interpolated tables, the sum in Q16.15, the
/// output in Q0.15 (scale `2^-15`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Softmax16 {
    /// `input_scale * beta / (10 / 65535)`: `[-65535, 0]` spans `[-10, 0]`.
    pub input: Requant,
}

impl Softmax16 {
    /// The softmax of every row of `depth` values; `luts` holds the exp
    /// table then the `1 / (1 + x)` table.
    pub fn run(
        &self,
        depth: usize,
        luts: &[i16],
        x: &[i16],
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        expect_len("output", out.len(), x.len())?;
        expect_len("softmax tables", luts.len(), 2 * LUT_LEN)?;
        // Rows of at most 65535 keep the sum of exps (each at most 2^15) in int32.
        ensure(
            (1..=65535).contains(&depth) && x.len().is_multiple_of(depth) && self.input.is_valid(),
            "int16 softmax: rows must be whole, at most 65535 long, and the multiplier valid",
        )?;
        let (exp, reciprocal) = luts.split_at(LUT_LEN);
        let (exp, reciprocal): (&[i16; LUT_LEN], &[i16; LUT_LEN]) = (
            exp.try_into().map_err(|_| LUT_SIZE)?,
            reciprocal.try_into().map_err(|_| LUT_SIZE)?,
        );
        for (row, y) in x.chunks_exact(depth).zip(out.chunks_exact_mut(depth)) {
            let max = row.iter().copied().max().unwrap_or(i16::MIN);
            let mut sum = 0i32;
            for (e, &v) in y.iter_mut().zip(row) {
                let diff = i32::from(v) - i32::from(max);
                let scaled =
                    multiply_by_quantized_multiplier(diff, self.input.multiplier, self.input.shift);
                let centred = (scaled + 32767).clamp(-32768, 32767) as i16;
                *e = lut_lookup(centred, exp);
                sum += i32::from(*e);
            }
            // The row's maximum gives exp(0); a sum of 0 means tables that are not TFLite's.
            ensure(sum > 0, "int16 softmax: the exp table gives no weight")?;
            // 1 / sum: the sum normalized to [1, 2) as x + 1, x in [0, 1).
            let headroom_plus_one = (sum as u32).leading_zeros();
            let shifted = (((i64::from(sum)) << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
            let centred = (shifted - (1 << 15) - (1 << 16)).clamp(-32768, 32767) as i16;
            let recip = i64::from(lut_lookup(centred, reciprocal));
            let right_shift = 31 - headroom_plus_one;
            let round = 1i64 << (right_shift - 1);
            for e in y.iter_mut() {
                let v = (i64::from(*e) * recip + round) >> right_shift;
                *e = v.clamp(0, 32767) as i16;
            }
        }
        Ok(())
    }
}

const LUT_SIZE: KernelError = KernelError::Param {
    what: "int16 lookup table: 513 entries",
};

/// A requantization between integer tensors (TFLite's QUANTIZE from int8
/// or int16 to int8 or int16): `MultiplyByQuantizedMultiplier(q - zp_in)
/// + zp_out`, clamped to the output type. With another multiplier below
/// the input's zero point and a narrower clamp it is also TFLite's
/// quantized RELU, RELU6 (`ReluX`) and LEAKY_RELU (`QuantizeLeakyRelu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requantize {
    /// The input's zero point.
    pub input_zero_point: i32,
    /// The output's zero point.
    pub output_zero_point: i32,
    /// `s_in / s_out`.
    pub multiplier: Requant,
    /// The multiplier of inputs below the zero point (LEAKY_RELU's
    /// `alpha s_in / s_out`; otherwise `multiplier`).
    pub below_zero: Requant,
    /// The clamp of a RELU kind; the output type's range narrows it.
    pub range: (i32, i32),
}

impl Requantize {
    /// The parameters TFLite's QUANTIZE prepare derives.
    pub fn new(input: (f32, i32), output: (f32, i32)) -> Self {
        let multiplier =
            crate::quant::quantize_multiplier(f64::from(input.0) / f64::from(output.0));
        Requantize {
            input_zero_point: input.1,
            output_zero_point: output.1,
            multiplier,
            below_zero: multiplier,
            range: (i32::MIN, i32::MAX),
        }
    }

    /// Requantizes `x` into `out`, each an int8 or int16 slice, clamped to
    /// the output type's `(min, max)` and to `range`.
    pub fn run<I: Copy + Into<i32>, O: TryFrom<i32>>(
        &self,
        (min, max): (i32, i32),
        x: &[I],
        out: &mut [O],
    ) -> Result<(), KernelError> {
        expect_len("output", out.len(), x.len())?;
        ensure(
            self.multiplier.is_valid() && self.below_zero.is_valid(),
            "requantize: shift must be in -31..=31",
        )?;
        let (min, max) = (min.max(self.range.0), max.min(self.range.1));
        let at_or_above = ChannelRequant::new(self.multiplier, Rounding::Double);
        let below = ChannelRequant::new(self.below_zero, Rounding::Double);
        for (y, &v) in out.iter_mut().zip(x) {
            let d = v.into() - self.input_zero_point;
            let r = if d >= 0 { &at_or_above } else { &below };
            // TFLite's order (max, then min): with min > max the result is max.
            let q = r
                .apply_double(d)
                .saturating_add(self.output_zero_point)
                .max(min)
                .min(max);
            *y = O::try_from(q).map_err(|_| KernelError::Param {
                what: "requantize: clamp range outside the output type",
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

/// One real value quantized to int16 (zero point 0), as QUANTIZE does.
pub fn quantize_one(value: f32, scale: f32) -> i16 {
    crate::float::round_to_i32(value / scale).clamp(FULL.min, FULL.max) as i16
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
    fn the_curves_are_exact_at_zero_and_saturate_far_out() {
        // Input scale 2^-12: 3 integer bits, the power-of-two path.
        for tanh in [false, true] {
            let curve = Curve::new(tanh, 1.0 / 4096.0);
            assert_eq!((curve.input_multiplier, curve.input_left_shift), (0, 0));
            let mut out = [0i16; 3];
            curve.run(&[0, i16::MAX, i16::MIN], &mut out).unwrap();
            // +-8 (the extremes of 3 integer bits): 32768 sigmoid(8) = 32757.0,
            // 32768 sigmoid(-8) = 10.99; tanh(8) rounds to the largest value.
            let want = if tanh {
                [0, 32767, -32767]
            } else {
                [16384, 32757, 11]
            };
            assert_eq!(out, want, "tanh {tanh}");
        }
        // Any other scale rescales by a multiplier of at least 2^14.
        let curve = Curve::new(false, 1e-4);
        assert!(curve.input_multiplier > 1 << 14 && curve.input_left_shift > 0);
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
