//! Graph transforms that make a variant: early-exit heads, structured
//! channel pruning, unstructured magnitude pruning, and per-layer precision
//! (binary layers fed by sign layers, int4 weights).

use super::graph::{ExitHead, Graph, Layer, LayerOp, LayerWeights, Precision, Tensor, TensorId};
use kernels::exit::Confidence;
use kernels::geometry::{Activation, Padding, Shape};

/// Why a transform could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// A named layer is not in the model.
    #[error("failed to {action}: model '{model}' has no layer '{layer}'")]
    UnknownLayer {
        /// What was being done.
        action: &'static str,
        /// Model name.
        model: String,
        /// The name given.
        layer: String,
    },
    /// A layer cannot take the requested change.
    #[error("failed to {action} at layer '{layer}': {why}")]
    Unsupported {
        /// What was being done.
        action: &'static str,
        /// The layer.
        layer: String,
        /// Why not.
        why: &'static str,
    },
}

fn find(graph: &Graph, name: &str, action: &'static str) -> Result<usize, TransformError> {
    graph
        .layers
        .iter()
        .position(|l| l.name == name)
        .ok_or_else(|| TransformError::UnknownLayer {
            action,
            model: graph.name.clone(),
            layer: name.into(),
        })
}

/// Attaches an exit head after each named layer: a global average pool
/// (for spatial outputs), a flatten, and a dense layer to as many logits as
/// the final output has classes. The heads have no weights yet.
pub fn attach_exits(
    graph: &Graph,
    at: &[String],
    measure: Confidence,
) -> Result<Graph, TransformError> {
    const ACTION: &str = "attach an exit head";
    let classes = graph.tensors[graph.output].shape.c;
    let mut points = Vec::new();
    for name in at {
        let i = find(graph, name, ACTION)?;
        if graph.layers[i].output == graph.output {
            return Err(TransformError::Unsupported {
                action: ACTION,
                layer: name.clone(),
                why: "it is the model's final layer",
            });
        }
        points.push(i);
    }
    let mut out = Graph {
        layers: Vec::new(),
        exits: Vec::new(),
        ..graph.clone()
    };
    let new_tensor = |tensors: &mut Vec<Tensor>, name: String, shape: Shape| {
        tensors.push(Tensor {
            name,
            shape,
            quant: None,
        });
        tensors.len() - 1
    };
    let mut head = 0;
    for (i, layer) in graph.layers.iter().enumerate() {
        out.layers.push(layer.clone());
        if !points.contains(&i) {
            continue;
        }
        head += 1;
        let mut x = layer.output;
        let s = graph.tensors[x].shape;
        let push = |out: &mut Graph, suffix: &str, op: LayerOp, shape: Shape, x: TensorId| {
            let name = format!("exit{head}.{suffix}");
            let t = new_tensor(&mut out.tensors, name.clone(), shape);
            out.layers.push(Layer::new(&name, op, vec![x], t));
            t
        };
        if s.h * s.w > 1 {
            let op = LayerOp::AvgPool {
                kernel: (s.h, s.w),
                stride: (1, 1),
                padding: Padding::Valid,
                rounding: Default::default(),
                activation: kernels::geometry::Activation::None,
            };
            x = push(&mut out, "pool", op, Shape::new(s.n, 1, 1, s.c), x);
        }
        let logits = push(
            &mut out,
            "fc",
            LayerOp::Dense {
                units: classes,
                activation: Activation::None,
            },
            Shape::flat(s.n, classes),
            x,
        );
        out.exits.push(ExitHead { logits, measure });
    }
    Ok(out)
}

/// Whether the channels of tensor `t` can be dropped: every path from it
/// passes only through channel-wise layers to a conv or dense layer, never
/// to an addition, a softmax or an output.
fn prunable(graph: &Graph, t: TensorId) -> bool {
    if t == graph.output || graph.exits.iter().any(|e| e.logits == t) {
        return false;
    }
    let mut consumers = graph.consumers(t).peekable();
    consumers.peek().is_some()
        && consumers.all(|(_, l)| match l.op {
            LayerOp::Conv2d { .. } | LayerOp::Dense { .. } => true,
            LayerOp::DepthwiseConv2d { multiplier: 1, .. }
            | LayerOp::AvgPool { .. }
            | LayerOp::MaxPool { .. }
            | LayerOp::Flatten
            | LayerOp::Sign => prunable(graph, l.output),
            _ => false,
        })
}

/// Keeps the listed rows (each `row` values long) of a weight matrix.
fn keep_rows(values: &[f32], row: usize, keep: &[usize]) -> Vec<f32> {
    keep.iter()
        .flat_map(|&r| values[r * row..(r + 1) * row].iter().copied())
        .collect()
}

/// Keeps the listed positions of every `period`-long run of values.
fn keep_within(values: &[f32], period: usize, keep: &[usize]) -> Vec<f32> {
    values
        .chunks_exact(period)
        .flat_map(|run| keep.iter().map(|&k| run[k]))
        .collect()
}

/// The flattened feature indices of the kept channels of an `old` tensor.
fn flat_features(old: Shape, keep: &[usize]) -> Vec<usize> {
    (0..(old.h * old.w) as usize)
        .flat_map(|p| keep.iter().map(move |&k| p * old.c as usize + k))
        .collect()
}

/// Narrows tensor `t` to the kept channels and follows the change into
/// every layer that reads it.
fn narrow(graph: &mut Graph, t: TensorId, keep: &[usize]) {
    let old = graph.tensors[t].shape;
    graph.tensors[t].shape.c = keep.len() as u32;
    let consumers: Vec<usize> = graph.consumers(t).map(|(i, _)| i).collect();
    for i in consumers {
        let layer = &mut graph.layers[i];
        let output = layer.output;
        let w = layer.weights.as_mut();
        match layer.op {
            LayerOp::DepthwiseConv2d { .. } => {
                if let Some(w) = w {
                    w.kernel = keep_within(&w.kernel, old.c as usize, keep);
                    w.bias = keep.iter().map(|&k| w.bias[k]).collect();
                }
                narrow(graph, output, keep);
            }
            LayerOp::AvgPool { .. } | LayerOp::MaxPool { .. } | LayerOp::Sign => {
                narrow(graph, output, keep)
            }
            LayerOp::Flatten => narrow(graph, output, &flat_features(old, keep)),
            LayerOp::Conv2d { .. } => {
                if let Some(w) = w {
                    w.kernel = keep_within(&w.kernel, old.c as usize, keep);
                }
            }
            LayerOp::Dense { .. } => {
                if let Some(w) = w {
                    w.kernel = keep_within(&w.kernel, old.features(), &flat_features(old, keep));
                }
            }
            _ => unreachable!("prunable() admits no other consumer"),
        }
    }
}

/// Structured pruning: in every conv and dense layer whose channels can be
/// dropped, removes the fraction `ratio` of output channels with the
/// smallest L1 norm (keeping at least one), and the matching inputs of the
/// layers that read them. The result is a smaller dense model. Returns the
/// names of the pruned layers.
pub fn prune_channels(graph: &mut Graph, ratio: f32) -> Vec<String> {
    (0..graph.layers.len())
        .filter_map(|i| prune_layer_channels(graph, i, ratio))
        .collect()
}

/// Channel pruning aimed at peak activation memory, as Pex co-designs
/// pruning with partial execution: removes the fraction `ratio` of output
/// channels (by L1 norm) only from the layers whose outputs are live
/// where the activations peak (through depthwise and pooling layers to
/// the convolution that makes their channels), then again where the peak
/// has moved, until the tensors live at the peak hold no channel left to
/// prune. Every layer is pruned at most once. Returns the names of the
/// pruned layers, in the order pruned; none, and the graph unchanged,
/// where that does not lower the peak (a residual block's input and sum
/// live beside its convolutions' outputs keep ResNet-8's).
pub fn prune_channels_at_peak(graph: &mut Graph, ratio: f32) -> Vec<String> {
    let original = graph.clone();
    let mut tried = std::collections::BTreeSet::new();
    let mut pruned = Vec::new();
    loop {
        let (step, _) = peak(graph);
        let sources: std::collections::BTreeSet<usize> = live_tensors(graph, step)
            .filter_map(|t| channel_source(graph, t))
            .filter(|i| !tried.contains(i))
            .collect();
        if sources.is_empty() {
            break;
        }
        for i in sources {
            tried.insert(i);
            pruned.extend(prune_layer_channels(graph, i, ratio));
        }
    }
    if peak(graph).1 >= peak(&original).1 {
        *graph = original;
        pruned.clear();
    }
    pruned
}

/// The step (layer index) where the most activation elements are live,
/// and how many: a layer's inputs and output, and every tensor made
/// before it and read by it or later (the model's input from the start,
/// its output and exit logits to the end).
pub fn peak(graph: &Graph) -> (usize, usize) {
    (0..graph.layers.len())
        .map(|step| {
            let live = live_tensors(graph, step)
                .map(|t| graph.tensors[t].shape.elements().unwrap_or(0))
                .sum();
            (step, live)
        })
        .fold(
            (0, 0),
            |best, here| if here.1 > best.1 { here } else { best },
        )
}

/// The tensors live while layer `step` runs (see [`peak`]).
fn live_tensors(graph: &Graph, step: usize) -> impl Iterator<Item = TensorId> + '_ {
    let made = move |t: TensorId| match graph.layers.iter().position(|l| l.output == t) {
        Some(i) => i <= step,
        None => t == graph.input,
    };
    let kept = move |t: TensorId| {
        t == graph.output
            || graph.exits.iter().any(|e| e.logits == t)
            || graph.consumers(t).any(|(i, _)| i >= step)
    };
    (0..graph.tensors.len()).filter(move |&t| made(t) && kept(t))
}

/// The convolution or dense layer whose output channels tensor `t`'s are
/// (through depthwise layers of multiplier 1, pooling and sign).
fn channel_source(graph: &Graph, t: TensorId) -> Option<usize> {
    let i = graph.layers.iter().position(|l| l.output == t)?;
    match graph.layers[i].op {
        LayerOp::Conv2d { .. } | LayerOp::Dense { .. } => Some(i),
        LayerOp::DepthwiseConv2d { multiplier: 1, .. }
        | LayerOp::AvgPool { .. }
        | LayerOp::MaxPool { .. }
        | LayerOp::Sign => channel_source(graph, *graph.layers[i].inputs.first()?),
        _ => None,
    }
}

/// Removes the fraction `ratio` of layer `i`'s output channels with the
/// smallest L1 norm (keeping at least one) and the matching inputs of the
/// layers that read them, if it is a conv or dense layer whose channels
/// can be dropped; its name if it was pruned.
fn prune_layer_channels(graph: &mut Graph, i: usize, ratio: f32) -> Option<String> {
    let layer = &graph.layers[i];
    let (Some(w), true) = (
        &layer.weights,
        matches!(layer.op, LayerOp::Conv2d { .. } | LayerOp::Dense { .. }),
    ) else {
        return None;
    };
    let channels = w.bias.len();
    let keep_n = ((channels as f32 * (1.0 - ratio)).round() as usize).clamp(1, channels);
    if keep_n == channels || !prunable(graph, layer.output) {
        return None;
    }
    let row = w.kernel.len() / channels;
    let norms: Vec<f32> = w
        .kernel
        .chunks_exact(row)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    let mut order: Vec<usize> = (0..channels).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let mut keep = order[..keep_n].to_vec();
    keep.sort_unstable();
    let w = LayerWeights {
        kernel: keep_rows(&w.kernel, row, &keep),
        bias: keep.iter().map(|&k| w.bias[k]).collect(),
    };
    let layer = &mut graph.layers[i];
    layer.weights = Some(w);
    match &mut layer.op {
        LayerOp::Conv2d { filters: n, .. } | LayerOp::Dense { units: n, .. } => *n = keep_n as u32,
        _ => unreachable!(),
    }
    let (name, output) = (layer.name.clone(), layer.output);
    narrow(graph, output, &keep);
    Some(name)
}

/// Unstructured pruning: sets the fraction `sparsity` of each conv,
/// depthwise and dense layer's weights with the smallest magnitude to zero.
pub fn prune_magnitude(graph: &mut Graph, sparsity: f32) {
    for layer in &mut graph.layers {
        let Some(w) = layer.weights.as_mut() else {
            continue;
        };
        let zeros = (w.kernel.len() as f32 * sparsity).floor() as usize;
        let mut order: Vec<usize> = (0..w.kernel.len()).collect();
        order.sort_by(|&a, &b| {
            w.kernel[a]
                .abs()
                .total_cmp(&w.kernel[b].abs())
                .then(a.cmp(&b))
        });
        for &i in &order[..zeros] {
            w.kernel[i] = 0.0;
            // An imported int8 layer keeps its scales: only the pruned weights change.
            if let Some(q) = layer.int8.as_mut() {
                q.values[i] = 0;
            }
        }
    }
}

/// Zeroes `sparsity` of each conv, depthwise and dense layer's blocks of
/// `block = [rows, columns]` weights of its matrix as the kernels lay it
/// out: `[out, kh * kw * in]` (OHWI), `[kh * kw, channels]` (depthwise:
/// a block of `[1, 4]` is four channels at one tap) or `[out, in]`, cut
/// into blocks from its first row and column (smaller ones at the edges);
/// the blocks of the lowest mean magnitude are zeroed, as TFMOT's block
/// pruning ranks them (its average pooling over the kernel's last two
/// dimensions).
pub fn prune_blocks(graph: &mut Graph, block: [usize; 2], sparsity: f32) {
    for layer in &mut graph.layers {
        let depthwise = match layer.op {
            LayerOp::Conv2d { .. } | LayerOp::Dense { .. } => false,
            LayerOp::DepthwiseConv2d { .. } => true,
            _ => continue,
        };
        let Some(w) = layer.weights.as_mut() else {
            continue;
        };
        // Rows of `columns` weights, as the kernels read them: output
        // channels over their receptive fields, or a depthwise filter's
        // taps over its channels (`[1, kh, kw, c]`: a block of four is
        // four channels at one tap).
        let channels = w.bias.len().max(1);
        let (rows, columns) = match depthwise {
            false => (channels, w.kernel.len() / channels),
            true => (w.kernel.len() / channels, channels),
        };
        let blocks = weight_blocks(rows, columns, block);
        let mean = |cells: &[(usize, usize)]| {
            let sum: f32 = cells
                .iter()
                .map(|&(r, c)| w.kernel[r * columns + c].abs())
                .sum();
            sum / cells.len() as f32
        };
        let mut order: Vec<(f32, usize)> = blocks.iter().map(|b| mean(b)).zip(0..).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let zeros = (blocks.len() as f32 * sparsity).floor() as usize;
        for &(_, b) in &order[..zeros] {
            for &(r, c) in &blocks[b] {
                w.kernel[r * columns + c] = 0.0;
                // An imported int8 layer keeps its scales: only the pruned weights change.
                if let Some(q) = layer.int8.as_mut() {
                    q.values[r * columns + c] = 0;
                }
            }
        }
    }
}

/// The `(row, column)` cells of each block of a `rows x columns` matrix.
fn weight_blocks(rows: usize, columns: usize, [bh, bw]: [usize; 2]) -> Vec<Vec<(usize, usize)>> {
    let mut blocks = Vec::new();
    for r0 in (0..rows).step_by(bh) {
        for c0 in (0..columns).step_by(bw) {
            let cells = (r0..(r0 + bh).min(rows))
                .flat_map(|r| (c0..(c0 + bw).min(columns)).map(move |c| (r, c)))
                .collect();
            blocks.push(cells);
        }
    }
    blocks
}

/// The fraction of a layer's kernel weights that are zero.
pub fn sparsity(weights: &LayerWeights) -> f32 {
    weights.kernel.iter().filter(|&&v| v == 0.0).count() as f32 / weights.kernel.len().max(1) as f32
}

/// The first and last conv or dense layers: what binary networks keep in
/// int8 by convention (BinaryNet, XNOR-Net, Larq's zoo).
pub fn first_and_last(graph: &Graph) -> Vec<String> {
    let mut layers = graph
        .layers
        .iter()
        .filter(|l| matches!(l.op, LayerOp::Conv2d { .. } | LayerOp::Dense { .. }));
    let first = layers.next().map(|l| l.name.clone());
    let last = layers.next_back().map(|l| l.name.clone());
    first.into_iter().chain(last).collect()
}

/// Makes every conv and dense layer binary except those in `keep`, each
/// fed by a new sign layer. Depthwise layers stay in the model's format.
pub fn binarize(graph: &mut Graph, keep: &[String]) -> Result<(), TransformError> {
    for name in keep {
        find(graph, name, "keep a layer out of binarization")?;
    }
    binarize_where(graph, |layer| !keep.contains(&layer.name));
    Ok(())
}

/// Makes the conv and dense layers that `chosen` picks binary, each fed by
/// a new sign layer placed right before it.
fn binarize_where(graph: &mut Graph, chosen: impl Fn(&Layer) -> bool) {
    let layers = std::mem::take(&mut graph.layers);
    for mut layer in layers {
        if matches!(layer.op, LayerOp::Conv2d { .. } | LayerOp::Dense { .. })
            && layer.precision != Precision::Binary
            && chosen(&layer)
        {
            let x = layer.inputs[0];
            let s = graph.tensors[x].shape;
            // A dense layer reads its input flattened, so its signs are packed as one row.
            let shape = if matches!(layer.op, LayerOp::Dense { .. }) {
                Shape::flat(s.n, s.features() as u32)
            } else {
                s
            };
            let name = format!("{}.sign", layer.name);
            graph.tensors.push(Tensor {
                name: name.clone(),
                shape,
                quant: None,
            });
            let sign = graph.tensors.len() - 1;
            graph
                .layers
                .push(Layer::new(&name, LayerOp::Sign, vec![x], sign));
            layer.inputs[0] = sign;
            layer.precision = Precision::Binary;
        }
        graph.layers.push(layer);
    }
}

/// Sets one layer's precision (a per-layer override).
pub fn set_precision(
    graph: &mut Graph,
    name: &str,
    precision: Precision,
) -> Result<(), TransformError> {
    const ACTION: &str = "override the precision";
    let i = find(graph, name, ACTION)?;
    let layer = &mut graph.layers[i];
    let why = match (&layer.op, precision) {
        (LayerOp::Conv2d { .. } | LayerOp::Dense { .. }, _) => None,
        (LayerOp::DepthwiseConv2d { .. }, Precision::Full) => None,
        (LayerOp::DepthwiseConv2d { .. }, _) => {
            Some("depthwise convolutions have int8 and float kernels only")
        }
        _ => Some("the layer has no weights"),
    };
    if let Some(why) = why {
        return Err(TransformError::Unsupported {
            action: ACTION,
            layer: name.into(),
            why,
        });
    }
    if precision == Precision::Binary {
        binarize_where(graph, |l| l.name == name);
    } else {
        let was_binary = layer.precision == Precision::Binary;
        layer.precision = precision;
        if was_binary {
            unbinarize_input(graph, i);
        }
    }
    Ok(())
}

/// A binary layer made int8 or float reads the values its Sign took the
/// signs of (the same shapes, in the twin's precision); the Sign goes when
/// nothing else reads it.
fn unbinarize_input(graph: &mut Graph, i: usize) {
    let signs = graph.layers[i].inputs[0];
    let Some(values) = graph.sign_source(signs) else {
        return;
    };
    graph.layers[i].inputs[0] = values;
    if graph.consumers(signs).next().is_none() {
        graph.layers.retain(|l| l.output != signs);
    }
}
