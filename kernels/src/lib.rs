//! The shared kernel crate of bench: the one implementation of every
//! operator, run by the host reference, the host target and every
//! microcontroller target alike, so device outputs can be checked against
//! the host bit for bit.
//!
//! * [`int8`]: TFLite-exact int8 operators; [`quant`] and [`fixedpoint`]
//!   hold the requantization arithmetic they share.
//! * [`binary`]: XNOR-popcount layers with Larq Compute Engine semantics.
//! * [`broadcast`]: ADD, SUB, MUL, MAXIMUM, MINIMUM with broadcasting.
//! * [`int4`] and [`sparse`]: sub-byte and unstructured-sparse weights.
//! * [`float`]: float32 operators, the reference for float baselines.
//! * [`hybrid`]: int8 weights with float activations (dynamic-range
//!   quantization), as TFLite's reference kernels run them.
//! * [`layout`]: PAD and TRANSPOSE, which only move elements, for any type.
//! * [`exit`]: early-exit confidence measures.
//! * [`model`]: the serialized model format and the executor over an arena.
//! * [`planner`] (feature `std`): the arena memory planner.
//! * [`naive`] (feature `std`): the slow, obviously-correct oracle the tests use.
//! * `x86` (x86-64, feature `std`): the run-time choice of AVX2 or AVX-512 kernels.
//!
//! No allocator is needed: every kernel works on caller-provided slices and
//! returns [`KernelError`] instead of panicking on inconsistent arguments.
//!
//! The whole path, from host-side description to a run over an arena:
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use kernels::geometry::Shape;
//! use kernels::int8::Clamp;
//! use kernels::model::*;
//! use kernels::quant::quantize_multiplier;
//!
//! // Host: a 4 -> 2 int8 dense layer; the multiplier 0.5 becomes integers here.
//! let input = TensorDesc { dtype: DType::I8, shape: Shape::flat(1, 4), offset: 0 };
//! let output = TensorDesc { dtype: DType::I8, shape: Shape::flat(1, 2), offset: 16 };
//! let mut w = ModelWriter::new();
//! let weights = Weights::Int8 { filter: w.constant(&[1i8, 1, 1, 1, 2, 0, 0, -2]), bias: None };
//! let requant = w.constant(&[quantize_multiplier(0.5); 2]);
//! let stage = Stage::Int8 { input_offset: 0, filter_offset: 0, output_offset: 0, requant, clamp: Clamp::FULL, rounding: kernels::quant::Rounding::Single };
//! w.push(Op::FullyConnected { input, output, weights, stage });
//! let blob = w.finish(GraphHeader { arena_bytes: 32, op_count: 0, exit_heads: 0, input, output });
//!
//! // Device: validate once, then run over a caller-provided, 4-byte aligned arena.
//! let model = Model::parse(blob.as_bytes()).unwrap();
//! let mut words = [0u32; 8];
//! let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
//! model.input_mut(arena).unwrap().copy_from_slice(&[10, 20, 30, 40]);
//! let outcome = model.run(arena, &[]).unwrap();
//! // (10+20+30+40) * 0.5 = 50 and (2*10 - 2*40) * 0.5 = -30
//! assert_eq!(model.tensor(arena, &outcome.output).unwrap(), &[50u8, (-30i8) as u8]);
//! # }
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod binary;
pub mod broadcast;
pub mod clock;
pub mod error;
pub mod exit;
pub mod fixedpoint;
pub mod fixedpoint16;
pub mod float;
pub mod float_math;
pub mod geometry;
pub mod hybrid;
pub mod int16;
pub mod int4;
pub mod int8;
pub mod layout;
pub mod lstm;
pub mod lstm16;
pub mod matmul;
pub mod model;
#[cfg(feature = "std")]
pub mod naive;
#[cfg(feature = "std")]
pub mod planner;
pub mod quant;
pub mod resize;
pub mod sparse;
pub mod svdf;
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod x86;

pub use error::KernelError;
