//! Early-exit heads a suite declares for an imported model with several
//! outputs (`exit-heads = ["exit1"]`): those outputs become the heads, the
//! output computed last among the rest is the final classifier, and any
//! other output (an auxiliary loss, features) is dropped with the layers
//! only it needed. Without a declaration an ONNX model's extra outputs of
//! the classifier's shape are heads and a TFLite model's outputs are all
//! kept, packed one after another.

use super::graph::{ExitHead, Graph, LayerOp, TensorId};
use kernels::exit::Confidence;
use std::collections::BTreeSet;

/// Makes the outputs named in `heads` the graph's exit heads.
pub fn declare(graph: &mut Graph, heads: &[String]) -> Result<(), String> {
    let mut outputs: Vec<(String, TensorId)> = graph.output_parts();
    outputs.extend(
        graph
            .exits
            .iter()
            .map(|e| (graph.tensors[e.logits].name.clone(), e.logits)),
    );
    let names = || {
        outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut head_tensors = Vec::new();
    for name in heads {
        match outputs.iter().find(|(n, _)| n == name) {
            Some(&(_, t)) => head_tensors.push(t),
            None => {
                return Err(format!(
                    "exit-heads: the model has no output '{name}' (its outputs: {})",
                    names()
                ))
            }
        }
    }
    // The classifier is the last output computed of the heads' shape (an
    // auxiliary output of another shape is not it), else the last one.
    let rest = || {
        outputs
            .iter()
            .map(|&(_, t)| t)
            .filter(|t| !head_tensors.contains(t))
    };
    let head_shape = head_tensors.first().map(|&t| graph.tensors[t].shape);
    let final_output = rest()
        .filter(|&t| head_shape.is_none_or(|s| graph.tensors[t].shape == s))
        .max()
        .or_else(|| rest().max())
        .ok_or("exit-heads: every output is declared a head; one must be the final classifier")?;
    let classes = graph.tensors[final_output].shape;
    for (name, &t) in heads.iter().zip(&head_tensors) {
        let shape = graph.tensors[t].shape;
        if shape.features() != classes.features() || shape.h * shape.w != 1 {
            return Err(format!(
                "exit-heads: output '{name}' has {} values, the final output '{}' {}: a head must give one logit per class",
                shape.features(),
                graph.tensors[final_output].name,
                classes.features()
            ));
        }
    }
    // Several outputs were packed into one: the packing goes.
    let packed = graph.output;
    graph.layers.retain(|l| {
        !(l.output == packed
            && l.name.starts_with("output_")
            && matches!(l.op, LayerOp::Insert { .. }))
    });
    graph.output = final_output;
    head_tensors.sort_unstable();
    graph.exits = head_tensors
        .into_iter()
        .map(|logits| ExitHead {
            logits,
            measure: Confidence::MaxSoftmax,
        })
        .collect();
    drop_unused_layers(graph);
    Ok(())
}

/// Removes the layers neither the output nor a head needs.
fn drop_unused_layers(graph: &mut Graph) {
    let mut live: BTreeSet<TensorId> = graph.exits.iter().map(|e| e.logits).collect();
    live.insert(graph.output);
    let mut keep = vec![false; graph.layers.len()];
    for (i, layer) in graph.layers.iter().enumerate().rev() {
        if live.contains(&layer.output) {
            keep[i] = true;
            live.extend(layer.inputs.iter().copied());
        }
    }
    let mut k = keep.into_iter();
    graph.layers.retain(|_| k.next().unwrap_or(true));
}
