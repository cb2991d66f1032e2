//! Models on the host: the graph every stage of preparation works on
//! (import, quantize, prune, attach exits, plan memory, write the blob),
//! and the zoo of reference architectures.

pub mod graph;
pub mod init;
pub mod lower;
pub mod prepare;
pub mod transform;
pub mod zoo;

pub use graph::{ExitHead, Graph, GraphBuilder, Layer, LayerOp, LayerWeights, Precision, TensorId, Win};
