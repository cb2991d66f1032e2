//! Unstructured-sparse int8 weights: dense and conv kernels whose work is
//! proportional to the number of non-zero weights.
//!
//! Format (CSR): the weight matrix has one row per output channel. For a
//! dense layer the columns are input features; for a convolution a row is
//! split by kernel tap, so `row_ptr` has `out_channels * taps + 1` entries.
//! Each non-zero is one [`entry`] word: the weight in the low half and, in
//! the high half, where its input lies relative to the window's first
//! element (a dense layer's input feature; a convolution's tap offset in
//! the NHWC input plus the input channel). A pixel whose window lies inside
//! the input walks all of its output channel's entries in one loop, reading
//! `input[origin + offset]`: one load for the entry, none for the column.
//! `row_ptr` must start at 0, never decrease and end at `entries.len()`.
//!
//! [`blocks`] holds the structured form: blocks of four weights.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::{ConvGeometry, Shape, Window};
use crate::int8::{DenseGeometry, OutputClamp, OutputStage};
use crate::quant::{ChannelRequant, Requant, Rounding, RoundingDown};

pub mod blocks;
pub mod depthwise;
#[cfg(arm_dsp)]
mod pointwise;
pub mod windows;

pub use depthwise::{check as check_depthwise_conv2d, depthwise_conv2d};

/// A compressed-sparse-row int8 matrix of [`entry`] words.
#[derive(Clone, Copy, Debug)]
pub struct Csr<'a> {
    /// Start of each row in `entries`, plus the end.
    pub row_ptr: &'a [u32],
    /// One [`entry`] per non-zero.
    pub entries: &'a [u32],
}

/// The entry of a non-zero weight whose input is `offset` elements past
/// the window's first: `offset << 16 | weight` (the weight sign-extended to
/// 16 bits, so that DSP cores multiply by the low half as it is).
pub const fn entry(offset: u16, weight: i8) -> u32 {
    (offset as u32) << 16 | weight as i16 as u16 as u32
}

/// The weight of an [`entry`].
#[inline(always)]
const fn weight(e: u32) -> i32 {
    e as i16 as i32
}

/// The input offset of an [`entry`].
#[inline(always)]
const fn offset(e: u32) -> usize {
    (e >> 16) as usize
}

impl<'a> Csr<'a> {
    /// Checks the row structure for `rows` rows.
    pub fn check(&self, rows: usize) -> Result<(), KernelError> {
        expect_len("sparse row pointers", self.row_ptr.len(), rows + 1)?;
        ensure(
            self.row_ptr.first() == Some(&0)
                && self.row_ptr.last().copied() == Some(self.entries.len() as u32),
            "sparse row pointers: must run from 0 to the non-zero count",
        )?;
        ensure(
            self.row_ptr.windows(2).all(|w| w[0] <= w[1]),
            "sparse row pointers: must not decrease",
        )
    }

    /// The entries of rows `first..end`.
    #[inline(always)]
    pub(crate) fn rows(&self, first: usize, end: usize) -> &'a [u32] {
        &self.entries[self.row_ptr[first] as usize..self.row_ptr[end] as usize]
    }

    /// The CSR arrays `(row_ptr, entries)` of a dense layer's row-major
    /// `[out_features, in_features]` weights, or `None` when an input
    /// feature does not fit an entry's 16 bits. Host-side helper.
    #[cfg(feature = "std")]
    pub fn dense_layer(
        dense: &[i8],
        in_features: usize,
    ) -> Option<(std::vec::Vec<u32>, std::vec::Vec<u32>)> {
        Self::pack(dense, in_features, |_| 0)
    }

    /// The CSR arrays `(row_ptr, entries)` of a convolution's
    /// `[out_channels, kh, kw, in_channels]` filter, one row per output
    /// channel and tap, or `None` when an offset does not fit an entry's
    /// 16 bits. Host-side helper.
    #[cfg(feature = "std")]
    pub fn conv(
        dense: &[i8],
        g: &ConvGeometry,
    ) -> Option<(std::vec::Vec<u32>, std::vec::Vec<u32>)> {
        let taps = g.window.taps();
        Self::pack(dense, g.input.c as usize, |row| tap_offset(g, row % taps))
    }

    /// The CSR arrays of a convolution's `[out_channels, kh, kw,
    /// in_channels]` filter in the field form: one row per output channel,
    /// an entry's offset its element of the receptive field (`[kh, kw,
    /// ic]`, the filter row's own order), run over gathered windows
    /// ([`windows`]); `None` when an offset does not fit an entry's 16
    /// bits. Host-side helper.
    #[cfg(feature = "std")]
    pub fn conv_fields(
        dense: &[i8],
        g: &ConvGeometry,
    ) -> Option<(std::vec::Vec<u32>, std::vec::Vec<u32>)> {
        Self::pack(dense, g.depth(), |_| 0)
    }

    /// The CSR arrays of a depthwise convolution's `[1, kh, kw, oc]`
    /// filter in [`depthwise`]'s form: one row per output channel `o`, its
    /// non-zeros reading input channel `o / multiplier` of the gathered
    /// window (`[kh * kw, ic]`); `None` when an offset does not fit an
    /// entry. Host-side helper.
    #[cfg(feature = "std")]
    pub fn depthwise(
        dense: &[i8],
        g: &ConvGeometry,
        multiplier: u32,
    ) -> Option<(std::vec::Vec<u32>, std::vec::Vec<u32>)> {
        let (taps, ic, oc) = (g.window.taps(), g.input.c as usize, g.output.c as usize);
        let m = multiplier.max(1) as usize;
        let (mut row_ptr, mut entries) = (std::vec![0u32], std::vec::Vec::new());
        for o in 0..oc {
            for tap in 0..taps {
                let w = *dense.get(tap * oc + o)?;
                if w != 0 {
                    entries.push(entry(u16::try_from(tap * ic + o / m).ok()?, w));
                }
            }
            row_ptr.push(entries.len() as u32);
        }
        Some((row_ptr, entries))
    }

    #[cfg(feature = "std")]
    fn pack(
        dense: &[i8],
        columns: usize,
        row_offset: impl Fn(usize) -> usize,
    ) -> Option<(std::vec::Vec<u32>, std::vec::Vec<u32>)> {
        let (mut row_ptr, mut entries) = (std::vec![0u32], std::vec::Vec::new());
        for (r, row) in dense.chunks_exact(columns.max(1)).enumerate() {
            for (c, &v) in row.iter().enumerate().filter(|(_, &v)| v != 0) {
                let at = u16::try_from(row_offset(r) + c).ok()?;
                entries.push(entry(at, v));
            }
            row_ptr.push(entries.len() as u32);
        }
        Some((row_ptr, entries))
    }
}

/// A convolution's sparse filter read as elements of the gathered
/// receptive field (`[kh, kw, ic]`): tap `tap`'s entry of channel `c` is
/// element `tap * ic + c`.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub(crate) struct Field<'a> {
    g: &'a ConvGeometry,
    filter: &'a Csr<'a>,
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
impl<'a> Field<'a> {
    pub(crate) fn new(g: &'a ConvGeometry, filter: &'a Csr<'a>) -> Self {
        Field { g, filter }
    }

    /// Output channel `o`'s non-zeros as `f(field element, weight)`.
    #[inline(always)]
    pub(crate) fn for_each_element(&self, o: usize, mut f: impl FnMut(usize, i8)) {
        if is_field_form(self.g, self.filter) {
            for &e in self.filter.rows(o, o + 1) {
                f(offset(e), weight(e) as i8);
            }
            return;
        }
        let (taps, ic) = (self.g.window.taps(), self.g.input.c as usize);
        for tap in 0..taps {
            let first = (tap * ic).wrapping_sub(tap_offset(self.g, tap));
            for &e in self.filter.rows(o * taps + tap, o * taps + tap + 1) {
                f(first.wrapping_add(offset(e)), weight(e) as i8);
            }
        }
    }

    /// The number of non-zeros.
    pub(crate) fn nonzeros(&self) -> usize {
        self.filter.entries.len()
    }
}

/// Sparse convolution filters of prepared models, written out dense once
/// where the host's dense kernels run them faster than its sparse ones
/// (AVX-512 VNNI's byte products against the sparse kernels' pairs; see
/// [`prefers_dense`]). Looked up by the address of the filter's entries,
/// sound as the int8 packings are: only `'static` models are prepared,
/// their memory never freed nor changed, and the copies are leaked.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod prepared {
    use super::{Csr, Field};
    use crate::geometry::ConvGeometry;
    use crate::x86::Copies;

    /// The addresses of a filter's row pointers and entries, the entries'
    /// length, and the geometry it was laid out for.
    pub(crate) type Key = ((usize, usize, usize), ConvGeometry);

    static DENSE: Copies<Key> = Copies::new();

    pub(crate) fn key(g: &ConvGeometry, filter: &Csr) -> Key {
        let (rows, entries) = (filter.row_ptr.as_ptr(), filter.entries.as_ptr());
        ((rows as usize, entries as usize, filter.entries.len()), *g)
    }

    /// The dense copy (`[oc, depth]`) of `filter`, made on the first call;
    /// `None` for a filter whose entries do not fit `g` (left for the
    /// kernel's own check to report).
    pub fn densify(g: &ConvGeometry, filter: &Csr<'static>) -> Option<&'static [i8]> {
        super::check_filter(g, filter).ok()?;
        Some(DENSE.get_or_make(key(g, filter), || {
            let depth = g.depth();
            let mut dense = std::vec![0i8; g.output.c as usize * depth];
            let field = Field::new(g, filter);
            for (o, row) in dense.chunks_exact_mut(depth).enumerate() {
                field.for_each_element(o, |k, w| row[k] = w);
            }
            dense
        }))
    }

    /// The dense copy of `filter` for `g`, if a prepared model's (its
    /// entries checked when it was made).
    pub fn find(g: &ConvGeometry, filter: &Csr) -> Option<&'static [i8]> {
        DENSE.find(&key(g, filter))
    }
}

/// Whether the host's dense kernels at the selected level run `filter`
/// faster than its sparse ones.
///
/// On AVX-512 VNNI, whose byte products make a dense layer cheap, unless
/// fewer than one weight in twelve is kept (criterion, DS-CNN's pointwise
/// layer on an AMD EPYC with AVX-512: dense 6.6 us, sparse 10.3 us at 80%
/// zeros and 5.6 us at 95%).
///
/// On AVX2, unless at most two fifths are kept (a quarter where a field
/// holds more than 512 values) of a layer whose fields hold at least 64
/// values or are read in place (one input pixel each, or stride-1 windows
/// over the input laid out once), not gathered.
/// Timed on an AMD EPYC without AVX-512 against int8 with its filter
/// packed once, the sparse filter's pairs made once as for a prepared
/// model (`cargo bench -p bench-kernels --bench ratios`, fastest of 300
/// rounds timed in turn, and the same kernels alternated as separate
/// processes, fastest of eight): on ResNet-8's 3x3 layers of 144 and 288
/// values a field, a third kept took 0.83 of the dense time, two fifths
/// 0.88-0.99, half 1.07-1.28 (DS-CNN's pointwise layer 1.05-1.08); its 3x3
/// layer of 576 values a field took 1.0 at a third kept and 0.62-0.75 at
/// a fifth; the first layers (27 and 40 values a field) took 1.75-2.4 at
/// any density gathered pixel by pixel, but ResNet-8's (stride 1) read in
/// place from its input laid out once 0.75 with a fifth kept and 0.81
/// with a third.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub fn prefers_dense(g: &ConvGeometry, filter: &Csr) -> bool {
    use crate::x86::{selected, Isa};
    let weights = g.output.c as usize * g.depth();
    let kept = filter.entries.len();
    match selected() {
        Isa::Avx512 => kept * 12 > weights,
        Isa::Avx2 => {
            // Fields of more than 512 values (32 pixels' transposed past
            // 32 KiB) outgrow the L1 cache: those pay only sparser.
            let (parts, of) = if g.depth() > 512 { (1, 4) } else { (2, 5) };
            let gathered =
                !g.single_pixel_windows() && !crate::int8::x86::sparse_fields_in_place(g);
            kept * of > weights * parts || (g.depth() < 64 && gathered)
        }
        Isa::Portable => false,
    }
}

/// Elements from a window's first input element to tap `tap`'s (NHWC).
#[cfg(feature = "std")]
fn tap_offset(g: &ConvGeometry, tap: usize) -> usize {
    let w = &g.window;
    let (ky, kx) = (tap as u32 / w.kernel_w, tap as u32 % w.kernel_w);
    let rows = (ky * w.dilation_h) as usize;
    let columns = (kx * w.dilation_w) as usize;
    (rows * g.input.w as usize + columns) * g.input.c as usize
}

/// Checks that every entry of row `r` reads one of `columns` elements from
/// `row_offset(r)` on, so the loops over entries read the input unchecked
/// (`row_offset` is called once a row, in order).
pub(crate) fn check_offsets(
    weights: &Csr,
    columns: usize,
    mut row_offset: impl FnMut(usize) -> usize,
) -> Result<(), KernelError> {
    // Every call checks its entries: one wrapping subtraction and one
    // comparison an entry, the outcome of a row's entries gathered
    // without a branch each.
    let inside = weights.row_ptr.windows(2).enumerate().all(|(r, ends)| {
        let first = row_offset(r);
        let entries = weights.entries.get(ends[0] as usize..ends[1] as usize);
        entries.is_some_and(|entries| {
            entries.iter().fold(true, |ok, &e| {
                ok & (offset(e).wrapping_sub(first) < columns)
            })
        })
    });
    ensure(
        inside,
        "sparse entries: must read inside their row's columns",
    )
}

/// Sum of an entry run's weights: the input offset is applied once per
/// output as `offset * sum(w)`, not per product.
pub(crate) fn weight_sum(entries: &[u32]) -> i32 {
    entries.iter().fold(0i32, |s, &e| s.wrapping_add(weight(e)))
}

/// `acc + weight(e) * x`: one SMLABB on DSP cores, the weight being the
/// entry's low half as it is.
#[inline(always)]
fn mac(e: u32, x: i8, acc: i32) -> i32 {
    #[cfg(arm_dsp)]
    {
        crate::int8::arm_dsp::dot::smlabb(e, x as i32 as u32, acc)
    }
    #[cfg(not(arm_dsp))]
    {
        acc.wrapping_add(weight(e) * x as i32)
    }
}

/// `init[j] + sum(w * input[origin + j * step + offset])` over `entries`
/// for the `P` windows `j` starting `step` elements apart, each entry
/// loaded once for all of them. `origin` may wrap below zero (a window
/// starting in the padding) as long as the entries' inputs do not.
///
/// # Safety
/// `origin + j * step + offset`, wrapping, must be below `input.len()` for
/// every entry and `j < P` (checked by [`check_offsets`] and the windows'
/// bounds).
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn dots<const P: usize>(
    entries: &[u32],
    input: &[i8],
    origin: usize,
    step: usize,
    init: [i32; P],
) -> [i32; P] {
    let x = input.as_ptr().wrapping_add(origin);
    #[cfg(arm_dsp)]
    if P == 4 {
        let d = crate::int8::arm_dsp::sparse::gather_dots4(
            entries,
            x,
            step,
            [0, 1, 2, 3].map(|j| init[j % P]),
        );
        return core::array::from_fn(|j| d[j]);
    }
    #[cfg(arm_dsp)]
    if P == 2 {
        let d =
            crate::int8::arm_dsp::sparse::gather_dots2(entries, x, step, [init[0], init[1 % P]]);
        return core::array::from_fn(|j| d[j]);
    }
    let mut acc = init;
    for &e in entries {
        for (j, a) in acc.iter_mut().enumerate() {
            let at = j * step + offset(e);
            debug_assert!(origin.wrapping_add(at) < input.len());
            *a = mac(e, *x.wrapping_add(at), *a);
        }
    }
    acc
}

/// Checks a sparse dense layer's arguments (lengths and row structure).
pub fn check_fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: usize,
    weights: &Csr,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    let n = g.out_features as usize;
    weights.check(n)?;
    check_offsets(weights, g.in_features as usize, |_| 0)?;
    stage.check(n, bias)
}

/// Sparse int8 dense layer: rows are output features, offsets input features.
#[allow(unsafe_code)]
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    // The host's dense kernels run a dense layer faster than this loop at
    // any sparsity the lowering chooses it for.
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(dense) = prepared::find(&g.as_conv(), weights) {
        // Its entries were checked once, when the dense copy was made.
        return crate::int8::fully_connected(g, stage, input, dense, bias, output);
    }
    check_fully_connected(g, stage, input.len(), weights, bias, output.len())?;
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    for o in 0..n {
        let entries = weights.rows(o, o + 1);
        let offset = weight_sum(entries).wrapping_mul(stage.input_offset);
        for (b, out) in output.chunks_exact_mut(n).enumerate() {
            // SAFETY: check_offsets keeps every offset below k.
            let [acc] = unsafe { dots::<1>(entries, input, b * k, 0, [offset]) };
            out[o] = stage.finish_biased(acc, bias, o);
        }
    }
    Ok(())
}

/// Checks a sparse convolution's arguments (lengths and row structure).
pub fn check_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: usize,
    filter: &Csr,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    check_layer(g, stage, (input, output), bias, || check_filter(g, filter))
}

/// A sparse convolution's checks in order: lengths, then its filter (by
/// `filter`, which a prepared model's layer skips: its filter was checked
/// once at preparation), then its output stage.
pub(crate) fn check_layer(
    g: &ConvGeometry,
    stage: &OutputStage,
    (input, output): (usize, usize),
    bias: Option<&[i32]>,
    filter: impl FnOnce() -> Result<(), KernelError>,
) -> Result<(), KernelError> {
    g.check_conv_io(input, output)?;
    filter()?;
    stage.check(g.output.c as usize, bias)
}

/// Checks a sparse convolution filter's rows and that every entry reads
/// inside its tap's channels, or in the field form inside the receptive
/// field.
pub(crate) fn check_filter(g: &ConvGeometry, filter: &Csr) -> Result<(), KernelError> {
    let (oc, taps) = (g.output.c as usize, g.window.taps());
    if is_field_form(g, filter) {
        filter.check(oc)?;
        return check_offsets(filter, g.depth(), |_| 0);
    }
    filter.check(oc * taps)?;
    // Rows go by output channel, then tap: the taps counted on, not
    // divided out (three divisions a row were a fifth of a call of
    // ResNet-8's 8x8x64 layer at a fifth kept).
    let w = &g.window;
    let (ic, iw) = (g.input.c as usize, g.input.w as usize);
    let (mut ky, mut kx) = (0, 0);
    check_offsets(filter, ic, |_| {
        let offset = ((ky * w.dilation_h) as usize * iw + (kx * w.dilation_w) as usize) * ic;
        kx += 1;
        if kx == w.kernel_w {
            (ky, kx) = ((ky + 1) % w.kernel_h, 0);
        }
        offset
    })
}

/// Whether a convolution's sparse filter is in the field form
/// ([`Csr::conv_fields`]: one row per output channel) rather than one row
/// per output channel and tap ([`Csr::conv`]). The row counts tell them
/// apart; over a 1x1 window the two forms are one.
pub(crate) fn is_field_form(g: &ConvGeometry, filter: &Csr) -> bool {
    g.window.taps() > 1 && filter.row_ptr.len() == g.output.c as usize + 1
}

/// Output pixels computed together: each entry is loaded once for all of them.
const PIXELS: usize = 4;

/// Sparse int8 convolution, its filter in one of two forms. The field
/// form ([`Csr::conv_fields`], one row per output channel) runs over
/// gathered windows ([`windows`]). In the other ([`Csr::conv`]) row `o *
/// taps + tap` holds the non-zeros of output channel `o` at that kernel
/// tap, read where they lie in the input: the output goes channel by
/// channel (its requantization unpacked once), and a channel's pixels by
/// rectangles whose windows keep the same taps inside the input
/// ([`rectangle`]): the windows inside the input, and each row and column
/// of those that cross the padding.
pub fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(dense) = prepared::find(g, filter).filter(|_| prefers_dense(g, filter)) {
        // Its entries were checked once, when the dense copy was made.
        return crate::int8::conv2d(g, stage, input, dense, bias, output);
    }
    // A prepared filter's entries were checked once, when its pairs were
    // made (a check took a fifth of a call of ResNet-8's 8x8x64 layer at
    // a fifth kept).
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    let checked = crate::int8::x86::sparse_filter_prepared(g, filter);
    #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
    let checked = false;
    let lengths = (input.len(), output.len());
    check_layer(g, stage, lengths, bias, || match checked {
        true => Ok(()),
        false => check_filter(g, filter),
    })?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        if crate::int8::x86::sparse_conv2d(g, stage, input, filter, bias, output) {
            return Ok(());
        }
    }
    if is_field_form(g, filter) {
        windows::run((g, stage, input, filter, bias, output));
        return Ok(());
    }
    #[cfg(arm_dsp)]
    if pointwise::takes(g) {
        pointwise::conv2d(g, stage, input, filter, bias, output);
        return Ok(());
    }
    // A pointwise convolution's pixels are one row, so that the groups
    // of pixels run on across the image's rows.
    let row = |s: Shape| Shape::new(1, 1, s.n * s.h * s.w, s.c);
    let flat = ConvGeometry {
        input: row(g.input),
        output: row(g.output),
        window: g.window,
    };
    let g = if is_pointwise(g) { &flat } else { g };
    let taps = g.window.taps();
    let inside = g.inside_windows();
    for o in 0..g.output.c as usize {
        let channel = Channel {
            entries: filter.entries,
            rows: &filter.row_ptr[o * taps..][..taps + 1],
            bias: bias.map_or(0, |b| b[o]),
            requant: ChannelRequant::new(stage.requant[o], stage.rounding),
        };
        let args = (g, stage, input, &channel, &inside);
        // The rounding and whether the clamp is all of int8 chosen once.
        match (stage.rounding, stage.full_range()) {
            (Rounding::Double, true) => channel_pixels::<true, true>(args, &mut output[o..]),
            (Rounding::Double, false) => channel_pixels::<true, false>(args, &mut output[o..]),
            (Rounding::Single, _) => channel_pixels::<false, false>(args, &mut output[o..]),
        }
    }
    Ok(())
}

/// One output channel: its row pointers (one per tap, and the end) into
/// the filter's entries, its bias and its requantization.
struct Channel<'a> {
    entries: &'a [u32],
    rows: &'a [u32],
    bias: i32,
    requant: ChannelRequant,
}

impl<'a> Channel<'a> {
    /// The entries of taps `first..end`.
    #[inline(always)]
    fn taps(&self, first: usize, end: usize) -> &'a [u32] {
        &self.entries[self.rows[first] as usize..self.rows[end] as usize]
    }
}

/// A convolution's arguments for one output channel, and the output rows
/// and columns whose windows lie inside the input ([`ConvGeometry::inside_windows`]).
type ChannelArgs<'a> = (
    &'a ConvGeometry,
    &'a OutputStage<'a>,
    &'a [i8],
    &'a Channel<'a>,
    &'a (core::ops::Range<u32>, core::ops::Range<u32>),
);

/// Channel `channel` of every output pixel, into `out` (which starts at
/// the channel's first value), by rectangles of pixels whose windows keep
/// the same taps inside the input. `DOUBLE` and `FULL` as for
/// [`OutputStage::finish_with`].
fn channel_pixels<const DOUBLE: bool, const FULL: bool>(args: ChannelArgs, out: &mut [i8]) {
    let (g, .., (rows, columns)) = args;
    for b in 0..g.output.n {
        for ys in bands(rows.clone(), g.output.h) {
            for xs in bands(columns.clone(), g.output.w) {
                rectangle::<DOUBLE, FULL>(args, b, (ys.clone(), xs), out);
            }
        }
    }
}

/// The output positions along an axis of `n`, in bands whose windows keep
/// the same taps inside the input: each before the run `inside` (the
/// windows inside the input) alone, the run whole, each after it alone.
fn bands(inside: core::ops::Range<u32>, n: u32) -> impl Iterator<Item = core::ops::Range<u32>> {
    let single = |k: u32| k..k + 1;
    let start = inside.start.min(n);
    (0..start)
        .map(single)
        .chain((!inside.is_empty()).then_some(inside.clone()))
        .chain((inside.end.max(start)..n).map(single))
}

/// Channel `channel` of the output pixels `ys` x `xs` of image `b`, whose
/// windows keep the same taps inside the input: a rectangle of the kernel
/// whose rows are runs of the channel's entries (one run where the rows
/// are whole). The pixels go in groups of [`PIXELS`] along the
/// rectangle's rows, or down its columns where fewer pixels than a group
/// fit a row; the windows starting in the padding are addressed from
/// there, wrapping, so that their taps inside land inside the input.
fn rectangle<const DOUBLE: bool, const FULL: bool>(
    (g, stage, input, channel, _): ChannelArgs,
    b: u32,
    (ys, xs): (core::ops::Range<u32>, core::ops::Range<u32>),
    out: &mut [i8],
) {
    let (w, i, o) = (&g.window, g.input, g.output);
    let kys = taps_inside(w.in_y(ys.start, 0), w.dilation_h, w.kernel_h, i.h);
    let kxs = taps_inside(w.in_x(xs.start, 0), w.dilation_w, w.kernel_w, i.w);
    let kw = w.kernel_w as usize;
    // Runs `r < count` of the taps `first + r * stride..` and `len` on.
    let (first, count, len, stride) = match kxs.len() == kw {
        true => (kys.start as usize * kw, 1, kys.len() * kw, 0),
        false => (
            kys.start as usize * kw + kxs.start as usize,
            kys.len(),
            kxs.len(),
            kw,
        ),
    };
    let run = |r: usize| channel.taps(first + r * stride, first + r * stride + len);
    let taps = Taps {
        // One run (whole rows of taps, as every window inside the input
        // has) is found once, not per group.
        only: (count == 1).then(|| run(0)),
        count,
        run: &run,
    };
    let sum: i32 = (0..count).fold(0, |s, r| s.wrapping_add(weight_sum(run(r))));
    // Inputs are read as they are: the offset's term is the weights'.
    let base = channel
        .bias
        .wrapping_add(sum.wrapping_mul(stage.input_offset));
    let (ic, oc) = (i.c as usize, o.c as usize);
    // Steps between neighbours in the input and the output along a line.
    let along_rows = xs.len() >= PIXELS || ys.len() < PIXELS;
    let (steps, lines, pixels) = match along_rows {
        true => ((w.stride_w as usize * ic, oc), ys.clone(), xs.len()),
        false => (
            (w.stride_h as usize * i.w as usize * ic, o.w as usize * oc),
            xs.clone(),
            ys.len(),
        ),
    };
    // A line's sums, then their requantization: the two loops keep their
    // own state in registers.
    let mut sums = [0i32; LINE];
    for line in lines {
        let (oy, ox) = match along_rows {
            true => (line, xs.start),
            false => (ys.start, line),
        };
        let mut origin = g.padded_origin((b, oy, ox));
        let mut at = ((b * o.h + oy) * o.w + ox) as usize * oc;
        let mut left = pixels;
        while left > 0 {
            let n = left.min(LINE);
            let (groups, rest) = sums[..n].as_chunks_mut::<PIXELS>();
            // The sums of P windows from `origin` on.
            macro_rules! window_dots {
                ($p:literal, $origin:expr) => {{
                    // SAFETY: these taps lie inside the input for every
                    // pixel of the rectangle, and check_offsets keeps
                    // every entry inside its tap's channels.
                    #[allow(unsafe_code)]
                    let sums =
                        unsafe { rectangle_dots::<$p>(&taps, input, $origin, steps.0, base) };
                    sums
                }};
            }
            for group in groups.iter_mut() {
                *group = window_dots!(4, origin);
                origin = origin.wrapping_add(PIXELS * steps.0);
            }
            // The last pixels: three as the last four (one group again),
            // two as a pair, one alone.
            if let (3, false) = (rest.len(), groups.is_empty()) {
                let last = window_dots!(4, origin.wrapping_sub(steps.0));
                rest.copy_from_slice(&last[1..]);
                origin = origin.wrapping_add(3 * steps.0);
            } else {
                let (pair, single) = rest.split_at_mut(rest.len() / 2 * 2);
                for pair in pair.chunks_exact_mut(2) {
                    pair.copy_from_slice(&window_dots!(2, origin));
                    origin = origin.wrapping_add(2 * steps.0);
                }
                for sum in single {
                    [*sum] = window_dots!(1, origin);
                    origin = origin.wrapping_add(steps.0);
                }
            }
            finish_sums::<DOUBLE, FULL>(
                stage,
                &channel.requant,
                &sums[..n],
                &mut out[at..],
                steps.1,
            );
            at += n * steps.1;
            left -= n;
        }
    }
}

/// A rectangle's taps as runs of a channel's entries.
struct Taps<'a, 'r> {
    /// The one run, if there is one.
    only: Option<&'a [u32]>,
    count: usize,
    run: &'r dyn Fn(usize) -> &'a [u32],
}

/// [`dots`] over a rectangle's runs of taps, from `base`.
///
/// # Safety
/// As [`dots`], for every run.
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn rectangle_dots<const P: usize>(
    taps: &Taps,
    input: &[i8],
    origin: usize,
    step: usize,
    base: i32,
) -> [i32; P] {
    match taps.only {
        Some(entries) => dots::<P>(entries, input, origin, step, [base; P]),
        None => (0..taps.count).fold([base; P], |acc, r| {
            dots::<P>((taps.run)(r), input, origin, step, acc)
        }),
    }
}

/// A sparse layer's arguments, checked: geometry, stage, input, filter,
/// bias, output.
pub(crate) type LayerArgs<'a, 'o> = (
    &'a ConvGeometry,
    &'a OutputStage<'a>,
    &'a [i8],
    &'a Csr<'a>,
    Option<&'a [i32]>,
    &'o mut [i8],
);

/// The starting value of output channel `o`'s sums when its inputs are
/// read as they are (padding holding the zero point): its bias plus the
/// input offset times the sum of its weights, `entries`.
#[inline(always)]
pub(crate) fn starting_value(
    stage: &OutputStage,
    bias: Option<&[i32]>,
    o: usize,
    entries: &[u32],
) -> i32 {
    let offset = weight_sum(entries).wrapping_mul(stage.input_offset);
    offset.wrapping_add(bias.map_or(0, |b| b[o]))
}

/// [`starting_value`] of the first `starts.len()` output channels of `filter`.
pub(crate) fn starting_values(
    stage: &OutputStage,
    bias: Option<&[i32]>,
    filter: &Csr,
    starts: &mut [i32],
) {
    for (o, start) in starts.iter_mut().enumerate() {
        *start = starting_value(stage, bias, o, filter.rows(o, o + 1));
    }
}

/// One output channel of `P` pixels, its values `channels` apart from
/// `y`: its sums requantized, offset and clamped. `DOUBLE` and `FULL` as
/// for [`OutputStage::finish_with`].
///
/// # Safety
/// `y + (P - 1) * channels` must be writable (the callers' loops over the
/// channels of a group of pixels keep it there without a check per
/// channel).
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn store_channel<const P: usize, const DOUBLE: bool, const FULL: bool>(
    (stage, clamp): (&OutputStage, OutputClamp),
    requant: Requant,
    sums: [i32; P],
    (y, channels): (*mut i8, usize),
) {
    let values = match RoundingDown::new(requant) {
        // The usual case, without a test on the shift per value.
        Some(down) if DOUBLE => down.apply_each(sums).map(|v| clamp.apply::<FULL>(v)),
        _ => {
            let requant = ChannelRequant::new(requant, stage.rounding);
            sums.map(|s| stage.finish_with::<DOUBLE, FULL>(s, &requant))
        }
    };
    for (j, v) in values.into_iter().enumerate() {
        // SAFETY: j < P, so the caller keeps `y + j * channels` writable.
        *y.add(j * channels) = v;
    }
}

/// [`int8::arm_dsp::channels`](crate::int8::arm_dsp::channels)'s frame
/// for every channel of a group of four pixels whose rows `out` holds
/// (`x`, `step` and `step3` left for the caller's form of input), if that
/// loop takes the layer: double rounding, starting values for every
/// channel, and a channel at least.
#[cfg(arm_dsp)]
pub(crate) fn channels_frame(
    stage: &OutputStage,
    filter: &Csr,
    starts: Option<&[i32]>,
    out: &mut [i8],
) -> Option<crate::int8::arm_dsp::channels::Channels> {
    let channels = stage.requant.len();
    let starts = starts.filter(|s| s.len() >= channels)?;
    let fits = filter.row_ptr.len() > channels && out.len() >= 4 * channels;
    if stage.rounding != Rounding::Double || channels == 0 || !fits {
        return None;
    }
    let starts = (starts, stage.requant);
    let mut frame =
        crate::int8::arm_dsp::channels::Channels::new(stage, starts, out, channels, channels);
    frame.ends = filter.row_ptr[1..].as_ptr();
    frame.entries = filter.entries.as_ptr();
    Some(frame)
}

/// Every output channel of a group of `P` pixels whose rows `out` holds,
/// `channels` apart: `dots` of each channel's entries from its starting
/// value (`start`), requantized at once. `DOUBLE` and `FULL` as for
/// [`OutputStage::finish_with`].
///
/// # Safety
/// `filter` must have passed [`Csr::check`] for `channels` rows, `stage`
/// hold `channels` multipliers and `out` `P` rows of `channels` values.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn group_channels<const P: usize, const DOUBLE: bool, const FULL: bool>(
    (stage, clamp): (&OutputStage, OutputClamp),
    filter: &Csr,
    start: impl Fn(usize, &[u32]) -> i32,
    mut dots: impl FnMut(&[u32], i32) -> [i32; P],
    out: &mut [i8],
    channels: usize,
) {
    debug_assert!(filter.row_ptr.len() > channels && out.len() >= P * channels);
    let y = out.as_mut_ptr();
    for (o, &requant) in stage.requant[..channels].iter().enumerate() {
        // SAFETY: `Csr::check` keeps the row pointers rising and inside
        // the entries, one more of them than there are channels.
        let entries = {
            let first = *filter.row_ptr.get_unchecked(o) as usize;
            let end = *filter.row_ptr.get_unchecked(o + 1) as usize;
            filter.entries.get_unchecked(first..end)
        };
        let sums = dots(entries, start(o, entries));
        // SAFETY: o < channels, and `out` holds P rows of them.
        store_channel::<P, DOUBLE, FULL>((stage, clamp), requant, sums, (y.add(o), channels));
    }
}

/// Pixels of a line whose sums are held at once.
const LINE: usize = 64;

/// `out[k * step]` = the requantized `sums[k]` of one output channel.
/// `DOUBLE` and `FULL` as for [`OutputStage::finish_with`].
#[inline(always)]
fn finish_sums<const DOUBLE: bool, const FULL: bool>(
    stage: &OutputStage,
    requant: &ChannelRequant,
    sums: &[i32],
    out: &mut [i8],
    step: usize,
) {
    match requant.rounding_down() {
        // The usual case, without a test on the shift per value, four
        // values at a time.
        Some(down) if DOUBLE => {
            let clamp = OutputClamp::of(stage);
            let (fours, rest) = sums.as_chunks::<4>();
            // Checked once here, so that the stores need no checks.
            assert!(sums.is_empty() || (sums.len() - 1) * step < out.len());
            let mut y = out.as_mut_ptr();
            for four in fours {
                let [a, b, c, d] = down.apply_each(*four).map(|v| clamp.apply::<FULL>(v));
                // SAFETY: value k of `sums` goes to `out[k * step]`, inside
                // `out` by the assertion above.
                #[allow(unsafe_code)]
                unsafe {
                    *y = a;
                    *y.add(step) = b;
                    *y.add(2 * step) = c;
                    *y.add(3 * step) = d;
                    y = y.wrapping_add(4 * step);
                }
            }
            for &s in rest {
                // SAFETY: as above.
                #[allow(unsafe_code)]
                unsafe {
                    *y = clamp.apply::<FULL>(down.apply(s));
                }
                y = y.wrapping_add(step);
            }
        }
        _ => out
            .iter_mut()
            .step_by(step)
            .zip(sums)
            .for_each(|(y, &s)| *y = stage.finish_with::<DOUBLE, FULL>(s, requant)),
    }
}

/// The kernel positions `k` along one axis whose input `start + k *
/// dilation` lies in `0..n`.
fn taps_inside(start: i32, dilation: u32, kernel: u32, n: u32) -> core::ops::Range<u32> {
    let d = dilation as i32;
    let first = if start < 0 { (-start + d - 1) / d } else { 0 };
    let end = if start >= n as i32 {
        0
    } else {
        (n as i32 - start + d - 1) / d
    };
    (first.min(kernel as i32) as u32)..(end.clamp(0, kernel as i32) as u32)
}

/// Whether output pixel `p` reads input pixel `p` alone: a 1x1 window,
/// stride 1, and no padding (explicit padding can still grow the output).
pub fn is_pointwise(g: &ConvGeometry) -> bool {
    g.window == Window::pointwise() && (g.input.h, g.input.w) == (g.output.h, g.output.w)
}
