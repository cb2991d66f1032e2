//! Models as the device sees them: a compact serialized description, read
//! in place without an allocator, and the executor that runs it over a
//! caller-provided arena.
//!
//! Blob layout (all little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `BNCHMDL\0` |
//! | 8..10 | format version ([`FORMAT_VERSION`]) |
//! | 10..12 | reserved, 0 |
//! | 12..16 | length of the graph section |
//! | 16..20 | offset of the constant section (a multiple of 16) |
//! | 20..24 | length of the constant section |
//! | 24.. | graph: a postcard [`GraphHeader`], then `op_count` postcard [`Op`]s |
//! | const offset.. | constants: weights, biases, multipliers, each 4-byte aligned |
//!
//! Tensors live in the arena at offsets chosen by the memory planner; the
//! description carries each operator's tensors inline, so nothing needs a
//! table lookup at run time.

mod desc;
mod executor;
pub mod fused;
pub mod in_place;
#[cfg(feature = "std")]
mod writer;

pub use desc::*;
pub use executor::{LoadError, Model, Outcome, RunError};
#[cfg(feature = "std")]
pub use writer::{Blob, ModelWriter};

/// The first eight bytes of every model blob.
pub const MAGIC: [u8; 8] = *b"BNCHMDL\0";
/// The blob format this crate reads and writes.
pub const FORMAT_VERSION: u16 = 2;
/// Size of the fixed header.
pub const HEADER_BYTES: usize = 24;
/// Alignment of the constant section and of every constant in it.
pub const CONST_ALIGN: usize = 16;
