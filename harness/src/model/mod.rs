//! Models on the host: the graph every stage of preparation works on
//! (import, quantize, prune, attach exits, plan memory, write the blob),
//! and the zoo of reference architectures.

pub mod elementwise;
pub mod fold_pads;
mod fusion;
pub mod graph;
mod grouped;
pub mod heads;
pub mod host;
pub mod import;
pub mod init;
pub mod layout;
pub mod lower;
pub mod onnx;
pub mod onnx_proto;
pub mod patch;
pub mod prepare;
pub mod tflite;
#[allow(clippy::all, unused_imports, dead_code, missing_docs, non_camel_case_types, deprecated, mismatched_lifetime_syntaxes, unsafe_op_in_unsafe_fn)]
#[rustfmt::skip]
pub mod tflite_schema;
pub mod transform;
mod views;
pub mod zoo;

pub use graph::{
    ExitHead, Graph, GraphBuilder, Int8Weights, Layer, LayerOp, LayerWeights, Precision, Tensor,
    TensorId, Win,
};
