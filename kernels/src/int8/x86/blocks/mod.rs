//! Block-sparse int8 kernels, one per level: AVX-512 VNNI's matrix product
//! (pointwise and dense layers) with a byte dot product per block
//! ([`avx512`]), and AVX2's convolution of any window with 16-bit
//! multiply-adds over widened quads ([`avx2`]).

pub(super) mod avx2;
pub(super) mod avx512;
mod fields;
