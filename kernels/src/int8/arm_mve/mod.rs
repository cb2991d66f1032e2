//! Kernels for Arm cores with Helium, the M-profile Vector Extension
//! (`cfg(arm_mve)`: the Cortex-M55 of qemu-m55, whose target file sets it
//! and whose `-C target-cpu` enables the instructions). Beside `arm_dsp/`
//! as `x86/` is beside the portable kernels: convolutions and dense layers
//! multiply 16 int8 values per VMLADAVA into a scalar accumulator, four
//! filters at a time, and requantize four output channels per vector
//! with TFLite's double rounding (VQRDMULH, then a rounding shift with
//! gemmlowp's correction for negative values, as CMSIS-NN's Helium
//! kernels do). Layers these kernels do not take fall through to the DSP
//! kernels (the M55 has the DSP extension too).
//!
//! The instructions are inline assembly, as the DSP kernels' are: Rust has
//! no Helium intrinsics. Each block names the vector registers it uses as
//! clobbers (`d0`-`d13`: q0-q6), and tail predication (DLSTP/LETP) keeps
//! every load inside its slice.

pub mod add;
pub mod conv;
pub mod copy;
pub mod depthwise;
pub mod dot;
pub mod requant;
