//! Block-sparse int8 weights: a weight matrix stored as blocks of four
//! consecutive weights of one row (TFLite's 1x4 block sparsity), keeping
//! only the blocks that hold a non-zero. Rows are output channels: a dense
//! layer's `[out, in]` matrix, or a convolution's filter (OHWI) as
//! `[out_channels, kh * kw * in_channels]`, whose rows of input are its
//! pixels' receptive fields. A block maps onto one SIMD step of four byte
//! products (VPDPBUSD lanes, two SMLADs), so the kernels' work is
//! proportional to the stored blocks, with the dense kernels' arithmetic
//! on each.
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
        // One pass over the blocks (every call checks them): each row's
        // offsets rise, whole blocks inside the row.
        for r in 0..rows {
            let mut lowest = 0;
            for b in self.row(r).chunks_exact(2) {
                let at = b[0] as usize;
                if at < lowest || at >= columns || !at.is_multiple_of(BLOCK) {
                    ensure(
                        at < columns && at.is_multiple_of(BLOCK),
                        "block offsets: must be whole blocks inside the row",
                    )?;
                    return Err(KernelError::Param {
                        what: "block offsets: must rise within each row",
                    });
                }
                lowest = at + 1;
            }
        }
        Ok(())
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
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::int8::x86::block_conv2d(&g.as_conv(), stage, input, weights, bias, output) {
        return Ok(());
    }
    let m = Matrix {
        pixels: input.len() / g.in_features.max(1) as usize,
        columns: g.in_features as usize,
        rows: g.out_features as usize,
    };
    m.run(stage, input, weights, bias, output);
    Ok(())
}

/// Checks a block-sparse convolution's arguments: rows are output
/// channels, columns the receptive field (`kh * kw * ic`, a multiple of four).
pub fn check_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: usize,
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    let rows = g.output.c as usize;
    super::check_layer(g, stage, (input, output), bias, || {
        filter.check(rows, g.depth())
    })
}

/// Block-sparse int8 convolution: a pointwise one as a matrix product
/// (each pixel's input channels a row), a larger window over each
/// pixel's receptive field (in `[kh, kw, ic]` order, as OHWI filters are).
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
    // A prepared model's blocks were checked once, at preparation.
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    let checked = prepared::checked(g, filter);
    #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
    let checked = false;
    let (rows, lengths) = (g.output.c as usize, (input.len(), output.len()));
    super::check_layer(g, stage, lengths, bias, || match checked {
        true => Ok(()),
        false => filter.check(rows, g.depth()),
    })?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::int8::x86::block_conv2d(g, stage, input, filter, bias, output) {
        return Ok(());
    }
    if is_pointwise(g) {
        let m = Matrix {
            pixels: (g.input.n * g.input.h * g.input.w) as usize,
            columns: g.input.c as usize,
            rows: g.output.c as usize,
        };
        m.run(stage, input, filter, bias, output);
        return Ok(());
    }
    #[cfg(arm_dsp)]
    if g.depth() <= crate::int8::conv::COLUMN {
        use crate::int8::arm_dsp::conv::{conv2d, Filter};
        conv2d(g, stage, input, Filter::Blocks(filter), bias, output);
        return Ok(());
    }
    fields(g, stage, input, filter, bias, output);
    Ok(())
}

/// A convolution with a larger window (arguments checked): where every
/// block lies inside one tap (`ic % 4 == 0`), output channel by output
/// channel walking each row's blocks beside the taps ([`by_taps`]); else
/// fields up to [`COLUMN`](crate::int8::conv::COLUMN) values gathered, and
/// deeper ones element by element ([`crossing_taps`]).
fn fields(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    if (g.input.c as usize).is_multiple_of(BLOCK) {
        by_taps(g, stage, input, filter, bias, output)
    } else if g.depth() <= crate::int8::conv::COLUMN {
        gathered(g, stage, input, filter, bias, output)
    } else {
        crossing_taps(g, stage, input, filter, bias, output)
    }
}

/// How a row's field offsets map onto the input: a block's input element
/// is the window's origin plus its field offset plus a tap's `delta`,
/// which changes only when the walk passes into the next tap (blocks rise
/// within a row, so each row is one walk through the taps).
#[derive(Clone, Copy)]
struct TapWalk {
    /// Input channels: field values per tap.
    ic: usize,
    kernel_w: u32,
    /// `delta` from a tap to the next one in a kernel row ...
    next_column: usize,
    /// ... and from a row's last tap to the next row's first.
    next_row: usize,
}

impl TapWalk {
    fn new(g: &ConvGeometry) -> Self {
        let (w, ic) = (&g.window, g.input.c as usize);
        let column = w.dilation_w as usize * ic;
        let row = w.dilation_h as usize * g.input.w as usize * ic;
        TapWalk {
            ic,
            kernel_w: w.kernel_w,
            next_column: column.wrapping_sub(ic),
            next_row: row
                .wrapping_sub((w.kernel_w as usize - 1) * column)
                .wrapping_sub(ic),
        }
    }
}

/// The walk's position: the current tap's column in the kernel, the
/// field offset where it ends, and its `delta` (wrapping: input offset of
/// the tap minus its first field offset).
#[derive(Clone, Copy)]
struct TapAt {
    kx: u32,
    end: usize,
    delta: usize,
}

impl TapAt {
    /// The first tap, where field offsets are input offsets.
    fn first(walk: &TapWalk) -> Self {
        TapAt {
            kx: 0,
            end: walk.ic,
            delta: 0,
        }
    }

    /// Moves on to the tap holding field offset `start`.
    #[inline(always)]
    fn reach(&mut self, start: usize, walk: &TapWalk) {
        while start >= self.end {
            self.kx += 1;
            self.end += walk.ic;
            if self.kx == walk.kernel_w {
                self.kx = 0;
                self.delta = self.delta.wrapping_add(walk.next_row);
            } else {
                self.delta = self.delta.wrapping_add(walk.next_column);
            }
        }
    }
}

/// `sum(w * x)` over a row's blocks for the `P` windows starting at
/// `origin + j * step`, which lie inside the input: each block's weights
/// read once for all of them.
///
/// # Safety
/// The windows must lie inside `input`, the row's blocks inside the field
/// (checked by [`Blocks::check`]) and each block inside one tap.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn tap_dots<const P: usize>(
    row: &[u32],
    input: &[i8],
    origin: usize,
    step: usize,
    walk: &TapWalk,
) -> [i32; P] {
    let x = input.as_ptr().add(origin);
    let mut tap = TapAt::first(walk);
    let mut acc = [0i32; P];
    for b in row.chunks_exact(2) {
        let start = b[0] as usize;
        tap.reach(start, walk);
        let w = weights(b[1]).map(i32::from);
        let mut at = x.add(start.wrapping_add(tap.delta));
        for a in acc.iter_mut() {
            debug_assert!(at as usize + BLOCK <= input.as_ptr_range().end as usize);
            let sum = w[0] * *at as i32 + w[1] * *at.add(1) as i32 + w[2] * *at.add(2) as i32;
            *a = a.wrapping_add(sum + w[3] * *at.add(3) as i32);
            at = at.add(step);
        }
    }
    acc
}

/// The convolution output channel by output channel, when every block
/// lies inside one tap: pixels whose windows lie inside the input four at
/// a time (each block's weights loaded once for the four), the others
/// alone with the taps in the padding skipped.
#[allow(unsafe_code)]
fn by_taps(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (oh, ow, oc) = (g.output.h, g.output.w, g.output.c as usize);
    let walk = TapWalk::new(g);
    let step = g.window.stride_w as usize * walk.ic;
    let (rows, columns) = g.inside_windows();
    for o in 0..oc {
        let row = filter.row(o);
        let requant = ChannelRequant::new(stage.requant[o], stage.rounding);
        let bias = bias.map_or(0, |b| b[o]);
        // Inside the input the input offset is added once, as `offset * sum(w)`.
        let inside = bias.wrapping_add(weight_sum(row).wrapping_mul(stage.input_offset));
        let finish = |acc: i32| stage.saturate(requant.apply(acc));
        for b in 0..g.output.n {
            for oy in 0..oh {
                let first = ((b * oh + oy) * ow) as usize;
                let inner = match rows.contains(&oy) {
                    true => columns.clone(),
                    false => 0..0,
                };
                let mut ox = 0;
                while ox < ow {
                    let out = (first + ox as usize) * oc + o;
                    let origin = || g.padded_origin((b, oy, ox));
                    if inner.contains(&ox) && ox + 4 <= inner.end {
                        // SAFETY: the four windows lie inside the input, and
                        // `check` and `ic % 4 == 0` keep each block in a tap.
                        let sums = unsafe { tap_dots::<4>(row, input, origin(), step, &walk) };
                        for (j, sum) in sums.into_iter().enumerate() {
                            output[out + j * oc] = finish(sum.wrapping_add(inside));
                        }
                        ox += 4;
                        continue;
                    }
                    let sum = if inner.contains(&ox) {
                        // SAFETY: as above, for one window.
                        let [sum] = unsafe { tap_dots::<1>(row, input, origin(), step, &walk) };
                        sum.wrapping_add(inside)
                    } else {
                        edge_dot(g, stage, input, row, &walk, (b, oy, ox)).wrapping_add(bias)
                    };
                    output[out] = finish(sum);
                    ox += 1;
                }
            }
        }
    }
}

/// `sum(w * (x + offset))` over a row's blocks for pixel `(b, oy, ox)`,
/// whose window crosses the padding: blocks of taps in the padding add
/// nothing and are skipped.
fn edge_dot(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    row: &[u32],
    walk: &TapWalk,
    (b, oy, ox): (u32, u32, u32),
) -> i32 {
    let (w, ic) = (&g.window, walk.ic);
    // The input offset of tap `tap` (its first field offset `tap * ic`),
    // or None in the padding.
    let tap_input = |tap: usize| {
        let (ky, kx) = (tap as u32 / w.kernel_w, tap as u32 % w.kernel_w);
        let (iy, ix) = (w.in_y(oy, ky), w.in_x(ox, kx));
        let inside = (0..g.input.h as i32).contains(&iy) && (0..g.input.w as i32).contains(&ix);
        let pixel = |(iy, ix)| ((b * g.input.h + iy) * g.input.w + ix) as usize;
        inside.then(|| pixel((iy as u32, ix as u32)) * ic)
    };
    let (mut acc, mut tap, mut at) = (0i32, 0, tap_input(0));
    for block in row.chunks_exact(2) {
        let start = block[0] as usize;
        if start >= (tap + 1) * ic {
            tap = start / ic;
            at = tap_input(tap);
        }
        if let Some(at) = at {
            let x = &input[at + start - tap * ic..][..BLOCK];
            for (w, &x) in weights(block[1]).into_iter().zip(x) {
                acc = acc.wrapping_add(w as i32 * (x as i32 + stage.input_offset));
            }
        }
    }
    acc
}

/// The convolution pixel by pixel (arguments checked) for blocks that may
/// span two taps (`ic % 4 != 0`) in fields too deep to gather: each row's
/// blocks walked once per pixel beside the taps inside the input, a block
/// that spans two taps visited for each; padded taps add nothing.
fn crossing_taps(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (ic, oc, offset) = (g.input.c as usize, g.output.c as usize, stage.input_offset);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        for o in 0..oc {
            let row = filter.row(o);
            let (mut acc, mut first) = (0i32, 0);
            g.for_each_tap(b, oy, ox, |tap, at| {
                let (lo, hi) = (tap * ic, (tap + 1) * ic);
                let x = &input[at * ic..][..ic];
                // `check` keeps a row's offsets increasing.
                while first < row.len() && row[first] as usize + BLOCK <= lo {
                    first += 2;
                }
                for block in row[first..].chunks_exact(2) {
                    let start = block[0] as usize;
                    if start >= hi {
                        break;
                    }
                    for (e, w) in weights(block[1]).into_iter().enumerate() {
                        if let Some(k) = (start + e).checked_sub(lo).filter(|&k| k < ic) {
                            acc = acc.wrapping_add(w as i32 * (x[k] as i32 + offset));
                        }
                    }
                }
            });
            output[pixel * oc + o] = stage.finish_biased(acc, bias, o);
        }
    });
}

/// The convolution by quads of pixels whose receptive fields are gathered
/// (padded taps hold `-offset`, so they add nothing) and multiplied as the
/// portable matrix product's rows are ([`dots4`]).
fn gathered(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    use crate::int8::conv::{gather, COLUMN};
    let (depth, oc) = (g.depth(), g.output.c as usize);
    let pad = (-stage.input_offset) as i8;
    let mut fields = [pad; 4 * COLUMN];
    let (mut first, mut filled) = (0, 0);
    let mut finish = |fields: &[i8], first: usize, n: usize| {
        for o in 0..oc {
            let row = filter.row(o);
            let offset = weight_sum(row).wrapping_mul(stage.input_offset);
            let sums = match n {
                4 => dots4(row, fields, depth),
                _ => core::array::from_fn(|j| dot(row, &fields[j * depth..][..depth], 0)),
            };
            for (j, acc) in sums.into_iter().take(n).enumerate() {
                let acc = acc.wrapping_add(offset);
                output[(first + j) * oc + o] = stage.finish_biased(acc, bias, o);
            }
        }
    };
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        if filled == 0 {
            first = pixel;
        }
        gather(
            g,
            input,
            b,
            oy,
            ox,
            pad,
            &mut fields[filled * depth..][..depth],
        );
        filled += 1;
        if filled == 4 {
            finish(&fields[..4 * depth], first, 4);
            filled = 0;
        }
    });
    if filled > 0 {
        finish(&fields[..4 * depth], first, filled);
    }
}

/// Whether the host's dense kernels at the selected level run a layer of
/// geometry `g` (a dense layer as a 1x1 convolution over its batch) with
/// these blocks faster than the block kernels, which fill their vectors
/// with sixteen pixels (fewer, and dense).
///
/// AVX-512 VNNI's block kernel runs pointwise layers (larger windows run
/// dense); its fixed work (requantizing pixels in lanes, transposing
/// inputs and outputs) is about 45% of the dense kernel's time. On an AMD
/// EPYC with AVX-512, DS-CNN's pointwise layers took 0.72-0.78 of the
/// dense kernel's time with a fifth of the blocks kept and 1.04-1.12 with
/// half, profiled in the model (`bench run suites/quickstart.toml
/// --profile`; criterion, alone: 0.63 and 0.85). Past 45% kept, dense.
///
/// AVX2's block kernel runs any window. On an AMD EPYC without AVX-512
/// (`cargo bench -p bench-kernels --bench ratios`, fastest of 300 rounds
/// timed in turn against int8 with its filter packed once), three
/// quarters of the blocks kept took 0.70-0.93 of the dense kernel's time
/// on ResNet-8's 3x3 layers and shortcuts and DS-CNN's first and
/// pointwise layers and 1.03 on the 8x8x64 3x3 layer, half 0.52-0.86, a
/// fifth 0.29-0.76 (widening the fields and requantizing are most of a
/// layer with few values a field). Past two thirds kept, dense.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub fn prefers_dense(g: &ConvGeometry, w: &Blocks) -> bool {
    use crate::x86::{selected, Isa};
    let pixels = (g.output.n * g.output.h * g.output.w) as usize;
    let (all, kept) = (g.output.c as usize * g.depth() / BLOCK, w.entries.len() / 2);
    pixels < 16
        || match selected() {
            Isa::Avx512 => !is_pointwise(g) || 20 * kept > 9 * all,
            Isa::Avx2 => 3 * kept > 2 * all,
            Isa::Portable => true,
        }
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

    /// The prepared filters left block-sparse, their blocks checked once.
    static CHECKED: Copies<Key, ()> = Copies::new();

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

    /// Checks `w`'s blocks for `g` once, for every later call of a
    /// prepared model's layer (the check walks every block: a tenth of
    /// ResNet-8's 8x8x64 layer at half the blocks kept); whether they fit.
    pub fn check_once(g: &ConvGeometry, w: &Blocks<'static>) -> bool {
        if w.check(g.output.c as usize, g.depth()).is_err() {
            return false;
        }
        CHECKED.get_or_make(key(g, w), || ());
        true
    }

    /// Whether `w`'s blocks were checked for `g` by [`check_once`].
    pub(crate) fn checked(g: &ConvGeometry, w: &Blocks) -> bool {
        CHECKED.find(&key(g, w)).is_some()
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
            let mut put = |p: usize, acc: i32| {
                let acc = acc.wrapping_add(offset).wrapping_add(base);
                output[p * rows + o] = stage.saturate(requant.apply(acc));
            };
            let whole = if cfg!(arm_dsp) { 0 } else { pixels / 4 * 4 };
            for p in (0..whole).step_by(4) {
                let sums = dots4(row, &input[p * columns..(p + 4) * columns], columns);
                for (j, acc) in sums.into_iter().enumerate() {
                    put(p + j, acc);
                }
            }
            for p in whole..pixels {
                put(
                    p,
                    dot(
                        row,
                        &input[p * columns..(p + 1) * columns],
                        stage.input_offset,
                    ),
                );
            }
        }
    }
}

/// `sum(w * x)` over a row's blocks for the four input rows of `x`
/// (`columns` values each), each block's weights read once for the four:
/// the portable loop's pixels four at a time.
fn dots4(row: &[u32], x: &[i8], columns: usize) -> [i32; 4] {
    let rows: [&[i8]; 4] = core::array::from_fn(|j| &x[j * columns..(j + 1) * columns]);
    let mut acc = [0i32; 4];
    for b in row.chunks_exact(2) {
        let (at, w) = (b[0] as usize, weights(b[1]).map(i32::from));
        for (acc, x) in acc.iter_mut().zip(rows) {
            let x = &x[at..at + BLOCK];
            let sum = w[0] * x[0] as i32 + w[1] * x[1] as i32 + w[2] * x[2] as i32;
            *acc = acc.wrapping_add(sum + w[3] * x[3] as i32);
        }
    }
    acc
}
