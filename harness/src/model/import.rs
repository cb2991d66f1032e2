//! Model files: the importers by format, and the error they share.

use super::graph::Graph;
use std::path::{Path, PathBuf};

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("failed to read {}: {source}", path.display())]
    Read {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a model bench can import.
    #[error("failed to import {}: {why}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// One operator is not supported or is inconsistent.
    #[error("failed to import {}: operator {index} ({op}): {why}", path.display())]
    Operator {
        /// The model file.
        path: PathBuf,
        /// Index of the operator in the subgraph.
        index: usize,
        /// The operator's TFLite name.
        op: String,
        /// What is wrong.
        why: String,
    },
}

/// Imports the model file at `path`, by its extension (`.tflite`, `.onnx`).
pub fn load(path: &Path) -> Result<Graph, ImportError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("tflite") => super::tflite::load(path),
        Some("onnx") => super::onnx::load(path),
        _ => Err(ImportError::Model { path: path.into(), why: "unknown model format: bench imports .tflite and .onnx files".into() }),
    }
}
