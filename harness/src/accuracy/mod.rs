//! Accuracy on a model's dataset by the host reference, and early-exit
//! sweeps that combine host exit decisions with device costs.

pub mod evaluate;
pub mod sweep;
