//! Building the device program of a target: one firmware per target with
//! the suite's models, cached by its inputs.

pub mod firmware;
pub mod qemu_plugin;
pub mod tflm;
