//! Row-fused segments under `memory = "partial"`: which runs of layers the
//! executor runs a band of rows at a time, their inner tensors held as
//! line buffers (`kernels::model::fused`).
//!
//! Fusing lowers the memory where whole tensors meet (a residual block's
//! input beside its convolutions' outputs, an inverted bottleneck's
//! expansion beside its input), at the cost of a kernel call per layer per
//! band. So the runs are chosen to minimise the peak of live bytes first,
//! and then the number of layers fused: the layers where the peak is not
//! run whole-tensor as before.

use super::graph::{Graph, Layer, LayerOp, Precision};
use super::views::{last_read_of_its_buffer, Homes};
use kernels::model::fused::{self, RowMap, TensorRows};
use kernels::model::DType;
use kernels::planner::{self, Buffer, Overlap};

/// Most output rows of a segment one band computes. One row keeps the
/// line buffers smallest; where the peak is elsewhere, a segment takes
/// more rows a band (fewer kernel calls, each over more rows).
const MOST_BAND_ROWS: u32 = 16;

/// A run of layers `first..=last` executed as one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// First layer.
    pub first: usize,
    /// Last layer (its output is the segment's).
    pub last: usize,
    /// Output rows a band computes.
    pub band: u32,
    /// `(tensor, bytes)` of each tensor held as a line buffer.
    pub lines: Vec<(usize, usize)>,
    /// An input the output is written over as its rows die, and where
    /// the output starts against it (bytes, at most 0).
    pub over: Option<(usize, i64)>,
}

impl Segment {
    /// Bytes the output saves by lying over its input ([`Segment::over`]).
    fn overlap_saving(&self, graph: &Graph, types: &[DType]) -> usize {
        self.over
            .map_or(0, |over| saving(graph, types, over, self.last))
    }
}

/// Bytes the output of a run ending at layer `last` saves by starting
/// `offset` bytes (at most 0) from input `x`.
fn saving(graph: &Graph, types: &[DType], (x, offset): (usize, i64), last: usize) -> usize {
    let (x, out) = (
        bytes(graph, types, x),
        bytes(graph, types, graph.layers[last].output),
    );
    let together = (x + offset.unsigned_abs() as usize).max(out);
    (x + out).saturating_sub(together)
}

/// The row geometry of a layer that runs by rows, if it does: a
/// convolution, depthwise convolution or pool of one image, or an ADD of
/// two same-shaped tensors, in int8 or float throughout; or the
/// quantization of a float input or the requantization of a uint8 one
/// (element by element, so a run can take the input's bytes as it goes).
fn row_map(graph: &Graph, layer: &Layer, types: &[DType]) -> Option<RowMap> {
    let tensors = || layer.inputs.iter().chain([&layer.output]);
    let single =
        tensors().all(|&t| graph.tensors[t].shape.n == 1) && layer.precision != Precision::Binary;
    let same_shapes =
        || tensors().all(|&t| graph.tensors[t].shape == graph.tensors[layer.output].shape);
    let (x, out) = (types[layer.inputs[0]], types[layer.output]);
    let elementwise = match layer.op {
        LayerOp::Quantize => (x, out) == (DType::F32, DType::I8),
        LayerOp::Requantize { .. } => {
            matches!(x, DType::I8 | DType::U8) && matches!(out, DType::I8 | DType::U8)
        }
        _ => false,
    };
    if single && elementwise && layer.inputs.len() == 1 && same_shapes() {
        return Some(RowMap::ELEMENTWISE);
    }
    let uniform = matches!(out, DType::I8 | DType::F32) && tensors().all(|&t| types[t] == out);
    if !(single && uniform) {
        return None;
    }
    let input = graph.tensors[layer.inputs[0]].shape;
    if let Some((window, _)) = layer.op.window((input.h, input.w)) {
        return (layer.inputs.len() == 1).then(|| RowMap::window(&window));
    }
    match layer.op {
        LayerOp::Add { .. } if layer.inputs.len() == 2 && same_shapes() => Some(RowMap::ADD),
        _ => None,
    }
}

/// Bytes of tensor `t`.
fn bytes(graph: &Graph, types: &[DType], t: usize) -> usize {
    super::views::tensor_bytes(graph, types, t).unwrap_or(0)
}

/// What the choice reads of a graph: each layer's row geometry (if it
/// runs by rows) and the layers reading each tensor.
struct Rows<'g> {
    graph: &'g Graph,
    types: &'g [DType],
    maps: Vec<Option<RowMap>>,
    readers: Vec<Vec<usize>>,
}

impl<'g> Rows<'g> {
    fn new(graph: &'g Graph, types: &'g [DType]) -> Self {
        let mut readers = vec![Vec::new(); graph.tensors.len()];
        for (step, layer) in graph.layers.iter().enumerate() {
            for &t in &layer.inputs {
                readers[t].push(step);
            }
        }
        Rows {
            graph,
            types,
            maps: graph
                .layers
                .iter()
                .map(|l| row_map(graph, l, types))
                .collect(),
            readers,
        }
    }

    /// Layers `first..=last` as a segment, with the bytes of each line
    /// buffer, if they can be one: every layer runs by rows, and every
    /// tensor made before the last layer is read only by later layers of
    /// the run (not the graph's output, nor an exit head's logits).
    fn segment(&self, first: usize, last: usize, band: u32) -> Option<Segment> {
        let graph = self.graph;
        let escapes = |t: usize| {
            t == graph.output
                || graph.exits.iter().any(|e| e.logits == t)
                || self.readers[t].iter().any(|&r| r > last)
        };
        let rows = |t: usize| {
            let s = graph.tensors[t].shape;
            let elem = self.types[t].element_bytes()?;
            Some(TensorRows {
                key: t as u32,
                rows: s.h,
                row_bytes: s.w.checked_mul(s.c)?.checked_mul(elem)?,
            })
        };
        let mut segment = fused::Segment::new(band);
        for step in first..=last {
            let layer = &graph.layers[step];
            let map = self.maps[step]?;
            if step < last && escapes(layer.output) {
                return None;
            }
            let mut inputs = [None; 2];
            for (slot, &t) in inputs.iter_mut().zip(&layer.inputs) {
                *slot = Some(rows(t)?);
            }
            segment.push(inputs, rows(layer.output)?, map).ok()?;
        }
        let line_rows = segment.line_rows().ok()?;
        let lines = segment
            .tensors()
            .iter()
            .enumerate()
            .filter(|&(i, _)| segment.is_internal(i))
            .map(|(i, t)| (t.key as usize, (line_rows[i] * t.row_bytes) as usize))
            .collect();
        let mut s = Segment {
            first,
            last,
            band,
            lines,
            over: None,
        };
        // The input whose dying rows save the output the most bytes; one
        // read after the segment, or the graph's output, never dies.
        // In whole arena alignments, so that the planner can keep them.
        let align = super::lower::ARENA_ALIGN as i64;
        let dying = |i: usize| {
            let x = segment.tensors()[i].key as usize;
            let dies = x != graph.output && !escapes(x) && segment.tensors()[i].rows > 0;
            let offset = segment
                .overlap_offset(i)
                .map(|d| d.div_euclid(align) * align);
            let offset = offset.filter(|&d| segment.overlap_allowed(i, d));
            dies.then_some(offset).flatten().map(|d| (x, d))
        };
        s.over = (0..segment.tensors().len())
            .filter(|&i| !segment.is_internal(i) && i != segment.sink())
            .filter_map(dying)
            .map(|over| (saving(graph, self.types, over, last), over))
            .filter(|&(saved, _)| saved > 0)
            .max_by_key(|&(saved, _)| saved)
            .map(|(_, over)| over);
        Some(s)
    }
}

/// The segments that lower the peak of live activation bytes the most,
/// fusing as few layers as reach it. `buffers` are the whole-tensor
/// buffers by tensor id (views folded into their roots: a view's size is
/// 0); `live` the live bytes of each layer without fusion (with the
/// in-place layers). `overlaps`: whether outputs may lie over their
/// dying inputs, and then whether a single layer may be a run of its own
/// for that (the planner does not always place either as well as the
/// estimate says, so the caller tries each). Empty when fusing lowers
/// nothing.
pub(crate) fn choose(
    graph: &Graph,
    types: &[DType],
    buffers: &[Buffer],
    live: &[usize],
    (overlaps, singles): (bool, bool),
) -> Vec<Segment> {
    let rows = Rows::new(graph, types);
    let n = graph.layers.len();
    // Live bytes while segment `s` runs: every buffer alive during it but
    // its inner tensors, and their line buffers.
    let cost = |s: &Segment| {
        let inner = |t: usize| s.lines.iter().any(|&(l, _)| l == t);
        let whole: usize = buffers
            .iter()
            .enumerate()
            .filter(|&(t, b)| !inner(t) && b.first <= s.last && s.first <= b.last)
            .map(|(_, b)| b.size)
            .sum();
        whole + s.lines.iter().map(|&(_, bytes)| bytes).sum::<usize>()
            - s.overlap_saving(graph, types)
    };
    // Every run that can be a segment, with its cost.
    let mut runs: Vec<Vec<(Segment, usize)>> = vec![Vec::new(); n];
    for (last, ending) in runs.iter_mut().enumerate() {
        let to = if singles { last + 1 } else { last };
        for first in last.saturating_sub(fused::MAX_LAYERS - 1)..to {
            if let Some(mut s) = rows.segment(first, last, 1) {
                s.over = s.over.filter(|_| overlaps);
                let c = cost(&s);
                ending.push((s, c));
            }
        }
    }
    // The lowest peak over layers 0..i, layer by layer or in segments.
    let mut best = vec![0usize; n + 1];
    for i in 0..n {
        let alone = best[i].max(live.get(i).copied().unwrap_or(0));
        let fused = runs[i].iter().map(|(s, c)| best[s.first].max(*c)).min();
        best[i + 1] = fused.map_or(alone, |f| f.min(alone));
    }
    let peak = best[n];
    if live.iter().copied().max().unwrap_or(0) <= peak {
        return Vec::new();
    }
    // The fewest fused layers keeping every step at or under that peak.
    let mut fewest: Vec<Option<(usize, Option<usize>)>> = vec![None; n + 1];
    fewest[0] = Some((0, None));
    for i in 0..n {
        let mut choice = fewest[i]
            .filter(|_| live.get(i).copied().unwrap_or(0) <= peak)
            .map(|(f, _)| (f, None));
        for (k, (s, c)) in runs[i].iter().enumerate() {
            let Some((f, _)) = fewest[s.first] else {
                continue;
            };
            let fused = f + (s.last - s.first + 1);
            if *c <= peak && choice.is_none_or(|(best, _)| fused < best) {
                choice = Some((fused, Some(k)));
            }
        }
        fewest[i + 1] = choice;
    }
    let mut chosen = Vec::new();
    let mut i = n;
    while i > 0 {
        match fewest[i].and_then(|(_, k)| k) {
            Some(k) => {
                let s = runs[i - 1][k].0.clone();
                i = s.first;
                chosen.push(s);
            }
            None => i -= 1,
        }
    }
    chosen.reverse();
    chosen
}

/// Widens the bands of `segments`, one segment at a time, doubling its
/// rows while the arena `plan` gives (its peak by `peak`) grows no larger,
/// and returns the last plan kept.
pub(crate) fn widen_bands<P>(
    graph: &Graph,
    types: &[DType],
    mut segments: Vec<Segment>,
    plan: impl Fn(Vec<Segment>) -> P,
    peak: impl Fn(&P) -> usize,
) -> P {
    let rows = Rows::new(graph, types);
    let mut best = plan(segments.clone());
    for i in 0..segments.len() {
        while segments[i].band < MOST_BAND_ROWS {
            let s = &segments[i];
            let Some(mut wider) = rows.segment(s.first, s.last, s.band * 2) else {
                break;
            };
            wider.over = wider.over.filter(|_| s.over.is_some());
            let mut trial = segments.clone();
            trial[i] = wider;
            let planned = plan(trial.clone());
            if peak(&planned) > peak(&best) {
                break;
            }
            (segments, best) = (trial, planned);
        }
    }
    best
}

/// Gives the buffers of `segments` their run: each inner tensor its line
/// buffer, alive through the segment, and every tensor a segment reads or
/// writes alive from its first layer to its last (the bands interleave
/// them).
pub(crate) fn resize_buffers(
    graph: &Graph,
    segments: &[Segment],
    buffers: &mut [Buffer],
    align: usize,
) {
    for s in segments {
        for layer in &graph.layers[s.first..=s.last] {
            for &t in layer.inputs.iter().chain([&layer.output]) {
                buffers[t].first = buffers[t].first.min(s.first);
                buffers[t].last = buffers[t].last.max(s.last);
            }
        }
        for &(t, bytes) in &s.lines {
            buffers[t].size = bytes.next_multiple_of(align);
            (buffers[t].first, buffers[t].last) = (s.first, s.last);
        }
    }
}

/// The planner pairs that put each segment's output over the input it
/// may take as that input's rows die ([`Segment::over`]), where both are
/// buffers of their own and nothing else in the input's buffer is read
/// after the segment. Each keeps its own life: the input's bytes are free
/// again after the segment, the output's live on.
pub(crate) fn overlaps(
    graph: &Graph,
    segments: &[Segment],
    homes: &Homes,
    buffers: &[Buffer],
) -> Vec<Overlap> {
    segments
        .iter()
        .filter_map(|s| {
            let (x, offset) = s.over?;
            let out = graph.layers[s.last].output;
            let own = |t: usize| homes.root(t) == (t, 0) && buffers[t].size > 0;
            let dies = last_read_of_its_buffer(homes, buffers, x, s.last);
            (own(x) && own(out) && dies).then_some(Overlap {
                first: x,
                second: out,
                offset: offset as isize,
            })
        })
        .collect()
}

/// The segment layer `step` is in, if any.
pub(crate) fn segment_of(segments: &[Segment], step: usize) -> Option<&Segment> {
    segments.iter().find(|s| (s.first..=s.last).contains(&step))
}

/// The live bytes of `buffers` at each of `layers` steps, the bytes the
/// pairs of `overlaps` share in `plan` counted once.
pub(crate) fn live_bytes(
    buffers: &[Buffer],
    layers: usize,
    plan: Option<(&planner::Plan, &[Overlap])>,
) -> Vec<usize> {
    let mut live = planner::live_bytes(buffers);
    live.resize(layers, 0);
    let Some((plan, overlaps)) = plan else {
        return live;
    };
    for o in overlaps {
        let (a, b) = (&buffers[o.first], &buffers[o.second]);
        let (at_a, at_b) = (plan.offsets[o.first], plan.offsets[o.second]);
        let shared = (at_a + a.size)
            .min(at_b + b.size)
            .saturating_sub(at_a.max(at_b));
        let both = a.first.max(b.first)..=a.last.min(b.last);
        for step in both.filter(|&step| step < layers) {
            live[step] = live[step].saturating_sub(shared);
        }
    }
    live
}
