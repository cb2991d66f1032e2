//! Constant folding at import. A node whose inputs are all constants is
//! evaluated here (shape arithmetic, mostly), and a Shape of a value is
//! its static ONNX shape: PyTorch writes `x.view(x.size(0), -1)` as
//! Shape -> Gather -> Unsqueeze -> Concat -> Reshape, which after folding
//! is a Reshape to a constant shape.

use super::{attribute, int, ints, slice_range, ConstTensor, Importer, Layout, Result, Value};
use super::{FLOAT, MAX_ELEMENTS};
use crate::model::onnx_proto::NodeProto;

/// Operators evaluated when every input is a constant.
const FOLDABLE: &[&str] = &[
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Cast",
    "Slice",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Identity",
    "Reshape",
    "ConstantOfShape",
    "Transpose",
];

/// A constant's elements.
#[derive(Clone, Debug, PartialEq)]
enum Values {
    Ints(Vec<i64>),
    Floats(Vec<f32>),
}

/// A constant being folded: row-major elements and their dims.
#[derive(Clone, Debug, PartialEq)]
struct Folded {
    dims: Vec<u32>,
    values: Values,
}

impl Folded {
    fn of(c: &ConstTensor) -> Self {
        let values = if c.floats.is_empty() {
            Values::Ints(c.ints.clone())
        } else {
            Values::Floats(c.floats.clone())
        };
        Self {
            dims: c.dims.clone(),
            values,
        }
    }

    fn into_const(self) -> ConstTensor {
        let (floats, ints) = match self.values {
            Values::Ints(v) => (Vec::new(), v),
            Values::Floats(v) => (v, Vec::new()),
        };
        ConstTensor {
            dims: self.dims,
            floats,
            ints,
            uint8: false,
            quantized: None,
        }
    }

    fn ints(&self, what: &str) -> Result<&[i64]> {
        match &self.values {
            Values::Ints(v) => Ok(v),
            Values::Floats(_) => Err(format!("its {what} must be integers")),
        }
    }

    /// The elements at `positions`, in that order, as a tensor of `dims`.
    fn pick(&self, positions: &[usize], dims: Vec<u32>) -> Folded {
        let values = match &self.values {
            Values::Ints(v) => Values::Ints(positions.iter().map(|&p| v[p]).collect()),
            Values::Floats(v) => Values::Floats(positions.iter().map(|&p| v[p]).collect()),
        };
        Folded { dims, values }
    }

    /// The same elements as a tensor of `dims`.
    fn relabel(self, dims: Vec<u32>) -> Folded {
        Folded { dims, ..self }
    }
}

impl Importer<'_> {
    /// Evaluates `node` if it is a Shape of a value or a foldable operator
    /// of constants; its output becomes a constant. `false`: not foldable.
    pub(super) fn fold_constant(&mut self, node: &NodeProto) -> Result<bool> {
        let Some(out) = node.output.first() else {
            return Ok(false);
        };
        let folded = if node.op_type == "Shape" {
            let Some(&x) = node.input.first().and_then(|i| self.values.get(i)) else {
                return Ok(false);
            };
            shape_of(node, &self.onnx_dims(&node.input[0], x))
        } else {
            let inputs = node.input.iter().filter(|i| !i.is_empty());
            if !FOLDABLE.contains(&node.op_type.as_str())
                || node.input.is_empty()
                || !inputs.clone().all(|i| self.is_constant(i))
            {
                return Ok(false);
            }
            let mut constants = Vec::new();
            for i in 0..node.input.len() {
                let c = self.constant(node, i)?;
                if c.as_ref().is_some_and(|c| c.quantized.is_some()) {
                    // A dequantized weight keeps its integers where it is read.
                    return Ok(false);
                }
                constants.push(c.as_ref().map(Folded::of));
            }
            evaluate(node, &constants)?
        };
        let elements = folded.dims.iter().map(|&d| d as usize).product::<usize>();
        if elements > MAX_ELEMENTS {
            return Err(format!(
                "its constant result has more than {MAX_ELEMENTS} elements"
            ));
        }
        self.synthetic.insert(out.clone(), folded.into_const());
        Ok(true)
    }

    /// The ONNX shape of `x` (named `name` in the model): bench knows every
    /// shape statically. A value of one position is `[N, C]` unless the
    /// model declares it `[N, C, 1, 1]`.
    pub(super) fn onnx_dims(&self, name: &str, x: Value) -> Vec<i64> {
        let s = self.graph.tensors[x.tensor].shape;
        let d = |v: u32| i64::from(v);
        match x.layout {
            Layout::Ncl => vec![d(s.n), d(s.c), d(s.w)],
            Layout::Ntf => vec![d(s.n), d(s.w), d(s.c)],
            Layout::FlatChw { .. } => vec![d(s.n), d(s.c)],
            Layout::Grouped { groups } => {
                vec![d(s.n), d(groups), d(s.c / groups), d(s.h), d(s.w)]
            }
            Layout::Plain if (s.h, s.w) == (1, 1) && self.declared_rank(name) != Some(4) => {
                vec![d(s.n), d(s.c)]
            }
            Layout::Plain => vec![d(s.n), d(s.c), d(s.h), d(s.w)],
        }
    }

    /// The rank the model declares for value `name`, if it does.
    fn declared_rank(&self, name: &str) -> Option<usize> {
        let g = self.graph_proto;
        g.input
            .iter()
            .chain(&g.value_info)
            .chain(&g.output)
            .find(|v| v.name == name)
            .and_then(|v| v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref())
            .map(|s| s.dim.len())
    }
}

/// Shape, with opset 15's `start` and `end`.
fn shape_of(node: &NodeProto, dims: &[i64]) -> Folded {
    let rank = dims.len() as i64;
    let bound = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = bound(int(node, "start").unwrap_or(0));
    let end = bound(int(node, "end").unwrap_or(rank)).max(start);
    Folded {
        dims: vec![(end - start) as u32],
        values: Values::Ints(dims[start..end].to_vec()),
    }
}

/// The node's output from its constant inputs (`None`: an omitted optional input).
fn evaluate(node: &NodeProto, inputs: &[Option<Folded>]) -> Result<Folded> {
    let input = |i: usize| -> Result<&Folded> {
        inputs
            .get(i)
            .and_then(Option::as_ref)
            .ok_or(format!("its input {i} is missing"))
    };
    // Axes and similar lists: an input since opset 13, an attribute before.
    let list = |i: usize, name: &str| -> Result<Option<Vec<i64>>> {
        match inputs.get(i).and_then(Option::as_ref) {
            Some(c) => Ok(Some(c.ints(name)?.to_vec())),
            None => Ok(ints(node, name)),
        }
    };
    let x = input(0)?;
    match node.op_type.as_str() {
        "Identity" => Ok(x.clone()),
        "Gather" => gather(x, input(1)?, int(node, "axis").unwrap_or(0)),
        "Unsqueeze" => unsqueeze(x, &list(1, "axes")?.ok_or("it has no axes")?),
        "Squeeze" => squeeze(x, list(1, "axes")?),
        "Concat" => {
            let parts: Vec<&Folded> = inputs.iter().flatten().collect();
            concat(&parts, int(node, "axis").ok_or("it has no axis")?)
        }
        "Cast" => cast(x, int(node, "to").ok_or("it has no `to`")?),
        "Slice" => {
            let starts = list(1, "starts")?.ok_or("it has no starts")?;
            let ends = list(2, "ends")?.ok_or("it has no ends")?;
            let axes = list(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = list(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
            slice(x, &starts, &ends, &axes, &steps)
        }
        "Add" | "Sub" | "Mul" | "Div" => arithmetic(&node.op_type, x, input(1)?),
        "Reshape" => {
            let allow_zero = int(node, "allowzero").unwrap_or(0) == 1;
            let target = list(1, "shape")?.ok_or("it has no shape")?;
            let dims = reshaped(&x.dims, &target, allow_zero)?;
            Ok(x.clone().relabel(dims))
        }
        "ConstantOfShape" => constant_of_shape(node, x),
        "Transpose" => transpose(x, ints(node, "perm")),
        other => Err(format!("{other} is not folded")),
    }
}

/// `axis` of a rank-`rank` tensor, negative counting from the end.
fn axis_of(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r)
        .contains(&a)
        .then_some(a as usize)
        .ok_or(format!("axis {axis} is outside rank {rank}"))
}

fn product(dims: &[u32]) -> usize {
    dims.iter().map(|&d| d as usize).product()
}

/// The element count of `dims`, if at most [`MAX_ELEMENTS`]: checked
/// before a result is built, so no input makes a huge one.
fn bounded(dims: &[u32]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
        .filter(|&e| e <= MAX_ELEMENTS)
        .ok_or(format!(
            "its constant result {dims:?} has more than {MAX_ELEMENTS} elements"
        ))
}

fn gather(data: &Folded, indices: &Folded, axis: i64) -> Result<Folded> {
    let axis = axis_of(axis, data.dims.len())?;
    let extent = data.dims[axis] as i64;
    let (outer, inner) = (product(&data.dims[..axis]), product(&data.dims[axis + 1..]));
    let mut rows = Vec::new();
    for &i in indices.ints("indices")? {
        let row = if i < 0 { i + extent } else { i };
        if !(0..extent).contains(&row) {
            return Err(format!("index {i} is outside an axis of {extent}"));
        }
        rows.push(row as usize);
    }
    let mut dims = data.dims[..axis].to_vec();
    dims.extend(&indices.dims);
    dims.extend(&data.dims[axis + 1..]);
    bounded(&dims)?;
    let mut positions = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &row in &rows {
            let at = (o * extent as usize + row) * inner;
            positions.extend(at..at + inner);
        }
    }
    Ok(data.pick(&positions, dims))
}

fn unsqueeze(x: &Folded, axes: &[i64]) -> Result<Folded> {
    let rank = x.dims.len() + axes.len();
    let mut at: Vec<usize> = axes
        .iter()
        .map(|&a| axis_of(a, rank))
        .collect::<Result<_>>()?;
    at.sort_unstable();
    let mut dims = x.dims.clone();
    for a in at {
        dims.insert(a.min(dims.len()), 1);
    }
    Ok(x.clone().relabel(dims))
}

fn squeeze(x: &Folded, axes: Option<Vec<i64>>) -> Result<Folded> {
    let rank = x.dims.len();
    let drop: Vec<usize> = match axes {
        Some(axes) => axes
            .iter()
            .map(|&a| axis_of(a, rank))
            .collect::<Result<_>>()?,
        None => (0..rank).filter(|&a| x.dims[a] == 1).collect(),
    };
    if drop.iter().any(|&a| x.dims[a] != 1) {
        return Err(format!("it squeezes an axis that is not 1 of {:?}", x.dims));
    }
    let dims = (0..rank)
        .filter(|a| !drop.contains(a))
        .map(|a| x.dims[a])
        .collect();
    Ok(x.clone().relabel(dims))
}

fn concat(parts: &[&Folded], axis: i64) -> Result<Folded> {
    let first = parts.first().ok_or("it has no inputs")?;
    let axis = axis_of(axis, first.dims.len())?;
    let same_kind = parts
        .iter()
        .all(|p| matches!(p.values, Values::Ints(_)) == matches!(first.values, Values::Ints(_)));
    let fits = parts.iter().all(|p| {
        p.dims.len() == first.dims.len()
            && (0..p.dims.len()).all(|a| a == axis || p.dims[a] == first.dims[a])
    });
    if !same_kind || !fits {
        return Err("its constant inputs differ in type or in a dim besides the axis".into());
    }
    let outer = product(&first.dims[..axis]);
    let mut values = match first.values {
        Values::Ints(_) => Values::Ints(Vec::new()),
        Values::Floats(_) => Values::Floats(Vec::new()),
    };
    for o in 0..outer {
        for p in parts {
            let run = product(&p.dims[axis..]);
            match (&mut values, &p.values) {
                (Values::Ints(all), Values::Ints(v)) => all.extend(&v[o * run..][..run]),
                (Values::Floats(all), Values::Floats(v)) => all.extend(&v[o * run..][..run]),
                _ => unreachable!("one kind, checked above"),
            }
        }
    }
    let mut dims = first.dims.clone();
    dims[axis] = parts.iter().map(|p| p.dims[axis]).sum();
    Ok(Folded { dims, values })
}

fn cast(x: &Folded, to: i64) -> Result<Folded> {
    // ONNX element types: 1 float, 6 int32, 7 int64, 9 bool.
    let values = match (&x.values, to) {
        (Values::Floats(v), FLOAT_TYPE) => Values::Floats(v.clone()),
        (Values::Ints(v), FLOAT_TYPE) => Values::Floats(v.iter().map(|&i| i as f32).collect()),
        (Values::Ints(v), 6 | 7) => Values::Ints(v.clone()),
        (Values::Floats(v), 6 | 7) => Values::Ints(v.iter().map(|&f| f as i64).collect()),
        (Values::Ints(v), 9) => Values::Ints(v.iter().map(|&i| i64::from(i != 0)).collect()),
        (Values::Floats(v), 9) => Values::Ints(v.iter().map(|&f| i64::from(f != 0.0)).collect()),
        (_, other) => return Err(format!("a Cast to element type {other} is not folded")),
    };
    Ok(Folded {
        dims: x.dims.clone(),
        values,
    })
}

const FLOAT_TYPE: i64 = FLOAT as i64;

fn slice(x: &Folded, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Result<Folded> {
    let rank = x.dims.len();
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("its starts, ends, axes and steps differ in length".into());
    }
    // Per axis: first element, count and step.
    let mut ranges: Vec<(i64, u32, i64)> = x.dims.iter().map(|&d| (0, d, 1)).collect();
    for k in 0..starts.len() {
        let a = axis_of(axes[k], rank)?;
        let (first, count) =
            slice_range(starts[k], ends[k], steps[k], x.dims[a]).ok_or("it slices nothing")?;
        ranges[a] = (i64::from(first), count, steps[k]);
    }
    let dims: Vec<u32> = ranges.iter().map(|r| r.1).collect();
    let strides: Vec<usize> = (0..rank).map(|a| product(&x.dims[a + 1..])).collect();
    let positions: Vec<usize> = indices(&dims)
        .map(|index| {
            (0..rank)
                .map(|a| (ranges[a].0 + index[a] as i64 * ranges[a].2) as usize * strides[a])
                .sum()
        })
        .collect();
    Ok(x.pick(&positions, dims))
}

/// Transpose by `perm` (reversed axes without one).
fn transpose(x: &Folded, perm: Option<Vec<i64>>) -> Result<Folded> {
    let rank = x.dims.len();
    let perm: Vec<usize> = match perm {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&a| axis_of(a, rank)).collect::<Result<_>>()?,
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
    }
    let dims: Vec<u32> = perm.iter().map(|&a| x.dims[a]).collect();
    let strides: Vec<usize> = (0..rank).map(|a| product(&x.dims[a + 1..])).collect();
    let positions: Vec<usize> = indices(&dims)
        .map(|index| {
            (0..rank)
                .map(|k| index[k] as usize * strides[perm[k]])
                .sum()
        })
        .collect();
    Ok(x.pick(&positions, dims))
}

/// Every multi-index of a tensor of `dims`, row-major.
fn indices(dims: &[u32]) -> impl Iterator<Item = Vec<u32>> + '_ {
    let total = product(dims);
    (0..total).map(move |mut flat| {
        let mut index = vec![0; dims.len()];
        for a in (0..dims.len()).rev() {
            index[a] = (flat % dims[a] as usize) as u32;
            flat /= dims[a] as usize;
        }
        index
    })
}

/// Add, Sub, Mul or Div with numpy broadcasting; integer division
/// truncates, as onnxruntime's does.
fn arithmetic(op: &str, a: &Folded, b: &Folded) -> Result<Folded> {
    let rank = a.dims.len().max(b.dims.len());
    let aligned = |d: &[u32]| {
        let mut v = vec![1; rank - d.len()];
        v.extend(d);
        v
    };
    let (da, db) = (aligned(&a.dims), aligned(&b.dims));
    let mut dims = Vec::with_capacity(rank);
    for (&x, &y) in da.iter().zip(&db) {
        match (x, y) {
            _ if x == y => dims.push(x),
            (1, _) => dims.push(y),
            (_, 1) => dims.push(x),
            _ => return Err(format!("{:?} and {:?} do not broadcast", a.dims, b.dims)),
        }
    }
    bounded(&dims)?;
    let position = |d: &[u32], index: &[u32]| {
        (0..rank).fold(0usize, |at, k| {
            at * d[k] as usize + if d[k] == 1 { 0 } else { index[k] as usize }
        })
    };
    let pairs: Vec<(usize, usize)> = indices(&dims)
        .map(|i| (position(&da, &i), position(&db, &i)))
        .collect();
    let values = match (&a.values, &b.values) {
        (Values::Ints(x), Values::Ints(y)) => {
            let mut out = Vec::with_capacity(pairs.len());
            for &(i, j) in &pairs {
                out.push(match op {
                    "Add" => x[i].wrapping_add(y[j]),
                    "Sub" => x[i].wrapping_sub(y[j]),
                    "Mul" => x[i].wrapping_mul(y[j]),
                    _ => x[i]
                        .checked_div(y[j])
                        .ok_or("it divides an integer by zero")?,
                });
            }
            Values::Ints(out)
        }
        _ => {
            let (x, y) = (floats(&a.values), floats(&b.values));
            let apply = |p: f32, q: f32| match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            };
            Values::Floats(pairs.iter().map(|&(i, j)| apply(x[i], y[j])).collect())
        }
    };
    Ok(Folded { dims, values })
}

fn floats(v: &Values) -> Vec<f32> {
    match v {
        Values::Ints(v) => v.iter().map(|&i| i as f32).collect(),
        Values::Floats(v) => v.clone(),
    }
}

/// Reshape's target dims: 0 copies the input's dim (unless `allow_zero`),
/// one -1 takes what is left.
pub(super) fn reshaped(input: &[u32], target: &[i64], allow_zero: bool) -> Result<Vec<u32>> {
    let elements = product(input);
    let mut dims: Vec<i64> = Vec::with_capacity(target.len());
    for (k, &t) in target.iter().enumerate() {
        dims.push(match t {
            0 if !allow_zero => i64::from(*input.get(k).ok_or("a 0 past the input's rank")?),
            t => t,
        });
    }
    let known = dims
        .iter()
        .filter(|&&d| d != -1)
        .try_fold(1i64, |a, &d| a.checked_mul(d))
        .ok_or(format!("its shape {target:?} overflows"))?;
    match dims.iter().filter(|&&d| d == -1).count() {
        0 => {}
        1 if known > 0 && elements as i64 % known == 0 => {
            let missing = elements as i64 / known;
            dims.iter_mut()
                .filter(|d| **d == -1)
                .for_each(|d| *d = missing);
        }
        _ => return Err(format!("its shape {target:?} cannot be resolved")),
    }
    let fits = dims.iter().all(|&d| (1..=i64::from(u32::MAX)).contains(&d))
        && dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d)) == Some(elements as i64);
    if !fits {
        return Err(format!(
            "its shape {target:?} does not hold the {elements} elements of {input:?}"
        ));
    }
    Ok(dims.into_iter().map(|d| d as u32).collect())
}

fn constant_of_shape(node: &NodeProto, shape: &Folded) -> Result<Folded> {
    let dims: Vec<u32> = shape
        .ints("shape")?
        .iter()
        .map(|&d| u32::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<_>>()
        .ok_or("its shape has a dim below 1")?;
    let elements = bounded(&dims)?;
    let fill = match attribute(node, "value").and_then(|a| a.t.as_ref()) {
        None => Folded {
            dims: vec![1],
            values: Values::Floats(vec![0.0]),
        },
        Some(t) => Folded::of(&ConstTensor::read(t)?),
    };
    let values = match fill.values {
        Values::Ints(v) => Values::Ints(vec![*v.first().ok_or("its value is empty")?; elements]),
        Values::Floats(v) => {
            Values::Floats(vec![*v.first().ok_or("its value is empty")?; elements])
        }
    };
    Ok(Folded { dims, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(dims: &[u32], v: &[i64]) -> Folded {
        Folded {
            dims: dims.to_vec(),
            values: Values::Ints(v.to_vec()),
        }
    }

    #[test]
    fn a_view_of_the_batch_folds_to_its_shape() {
        // x.view(x.size(0), -1) on [1, 8, 4, 4]: Shape, Gather(0),
        // Unsqueeze(0), Concat with [-1].
        let shape = ints(&[4], &[1, 8, 4, 4]);
        let batch = gather(&shape, &ints(&[], &[0]), 0).unwrap();
        assert_eq!(batch, ints(&[], &[1]));
        let batch = unsqueeze(&batch, &[0]).unwrap();
        let target = concat(&[&batch, &ints(&[1], &[-1])], 0).unwrap();
        assert_eq!(target, ints(&[2], &[1, -1]));
        assert_eq!(reshaped(&[1, 8, 4, 4], &[1, -1], false).unwrap(), [1, 128]);
        assert_eq!(
            reshaped(&[1, 8, 4, 4], &[0, 2, -1, 4], false).unwrap(),
            [1, 2, 16, 4]
        );
        assert!(reshaped(&[1, 8, 4, 4], &[3, -1], false).is_err());
    }

    #[test]
    fn gather_slice_and_arithmetic_follow_numpy() {
        let m = ints(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        // Columns 2 and 0 of each row.
        assert_eq!(
            gather(&m, &ints(&[2], &[-1, 0]), 1).unwrap(),
            ints(&[2, 2], &[3, 1, 6, 4])
        );
        // Every other column, backwards.
        assert_eq!(
            slice(&m, &[-1], &[-10], &[1], &[-2]).unwrap(),
            ints(&[2, 2], &[3, 1, 6, 4])
        );
        // Row [10, 20, 30] broadcast over both rows; integer division truncates.
        let row = ints(&[3], &[10, 20, 30]);
        assert_eq!(
            arithmetic("Add", &m, &row).unwrap(),
            ints(&[2, 3], &[11, 22, 33, 14, 25, 36])
        );
        assert_eq!(
            arithmetic("Div", &ints(&[2], &[-7, 7]), &ints(&[], &[2])).unwrap(),
            ints(&[2], &[-3, 3])
        );
        assert!(arithmetic("Div", &m, &ints(&[], &[0])).is_err());
        assert_eq!(
            squeeze(&ints(&[1, 3, 1], &[1, 2, 3]), None).unwrap(),
            ints(&[3], &[1, 2, 3])
        );
        assert_eq!(
            transpose(&m, None).unwrap(),
            ints(&[3, 2], &[1, 4, 2, 5, 3, 6])
        );
    }
}
