//! int4 weights (two per byte) with int8 activations: conv2d and dense.
//!
//! Layout: each output channel's row of `K` weights (OHWI order, like the
//! int8 filter) is packed into `ceil(K / 2)` bytes, element `2i` in the low
//! nibble and `2i + 1` in the high nibble (TFLite's int4 order), values in
//! `-8..=7`. Rows start on a byte boundary, so an odd `K` leaves one unused
//! nibble per row. Requantization is the int8 one.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::ConvGeometry;
use crate::int8::{DenseGeometry, OutputStage};

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
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[u8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check_conv2d(g, stage, input.len(), filter.len(), bias, output.len())?;
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
    Ok(())
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

/// int4-weight dense layer (int8 activations).
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
    Ok(())
}
