//! Accuracy and early-exit behaviour on a dataset, from the host reference.
//!
//! The host runs the same kernels as every device, so which head an input
//! leaves at, and what it predicts, is the same everywhere; only the cost of
//! reaching each head differs by target. A threshold sweep is therefore one
//! host pass per threshold, and a target's mean cost at a threshold is
//! `sum over exits of (exit rate x device cost of that exit)`.

use crate::input::dataset::Dataset;
use crate::model::graph::{Graph, Precision};
use crate::model::host::HostModel;
use crate::model::prepare::Prepared;
use kernels::exit::Confidence;
use kernels::model::DType;

/// One input's fate in a host run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The head it left at, or `None` for the final classifier.
    pub exit: Option<u8>,
    /// The class it predicts (argmax of the output it left with).
    pub class: usize,
}

/// The model's inputs for every sample of `dataset` (given in the model's
/// own layout), as input tensor bytes.
pub fn inputs(prepared: &Prepared, dataset: &Dataset) -> Result<Vec<Vec<u8>>, String> {
    let desc = prepared.lowered.tensors[prepared.graph.input];
    let quant = prepared
        .lowered
        .quant
        .get(prepared.graph.input)
        .copied()
        .unwrap_or((1.0, 0));
    dataset.check_item(&prepared.graph.name, desc.shape.elements().unwrap_or(0))?;
    (0..dataset.len())
        .map(|i| {
            let bytes = dataset.input_bytes(i, &desc, quant)?;
            Ok(prepared.graph.layout.bench_bytes(&desc, &bytes))
        })
        .collect()
}

/// Runs every input on the host with `thresholds`.
pub fn decisions(
    prepared: &Prepared,
    inputs: &[Vec<u8>],
    thresholds: &[f32],
) -> Result<Vec<Decision>, String> {
    let mut host = HostModel::new(prepared.lowered.blob.as_bytes())?;
    inputs
        .iter()
        .map(|input| {
            let outcome = host.run(input, thresholds)?;
            let class = argmax(host.tensor(&outcome.output), outcome.output.dtype);
            Ok(Decision {
                exit: outcome.exit,
                class,
            })
        })
        .collect()
}

/// The index of the largest element of a tensor's bytes (the first on ties).
pub fn argmax(bytes: &[u8], dtype: DType) -> usize {
    let values: Vec<f32> = match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => bytes.iter().map(|&b| b as i8 as f32).collect(),
    };
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Thresholds that make every input leave at `exit` (`None`: the final classifier).
pub fn forced(measure: Confidence, heads: usize, exit: Option<usize>) -> Vec<f32> {
    (0..heads)
        .map(|h| {
            if Some(h) == exit {
                measure.always()
            } else {
                Confidence::NEVER
            }
        })
        .collect()
}

/// Work done to reach each exit, heads first, then the final classifier:
/// `(MACs, binary operations)` of every layer run before the exit decision.
pub fn work_to_exits(graph: &Graph) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut macs, mut binary) = (0, 0);
    for layer in &graph.layers {
        let w = graph.layer_macs(layer);
        if layer.precision == Precision::Binary {
            binary += w;
        } else {
            macs += w;
        }
        if graph.exits.iter().any(|e| e.logits == layer.output) {
            out.push((macs, binary));
        }
    }
    out.push((graph.macs(), graph.binary_ops()));
    out
}

/// One threshold of a sweep, from the host.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    /// The threshold, the same at every head.
    pub threshold: f32,
    /// Inputs evaluated.
    pub samples: usize,
    /// Fraction predicted correctly, if the dataset has labels.
    pub accuracy: Option<f64>,
    /// Fraction leaving at each head, then at the final classifier (sums to 1).
    pub exit_rates: Vec<f64>,
    /// Mean MACs per inference.
    pub mean_macs: f64,
    /// Mean binary operations per inference.
    pub mean_binary_ops: f64,
    /// Each input's decision, in dataset order.
    pub decisions: Vec<Decision>,
}

/// The fraction of inputs that leave at each exit (heads, then final).
pub fn exit_rates(decisions: &[Decision], heads: usize) -> Vec<f64> {
    let n = decisions.len().max(1) as f64;
    let mut counts = vec![0usize; heads + 1];
    for d in decisions {
        counts[d.exit.map_or(heads, usize::from)] += 1;
    }
    counts.iter().map(|&c| c as f64 / n).collect()
}

/// Expected value of per-exit figures (heads, then final) under `rates`.
pub fn expected(rates: &[f64], per_exit: &[f64]) -> f64 {
    rates.iter().zip(per_exit).map(|(r, c)| r * c).sum()
}

/// Runs the sweep on the host: one pass over the dataset's `inputs` (from [`inputs`]) per threshold.
pub fn sweep(
    prepared: &Prepared,
    dataset: &Dataset,
    inputs: &[Vec<u8>],
    thresholds: &[f32],
) -> Result<Vec<SweepPoint>, String> {
    let heads = prepared.graph.exits.len();
    let work = work_to_exits(&prepared.graph);
    let macs: Vec<f64> = work.iter().map(|w| w.0 as f64).collect();
    let binary: Vec<f64> = work.iter().map(|w| w.1 as f64).collect();
    thresholds
        .iter()
        .map(|&t| {
            let decisions = decisions(prepared, inputs, &vec![t; heads])?;
            let classes: Vec<usize> = decisions.iter().map(|d| d.class).collect();
            let rates = exit_rates(&decisions, heads);
            Ok(SweepPoint {
                threshold: t,
                samples: decisions.len(),
                accuracy: dataset
                    .correct(&classes)
                    .map(|c| c as f64 / decisions.len().max(1) as f64),
                mean_macs: expected(&rates, &macs),
                mean_binary_ops: expected(&rates, &binary),
                exit_rates: rates,
                decisions,
            })
        })
        .collect()
}

/// Accuracy of the model with no exit taken on the dataset's `inputs`, if it has labels: `(correct, samples)`.
pub fn accuracy(
    prepared: &Prepared,
    dataset: &Dataset,
    inputs: &[Vec<u8>],
) -> Result<Option<(usize, usize)>, String> {
    let decisions = decisions(prepared, inputs, &[])?;
    let classes: Vec<usize> = decisions.iter().map(|d| d.class).collect();
    Ok(dataset.correct(&classes).map(|c| (c, classes.len())))
}

/// The T-RECX way of quoting a sweep: the point with the lowest cost whose
/// accuracy is within `drop` (a fraction, e.g. 0.01) of `baseline`.
pub fn best_within(points: &[(f64, f64)], baseline: f64, drop: f64) -> Option<usize> {
    points
        .iter()
        .enumerate()
        .filter(|(_, (accuracy, _))| *accuracy >= baseline - drop - 1e-12)
        .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
        .map(|(i, _)| i)
}

/// The indices of the points on the Pareto front of (higher accuracy, lower cost).
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| {
            let (a, c) = points[i];
            !points
                .iter()
                .any(|&(a2, c2)| a2 >= a && c2 <= c && (a2 > a || c2 < c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_and_best_within_a_drop() {
        // (accuracy, cost)
        let points = [
            (0.98, 100.0),
            (0.975, 60.0),
            (0.96, 40.0),
            (0.95, 50.0),
            (0.90, 20.0),
        ];
        assert_eq!(pareto_front(&points), vec![0, 1, 2, 4]);
        assert_eq!(best_within(&points, 0.98, 0.01), Some(1));
        assert_eq!(best_within(&points, 0.98, 0.03), Some(2));
        assert_eq!(best_within(&points, 0.99, 0.0), None);
    }

    #[test]
    fn rates_sum_to_one_and_weight_costs() {
        let d = |exit| Decision { exit, class: 0 };
        let rates = exit_rates(&[d(Some(0)), d(Some(0)), d(Some(1)), d(None)], 2);
        assert_eq!(rates, vec![0.5, 0.25, 0.25]);
        assert_eq!(expected(&rates, &[10.0, 20.0, 100.0]), 5.0 + 5.0 + 25.0);
    }
}
