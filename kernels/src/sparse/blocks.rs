//! Block-sparse int8 weights: a weight matrix stored as blocks of four
//! consecutive weights of one row (TFLite's 1x4 block sparsity), keeping
//! only the blocks that hold a non-zero. Rows are output channels: a dense
//! layer's `[out, in]` matrix, or a pointwise convolution's
//! `[out_channels, in_channels]` filter, whose pixels are the rows of its
//! input. A block maps onto one SIMD step of four byte products (VPDPBUSD
//! lanes, two SMLADs), so the kernels' work is proportional to the stored
//! blocks, with the dense kernels' arithmetic on each.
//!
//! Format: `row_ptr` (rows + 1 values) counts blocks; block `b` is the two
//! words `entries[2 * b]` (the byte offset `4 * q` of its first column in
//! an input row) and `entries[2 * b + 1]` (its four weights, column `4 * q`
//! in the low byte). The number of columns is a multiple of four, so that
//! every block lies inside its row.

use super::is_pointwise;
use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::ConvGeometry;
use crate::int8::{DenseGeometry, OutputStage};
use crate::quant::ChannelRequant;

/// Weights per block.
pub const BLOCK: usize = 4;

/// A block-sparse int8 matrix (see the module's format).
#[derive(Clone, Copy, Debug)]
pub struct Blocks<'a> {
    /// Start of each row's blocks, plus the end.
    pub row_ptr: &'a [u32],
    /// Two words per block: byte offset of its first column, four weights.
    pub entries: &'a [u32],
}

impl<'a> Blocks<'a> {
    /// Checks the structure for a `rows x columns` matrix: row pointers,
    /// columns a multiple of four and every block inside its row.
    pub fn check(&self, rows: usize, columns: usize) -> Result<(), KernelError> {
        ensure(
            columns.is_multiple_of(BLOCK),
            "block-sparse weights: the columns must be a multiple of four",
        )?;
        expect_len("block row pointers", self.row_ptr.len(), rows + 1)?;
        ensure(
            self.row_ptr.first() == Some(&0)
                && self.row_ptr.last().map(|&n| 2 * n as usize) == Some(self.entries.len()),
            "block row pointers: must run from 0 to the block count",
        )?;
        ensure(
            self.row_ptr.windows(2).all(|w| w[0] <= w[1]),
            "block row pointers: must not decrease",
        )?;
        ensure(
            self.entries
                .chunks_exact(2)
                .all(|b| (b[0] as usize).is_multiple_of(BLOCK) && (b[0] as usize) < columns),
            "block offsets: must be whole blocks inside the row",
        )
    }

    /// Row `r`'s blocks, two words each.
    #[inline(always)]
    pub(crate) fn row(&self, r: usize) -> &'a [u32] {
        &self.entries[2 * self.row_ptr[r] as usize..2 * self.row_ptr[r + 1] as usize]
    }

    /// The arrays `(row_ptr, entries)` of a row-major `[rows, columns]`
    /// matrix, or `None` when the columns are not a multiple of four.
    /// Host-side helper.
    #[cfg(feature = "std")]
    pub fn pack(dense: &[i8], columns: usize) -> Option<(std::vec::Vec<u32>, std::vec::Vec<u32>)> {
        if !columns.is_multiple_of(BLOCK) || columns == 0 || columns > u32::MAX as usize {
            return None;
        }
        let (mut row_ptr, mut entries) = (std::vec![0u32], std::vec::Vec::new());
        for row in dense.chunks_exact(columns) {
            for (q, block) in row.chunks_exact(BLOCK).enumerate() {
                if block.iter().any(|&w| w != 0) {
                    let bytes = [block[0], block[1], block[2], block[3]].map(|w| w as u8);
                    entries.extend([(q * BLOCK) as u32, u32::from_le_bytes(bytes)]);
                }
            }
            row_ptr.push((entries.len() / 2) as u32);
        }
        Some((row_ptr, entries))
    }
}

/// The four weights of a block's weight word.
#[inline(always)]
fn weights(word: u32) -> [i8; 4] {
    word.to_le_bytes().map(|b| b as i8)
}

/// Sum of a row's weights: the input offset is applied once per output as
/// `offset * sum(w)`.
pub(crate) fn weight_sum(row: &[u32]) -> i32 {
    row.chunks_exact(2)
        .flat_map(|b| weights(b[1]))
        .fold(0i32, |s, w| s.wrapping_add(w as i32))
}

/// `sum(w * (x + offset))` over a row's blocks for the input row `x` on
/// DSP cores.
#[cfg(arm_dsp)]
#[inline(always)]
fn dot(row: &[u32], x: &[i8], offset: i32) -> i32 {
    crate::int8::arm_dsp::blocks::dot(row, x, offset)
}

/// `sum(w * x)` over a row's blocks for the input row `x` (the offset's
/// term is added by the caller).
#[cfg(not(arm_dsp))]
#[inline(always)]
fn dot(row: &[u32], x: &[i8], _offset: i32) -> i32 {
    row.chunks_exact(2).fold(0i32, |acc, b| {
        let at = b[0] as usize;
        weights(b[1])
            .iter()
            .zip(&x[at..at + BLOCK])
            .fold(acc, |acc, (&w, &x)| acc.wrapping_add(w as i32 * x as i32))
    })
}

/// Checks a block-sparse dense layer's arguments.
pub fn check_fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: usize,
    weights: &Blocks,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    let n = g.out_features as usize;
    weights.check(n, g.in_features as usize)?;
    stage.check(n, bias)
}

/// Block-sparse int8 dense layer: rows are output features.
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(dense) = prepared::find(&g.as_conv(), weights) {
        // Its blocks were checked once, when the dense copy was made.
        return crate::int8::fully_connected(g, stage, input, dense, bias, output);
    }
    check_fully_connected(g, stage, input.len(), weights, bias, output.len())?;
    let m = Matrix {
        pixels: input.len() / g.in_features.max(1) as usize,
        columns: g.in_features as usize,
        rows: g.out_features as usize,
    };
    m.run(stage, input, weights, bias, output);
    Ok(())
}

/// Checks a block-sparse convolution's arguments: a pointwise one.
pub fn check_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: usize,
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_conv_io(input, output)?;
    ensure(
        is_pointwise(g),
        "block-sparse filters: only pointwise convolutions (1x1, stride 1, no padding)",
    )?;
    filter.check(g.output.c as usize, g.input.c as usize)?;
    stage.check(g.output.c as usize, bias)
}

/// Block-sparse pointwise int8 convolution: each pixel's input channels
/// are a row of the matrix product.
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(dense) = prepared::find(g, filter) {
        // Its blocks were checked once, when the dense copy was made.
        return crate::int8::conv2d(g, stage, input, dense, bias, output);
    }
    check_conv2d(g, stage, input.len(), filter, bias, output.len())?;
    let m = Matrix {
        pixels: (g.input.n * g.input.h * g.input.w) as usize,
        columns: g.input.c as usize,
        rows: g.output.c as usize,
    };
    m.run(stage, input, filter, bias, output);
    Ok(())
}

/// Whether the host's dense kernels at the selected level run a layer of
/// geometry `g` (a dense layer as a 1x1 convolution over its batch) with
/// these blocks faster than the block kernel. The block kernel is AVX-512
/// VNNI's; it fills its vectors with sixteen pixels, and its fixed work
/// (requantizing pixels in lanes, transposing inputs and outputs) is
/// about 45% of the dense kernel's time. On an AMD EPYC with AVX-512,
/// DS-CNN's pointwise layers took 0.72-0.78 of the dense kernel's time
/// with a fifth of the blocks kept and 1.04-1.12 with half, profiled in the
/// model (`bench run suites/quickstart.toml --profile`; criterion, alone:
/// 0.63 and 0.85). Past 45% kept, dense.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub fn prefers_dense(g: &ConvGeometry, w: &Blocks) -> bool {
    let pixels = (g.output.n * g.output.h * g.output.w) as usize;
    let all = g.output.c as usize * g.depth() / BLOCK;
    crate::x86::selected() != crate::x86::Isa::Avx512
        || pixels < 16
        || 20 * (w.entries.len() / 2) > 9 * all
}

/// Block-sparse filters of prepared models written out dense once, where
/// the host's dense kernels run them faster ([`prefers_dense`]); found
/// again by the address of the blocks, as [`super::prepared`]'s are.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod prepared {
    use super::Blocks;
    use crate::geometry::ConvGeometry;
    use crate::x86::Copies;

    /// The addresses of the row pointers and entries, the entries' length,
    /// and the geometry (a dense layer's as a 1x1 convolution).
    type Key = ((usize, usize, usize), ConvGeometry);

    static DENSE: Copies<Key> = Copies::new();

    fn key(g: &ConvGeometry, w: &Blocks) -> Key {
        let (rows, entries) = (w.row_ptr.as_ptr() as usize, w.entries.as_ptr() as usize);
        ((rows, entries, w.entries.len()), *g)
    }

    /// The dense copy (`[rows, columns]`) of `w` for `g`, made on the first
    /// call; `None` for blocks that do not fit `g`.
    pub fn densify(g: &ConvGeometry, w: &Blocks<'static>) -> Option<&'static [i8]> {
        let (rows, columns) = (g.output.c as usize, g.depth());
        w.check(rows, columns).ok()?;
        Some(DENSE.get_or_make(key(g, w), || {
            let mut dense = std::vec![0i8; rows * columns];
            for (o, row) in dense.chunks_exact_mut(columns).enumerate() {
                for b in w.row(o).chunks_exact(2) {
                    let at = b[0] as usize;
                    row[at..at + 4].copy_from_slice(&super::weights(b[1]));
                }
            }
            dense
        }))
    }

    /// The dense copy of `w` for `g`, if a prepared model's (its blocks
    /// checked when it was made) and the dense kernels are the faster.
    pub fn find(g: &ConvGeometry, w: &Blocks) -> Option<&'static [i8]> {
        DENSE
            .find(&key(g, w))
            .filter(|_| super::prefers_dense(g, w))
    }
}

/// `output[p][o] = requantize(sum(weights[o] * (input[p] + offset)))`:
/// `pixels` input rows of `columns` values, `rows` output channels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Matrix {
    pub pixels: usize,
    pub columns: usize,
    pub rows: usize,
}

impl Matrix {
    /// The product (arguments checked): the host's vector kernel if it has
    /// one, else output channel by output channel.
    fn run(
        &self,
        stage: &OutputStage,
        input: &[i8],
        w: &Blocks,
        bias: Option<&[i32]>,
        output: &mut [i8],
    ) {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        if crate::int8::x86::block_matrix(self, stage, input, w, bias, output) {
            return;
        }
        #[cfg(arm_dsp)]
        if crate::int8::arm_dsp::blocks::matrix(self, stage, input, w, bias, output) {
            return;
        }
        let Matrix {
            pixels,
            columns,
            rows,
        } = *self;
        for o in 0..rows {
            let row = w.row(o);
            let requant = ChannelRequant::new(stage.requant[o], stage.rounding);
            let base = bias.map_or(0, |b| b[o]);
            // The input offset: once per row as `offset * sum(w)` in the
            // portable loop, per block on DSP cores.
            let offset = match cfg!(arm_dsp) {
                true => 0,
                false => weight_sum(row).wrapping_mul(stage.input_offset),
            };
            for p in 0..pixels {
                let x = &input[p * columns..(p + 1) * columns];
                let acc = dot(row, x, stage.input_offset).wrapping_add(offset);
                output[p * rows + o] = stage.saturate(requant.apply(acc.wrapping_add(base)));
            }
        }
    }
}
