//! Shape arithmetic that only feeds RESHAPE. A model converted with a
//! dynamic batch rebuilds shapes at run time (SHAPE, then STRIDED_SLICE,
//! PACK, CONCATENATION, ... on int32 vectors, into RESHAPE's shape input),
//! although the file states every tensor's shape statically. bench's
//! RESHAPE takes its output shape from the file, so those operators
//! compute nothing bench needs: they are found before the import and
//! skipped (SHAPE is folded away). An integer result that anything else
//! reads keeps its operator, which is then imported (or refused by name).

use super::{code, ends, fb, opcode_of, OperatorCodes, Reader};
use std::collections::{HashMap, HashSet};

/// The indices of the operators whose results only reach RESHAPE shape
/// inputs, through other such operators.
pub fn skipped(reader: &Reader, codes: OperatorCodes, sg: &fb::SubGraph) -> HashSet<usize> {
    let ops: Vec<_> = sg.operators().iter().flatten().collect();
    let outputs: HashSet<i32> = ends(sg.outputs()).into_iter().collect();
    // Who reads each tensor: (operator, input position).
    let mut readers: HashMap<i32, Vec<(usize, usize)>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        for (at, t) in ends(op.inputs()).into_iter().enumerate() {
            readers.entry(t).or_default().push((i, at));
        }
    }
    let mut skipped = HashSet::new();
    // Operators run in file order, so every reader of an operator's
    // results comes after it: deciding from the last one back sees each
    // reader decided.
    for (i, op) in ops.iter().enumerate().rev() {
        let results = ends(op.outputs());
        let integer = |t: i32| {
            reader
                .tensor(t)
                .is_ok_and(|t| matches!(t.dtype, fb::TensorType::INT32 | fb::TensorType::INT64))
        };
        let shape_only = |t: &i32| {
            !outputs.contains(t)
                && readers.get(t).into_iter().flatten().all(|&(r, at)| {
                    skipped.contains(&r)
                        || (at == 1 && opcode_of(codes, &ops[r]) == Some(Ok(code::RESHAPE)))
                })
        };
        if !results.is_empty() && results.iter().all(|&t| integer(t) && shape_only(&t)) {
            skipped.insert(i);
        }
    }
    skipped
}
