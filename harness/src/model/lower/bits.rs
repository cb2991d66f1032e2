//! Rewrites that keep a binary network's activations in packed signs
//! between its binary layers, as LCE does: a max pool before a Sign pools
//! the signs instead of the values ([`pool_signs`]), and a binary layer
//! whose output only a Sign reads writes the packed signs itself
//! ([`fuse_binary_signs`]). Both lowerings run them; calibration reads the
//! graph without them, as it needs every float tensor.

use crate::model::graph::{Graph, Layer, LayerOp, Precision, Tensor, TensorId};
use kernels::geometry::Activation;
use std::borrow::Cow;

/// The graph as the lowering runs it: [`pool_signs`], then [`fuse_binary_signs`].
pub(super) fn in_bits(graph: &Graph) -> Cow<'_, Graph> {
    match pool_signs(graph) {
        Cow::Borrowed(g) => fuse_binary_signs(g),
        // Fusing clones only when it changes something; the pooled graph is ours already.
        Cow::Owned(g) => match fuse_binary_signs(&g) {
            Cow::Borrowed(_) => Cow::Owned(g),
            Cow::Owned(fused) => Cow::Owned(fused),
        },
    }
}

/// Whether tensor `t` must exist after a run: the output or an exit's logits.
fn kept(graph: &Graph, t: TensorId) -> bool {
    t == graph.output || graph.exits.iter().any(|e| e.logits == t)
}

/// The graph with each `Sign(MaxPool(x))` (no activation, the pooled values
/// read by nothing else) as `MaxPool(Sign(x))`: the sign of a maximum is
/// set only when every sign in its window is, so the pool of packed signs
/// (an AND per word) gives the same bits without the pooled values. An
/// earlier Sign of `x` is reused (LCE's binary max pool after a binary
/// convolution that writes bits).
fn pool_signs(graph: &Graph) -> Cow<'_, Graph> {
    let writer = |t: TensorId| graph.layers.iter().position(|l| l.output == t);
    // (pool layer, sign layer) pairs.
    let pairs: Vec<(usize, usize)> = graph
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.op == LayerOp::Sign)
        .filter_map(|(s, sign)| {
            let pooled = sign.inputs[0];
            let p = writer(pooled)?;
            let plain = matches!(
                graph.layers[p].op,
                LayerOp::MaxPool {
                    activation: Activation::None,
                    ..
                }
            );
            let alone = graph.consumers(pooled).count() == 1 && !kept(graph, pooled);
            (plain && alone).then_some((p, s))
        })
        .collect();
    if pairs.is_empty() {
        return Cow::Borrowed(graph);
    }
    let mut g = graph.clone();
    g.layers.clear();
    for (i, layer) in graph.layers.iter().enumerate() {
        if pairs.iter().any(|&(_, s)| s == i) {
            continue;
        }
        let Some(&(_, s)) = pairs.iter().find(|&&(p, _)| p == i) else {
            g.layers.push(layer.clone());
            continue;
        };
        let x = layer.inputs[0];
        let earlier_sign = g
            .layers
            .iter()
            .find(|l| l.op == LayerOp::Sign && l.inputs[0] == x)
            .map(|l| l.output);
        let signs = earlier_sign.unwrap_or_else(|| {
            g.tensors.push(Tensor {
                name: format!("{}/sign", graph.tensors[x].name),
                shape: graph.tensors[x].shape,
                quant: None,
            });
            let t = g.tensors.len() - 1;
            g.layers.push(Layer::new(
                &format!("{}.sign", layer.name),
                LayerOp::Sign,
                vec![x],
                t,
            ));
            t
        });
        let mut pool = layer.clone();
        pool.inputs = vec![signs];
        pool.output = graph.layers[s].output;
        g.layers.push(pool);
    }
    Cow::Owned(g)
}

/// The graph with each binary layer whose float output only a Sign reads,
/// for binary layers and max pools of signs only, writing the Sign's packed
/// bits itself (LCE's output thresholds,
/// [`kernels::binary::fold_threshold`]): the float or int8 tensor is never
/// made, and the Sign goes.
fn fuse_binary_signs(graph: &Graph) -> Cow<'_, Graph> {
    let binary = |l: &Layer| l.precision == Precision::Binary;
    let fusable = |sign: &Layer| {
        let t = sign.inputs[0];
        let writer = graph
            .layers
            .iter()
            .filter(|l| l.output == t)
            .collect::<Vec<_>>();
        let readers = graph.consumers(t).count();
        // Packed signs are what binary layers and max pools of signs read.
        let bits_readers_binary = graph
            .consumers(sign.output)
            .all(|(_, l)| binary(l) || matches!(l.op, LayerOp::MaxPool { .. }));
        matches!(writer[..], [w] if binary(w) && matches!(w.op,
            LayerOp::Conv2d { activation: Activation::None, .. } | LayerOp::Dense { activation: Activation::None, .. }))
            && readers == 1
            && !kept(graph, t)
            && !kept(graph, sign.output)
            && bits_readers_binary
    };
    let signs: Vec<(TensorId, TensorId)> = graph
        .layers
        .iter()
        .filter(|l| l.op == LayerOp::Sign && fusable(l))
        .map(|l| (l.inputs[0], l.output))
        .collect();
    if signs.is_empty() {
        return Cow::Borrowed(graph);
    }
    let mut fused = graph.clone();
    fused
        .layers
        .retain(|l| !(l.op == LayerOp::Sign && signs.iter().any(|&(t, _)| l.inputs[0] == t)));
    for layer in &mut fused.layers {
        if let Some(&(_, bits)) = signs.iter().find(|&&(t, _)| layer.output == t) {
            layer.output = bits;
        }
    }
    Cow::Owned(fused)
}
