//! The shared kernel crate of bench: the one implementation of every
//! operator, run by the host reference, the host target and every
//! microcontroller target alike, so device outputs can be checked against
//! the host bit for bit.
//!
//! * [`int8`]: TFLite-exact int8 operators; [`quant`] and [`fixedpoint`]
//!   hold the requantization arithmetic they share.
//! * [`binary`]: XNOR-popcount layers with Larq Compute Engine semantics.
//! * [`int4`] and [`sparse`]: sub-byte and unstructured-sparse weights.
//! * [`float`]: float32 operators, the reference for float baselines.
//! * [`exit`]: early-exit confidence measures.
//! * [`model`]: the serialized model format and the executor over an arena.
//! * [`planner`] (feature `std`): the arena memory planner.
//! * [`naive`] (feature `std`): the slow, obviously-correct oracle the tests use.
//!
//! No allocator is needed: every kernel works on caller-provided slices and
//! returns [`KernelError`] instead of panicking on inconsistent arguments.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod binary;
pub mod clock;
pub mod error;
pub mod exit;
pub mod fixedpoint;
pub mod float;
pub mod geometry;
pub mod int4;
pub mod int8;
pub mod model;
#[cfg(feature = "std")]
pub mod naive;
#[cfg(feature = "std")]
pub mod planner;
pub mod quant;
pub mod sparse;

pub use error::KernelError;
