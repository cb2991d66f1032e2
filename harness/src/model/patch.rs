//! Patch-based inference for `memory = "patch"` (MCUNetV2): the model's
//! first stage runs one spatial patch of its output at a time, so that only
//! the stage's input and output are whole in memory and every tensor in
//! between is held for one patch. Patches overlap in their receptive fields,
//! and the overlap is computed again for each patch: that recomputation is
//! the schedule's cost, and the patched graph's MACs count it.
//!
//! The schedule is a rewrite of the graph, not a new executor: each patch is
//! a copy of the stage's layers on a window of the stage's input (a
//! `Slice`), with the padding the window needs (real rows and columns where
//! the patch meets its neighbours, the model's own padding at the image's
//! border), and its output is copied into the stage's output (an `Insert`).
//! The copies share their weights (the blob writer stores equal constants
//! once) and their tensors' quantization (the whole tensors' ranges), so the
//! output is byte-equal to the whole-tensor run on every target.

use super::graph::{Graph, Layer, LayerOp, Precision, Tensor, TensorId};
use kernels::geometry::{Padding, Shape};

/// The most MACs the patches may compute again, as a fraction of the
/// model's: MCUNetV2 measured 10-30% extra for its first stages before it
/// redistributed their receptive fields; past that, a smaller peak costs
/// more time than a board that fits would save.
const RECOMPUTE_BUDGET: f64 = 0.25;

/// The largest grid tried: `n x n` patches with `n` up to this (MCUNetV2
/// uses 2-4 per side on its 128-224 pixel inputs).
const MAX_GRID: u32 = 8;

/// A window of a tensor: rows `y.0..y.1` and columns `x.0..x.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    y: (u32, u32),
    x: (u32, u32),
}

impl Region {
    fn whole(shape: Shape) -> Self {
        Region {
            y: (0, shape.h),
            x: (0, shape.w),
        }
    }

    fn union(self, other: Region) -> Region {
        Region {
            y: (self.y.0.min(other.y.0), self.y.1.max(other.y.1)),
            x: (self.x.0.min(other.x.0), self.x.1.max(other.x.1)),
        }
    }

    fn shape(self, c: u32) -> Shape {
        Shape::new(1, self.y.1 - self.y.0, self.x.1 - self.x.0, c)
    }

    fn elements(self, c: u32) -> usize {
        self.shape(c).elements().unwrap_or(usize::MAX)
    }
}

/// The patch schedule chosen for a graph: layers `start..end` run as
/// `grid x grid` patches of the last one's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The stage's first layer: the graph's first patchable layer (those
    /// before it, such as a layout TRANSPOSE of the input, run whole).
    pub start: usize,
    /// One past the stage's last layer.
    pub end: usize,
    /// Patches per side.
    pub grid: u32,
}

impl Stage {
    fn layers(self, graph: &Graph) -> &[Layer] {
        &graph.layers[self.start..self.end]
    }

    /// The tensor the stage reads, whole.
    fn input(self, graph: &Graph) -> TensorId {
        graph.layers[self.start].inputs[0]
    }

    /// The tensor the stage writes, patch by patch.
    fn output(self, graph: &Graph) -> TensorId {
        graph.layers[self.end - 1].output
    }
}

/// A graph rewritten to run its first stage by patches.
pub struct Patched {
    /// The rewritten graph.
    pub graph: Graph,
    /// For each of its tensors, the tensor of the original graph it holds
    /// a window of (its quantization and type come from there).
    pub origin: Vec<TensorId>,
}

/// The input positions output positions `out` read along one axis of
/// extent `len`: kernel `k`, stride `s`, dilation `d`, leading padding `pad`.
fn receptive(out: (u32, u32), k: u32, s: u32, d: u32, pad: u32, len: u32) -> (u32, u32) {
    let reach = i64::from((k.max(1) - 1) * d.max(1) + 1);
    let first = i64::from(out.0) * i64::from(s) - i64::from(pad);
    let last = i64::from(out.1 - 1) * i64::from(s) - i64::from(pad) + reach;
    (first.max(0) as u32, last.min(i64::from(len)) as u32)
}

/// Whether a layer computes each output position from a window of its
/// inputs' positions, so that it can run on a patch.
fn patchable(graph: &Graph, layer: &Layer) -> bool {
    let same_shapes = layer
        .inputs
        .iter()
        .all(|&t| graph.tensors[t].shape == graph.tensors[layer.output].shape);
    layer.precision != Precision::Binary
        && match layer.op {
            LayerOp::Conv2d { .. }
            | LayerOp::DepthwiseConv2d { .. }
            | LayerOp::AvgPool { .. }
            | LayerOp::MaxPool { .. } => layer.inputs.len() == 1,
            LayerOp::Add { .. }
            | LayerOp::Quantize
            | LayerOp::Requantize { .. }
            | LayerOp::Activation { .. } => same_shapes,
            _ => false,
        }
}

/// The regions of its inputs a patchable layer reads for output region `out`.
fn needs(graph: &Graph, layer: &Layer, out: Region) -> Vec<Region> {
    let input = graph.tensors[layer.inputs[0]].shape;
    match layer.op.window((input.h, input.w)) {
        Some((w, _)) => vec![Region {
            y: receptive(
                out.y,
                w.kernel_h,
                w.stride_h,
                w.dilation_h,
                w.pad_top,
                input.h,
            ),
            x: receptive(
                out.x,
                w.kernel_w,
                w.stride_w,
                w.dilation_w,
                w.pad_left,
                input.w,
            ),
        }],
        None => vec![out; layer.inputs.len()],
    }
}

/// The stages the graph can run by patches: runs of patchable layers from
/// its first patchable layer, which read one tensor from before the run
/// and whose tensors are read inside the run only, but the last layer's
/// output, which later layers read.
pub fn stages(graph: &Graph) -> Vec<(usize, usize)> {
    let Some(start) = graph.layers.iter().position(|l| patchable(graph, l)) else {
        return Vec::new();
    };
    let input = graph.layers[start].inputs[0];
    if graph.tensors[input].shape.n != 1 {
        return Vec::new();
    }
    let mut made = vec![false; graph.tensors.len()];
    made[input] = true;
    let mut stages = Vec::new();
    for (i, layer) in graph.layers.iter().enumerate().skip(start) {
        let fresh = !made[layer.output];
        if !patchable(graph, layer) || !fresh || !layer.inputs.iter().all(|&t| made[t]) {
            break;
        }
        made[layer.output] = true;
        let escapes = |t: TensorId| {
            t == graph.output
                || graph.exits.iter().any(|e| e.logits == t)
                || graph.consumers(t).any(|(j, _)| j > i)
        };
        let inner_stay = graph.layers[start..i].iter().all(|l| !escapes(l.output));
        if inner_stay && layer.output != graph.output && escapes(layer.output) {
            stages.push((start, i + 1));
        }
    }
    stages
}

/// The region of every tensor one patch of the stage's output holds: the
/// union of what the stage's layers read of it (by original tensor id).
fn regions(graph: &Graph, stage: Stage, patch: Region) -> Vec<Option<Region>> {
    let mut held: Vec<Option<Region>> = vec![None; graph.tensors.len()];
    held[stage.output(graph)] = Some(patch);
    for layer in stage.layers(graph).iter().rev() {
        let Some(out) = held[layer.output] else {
            continue;
        };
        for (&t, need) in layer.inputs.iter().zip(needs(graph, layer, out)) {
            held[t] = Some(held[t].map_or(need, |r| r.union(need)));
        }
    }
    held
}

/// `len` cut into `parts` nearly equal runs (fewer if `len` is smaller).
fn split(len: u32, parts: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..parts)
        .map(move |p| (len * p / parts, len * (p + 1) / parts))
        .filter(|(start, end)| end > start)
}

fn patches(shape: Shape, grid: u32) -> impl Iterator<Item = Region> {
    split(shape.h, grid).flat_map(move |y| split(shape.w, grid).map(move |x| Region { y, x }))
}

/// Bytes per element of each tensor, as the lowering will store it.
pub type ElementBytes<'a> = &'a dyn Fn(TensorId) -> usize;

/// What running a stage by patches costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cost {
    /// The most bytes live at once while the stage runs: its input and
    /// output whole, and the windows one patch holds at each of its steps.
    peak: usize,
    /// The MACs the patches compute again: every output position the
    /// stage's layers compute for more than one patch, at that layer's
    /// MACs per position.
    extra_macs: u64,
}

/// The cost of `stage`, from each patch's windows.
fn cost(graph: &Graph, stage: Stage, bytes: ElementBytes) -> Cost {
    let whole = |t: TensorId| graph.tensors[t].shape.elements().unwrap_or(0) * bytes(t);
    let (input, output) = (stage.input(graph), stage.output(graph));
    let layers = stage.layers(graph);
    // The last step of the stage reading each of its layers' outputs.
    let last_read = |t: TensorId| {
        (0..layers.len())
            .rev()
            .find(|&j| layers[j].inputs.contains(&t))
    };
    let read_until: Vec<Option<usize>> = layers.iter().map(|l| last_read(l.output)).collect();
    let input_read_until = last_read(input);
    let mut peak = 0;
    let mut computed = vec![0u64; layers.len()];
    for patch in patches(graph.tensors[output].shape, stage.grid) {
        let held = regions(graph, stage, patch);
        let window =
            |t: TensorId| held[t].map_or(0, |r| r.elements(graph.tensors[t].shape.c) * bytes(t));
        // The input's window is a copy unless it is the whole input.
        let input_copy = if held[input] == Some(Region::whole(graph.tensors[input].shape)) {
            0
        } else {
            window(input)
        };
        for step in 0..layers.len() {
            let live: usize = (0..=step)
                .filter(|&j| j == step || read_until[j] >= Some(step))
                .map(|j| window(layers[j].output))
                .sum();
            let input_live = if input_read_until >= Some(step) {
                input_copy
            } else {
                0
            };
            peak = peak.max(whole(input) + whole(output) + live + input_live);
        }
        for (j, layer) in layers.iter().enumerate() {
            let c = graph.tensors[layer.output].shape.c;
            computed[j] += held[layer.output].map_or(0, |r| r.elements(c) as u64);
        }
    }
    let extra_macs = layers
        .iter()
        .zip(computed)
        .map(|(layer, positions)| {
            let whole = graph.tensors[layer.output].shape.elements().unwrap_or(1) as u64;
            graph.layer_macs(layer) / whole.max(1) * positions.saturating_sub(whole)
        })
        .sum();
    Cost { peak, extra_macs }
}

/// The stage and grid with the lowest peak: the larger of the stage's own
/// peak under patches and the peak of the layers around it (`rest_live`:
/// live bytes while each layer runs under the plain schedule), then the fewest
/// recomputed MACs, within [`RECOMPUTE_BUDGET`]. `None` where no patching
/// lowers the peak below `plain`.
pub fn choose(
    graph: &Graph,
    rest_live: &[usize],
    plain: usize,
    bytes: ElementBytes,
) -> Option<Stage> {
    let budget = (graph.macs() as f64 * RECOMPUTE_BUDGET) as u64;
    let mut best: Option<((usize, u64), Stage)> = None;
    for (start, end) in stages(graph) {
        let before = rest_live.get(..start).into_iter().flatten();
        let after = rest_live.get(end..).into_iter().flatten();
        let rest = before.chain(after).copied().max();
        let output = graph.tensors[graph.layers[end - 1].output].shape;
        for grid in 2..=MAX_GRID.min(output.h).min(output.w) {
            let stage = Stage { start, end, grid };
            let Cost { peak, extra_macs } = cost(graph, stage, bytes);
            let peak = peak.max(rest.unwrap_or(0));
            let score = (peak, extra_macs);
            if peak < plain && score.1 <= budget && best.is_none_or(|(b, _)| score < b) {
                best = Some((score, stage));
            }
        }
    }
    best.map(|(_, stage)| stage)
}

/// A windowed layer's operator for one patch: the same window with the
/// padding that makes its `input` window (`need` of the whole input) give
/// exactly its `out` window.
fn patch_op(op: &LayerOp, whole_input: Shape, need: Region, out: Region) -> Option<LayerOp> {
    let Some((w, _)) = op.window((whole_input.h, whole_input.w)) else {
        return Some(op.clone());
    };
    let axis = |(first, last): (u32, u32), (o0, o1): (u32, u32), k: u32, s: u32, d: u32, pad| {
        let reach = i64::from((k.max(1) - 1) * d.max(1) + 1);
        let before = i64::from(first) + i64::from(pad) - i64::from(o0) * i64::from(s);
        let span = i64::from(o1 - o0 - 1) * i64::from(s) + reach;
        let after = span - i64::from(last - first) - before;
        Some((
            u32::try_from(before).ok()?,
            u32::try_from(after.max(0)).ok()?,
        ))
    };
    let (top, bottom) = axis(
        need.y,
        out.y,
        w.kernel_h,
        w.stride_h,
        w.dilation_h,
        w.pad_top,
    )?;
    let (left, right) = axis(
        need.x,
        out.x,
        w.kernel_w,
        w.stride_w,
        w.dilation_w,
        w.pad_left,
    )?;
    let explicit = Padding::Explicit {
        top,
        bottom,
        left,
        right,
    };
    let mut op = op.clone();
    match &mut op {
        LayerOp::Conv2d { padding, .. }
        | LayerOp::DepthwiseConv2d { padding, .. }
        | LayerOp::AvgPool { padding, .. }
        | LayerOp::MaxPool { padding, .. } => *padding = explicit,
        _ => unreachable!("a windowed layer"),
    }
    let shape = need.shape(whole_input.c);
    let (_, produced) = op.window((shape.h, shape.w))?;
    (produced == (out.y.1 - out.y.0, out.x.1 - out.x.0)).then_some(op)
}

/// Builds the patched graph: the layers before the stage as they were, the
/// stage's layers once per patch, then the rest as it was. `None` if a patch's window cannot be
/// expressed (it always can for the layers [`stages`] admits).
pub fn rewrite(graph: &Graph, stage: Stage) -> Option<Patched> {
    let stage_output = stage.output(graph);
    let inner: Vec<bool> = (0..graph.tensors.len())
        .map(|t| t != stage_output && stage.layers(graph).iter().any(|l| l.output == t))
        .collect();
    let mut out = Builder::default();
    let mut kept = vec![None; graph.tensors.len()];
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if !inner[t] {
            kept[t] = Some(out.tensor(tensor.clone(), t));
        }
    }
    let kept_id = |t: TensorId| kept[t].expect("only inner tensors are dropped");
    let copy_whole = |out: &mut Builder, layer: &Layer| {
        let mut copy = layer.clone();
        copy.inputs = layer.inputs.iter().map(|&t| kept_id(t)).collect();
        copy.output = kept_id(layer.output);
        out.graph.layers.push(copy);
    };
    for layer in &graph.layers[..stage.start] {
        copy_whole(&mut out, layer);
    }
    let output_shape = graph.tensors[stage_output].shape;
    for (p, patch) in patches(output_shape, stage.grid).enumerate() {
        let held = regions(graph, stage, patch);
        let mut now: Vec<Option<TensorId>> = vec![None; graph.tensors.len()];
        let input = stage.input(graph);
        now[input] = Some(kept_id(input));
        if let Some(r) = held[input].filter(|&r| r != Region::whole(graph.tensors[input].shape)) {
            now[input] = Some(out.slice(
                graph,
                input,
                kept_id(input),
                Region::whole(graph.tensors[input].shape),
                r,
                p,
            ));
        }
        for layer in stage.layers(graph) {
            let window = held[layer.output]?;
            let reads = needs(graph, layer, window);
            let mut inputs = Vec::new();
            for (&t, &need) in layer.inputs.iter().zip(&reads) {
                let have = held[t]?;
                let id = now[t]?;
                inputs.push(if have == need {
                    id
                } else {
                    out.slice(graph, t, id, have, need, p)
                });
            }
            let whole_input = graph.tensors[layer.inputs[0]].shape;
            let op = patch_op(&layer.op, whole_input, reads[0], window)?;
            let original = &graph.tensors[layer.output];
            let tensor = Tensor {
                name: format!("{}@{p}", original.name),
                shape: window.shape(original.shape.c),
                quant: original.quant,
            };
            let id = out.tensor(tensor, layer.output);
            let mut copy = layer.clone();
            copy.name = format!("{}@{p}", layer.name);
            (copy.op, copy.inputs, copy.output) = (op, inputs, id);
            out.graph.layers.push(copy);
            now[layer.output] = Some(id);
        }
        let part = now[stage_output]?;
        let insert = LayerOp::Insert {
            before: [0, patch.y.0, patch.x.0, 0],
            input_view: out.graph.tensors[part].shape,
            output_view: output_shape,
        };
        let name = format!("{}@{p}:insert", graph.tensors[stage_output].name);
        out.graph
            .layers
            .push(Layer::new(&name, insert, vec![part], kept_id(stage_output)));
    }
    for layer in &graph.layers[stage.end..] {
        copy_whole(&mut out, layer);
    }
    let mut patched = out.graph;
    patched.name = graph.name.clone();
    patched.input = kept_id(graph.input);
    patched.output = kept_id(graph.output);
    patched.exits = graph
        .exits
        .iter()
        .map(|e| super::ExitHead {
            logits: kept_id(e.logits),
            ..*e
        })
        .collect();
    let origin = out.origin;
    let mapped = |set: &std::collections::BTreeSet<TensorId>| {
        (0..origin.len())
            .filter(|&t| set.contains(&origin[t]))
            .collect()
    };
    patched.int16 = mapped(&graph.int16);
    patched.int32 = mapped(&graph.int32);
    patched.float32 = mapped(&graph.float32);
    patched.layout = graph.layout;
    Some(Patched {
        graph: patched,
        origin,
    })
}

/// The patched graph as it is built, with each tensor's origin.
struct Builder {
    graph: Graph,
    origin: Vec<TensorId>,
}

impl Default for Builder {
    fn default() -> Self {
        let mut graph = super::GraphBuilder::new("patched", Shape::new(1, 1, 1, 1)).finish(0);
        graph.tensors.clear();
        Builder {
            graph,
            origin: Vec::new(),
        }
    }
}

impl Builder {
    fn tensor(&mut self, tensor: Tensor, origin: TensorId) -> TensorId {
        self.graph.tensors.push(tensor);
        self.origin.push(origin);
        self.graph.tensors.len() - 1
    }

    /// A copy of window `need` of tensor `id`, which holds window `have` of
    /// the original tensor `t`.
    fn slice(
        &mut self,
        graph: &Graph,
        t: TensorId,
        id: TensorId,
        have: Region,
        need: Region,
        patch: usize,
    ) -> TensorId {
        let original = &graph.tensors[t];
        let view = need.shape(original.shape.c);
        let name = format!("{}@{patch}:{}x{}", original.name, need.y.0, need.x.0);
        let copy = self.tensor(
            Tensor {
                name: name.clone(),
                shape: view,
                quant: original.quant,
            },
            self.origin[id],
        );
        let op = LayerOp::Slice {
            begin: [0, need.y.0 - have.y.0, need.x.0 - have.x.0, 0],
            stride: [1; 4],
            view,
        };
        self.graph
            .layers
            .push(Layer::new(&name, op, vec![id], copy));
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GraphBuilder, Win};
    use kernels::geometry::Activation;

    /// input 16x16x3 -> conv 3x3/2 (8 ch, SAME) -> depthwise 3x3 -> conv 1x1 (4 ch) -> dense.
    fn stem() -> Graph {
        let mut b = GraphBuilder::new("stem", Shape::new(1, 16, 16, 3));
        let x = b.conv("conv", 0, 8, Win::same((3, 3)).stride(2), Activation::Relu);
        let x = b.depthwise("dw", x, Win::same((3, 3)), Activation::Relu);
        let x = b.conv("pw", x, 4, Win::valid((1, 1)), Activation::None);
        let x = b.flatten("flat", x);
        let x = b.dense("fc", x, 2, Activation::None);
        b.finish(x)
    }

    #[test]
    fn receptive_fields_follow_stride_padding_and_the_border() {
        // 3x3 stride 2 with one row of padding above, on 16 rows.
        assert_eq!(receptive((0, 4), 3, 2, 1, 1, 16), (0, 8));
        assert_eq!(receptive((4, 8), 3, 2, 1, 1, 16), (7, 16));
        // Dilation 2 reaches 5 rows.
        assert_eq!(receptive((2, 3), 3, 1, 2, 2, 16), (0, 5));
    }

    #[test]
    fn stages_end_where_only_their_last_output_escapes() {
        // conv, dw and pw may end a stage; flatten is not patchable.
        assert_eq!(stages(&stem()), vec![(0, 1), (0, 2), (0, 3)]);
    }

    #[test]
    fn a_patch_reads_its_receptive_field_and_recomputes_the_overlap() {
        let graph = stem();
        let stage = Stage {
            start: 0,
            end: 3,
            grid: 2,
        };
        // Output 8x8: the top-left patch is 4x4; the depthwise reads 5x5 of
        // the conv's output, which reads rows and columns 0..9 (SAME pads
        // nothing above on 16 rows with stride 2: the extra goes below).
        let held = regions(
            &graph,
            stage,
            Region {
                y: (0, 4),
                x: (0, 4),
            },
        );
        assert_eq!(
            held[3],
            Some(Region {
                y: (0, 4),
                x: (0, 4)
            })
        );
        assert_eq!(
            held[2],
            Some(Region {
                y: (0, 4),
                x: (0, 4)
            })
        );
        assert_eq!(
            held[1],
            Some(Region {
                y: (0, 5),
                x: (0, 5)
            })
        );
        assert_eq!(
            held[0],
            Some(Region {
                y: (0, 11),
                x: (0, 11)
            })
        );
        // The conv computes 5x5 of 8 channels for each of four patches
        // instead of 8x8: 36 positions again, 27 MACs each per channel.
        let extra_macs = cost(&graph, stage, &|_| 1).extra_macs;
        assert_eq!(extra_macs, (4 * 25 - 64) * 8 * 27);
        let patched = rewrite(&graph, stage).unwrap();
        assert_eq!(patched.graph.macs(), graph.macs() + extra_macs);
    }

    #[test]
    fn the_peak_counts_the_whole_input_and_output_and_one_patch() {
        let graph = stem();
        let one = |_| 1;
        // Whole: input 768 + conv 512 at the first layer, conv 512 + dw 512
        // at the second. Patched 2x2 on 3 layers: input 768 and output
        // 4x8x8 = 256 whole; the first patch's input window 11x11x3 = 363,
        // conv 200, dw 128 at the depthwise.
        let stage = Stage {
            start: 0,
            end: 3,
            grid: 2,
        };
        let peak = cost(&graph, stage, &one).peak;
        assert_eq!(peak, 768 + 256 + 363 + 200);
    }
}
