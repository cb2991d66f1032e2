//! A threshold sweep on one target. The device measures what reaching each
//! exit costs (every inference forced to leave there); the host's exit
//! decisions for the whole dataset ([`crate::accuracy::evaluate::sweep`]) weight those
//! costs into a predicted mean cost per threshold. On emulated targets,
//! whose counts are exact, the prediction is checked: a subset of the
//! dataset runs input by input with each threshold set at run time, and the
//! measured mean stands beside the predicted one.

use crate::accuracy::evaluate::{self, SweepPoint};
use crate::device::link::Link;
use crate::device::runner::RunError;
use crate::device::session::Session;
use crate::input::dataset::Dataset;
use crate::model::prepare::Prepared;
use crate::results::store::{ExitRow, Row, SweepRow};
use kernels::exit::Confidence;

/// What a sweep job needs besides the ordinary job input.
pub struct SweepInput<'a> {
    /// The prepared variant.
    pub prepared: &'a Prepared,
    /// Host results per threshold, over the model's dataset.
    pub points: &'a [SweepPoint],
    /// The dataset's inputs, as model input bytes.
    pub inputs: &'a [Vec<u8>],
    /// Inputs to run one by one for the check (0: none).
    pub validate: usize,
    /// Warm-up and timed inferences per exit.
    pub warmup: u32,
    /// Timed inferences per exit.
    pub repetitions: u32,
}

/// The device's side of a sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceSweep {
    /// Median cost of leaving at each head, then of the final classifier.
    pub exit_costs: Vec<f64>,
    /// Per threshold (in the sweep's order): the cost of each validated input and the exit it took.
    pub validation: Vec<Vec<(f64, Option<u8>)>>,
}

/// Measures each exit's cost, and on exact clocks runs the validation
/// subset; `to_unit` turns device ticks into the row's unit.
pub fn measure<L: Link>(
    session: &mut Session<L>,
    sweep: &SweepInput,
    exact: bool,
    to_unit: &dyn Fn(u64) -> f64,
) -> Result<DeviceSweep, RunError> {
    let graph = &sweep.prepared.graph;
    let heads = graph.exits.len();
    let measure = graph
        .exits
        .first()
        .map_or(Confidence::MaxSoftmax, |e| e.measure);
    let mut out = DeviceSweep::default();
    for exit in (0..heads).map(Some).chain([None]) {
        session.restart_deadline();
        session.set_thresholds(&evaluate::forced(measure, heads, exit))?;
        let m = session.run_inferences(sweep.warmup, sweep.repetitions)?;
        let expected = exit.map(|e| e as u8);
        if let Some(other) = m.exits.iter().find(|&&e| e != expected) {
            return Err(RunError::Protocol(format!(
                "an inference forced to leave at {expected:?} left at {other:?}"
            )));
        }
        let costs: Vec<f64> = m.ticks.iter().map(|&t| to_unit(t)).collect();
        out.exit_costs
            .push(crate::telemetry::stats::summarize(&costs).map_or(0.0, |s| s.median));
    }
    if !exact || sweep.validate == 0 {
        return Ok(out);
    }
    let subset = &sweep.inputs[..sweep.validate.min(sweep.inputs.len())];
    for point in sweep.points {
        session.set_thresholds(&vec![point.threshold; heads])?;
        let mut measured = Vec::with_capacity(subset.len());
        for input in subset {
            session.restart_deadline();
            session.set_input(input)?;
            let m = session.run_inferences(0, 1)?;
            measured.push((
                m.ticks.first().map_or(0.0, |&t| to_unit(t)),
                m.exits.first().copied().flatten(),
            ));
        }
        out.validation.push(measured);
    }
    Ok(out)
}

/// The sweep's rows for one job: one per threshold and one per exit.
pub fn rows(
    job: &Row,
    dataset: &Dataset,
    sweep: &SweepInput,
    device: &DeviceSweep,
) -> Result<(Vec<SweepRow>, Vec<ExitRow>), String> {
    let graph = &sweep.prepared.graph;
    let heads = graph.exits.len();
    let baseline = device.exit_costs.last().copied().unwrap_or(0.0);
    let source = format!(
        "per-exit {} x host exit decisions on {}",
        job.latency_source.clone().unwrap_or_default(),
        dataset.name
    );
    let mut sweep_rows = Vec::new();
    for (i, point) in sweep.points.iter().enumerate() {
        let predicted = evaluate::expected(&point.exit_rates, &device.exit_costs);
        let mut row = SweepRow {
            run_id: job.run_id.clone(),
            job: job.job.clone(),
            model: job.model.clone(),
            variant: job.variant.clone(),
            target: job.target.clone(),
            dataset: Some(dataset.name.clone()),
            measure: Some(
                graph
                    .exits
                    .first()
                    .map_or(Confidence::MaxSoftmax, |e| e.measure)
                    .name()
                    .into(),
            ),
            // Through its shortest decimal form, so 0.05 is stored as 0.05, not 0.0500000007.
            threshold: point.threshold.to_string().parse().ok(),
            samples: Some(point.samples as i64),
            accuracy: point.accuracy,
            exit_rates: Some(
                point
                    .exit_rates
                    .iter()
                    .map(|r| format!("{r:.4}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            mean_macs: Some(point.mean_macs),
            mean_binary_ops: Some(point.mean_binary_ops),
            mean_cost: Some(predicted),
            full_cost: Some(baseline),
            saving: Some(if baseline > 0.0 {
                1.0 - predicted / baseline
            } else {
                0.0
            }),
            cost_unit: job.latency_unit.clone(),
            cost_source: Some(source.clone()),
            ..SweepRow::default()
        };
        if let Some(measured) = device.validation.get(i) {
            validated(&mut row, point, measured, &device.exit_costs, heads)?;
        }
        sweep_rows.push(row);
    }
    let exit_rows = exit_rows(job, graph, &device.exit_costs);
    Ok((sweep_rows, exit_rows))
}

/// Checks the device's exits on the validation subset against the host's
/// decisions and stores the subset's predicted and measured mean cost.
fn validated(
    row: &mut SweepRow,
    point: &SweepPoint,
    measured: &[(f64, Option<u8>)],
    exit_costs: &[f64],
    heads: usize,
) -> Result<(), String> {
    let host: Vec<Option<u8>> = point.decisions[..measured.len()]
        .iter()
        .map(|d| d.exit)
        .collect();
    let differs = measured
        .iter()
        .zip(&host)
        .position(|((_, device), host)| device != host);
    if let Some(k) = differs {
        return Err(format!(
            "at threshold {}, input {k} left at {:?} on the device but at {:?} on the host: the exit decisions are not the same",
            point.threshold, measured[k].1, host[k]
        ));
    }
    let n = measured.len().max(1) as f64;
    let predicted = host
        .iter()
        .map(|e| exit_costs[e.map_or(heads, usize::from)])
        .sum::<f64>()
        / n;
    let subset_measured = measured.iter().map(|(c, _)| c).sum::<f64>() / n;
    row.validated_samples = Some(measured.len() as i64);
    row.predicted_subset_cost = Some(predicted);
    row.measured_subset_cost = Some(subset_measured);
    row.cost_error = Some(subset_measured / predicted - 1.0);
    Ok(())
}

/// One row per exit of a job: its work and its cost on the device.
fn exit_rows(job: &Row, graph: &crate::model::Graph, exit_costs: &[f64]) -> Vec<ExitRow> {
    let names: Vec<String> = graph
        .exits
        .iter()
        .map(|e| graph.tensors[e.logits].name.clone())
        .chain(["final".to_string()])
        .collect();
    let work = evaluate::work_to_exits(graph);
    (0..graph.exits.len() + 1)
        .map(|k| ExitRow {
            run_id: job.run_id.clone(),
            job: job.job.clone(),
            model: job.model.clone(),
            variant: job.variant.clone(),
            target: job.target.clone(),
            exit: Some(names[k].clone()),
            index: Some(k as i64),
            macs: Some(work[k].0 as i64),
            binary_ops: Some(work[k].1 as i64),
            cost: exit_costs.get(k).copied(),
            unit: job.latency_unit.clone(),
            source: job
                .latency_source
                .clone()
                .map(|s| format!("{s}, median, every inference leaving here")),
        })
        .collect()
}
