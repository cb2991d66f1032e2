//! x86-64 int8 kernels, AVX2 and AVX-512 VNNI, chosen at run time
//! ([`crate::x86::select`]). Convolutions (and dense layers over many
//! rows) run as a matrix product over gathered receptive fields (`gemm`),
//! dense layers over a few rows as matrix-vector products (`gemv`),
//! depthwise convolutions lane by lane (`depthwise`), additions a vector
//! of elements at a time (`add`); all requantize a vector of channels at
//! once, bit-exact with the portable kernels. [`avx2`] and
//! [`avx512`] expose each level's full operator set (the other operators
//! are the portable ones) for the property tests.
#![allow(unsafe_code)]

mod add;
mod blocks;
mod depthwise;
mod depthwise_quads;
mod gemm;
mod gemv;
mod planar;
mod prepared;
mod requantize;
mod simd;
mod sparse;

use crate::geometry::ConvGeometry;
use crate::int8::{AddParams, DenseGeometry, OutputStage};
use crate::x86::{selected, Isa};

/// Whether a dense layer runs as matrix-vector products (a few input rows).
fn gemv_fits(g: &DenseGeometry) -> bool {
    g.batch <= gemv::MAX_ROWS && g.in_features as usize <= gemv::MAX_FEATURES
}

/// Whether the gathered-field kernels of level `S` take this convolution.
fn gemm_fits<S: simd::Simd>(g: &ConvGeometry) -> bool {
    gemm::Plan::fits::<S>(g)
}

/// Generates one level's entry points (compiled for its features) and its
/// public operator module.
macro_rules! level {
    ($module:ident, $simd:ty, $isa:expr, $features:literal, $doc:literal) => {
        #[doc = $doc]
        pub mod $module {
            use super::*;
            use crate::error::{ensure, KernelError};
            pub use crate::int8::{avg_pool, max_pool, softmax};

            /// The level these kernels need.
            pub const ISA: Isa = $isa;

            // The entry points below run a layer at this level if its kernels
            // take it, and say whether they did; lengths are the caller's
            // to check. Each decides once what it takes, for the public
            // functions of this module and for the dispatch of the
            // selected level alike.

            #[target_feature(enable = $features)]
            pub(super) unsafe fn conv_unchecked(
                g: &ConvGeometry,
                stage: &OutputStage,
                input: &[i8],
                filter: &[i8],
                bias: Option<&[i32]>,
                output: &mut [i8],
            ) -> bool {
                let offset = stage.filter_offset;
                if !gemm_fits::<$simd>(g)
                    || (offset != 0 && !<$simd as simd::Simd>::HOLDS_WEIGHT_OFFSET)
                {
                    return false;
                }
                let plan = super::gemm::Plan::new::<$simd>(g);
                let prepared = super::prepared::find(g, filter, offset, ISA, plan);
                let prepacked = prepared.as_ref().map(|p| super::gemm::Prepacked {
                    weights: p.weights::<$simd>(),
                    sums: &p.sums,
                });
                super::gemm::conv2d::<$simd>(g, stage, input, filter, bias, output, prepacked);
                true
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn pack_unchecked(
                g: &ConvGeometry,
                filter: &[i8],
                weight_offset: i32,
            ) -> super::prepared::Packed {
                super::prepared::Packed::new::<$simd>(g, filter, weight_offset, ISA)
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn depthwise_unchecked(
                g: &ConvGeometry,
                depth_multiplier: u32,
                stage: &OutputStage,
                input: &[i8],
                filter: &[i8],
                bias: Option<&[i32]>,
                output: &mut [i8],
            ) -> bool {
                if depth_multiplier != 1 {
                    return false;
                }
                // The quads' layout takes VBMI's byte permutes (Ice Lake,
                // Zen 4), and weights as bytes.
                if ISA == Isa::Avx512
                    && stage.filter_offset == 0
                    && std::is_x86_feature_detected!("avx512vbmi")
                    && super::depthwise_quads::depthwise_conv2d(
                        g, stage, input, filter, bias, output,
                    )
                {
                    return true;
                }
                super::depthwise::depthwise_conv2d::<$simd>(g, stage, input, filter, bias, output);
                true
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dense_unchecked(
                g: &DenseGeometry,
                stage: &OutputStage,
                input: &[i8],
                weights: &[i8],
                bias: Option<&[i32]>,
                output: &mut [i8],
            ) -> bool {
                if !gemv_fits(g) {
                    return conv_unchecked(&g.as_conv(), stage, input, weights, bias, output);
                }
                super::gemv::fully_connected::<$simd>(g, stage, input, weights, bias, output);
                true
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn row_dots_unchecked(row: &[i8], weights: &[i8], sums: &mut [i32]) {
                // AVX2 by byte products (VNNI's are one instruction already).
                if ISA == Isa::Avx2 {
                    return super::gemv::signed_row_dots_avx2(row, weights, sums);
                }
                super::gemv::row_dots::<$simd>(row, weights, sums)
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn add_unchecked(
                p: &AddParams,
                a: &[i8],
                b: &[i8],
                output: &mut [i8],
            ) {
                super::add::add::<$simd>(p, a, b, output)
            }

            fn available() -> Result<(), KernelError> {
                ensure(
                    ISA.is_available(),
                    concat!("instruction set: this CPU lacks ", $features),
                )
            }

            /// [`crate::int8::conv2d`] at this level.
            pub fn conv2d(
                g: &ConvGeometry,
                stage: &OutputStage,
                input: &[i8],
                filter: &[i8],
                bias: Option<&[i32]>,
                output: &mut [i8],
            ) -> Result<(), KernelError> {
                crate::int8::check_conv2d(g, stage, input.len(), filter.len(), bias, output.len())?;
                available()?;
                // SAFETY: the CPU has the features; lengths were checked.
                if !unsafe { conv_unchecked(g, stage, input, filter, bias, output) } {
                    return crate::int8::conv2d(g, stage, input, filter, bias, output);
                }
                Ok(())
            }

            /// [`crate::int8::depthwise_conv2d`] at this level.
            pub fn depthwise_conv2d(
                g: &ConvGeometry,
                depth_multiplier: u32,
                stage: &OutputStage,
                input: &[i8],
                filter: &[i8],
                bias: Option<&[i32]>,
                output: &mut [i8],
            ) -> Result<(), KernelError> {
                crate::int8::check_depthwise_conv2d(
                    g,
                    depth_multiplier,
                    stage,
                    input.len(),
                    filter.len(),
                    bias,
                    output.len(),
                )?;
                available()?;
                // SAFETY: the CPU has the features; lengths were checked.
                if !unsafe {
                    depthwise_unchecked(g, depth_multiplier, stage, input, filter, bias, output)
                } {
                    return crate::int8::depthwise_conv2d(
                        g,
                        depth_multiplier,
                        stage,
                        input,
                        filter,
                        bias,
                        output,
                    );
                }
                Ok(())
            }

            /// [`crate::int8::add`] at this level.
            pub fn add(
                p: &AddParams,
                a: &[i8],
                b: &[i8],
                output: &mut [i8],
            ) -> Result<(), KernelError> {
                crate::int8::check_add(p, a.len(), b.len(), output.len())?;
                available()?;
                // SAFETY: the CPU has the features; parameters and lengths were checked.
                unsafe { add_unchecked(p, a, b, output) };
                Ok(())
            }

            /// [`crate::int8::fully_connected`] at this level.
            pub fn fully_connected(
                g: &DenseGeometry,
                stage: &OutputStage,
                input: &[i8],
                weights: &[i8],
                bias: Option<&[i32]>,
                output: &mut [i8],
            ) -> Result<(), KernelError> {
                crate::int8::check_fully_connected(
                    g,
                    stage,
                    input.len(),
                    weights.len(),
                    bias,
                    output.len(),
                )?;
                available()?;
                // SAFETY: the CPU has the features; lengths were checked.
                if !unsafe { dense_unchecked(g, stage, input, weights, bias, output) } {
                    return crate::int8::fully_connected(g, stage, input, weights, bias, output);
                }
                Ok(())
            }
        }
    };
}

level!(
    avx2,
    simd::Avx2,
    Isa::Avx2,
    "avx2",
    "The AVX2 kernels: 8 channels per vector, 16-bit multiply-adds."
);
level!(
    avx512,
    simd::Avx512,
    Isa::Avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni",
    "The AVX-512 VNNI kernels: 16 channels per vector, four 8-bit multiply-accumulates per lane."
);

pub use prepared::{prepare, prepare_filter, prepare_sparse_filter};

/// The level whose matrix products run a filter with `weight_offset` on
/// a machine of level `isa`: AVX2's 16-bit weights where there is an
/// offset that VNNI's bytes cannot hold (AVX-512 machines have AVX2).
fn level_for(isa: Isa, weight_offset: i32) -> Isa {
    use simd::Simd;
    match isa {
        Isa::Avx512 if weight_offset != 0 && !simd::Avx512::HOLDS_WEIGHT_OFFSET => Isa::Avx2,
        isa => isa,
    }
}

/// Runs the convolution with the selected level's kernels, if any level
/// is selected and takes it (lengths checked by the caller); `false`
/// leaves it to the portable kernels.
pub(crate) fn conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    // SAFETY: a level is selected only once the CPU is known to have it.
    match level_for(selected(), stage.filter_offset) {
        Isa::Avx512 => unsafe { avx512::conv_unchecked(g, stage, input, filter, bias, output) },
        Isa::Avx2 => unsafe { avx2::conv_unchecked(g, stage, input, filter, bias, output) },
        Isa::Portable => false,
    }
}

/// [`conv2d`] for a depthwise convolution.
pub(crate) fn depthwise_conv2d(
    g: &ConvGeometry,
    depth_multiplier: u32,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    // SAFETY: a level is selected only once the CPU is known to have it.
    match selected() {
        Isa::Avx512 => unsafe {
            avx512::depthwise_unchecked(g, depth_multiplier, stage, input, filter, bias, output)
        },
        Isa::Avx2 => unsafe {
            avx2::depthwise_unchecked(g, depth_multiplier, stage, input, filter, bias, output)
        },
        Isa::Portable => false,
    }
}

/// [`conv2d`] for a dense layer.
pub(crate) fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    // Matrix products of weights with an offset run at AVX2 (`level_for`).
    let isa = match gemv_fits(g) {
        true => selected(),
        false => level_for(selected(), stage.filter_offset),
    };
    // SAFETY: a level is selected only once the CPU is known to have it.
    match isa {
        Isa::Avx512 => unsafe { avx512::dense_unchecked(g, stage, input, weights, bias, output) },
        Isa::Avx2 => unsafe { avx2::dense_unchecked(g, stage, input, weights, bias, output) },
        Isa::Portable => false,
    }
}

/// The exact int32 dot products of one int8 `row` (values in -127..=127,
/// as a hybrid layer quantizes them) with each of the `sums.len()` rows
/// of `weights` (`row.len()` values each), with the selected level's
/// kernels; `false` (nothing written) at the portable level, for rows
/// longer than the kernels take, a -128 in the row, or lengths that do
/// not match.
pub(crate) fn row_dots(row: &[i8], weights: &[i8], sums: &mut [i32]) -> bool {
    if row.len() > gemv::MAX_FEATURES
        || weights.len() != row.len() * sums.len()
        || row.is_empty()
        || row.contains(&i8::MIN)
    {
        return false;
    }
    // SAFETY: a level is selected only once the CPU is known to have it;
    // lengths were checked.
    match selected() {
        Isa::Avx512 => unsafe { avx512::row_dots_unchecked(row, weights, sums) },
        Isa::Avx2 => unsafe { avx2::row_dots_unchecked(row, weights, sums) },
        Isa::Portable => return false,
    }
    true
}

/// [`conv2d`] for a sparse convolution: both levels run the AVX2 kernel
/// (eight pixels per vector; VNNI's byte products do not pay on pairs of
/// scattered non-zeros).
pub(crate) fn sparse_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &crate::sparse::Csr,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    match selected() {
        // SAFETY: a level is selected only once the CPU is known to have
        // it, and AVX-512 machines have AVX2.
        Isa::Avx512 | Isa::Avx2 => unsafe { sparse::conv2d(g, stage, input, filter, bias, output) },
        Isa::Portable => return false,
    }
    true
}

/// Whether the AVX2 sparse convolution reads `g`'s receptive fields in
/// place from its input laid out once (not gathered pixel by pixel).
pub(crate) fn sparse_fields_in_place(g: &ConvGeometry) -> bool {
    planar::Layout::fits(g)
}

/// Whether a sparse convolution filter was prepared for `g` (a prepared
/// model's, its entries checked once then).
pub(crate) fn sparse_filter_prepared(g: &ConvGeometry, filter: &crate::sparse::Csr) -> bool {
    sparse::is_prepared(g, filter)
}

/// The block-sparse matrix product (arguments checked by the caller):
/// AVX-512 VNNI only, whose byte products are one instruction per block.
pub(crate) fn block_matrix(
    m: &crate::sparse::blocks::Matrix,
    stage: &OutputStage,
    input: &[i8],
    w: &crate::sparse::blocks::Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    // The gather's byte offsets are 32-bit.
    let offsets_fit = m
        .columns
        .checked_mul(16)
        .is_some_and(|b| b <= i32::MAX as usize);
    match selected() {
        // SAFETY: a level is selected only once the CPU is known to have it.
        Isa::Avx512 if offsets_fit => unsafe {
            blocks::avx512::matrix(m, stage, input, w, bias, output)
        },
        _ => return false,
    }
    true
}

/// The block-sparse convolution of any window (arguments checked by the
/// caller) on AVX2 machines; AVX-512 ones run pointwise layers by
/// [`block_matrix`] and others dense (not measured with this kernel).
pub(crate) fn block_conv2d(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    w: &crate::sparse::blocks::Blocks,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    match selected() {
        // SAFETY: a level is selected only once the CPU is known to have it.
        Isa::Avx2 => unsafe { blocks::avx2::conv2d(g, stage, input, w, bias, output) },
        _ => return false,
    }
    true
}

/// [`conv2d`] for an addition (parameters and lengths checked by the caller).
pub(crate) fn add(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) -> bool {
    // SAFETY: a level is selected only once the CPU is known to have it.
    match selected() {
        Isa::Avx512 => unsafe { avx512::add_unchecked(p, a, b, output) },
        Isa::Avx2 => unsafe { avx2::add_unchecked(p, a, b, output) },
        Isa::Portable => return false,
    }
    true
}
