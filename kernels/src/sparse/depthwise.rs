//! Unstructured-sparse depthwise convolution: each output channel's
//! non-zeros over its window, whatever the multiplier, stride, dilation
//! and padding.
//!
//! Format ([`super::Csr`]): one row per output channel; an entry's offset
//! is its element of the pixel's window gathered as `[kh * kw, ic]` (tap
//! `t`, input channel `c`: `t * ic + c`), run over gathered windows
//! ([`super::windows`]) as a convolution's filter in the field form is.

use super::{check_offsets, Csr};
#[cfg(all(target_arch = "x86_64", feature = "std"))]
use super::{offset, weight};
use crate::error::KernelError;
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;

/// Checks a sparse depthwise convolution's arguments: lengths, the
/// multiplier, one row per output channel, and every entry inside the
/// window.
pub fn check(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: usize,
    filter: &Csr,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_depthwise_io(multiplier, input, output)?;
    check_filter(g, filter)?;
    stage.check(g.output.c as usize, bias)
}

/// Checks a sparse depthwise filter: one row per output channel, every
/// entry inside the gathered window.
fn check_filter(g: &ConvGeometry, filter: &Csr) -> Result<(), KernelError> {
    filter.check(g.output.c as usize)?;
    check_offsets(filter, g.window.taps() * g.input.c as usize, |_| 0)
}

/// Sparse int8 depthwise convolution ([`Csr::depthwise`]'s form; the
/// multiplier is in the entries, which read input channel `o /
/// multiplier` for output channel `o`).
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    filter: &Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    // The host's vector depthwise kernels, over all channels at once, beat
    // walking each channel's non-zeros at any sparsity: the filter is
    // written out dense (a window's taps by the output channels), once
    // for a prepared model (its entries checked then).
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let Some(dense) = prepared::find(g, filter) {
        return crate::int8::depthwise_conv2d(g, multiplier, stage, input, dense, bias, output);
    }
    check(
        g,
        multiplier,
        stage,
        input.len(),
        filter,
        bias,
        output.len(),
    )?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::x86::selected() != crate::x86::Isa::Portable {
        let dense = dense_filter(g, filter);
        return crate::int8::depthwise_conv2d(g, multiplier, stage, input, &dense, bias, output);
    }
    super::windows::run((g, stage, input, filter, bias, output));
    Ok(())
}

/// The `[1, kh, kw, oc]` filter of checked entries.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn dense_filter(g: &ConvGeometry, filter: &Csr) -> std::vec::Vec<i8> {
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let mut dense = std::vec![0i8; g.window.taps() * oc];
    for (o, ends) in filter.row_ptr.windows(2).enumerate() {
        for &e in &filter.entries[ends[0] as usize..ends[1] as usize] {
            dense[offset(e) / ic * oc + o] = weight(e) as i8;
        }
    }
    dense
}

/// The sparse depthwise filters of prepared models written out dense once
/// (as `super::prepared` does for convolutions), looked up by the address
/// of their entries.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod prepared {
    use super::{dense_filter, Csr};
    use crate::geometry::ConvGeometry;
    use crate::x86::Copies;

    /// The address and length of a filter's entries, and its geometry.
    type Key = ((usize, usize), ConvGeometry);

    static DENSE: Copies<Key> = Copies::new();

    fn key(g: &ConvGeometry, filter: &Csr) -> Key {
        ((filter.entries.as_ptr() as usize, filter.entries.len()), *g)
    }

    /// Makes the dense copy of a model's `filter` (its entries checked
    /// first; one that fails is left for the kernel's own check).
    pub fn densify(g: &ConvGeometry, filter: &Csr<'static>) {
        if super::check_filter(g, filter).is_ok() {
            DENSE.get_or_make(key(g, filter), || dense_filter(g, filter));
        }
    }

    /// The dense copy of `filter` for `g`, if a prepared model's.
    pub fn find(g: &ConvGeometry, filter: &Csr) -> Option<&'static [i8]> {
        DENSE.find(&key(g, filter))
    }
}
