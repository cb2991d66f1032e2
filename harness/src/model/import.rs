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

/// The model formats bench imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A TFLite flatbuffer.
    Tflite,
    /// An ONNX protobuf.
    Onnx,
}

impl Format {
    /// The key a suite names it by.
    pub fn key(self) -> &'static str {
        match self {
            Format::Tflite => "tflite",
            Format::Onnx => "onnx",
        }
    }
}

/// What the bytes of a model file are: a TFLite flatbuffer carries the file
/// identifier `TFL3` at byte 4; ONNX has no magic number, so anything else
/// is taken for ONNX and its parser judges it.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.get(4..8) == Some(b"TFL3") {
        Format::Tflite
    } else {
        Format::Onnx
    }
}

/// Imports the model file at `path` as the `format` a suite declared for it,
/// refusing a file whose content is the other format.
pub fn load_as(
    path: &Path,
    format: Format,
    heads: Option<&[String]>,
) -> Result<Graph, ImportError> {
    let bytes = crate::input::files::read(path).map_err(|source| ImportError::Read {
        path: path.into(),
        source,
    })?;
    let found = sniff(&bytes);
    if found != format && (format == Format::Tflite || found == Format::Tflite) {
        let why = match format {
            Format::Tflite => "it is declared `tflite` but is not a TFLite flatbuffer (no TFL3 identifier at byte 4); for an ONNX model write onnx = \"...\"",
            Format::Onnx => "it is declared `onnx` but is a TFLite flatbuffer; write tflite = \"...\"",
        };
        return Err(ImportError::Model {
            path: path.into(),
            why: why.into(),
        });
    }
    let name = path.file_stem().map_or_else(
        || "model".into(),
        |s| crate::input::diag::usable_name(&s.to_string_lossy()),
    );
    let mut graph = match format {
        Format::Tflite => super::tflite::import(&bytes, &name, path),
        Format::Onnx => super::onnx::import_with_heads(&bytes, &name, path, heads),
    }?;
    if let Some(heads) = heads {
        super::heads::declare(&mut graph, heads).map_err(|why| ImportError::Model {
            path: path.into(),
            why,
        })?;
    }
    Ok(graph)
}

/// Imports the model file at `path`, by its extension (`.tflite`, `.onnx`).
pub fn load(path: &Path) -> Result<Graph, ImportError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("tflite") => super::tflite::load(path),
        Some("onnx") => super::onnx::load(path),
        _ => Err(ImportError::Model {
            path: path.into(),
            why: "unknown model format: bench imports .tflite and .onnx files".into(),
        }),
    }
}
