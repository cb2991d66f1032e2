//! Kernels for Arm cores with the DSP extension (`cfg(arm_dsp)`: Cortex-M4,
//! M7, and Armv8-M cores that have it, such as the M33 and M55): SIMD
//! multiply-accumulates on 16-bit lanes (SMLAD, SXTB16). Beside the portable
//! kernels as `x86/` is; each operator's portable function dispatches here,
//! and the same property tests check both against `crate::naive`.

pub mod blocks;
pub mod channels;
pub mod conv;
pub mod copy;
pub mod depthwise;
pub mod dot;
pub mod requant;
pub mod sparse;
