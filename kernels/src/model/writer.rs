//! Host-side writer of model blobs.

use super::desc::{ConstRef, GraphHeader, Op};
use super::{CONST_ALIGN, FORMAT_VERSION, HEADER_BYTES, MAGIC};
use std::vec::Vec;

/// A finished model blob, stored in `u32` words so that it is 4-byte aligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    words: Vec<u32>,
    len: usize,
}

impl Blob {
    /// The blob's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    /// The blob's bytes for the rest of the process (a model whose
    /// filters are packed ahead of its runs must be `'static`).
    pub fn leak(self) -> &'static [u8] {
        &bytemuck::cast_slice(self.words.leak())[..self.len]
    }

    /// A 4-byte aligned copy of arbitrary bytes (for blobs read from files).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = std::vec![0u32; bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Blob {
            words,
            len: bytes.len(),
        }
    }
}

/// Collects constants and operators, then lays out the blob.
#[derive(Default)]
pub struct ModelWriter {
    consts: Vec<u8>,
    /// Where each distinct constant is: equal constants are stored once
    /// (the copies of a layer that a patch schedule runs per patch).
    stored: std::collections::HashMap<Vec<u8>, ConstRef>,
    ops: Vec<Op>,
}

impl ModelWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a constant, aligned for SIMD loads, and returns its
    /// reference; a constant equal to one already stored gets that one's.
    pub fn constant<T: bytemuck::Pod>(&mut self, values: &[T]) -> ConstRef {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        if let Some(&stored) = self.stored.get(bytes) {
            return stored;
        }
        let offset = self.consts.len().next_multiple_of(CONST_ALIGN);
        self.consts.resize(offset, 0);
        self.consts.extend_from_slice(bytes);
        let stored = ConstRef {
            offset: offset as u32,
            len: bytes.len() as u32,
        };
        self.stored.insert(bytes.to_vec(), stored);
        stored
    }

    /// Appends an operator.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Number of operators so far.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Serializes everything; `header.op_count` is filled in here.
    pub fn finish(self, mut header: GraphHeader) -> Blob {
        header.op_count = self.ops.len() as u32;
        let mut graph = postcard::to_allocvec(&header).expect("serializing to a Vec cannot fail");
        for op in &self.ops {
            graph.extend(postcard::to_allocvec(op).expect("serializing to a Vec cannot fail"));
        }
        let const_offset = (HEADER_BYTES + graph.len()).next_multiple_of(CONST_ALIGN);
        let mut bytes = Vec::with_capacity(const_offset + self.consts.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        for v in [graph.len(), const_offset, self.consts.len()] {
            bytes.extend_from_slice(&(v as u32).to_le_bytes());
        }
        bytes.extend_from_slice(&graph);
        bytes.resize(const_offset, 0);
        bytes.extend_from_slice(&self.consts);
        Blob::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_constants_are_stored_once() {
        let mut w = ModelWriter::new();
        let a = w.constant(&[1i8, 2, 3]);
        let b = w.constant(&[7i32, 8]);
        assert_eq!(w.constant(&[1i8, 2, 3]), a);
        // The same bytes as another type are the same constant too.
        assert_eq!(w.constant(&[7u32, 8]), b);
        let c = w.constant(&[1i8, 2, 4]);
        assert_eq!((a.offset, b.offset, c.offset), (0, 16, 32));
        assert_eq!(w.consts.len(), 35);
    }
}
