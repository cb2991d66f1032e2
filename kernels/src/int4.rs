//! int4 weights (two per byte) with int8 activations: conv2d and dense.
//!
//! Layout: each output channel's row of `K` weights (OHWI order, like the
//! int8 filter) is packed into `ceil(K / 2)` bytes, element `2i` in the low
//! nibble and `2i + 1` in the high nibble (TFLite's int4 order), values in
//! `-8..=7`. Rows start on a byte boundary, so an odd `K` leaves one unused
//! nibble per row. Requantization is the int8 one.
//!
//! The kernels unpack a block of output channels' rows to int8 once, eight
//! nibbles per 32-bit word, and run the int8 kernels' inner products over
//! it (`int8::dot`: SMLAD on the DSP cores; the int8 dense layer, AVX2 on
//! the host), so a weight costs its unpacking once per layer, not per
//! pixel. Windows deeper than the stack buffers take the nibble-by-nibble
//! path.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::ConvGeometry;
use crate::int8::conv::{field_outputs, COLUMN};
use crate::int8::{DenseGeometry, OutputStage};

/// int8 weights unpacked at once, on the stack: 4 KiB where the stack is
/// large (DSP cores' target files set 12 KiB apart, as qemu-m3's does
/// (`large_stack`); the host), else 512 bytes (the 16 KiB boards). With
/// 512 KWS's layers ran by blocks of channels (its first layer gathering
/// each field once per block): 6.3% more instructions than int8 on
/// qemu-m3, against 0.04% unpacked whole.
#[cfg(any(arm_dsp, feature = "std", large_stack))]
const UNPACKED: usize = 4096;
#[cfg(not(any(arm_dsp, feature = "std", large_stack)))]
const UNPACKED: usize = 512;

/// The eight sign-extended nibbles of a little-endian word, in row order:
/// per byte, as SWAR on the whole word, `(n ^ 8) - 8` with the bytes kept
/// from borrowing from each other by their top bit.
#[inline(always)]
fn unpack_word(w: u32) -> [i8; 8] {
    let signed = |n: u32| {
        ((((n & 0x0F0F_0F0F) ^ 0x0808_0808) | 0x8080_8080).wrapping_sub(0x0808_0808) ^ 0x8080_8080)
            .to_le_bytes()
    };
    let (lo, hi) = (signed(w), signed(w >> 4));
    [lo[0], hi[0], lo[1], hi[1], lo[2], hi[2], lo[3], hi[3]].map(|b| b as i8)
}

/// Unpacks the `out.len()` values of a packed row to int8.
pub fn unpack_row(row: &[u8], out: &mut [i8]) {
    let k = out.len();
    #[cfg(target_arch = "x86_64")]
    let done = unpack_sse2(row, out);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let (row, out) = (&row[done / 2..], &mut out[done..]);
    let whole = (k - done) / 8;
    for (eight, word) in out.chunks_exact_mut(8).zip(row.chunks_exact(4)) {
        eight.copy_from_slice(&unpack_word(u32::from_le_bytes([
            word[0], word[1], word[2], word[3],
        ])));
    }
    for (i, y) in out.iter_mut().enumerate().skip(whole * 8) {
        *y = get(row, i) as i8;
    }
}

/// Unpacks 32 values per 16 bytes with SSE2 (every x86-64 has it): the
/// low and high nibbles masked, interleaved back into row order, and
/// sign-extended as `(n ^ 8) - 8`. Returns how many values it wrote.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn unpack_sse2(row: &[u8], out: &mut [i8]) -> usize {
    use core::arch::x86_64::*;
    let blocks = (out.len() / 32).min(row.len() / 16);
    // SAFETY: SSE2 is part of x86-64; block `b` reads row[16b..16b + 16]
    // and writes out[32b..32b + 32], both inside the slices.
    unsafe {
        let (nibble, eight) = (_mm_set1_epi8(0x0f), _mm_set1_epi8(8));
        for b in 0..blocks {
            let x = _mm_loadu_si128(row.as_ptr().add(16 * b).cast());
            let lo = _mm_and_si128(x, nibble);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), nibble);
            let signed = |v| _mm_sub_epi8(_mm_xor_si128(v, eight), eight);
            let first = signed(_mm_unpacklo_epi8(lo, hi));
            let second = signed(_mm_unpackhi_epi8(lo, hi));
            _mm_storeu_si128(out.as_mut_ptr().add(32 * b).cast(), first);
            _mm_storeu_si128(out.as_mut_ptr().add(32 * b + 16).cast(), second);
        }
    }
    blocks * 32
}

/// `rows` packed rows of `k` values unpacked to int8, on the heap (the host).
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn unpack_rows(packed: &[u8], rows: usize, k: usize) -> std::vec::Vec<i8> {
    let mut unpacked = std::vec![0i8; rows * k];
    for (row, out) in packed
        .chunks_exact(row_bytes(k))
        .zip(unpacked.chunks_exact_mut(k))
    {
        unpack_row(row, out);
    }
    unpacked
}

/// The int4 filters of prepared models, unpacked to int8 once (as the host
/// packs int8 filters once, `int8::x86::prepare`), so that the host's int4
/// layers cost its int8 layers' time: the model keeps half the weight
/// bytes, the host process an int8 copy.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod prepared {
    use crate::x86::Copies;

    /// An int4 filter's address and length, rows and depth (equal
    /// filters of two shapes may share an address: the blob stores equal
    /// constants once).
    static UNPACKED: Copies<(usize, usize, usize, usize)> = Copies::new();

    fn key(filter: &[u8], rows: usize, depth: usize) -> (usize, usize, usize, usize) {
        (filter.as_ptr() as usize, filter.len(), rows, depth)
    }

    /// The int8 copy of `filter` (`rows` rows of `depth` values), made on
    /// the first call for that filter.
    pub fn unpack(filter: &'static [u8], rows: usize, depth: usize) -> &'static [i8] {
        UNPACKED.get_or_make(key(filter, rows, depth), || {
            super::unpack_rows(filter, rows, depth)
        })
    }

    /// The int8 copy of `filter` (`rows` rows of `depth` values), if a
    /// prepared model's.
    pub fn find(filter: &[u8], rows: usize, depth: usize) -> Option<&'static [i8]> {
        UNPACKED.find(&key(filter, rows, depth))
    }
}

/// Output channels whose rows of `depth` values fit [`UNPACKED`] together,
/// a multiple of four (the int8 inner product's group) where it can be.
fn block(depth: usize, channels: usize) -> usize {
    let fit = (UNPACKED / depth.max(1)).max(1);
    if fit >= 4 {
        (fit / 4 * 4).min(channels)
    } else {
        fit.min(channels)
    }
}

/// `stage` and `bias` for output channels `first..first + n`.
fn channels<'a>(
    stage: &OutputStage<'a>,
    bias: Option<&'a [i32]>,
    first: usize,
    n: usize,
) -> (OutputStage<'a>, Option<&'a [i32]>) {
    let stage = OutputStage {
        requant: &stage.requant[first..first + n],
        ..*stage
    };
    (stage, bias.map(|b| &b[first..first + n]))
}

/// Bytes one packed row of `k` weights takes.
pub const fn row_bytes(k: usize) -> usize {
    k.div_ceil(2)
}

/// Packs rows of `k` int8 values in `-8..=7` into int4 rows.
pub fn pack(values: &[i8], k: usize, out: &mut [u8]) -> Result<(), KernelError> {
    ensure(
        k >= 1 && values.len().is_multiple_of(k),
        "int4 pack: length must be a multiple of the row length",
    )?;
    expect_len(
        "packed int4 weights",
        out.len(),
        values.len() / k * row_bytes(k),
    )?;
    ensure(
        values.iter().all(|v| (-8..=7).contains(v)),
        "int4 pack: values must be in -8..=7",
    )?;
    for (row, packed) in values
        .chunks_exact(k)
        .zip(out.chunks_exact_mut(row_bytes(k)))
    {
        for (byte, pair) in packed.iter_mut().zip(row.chunks(2)) {
            let lo = pair[0] as u8 & 0x0f;
            let hi = pair.get(1).map_or(0, |&v| v as u8 & 0x0f);
            *byte = lo | (hi << 4);
        }
    }
    Ok(())
}

/// The `i`-th int4 value of a packed row, sign-extended.
#[inline(always)]
pub fn get(row: &[u8], i: usize) -> i32 {
    let byte = row[i / 2] as i8;
    // Shift the wanted nibble to the top, then arithmetic-shift it back down.
    (if i.is_multiple_of(2) { byte << 4 } else { byte } >> 4) as i32
}

/// `sum(w[start + j] * (x[j] + offset))` for a packed row.
#[inline(always)]
fn dot(row: &[u8], start: usize, x: &[i8], offset: i32) -> i32 {
    if start.is_multiple_of(2) {
        let bytes = &row[start / 2..];
        let mut pairs = x.chunks_exact(2);
        let mut acc = 0i32;
        for (pair, &b) in pairs.by_ref().zip(bytes) {
            let b = b as i8;
            let (lo, hi) = (((b << 4) >> 4) as i32, (b >> 4) as i32);
            acc = acc.wrapping_add(lo * (pair[0] as i32 + offset) + hi * (pair[1] as i32 + offset));
        }
        if let [last] = pairs.remainder() {
            acc = acc.wrapping_add(get(row, start + x.len() - 1) * (*last as i32 + offset));
        }
        acc
    } else {
        x.iter().enumerate().fold(0i32, |acc, (j, &v)| {
            acc.wrapping_add(get(row, start + j) * (v as i32 + offset))
        })
    }
}

/// Checks an int4 convolution's arguments by their lengths.
pub fn check_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: usize,
    filter: usize,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_conv_io(input, output)?;
    let oc = g.output.c as usize;
    expect_len("int4 filter", filter, oc * row_bytes(g.depth()))?;
    stage.check(oc, bias)
}

/// int4-weight convolution (int8 activations, int8 requantization).
#[inline(never)]
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[u8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check_conv2d(g, stage, input.len(), filter.len(), bias, output.len())?;
    let (oc, depth) = (g.output.c as usize, g.depth());
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::x86::selected() != crate::x86::Isa::Portable && stage.filter_offset == 0 {
        // The host runs the int8 matrix product over the filter unpacked:
        // once, when the model was prepared, or here.
        if let Some(unpacked) = prepared::find(filter, oc, depth) {
            return crate::int8::conv2d(g, stage, input, unpacked, bias, output);
        }
        let unpacked = unpack_rows(filter, oc, depth);
        return crate::int8::conv2d(g, stage, input, &unpacked, bias, output);
    }
    if stage.filter_offset == 0 && oc * depth <= UNPACKED {
        // The whole filter fits: the int8 convolution runs over it as it
        // would over int8 weights.
        let mut unpacked = [0i8; UNPACKED];
        let unpacked = &mut unpacked[..oc * depth];
        for (row, out) in filter
            .chunks_exact(row_bytes(depth))
            .zip(unpacked.chunks_exact_mut(depth))
        {
            unpack_row(row, out);
        }
        return crate::int8::conv2d(g, stage, input, unpacked, bias, output);
    }
    let single_tap = g.window.taps() == 1;
    if stage.filter_offset != 0 || depth > UNPACKED || (!single_tap && depth > COLUMN) {
        by_nibbles(g, stage, input, filter, bias, output);
        return Ok(());
    }
    // Padded taps hold -offset: x + offset = 0 adds nothing, as skipping them does.
    let pad = (-stage.input_offset) as i8;
    let (mut weights, mut column) = ([0i8; UNPACKED], [pad; COLUMN]);
    let per_block = block(depth, oc);
    for first in (0..oc).step_by(per_block) {
        let n = per_block.min(oc - first);
        let rows = &mut weights[..n * depth];
        for (o, unpacked) in rows.chunks_exact_mut(depth).enumerate() {
            unpack_row(
                &filter[(first + o) * row_bytes(depth)..][..row_bytes(depth)],
                unpacked,
            );
        }
        let rows = &weights[..n * depth];
        let (stage, bias) = channels(stage, bias, first, n);
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            let out = &mut output[pixel * oc + first..][..n];
            field_outputs(g, &stage, input, rows, bias, (b, oy, ox), &mut column, out);
        });
    }
    Ok(())
}

/// Nibble by nibble, for windows deeper than the stack buffers.
#[inline(never)]
fn by_nibbles(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[u8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (ic, oc, depth) = (g.input.c as usize, g.output.c as usize, g.depth());
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let row = &filter[o * row_bytes(depth)..][..row_bytes(depth)];
            let mut acc = 0i32;
            g.for_each_tap(b, oy, ox, |tap, at| {
                acc = acc.wrapping_add(dot(
                    row,
                    tap * ic,
                    &input[at * ic..][..ic],
                    stage.input_offset,
                ));
            });
            output[pixel * oc + o] = stage.finish_biased(acc, bias, o);
        }
    });
}

/// Checks an int4 dense layer's arguments by their lengths.
pub fn check_fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: usize,
    weights: usize,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    let n = g.out_features as usize;
    expect_len(
        "int4 weights",
        weights,
        n * row_bytes(g.in_features as usize),
    )?;
    stage.check(n, bias)
}

/// int4-weight dense layer (int8 activations): blocks of rows unpacked,
/// then the int8 dense layer over them, one input row at a time.
#[inline(never)]
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[u8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check_fully_connected(g, stage, input.len(), weights.len(), bias, output.len())?;
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::x86::selected() != crate::x86::Isa::Portable && stage.filter_offset == 0 {
        // The host runs the int8 dense layer over the rows unpacked: once,
        // when the model was prepared, or here.
        if let Some(unpacked) = prepared::find(weights, n, k) {
            return crate::int8::fully_connected(g, stage, input, unpacked, bias, output);
        }
        let unpacked = unpack_rows(weights, n, k);
        return crate::int8::fully_connected(g, stage, input, &unpacked, bias, output);
    }
    if stage.filter_offset != 0 || k > UNPACKED {
        for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
            for (o, (row, y)) in weights
                .chunks_exact(row_bytes(k))
                .zip(out.iter_mut())
                .enumerate()
            {
                let acc = dot(row, 0, x, stage.input_offset);
                *y = stage.finish_biased(acc, bias, o);
            }
        }
        return Ok(());
    }
    let mut unpacked = [0i8; UNPACKED];
    let per_block = block(k, n);
    for first in (0..n).step_by(per_block) {
        let rows = per_block.min(n - first);
        for (o, row) in unpacked[..rows * k].chunks_exact_mut(k).enumerate() {
            unpack_row(&weights[(first + o) * row_bytes(k)..][..row_bytes(k)], row);
        }
        let (stage, bias) = channels(stage, bias, first, rows);
        let one = DenseGeometry {
            batch: 1,
            in_features: k as u32,
            out_features: rows as u32,
        };
        for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
            let out = &mut out[first..first + rows];
            crate::int8::fully_connected(&one, &stage, x, &unpacked[..rows * k], bias, out)?;
        }
    }
    Ok(())
}
