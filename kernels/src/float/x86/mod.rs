//! float32 convolution, depthwise convolution and dense layers with AVX2
//! and AVX-512, bit-exact with the portable kernels.
//!
//! The portable kernels sum each output in TFLite's order (taps, then
//! channels, from zero, then the bias) so that a float model's outputs are
//! LiteRT's bits. These keep that order for every output and put
//! *different outputs* in the lanes instead: output channels of a packed
//! filter block (or channels of a depthwise layer), each lane adding its
//! own products one after the other with a multiply and an add, never a
//! fused multiply-add. The kernels are written once over a vector type
//! ([`vector::F32s`]) and compiled per level ([`avx2`], [`avx512`]):
//!
//! - `conv`: filters packed in blocks of 16 output channels; a block's
//!   sums of 6 pixels (AVX2, two vectors each: 12 of 16 registers) or 12
//!   pixels (AVX-512, one vector each: 12 of 32) stay in registers. Every
//!   window reads its taps at fixed offsets from a copy of the input with
//!   the padding written out as zeros (`conv::Padded`, which says why the
//!   bits do not change), so pixels are grouped across rows and borders.
//! - `depthwise`: four vectors of channels of one pixel at a time.
//! - `dense`: up to three rows by in-register 8x8 transposes of the weight
//!   rows (AVX2 at both levels); more rows as a 1x1 convolution.
#![allow(unsafe_code)]

mod conv;
mod dense;
mod depthwise;
mod vector;

use super::Range;
use crate::x86::{selected, Isa};

pub use conv::prepared::{prepare, prepare_filter};

/// Rows of a dense layer from which its weights are packed like a 1x1
/// convolution's (packing reads every weight once more; with fewer rows
/// the in-register transposes cost less).
const DENSE_PACK_ROWS: u32 = 4;

/// The kernels of one level, callable whatever level is selected (for the
/// property tests): `$name::conv2d` etc. panic unless the CPU has the
/// level; lengths are the caller's to check, as for the portable kernels.
macro_rules! level {
    ($(#[$doc:meta])* $name:ident, $isa:expr, $features:literal, $vector:ty, $vecs:literal, $pixels:literal) => {
        $(#[$doc])*
        pub mod $name {
            use super::{conv, dense, depthwise, vector, Range, DENSE_PACK_ROWS};
            use crate::geometry::ConvGeometry;
            use crate::int8::DenseGeometry;
            use crate::x86::Isa;

            /// Panics unless this CPU has the level.
            fn require() {
                assert!($isa.is_available(), "this CPU lacks {}", $isa.name());
            }

            /// The convolution.
            pub fn conv2d(
                g: &ConvGeometry,
                input: &[f32],
                filter: &[f32],
                bias: Option<&[f32]>,
                act: Range,
                output: &mut [f32],
            ) {
                require();
                // SAFETY: the CPU has the level.
                unsafe { conv2d_unchecked(g, input, filter, bias, act, output) }
            }

            /// The depthwise convolution with multiplier 1.
            pub fn depthwise_conv2d(
                g: &ConvGeometry,
                input: &[f32],
                filter: &[f32],
                bias: Option<&[f32]>,
                act: Range,
                output: &mut [f32],
            ) {
                require();
                // SAFETY: the CPU has the level.
                unsafe { depthwise_unchecked(g, input, filter, bias, act, output) }
            }

            /// The dense layer.
            pub fn fully_connected(
                g: &DenseGeometry,
                input: &[f32],
                weights: &[f32],
                bias: Option<&[f32]>,
                act: Range,
                output: &mut [f32],
            ) {
                require();
                // SAFETY: the CPU has the level.
                unsafe { dense_unchecked(g, input, weights, bias, act, output) }
            }

            #[target_feature(enable = $features)]
            unsafe fn conv2d_unchecked(
                g: &ConvGeometry,
                input: &[f32],
                filter: &[f32],
                bias: Option<&[f32]>,
                act: Range,
                output: &mut [f32],
            ) {
                conv::conv2d::<$vector, $vecs, $pixels>(g, input, filter, bias, act, output)
            }

            #[target_feature(enable = $features)]
            unsafe fn depthwise_unchecked(
                g: &ConvGeometry,
                input: &[f32],
                filter: &[f32],
                bias: Option<&[f32]>,
                act: Range,
                output: &mut [f32],
            ) {
                depthwise::depthwise_conv2d::<$vector>(g, input, filter, bias, act, output)
            }

            #[target_feature(enable = $features)]
            unsafe fn dense_unchecked(
                g: &DenseGeometry,
                input: &[f32],
                weights: &[f32],
                bias: Option<&[f32]>,
                act: Range,
                output: &mut [f32],
            ) {
                if g.batch >= DENSE_PACK_ROWS {
                    let c = g.as_conv();
                    conv::conv2d::<$vector, $vecs, $pixels>(&c, input, weights, bias, act, output)
                } else {
                    dense::fully_connected_rows(g, input, weights, bias, act, output)
                }
            }
        }
    };
}

level!(
    /// The AVX2 kernels: 8 lanes, blocks of two vectors over 6 pixels.
    avx2, Isa::Avx2, "avx2", vector::Avx2, 2, 6
);
level!(
    /// The AVX-512 kernels: 16 lanes, blocks of one vector over 12 pixels.
    avx512, Isa::Avx512, "avx2,avx512f", vector::Avx512, 1, 12
);

/// Runs the convolution with the selected level's kernels; `false` when
/// the portable ones must (lengths checked by the caller).
pub(super) fn conv2d(
    g: &crate::geometry::ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) -> bool {
    match selected() {
        Isa::Avx512 => avx512::conv2d(g, input, filter, bias, act, output),
        Isa::Avx2 => avx2::conv2d(g, input, filter, bias, act, output),
        Isa::Portable => return false,
    }
    true
}

/// Runs the depthwise convolution (multiplier 1) with the selected
/// level's kernels; `false` when the portable ones must.
pub(super) fn depthwise_conv2d(
    g: &crate::geometry::ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) -> bool {
    match selected() {
        Isa::Avx512 => avx512::depthwise_conv2d(g, input, filter, bias, act, output),
        Isa::Avx2 => avx2::depthwise_conv2d(g, input, filter, bias, act, output),
        Isa::Portable => return false,
    }
    true
}

/// Runs the dense layer with the selected level's kernels; `false` when
/// the portable ones must.
pub(super) fn fully_connected(
    g: &crate::int8::DenseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) -> bool {
    match selected() {
        Isa::Avx512 => avx512::fully_connected(g, input, weights, bias, act, output),
        Isa::Avx2 => avx2::fully_connected(g, input, weights, bias, act, output),
        Isa::Portable => return false,
    }
    true
}
