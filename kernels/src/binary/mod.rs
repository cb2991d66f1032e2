//! Binary (1-bit) operators with Larq Compute Engine semantics.
//!
//! * Signs are packed along channels into `u32` words, channel `c` in bit
//!   `c % 32` of word `c / 32`; a set bit means -1, a clear bit +1, and
//!   `sign(0) = +1`. Unused bits of the last word are ignored.
//! * A binary dot product of length `K` is `K - 2 * popcount(a XOR w)`, which
//!   equals the dot product of the +-1 vectors exactly.
//! * Padding: [`BinaryPadding::One`] pads with +1 (Larq's `pad_values=1`,
//!   the padded taps stay in `K`); [`BinaryPadding::Zero`] pads with 0,
//!   which is implemented exactly by leaving padded taps out of the sum
//!   (so `K` shrinks at the borders) rather than by LCE's correction term.
//! * The output transform is LCE's: `y = dot * multiplier[c] + bias[c]`
//!   (batch norm folded into the two vectors), clamped, written as float or
//!   rounded to int8; or, for a following binary layer, compared with an
//!   integer threshold and written straight as packed bits.

#[cfg(arm_dsp)]
mod arm_dsp;
mod conv;
mod pool;
pub mod popcount;
#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod x86;

pub use conv::{check_conv2d, conv2d};
pub use pool::{check_max_pool, max_pool};

use crate::error::{ensure, expect_len, KernelError};
use crate::float::Range;
use crate::int8::{Clamp, DenseGeometry};
use serde::{Deserialize, Serialize};

/// Words needed for `channels` packed signs.
pub const fn words(channels: usize) -> usize {
    channels.div_ceil(32)
}

/// How a binary convolution treats taps outside the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryPadding {
    /// Pad with +1 (bit 0); the padded taps count in `K`.
    One,
    /// Pad with 0: padded taps contribute nothing and are not counted.
    Zero,
}

/// Packs int8 values (one pixel = `channels` values) into sign bits:
/// a value below `zero_point` is negative and sets its bit.
pub fn pack_i8(
    input: &[i8],
    channels: usize,
    zero_point: i32,
    output: &mut [u32],
) -> Result<(), KernelError> {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if channels.is_multiple_of(32)
        && input.len() == output.len() * 32
        && x86::pack_i8(input, zero_point, output)
    {
        return Ok(());
    }
    let negative = |&x: &i8| (x as i32) < zero_point;
    // The DSP cores pack whole words four values at a time; a zero point
    // outside int8 (every value on one side of it) does not fit their bytes.
    #[cfg(arm_dsp)]
    if (-128..=127).contains(&zero_point) {
        let whole = |word: &[i8; 32]| arm_dsp::pack_word_i8(word, zero_point);
        return pack(input, channels, output, negative, whole);
    }
    pack(input, channels, output, negative, |word| {
        pack_word(word, &negative)
    })
}

/// Packs float values into sign bits (`x < 0` sets the bit).
pub fn pack_f32(input: &[f32], channels: usize, output: &mut [u32]) -> Result<(), KernelError> {
    let negative = |&x: &f32| x < 0.0;
    pack(input, channels, output, negative, |word| {
        pack_word(word, &negative)
    })
}

/// Packs pixels of `channels` values, bit set where `negative`; whole words
/// of 32 values by `whole_word`.
fn pack<T>(
    input: &[T],
    channels: usize,
    output: &mut [u32],
    negative: impl Fn(&T) -> bool,
    whole_word: impl Fn(&[T; 32]) -> u32,
) -> Result<(), KernelError> {
    ensure(
        channels >= 1 && input.len().is_multiple_of(channels),
        "bit packing: length must be a multiple of the channel count",
    )?;
    let w = words(channels);
    expect_len("packed output", output.len(), input.len() / channels * w)?;
    for (pixel, out) in input.chunks_exact(channels).zip(output.chunks_exact_mut(w)) {
        for (word, chunk) in out.iter_mut().zip(pixel.chunks(32)) {
            *word = match <&[T; 32]>::try_from(chunk) {
                Ok(whole) => whole_word(whole),
                Err(_) => chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (bit, x)| acc | (u32::from(negative(x)) << bit)),
            };
        }
    }
    Ok(())
}

/// The sign bits of 32 values, the loop unrolled: each bit's shift is a
/// constant (a load, a compare and an OR with shifted operand).
#[inline(always)]
fn pack_word<T>(values: &[T; 32], negative: &impl Fn(&T) -> bool) -> u32 {
    let mut word = 0u32;
    for (bit, x) in values.iter().enumerate() {
        word |= u32::from(negative(x)) << bit;
    }
    word
}

/// The +-1 value of channel `c` in a packed pixel.
pub fn sign_at(pixel: &[u32], c: usize) -> i8 {
    if pixel[c / 32] >> (c % 32) & 1 == 1 {
        -1
    } else {
        1
    }
}

/// Where and how a binary layer writes its results.
pub enum BinaryOutput<'a, 'o> {
    /// The raw dot products `K - 2 * popcount`.
    Dots(&'o mut [i32]),
    /// `clamp(dot * multiplier + bias)` as float.
    Float {
        /// Per-channel multiplier.
        multiplier: &'a [f32],
        /// Per-channel bias.
        bias: &'a [f32],
        /// Fused activation.
        range: Range,
        /// Destination.
        out: &'o mut [f32],
    },
    /// `clamp(zero_point + round(dot * multiplier + bias))` as int8; the
    /// multiplier and bias are already divided by the output scale.
    Int8 {
        /// Per-channel multiplier.
        multiplier: &'a [f32],
        /// Per-channel bias.
        bias: &'a [f32],
        /// Output zero point.
        zero_point: i32,
        /// Fused activation, in output units.
        clamp: Clamp,
        /// Destination.
        out: &'o mut [i8],
    },
    /// Packed sign bits: bit set (-1) when `dot < threshold`. See [`fold_threshold`].
    Bits {
        /// Per-channel threshold.
        thresholds: &'a [i32],
        /// Destination, `words(channels)` per pixel.
        out: &'o mut [u32],
    },
}

impl BinaryOutput<'_, '_> {
    fn check(&mut self, pixels: usize, channels: usize) -> Result<(), KernelError> {
        let n = pixels * channels;
        match self {
            BinaryOutput::Dots(out) => expect_len("output", out.len(), n),
            BinaryOutput::Float {
                multiplier,
                bias,
                out,
                ..
            } => {
                expect_len("multiplier", multiplier.len(), channels)?;
                expect_len("bias", bias.len(), channels)?;
                expect_len("output", out.len(), n)
            }
            BinaryOutput::Int8 {
                multiplier,
                bias,
                zero_point,
                clamp,
                out,
            } => {
                expect_len("multiplier", multiplier.len(), channels)?;
                expect_len("bias", bias.len(), channels)?;
                clamp.check()?;
                ensure(
                    (-128..=127).contains(zero_point),
                    "output zero point: must be an int8 value",
                )?;
                expect_len("output", out.len(), n)
            }
            BinaryOutput::Bits { thresholds, out } => {
                expect_len("thresholds", thresholds.len(), channels)?;
                expect_len("packed output", out.len(), pixels * words(channels))?;
                out.fill(0);
                Ok(())
            }
        }
    }

    /// Emits channels `first..first + pops.len()` of one pixel from their
    /// popcounts, `dot = k - 2 * pop`; the channels lie in one word of
    /// packed output. Once per block of channels, so not inlined: one copy
    /// of the four output forms serves every kernel.
    #[inline(never)]
    fn emit_block(&mut self, pixel: usize, channels: usize, first: usize, k: i32, pops: &[u32]) {
        let n = pops.len();
        let dots = pops.iter().map(|&pop| k - 2 * pop as i32);
        let at = pixel * channels + first;
        match self {
            BinaryOutput::Dots(out) => out[at..][..n]
                .iter_mut()
                .zip(dots)
                .for_each(|(y, dot)| *y = dot),
            BinaryOutput::Float {
                multiplier,
                bias,
                range,
                out,
            } => {
                let (m, b, out) = (
                    &multiplier[first..][..n],
                    &bias[first..][..n],
                    &mut out[at..][..n],
                );
                #[cfg(all(target_arch = "x86_64", feature = "std"))]
                if x86::emit_f32(k, pops, m, b, *range, out) {
                    return;
                }
                for ((y, dot), (m, b)) in out.iter_mut().zip(dots).zip(m.iter().zip(b)) {
                    *y = f32_value(dot, *m, *b, *range);
                }
            }
            BinaryOutput::Int8 {
                multiplier,
                bias,
                zero_point,
                clamp,
                out,
            } => {
                let (m, b, out) = (
                    &multiplier[first..][..n],
                    &bias[first..][..n],
                    &mut out[at..][..n],
                );
                #[cfg(all(target_arch = "x86_64", feature = "std"))]
                if x86::emit_int8(k, pops, (m, b), *zero_point, *clamp, out) {
                    return;
                }
                for ((y, dot), (m, b)) in out.iter_mut().zip(dots).zip(m.iter().zip(b)) {
                    *y = int8_value(dot, *m, *b, *zero_point, *clamp);
                }
            }
            BinaryOutput::Bits { thresholds, out } => {
                debug_assert!(first % 32 + n <= 32);
                let word = sign_word(k, pops, &thresholds[first..][..n]);
                out[pixel * words(channels) + first / 32] |= word << (first % 32);
            }
        }
    }

    /// The int8 outputs of channels `first..first + n` at `pixel` (of
    /// `channels`), if the output is int8.
    #[inline(always)]
    fn int8_at(
        &mut self,
        (pixel, channels, first): (usize, usize, usize),
        n: usize,
    ) -> Option<&mut [i8]> {
        let BinaryOutput::Int8 { out, .. } = self else {
            return None;
        };
        out.get_mut(pixel * channels + first..)?.get_mut(..n)
    }
}

/// Fills `table` with the int8 outputs of every popcount `0..=k` of a
/// field of `k` bits, `k + 1` per channel of `multiplier` and `bias`:
/// exactly what the arithmetic gives for `dot = k - 2 * pop`, so a kernel
/// may use either.
///
/// Every step of the arithmetic (a float multiply by one factor, an add,
/// rounding, clamping) is monotonic, so a channel's outputs are too: the
/// runs at either end that equal the first and the last output (where the
/// activation clamps) are found by bisection and filled, and only the
/// outputs between them are worked out one by one.
fn int8_by_count(
    (multiplier, bias): (&[f32], &[f32]),
    zero_point: i32,
    clamp: Clamp,
    k: usize,
    table: &mut [i8],
) {
    let rows = table.chunks_exact_mut(k + 1);
    for ((outputs, &m), &b) in rows.zip(multiplier).zip(bias) {
        let y = |pop: usize| int8_value(k as i32 - 2 * pop as i32, m, b, zero_point, clamp);
        let (first, last) = (y(0), y(k));
        let rising = first_not(1, k + 1, |pop| y(pop) == first);
        let falling = first_not(rising, k + 1, |pop| y(pop) != last);
        outputs[..rising].fill(first);
        for (pop, out) in outputs.iter_mut().enumerate().take(falling).skip(rising) {
            *out = y(pop);
        }
        outputs[falling..].fill(last);
    }
}

/// The first `i` in `lo..hi` where `holds(i)` is false (`hi` if none),
/// `holds` being true on a prefix of the range.
fn first_not(mut lo: usize, mut hi: usize, holds: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A block's packed signs: bit `i` set where `k - 2 * pops[i] < t[i]`.
#[inline(always)]
fn sign_word(k: i32, pops: &[u32], t: &[i32]) -> u32 {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(word) = x86::sign_bits(k, pops, t) {
        return word;
    }
    pops.iter()
        .zip(t)
        .enumerate()
        .fold(0u32, |w, (i, (&pop, t))| {
            w | u32::from(k - 2 * (pop as i32) < *t) << i
        })
}

/// The float output of one channel: `dot * m + b`, clamped to `range`.
#[inline(always)]
fn f32_value(dot: i32, m: f32, b: f32, range: Range) -> f32 {
    (dot as f32 * m + b).clamp(range.0, range.1)
}

/// The int8 output of one channel: `clamp(zero_point + round(dot * m + b))`.
#[inline(always)]
fn int8_value(dot: i32, m: f32, b: f32, zero_point: i32, clamp: Clamp) -> i8 {
    let v = crate::float::round_to_i32(dot as f32 * m + b);
    v.saturating_add(zero_point).clamp(clamp.min, clamp.max) as i8
}

/// Output channels counted before they are emitted together: one word of
/// packed output.
const OUTPUT_BLOCK: usize = 32;

/// Output channels counted before int8 or float outputs are emitted
/// together: on the host, enough for the vector transforms' iterations to
/// overlap (DS-CNN's binary pointwise layer with int8 out: 9.8 -> 8.9 us);
/// elsewhere one word's worth, to keep the stack small.
const WIDE_BLOCK: usize = if cfg!(all(target_arch = "x86_64", feature = "std")) {
    128
} else {
    OUTPUT_BLOCK
};

/// Mask of the bits of the last word that hold channels.
#[inline(always)]
fn tail_mask(channels: usize) -> u32 {
    match channels % 32 {
        0 => u32::MAX,
        r => (1u32 << r) - 1,
    }
}

/// `popcount(a XOR w)` for a tap padded with +1: a +1 input is a clear
/// bit, and `0 XOR w = w`.
#[inline(always)]
fn padded_popcount(w: &[u32], mask: u32) -> u32 {
    let n = w.len();
    w[..n - 1].iter().map(|w| w.count_ones()).sum::<u32>() + (w[n - 1] & mask).count_ones()
}

/// `popcount(a XOR w)` over two packed vectors of `channels` signs.
#[inline(always)]
fn xor_popcount(a: &[u32], w: &[u32], mask: u32) -> u32 {
    let n = a.len();
    popcount::xor_popcount(&a[..n - 1], &w[..n - 1]) + ((a[n - 1] ^ w[n - 1]) & mask).count_ones()
}

/// Checks a binary dense layer's input and weight lengths, in words.
pub fn check_fully_connected(
    g: &DenseGeometry,
    input: usize,
    weights: usize,
) -> Result<(), KernelError> {
    g.check()?;
    let wpr = words(g.in_features as usize);
    expect_len("packed input", input, g.batch as usize * wpr)?;
    expect_len("packed weights", weights, g.out_features as usize * wpr)
}

/// Binary dense layer. Input `[batch, words(in)]`, weights `[out, words(in)]`.
#[inline(never)]
pub fn fully_connected(
    g: &DenseGeometry,
    input: &[u32],
    weights: &[u32],
    mut output: BinaryOutput,
) -> Result<(), KernelError> {
    check_fully_connected(g, input.len(), weights.len())?;
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let wpr = words(k);
    output.check(g.batch as usize, n)?;
    let mask = tail_mask(k);
    let mut pops = [0u32; OUTPUT_BLOCK];
    for (row, x) in input.chunks_exact(wpr).enumerate() {
        for (block, rows) in weights.chunks(wpr * OUTPUT_BLOCK).enumerate() {
            let pops = &mut pops[..rows.len() / wpr];
            if mask == u32::MAX {
                popcount::count_rows(x, rows, pops);
            } else {
                for (pop, w) in pops.iter_mut().zip(rows.chunks_exact(wpr)) {
                    *pop = xor_popcount(x, w, mask);
                }
            }
            output.emit_block(row, n, block * OUTPUT_BLOCK, k as i32, pops);
        }
    }
    Ok(())
}

/// Folds a float output transform `y = dot * multiplier + bias` into an
/// integer threshold for bit output: returns `(threshold, negate_weights)`
/// such that, after negating that channel's weights when asked (which
/// negates `dot`), `dot < threshold` holds exactly when `y < 0`, for every
/// dot product in `-k..=k`. The comparison uses the same float expression
/// as the float transform, so the two agree bit for bit.
pub fn fold_threshold(multiplier: f32, bias: f32, k: i32) -> (i32, bool) {
    let negate = multiplier < 0.0;
    let m = if negate { -multiplier } else { multiplier };
    // y(d) is non-decreasing in d once the weights are negated for m < 0:
    // find the smallest d with y(d) >= 0 by binary search.
    let y = |d: i32| d as f32 * m + bias;
    let (mut lo, mut hi) = (-k, k + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if y(mid) >= 0.0 {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    // With the weights negated the kernel sees -dot; y(dot) = (-dot) * (-m) + b.
    (lo, negate)
}
