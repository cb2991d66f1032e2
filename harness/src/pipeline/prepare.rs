//! Stage 1: every variant the jobs need, prepared once (transformed,
//! quantized, lowered to a blob written into the run's `models/`) and
//! evaluated on its model's dataset by the host reference.

use super::Progress;
use crate::accuracy::evaluate::{self, SweepPoint};
use crate::input::plan::Job;
use crate::input::suite::Suite;
use crate::model::prepare::{self, Prepared};
use crate::results::store::MemoryRow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A variant's figures on its model's dataset, from the host.
pub(super) struct Evaluation {
    /// The dataset's inputs as model input bytes.
    pub inputs: Vec<Vec<u8>>,
    /// `(correct, samples)` with no exit taken, if the dataset has labels.
    pub accuracy: Option<(usize, usize)>,
    /// One point per threshold, for a swept variant.
    pub points: Vec<SweepPoint>,
}

/// The prepared variants, by index in the suite; a failure is kept as the
/// reason every job of that variant fails with.
#[derive(Default)]
pub(super) struct Variants {
    /// The prepared model and the path of its blob.
    pub prepared: HashMap<usize, Result<(Prepared, PathBuf), String>>,
    /// Its evaluation, if its model has a dataset.
    pub evaluations: HashMap<usize, Result<Evaluation, String>>,
}

impl Variants {
    /// The memory timeline of every variant prepared, in suite order (a
    /// variant that failed to prepare has none).
    pub(super) fn memory_rows(&self, suite: &Suite, run_id: &str) -> Vec<MemoryRow> {
        let mut prepared: Vec<usize> = self.prepared.keys().copied().collect();
        prepared.sort_unstable();
        let mut rows = Vec::new();
        for v in prepared {
            let Some(Ok((p, _))) = self.prepared.get(&v) else {
                continue;
            };
            let variant = &suite.variants[v];
            let lowered = &p.lowered;
            rows.extend(
                lowered
                    .live_bytes
                    .iter()
                    .enumerate()
                    .map(|(step, &live)| MemoryRow {
                        run_id: Some(run_id.into()),
                        model: Some(suite.models[variant.model].name.clone()),
                        variant: Some(variant.name.clone()),
                        memory: Some(variant.recipe.memory.name().into()),
                        step: Some(step as i64),
                        layer: p.graph.layers.get(step).map(|l| l.name.clone()),
                        live_bytes: Some(live as i64),
                        arena_bytes: Some(lowered.arena_bytes as i64),
                    }),
            );
        }
        rows
    }
}

fn evaluation(suite: &Suite, v: usize, p: &Prepared) -> Option<Result<Evaluation, String>> {
    let variant = &suite.variants[v];
    let dataset = &suite.datasets[suite.models[variant.model].dataset?];
    Some((|| {
        let inputs = evaluate::inputs(p, dataset)?;
        let accuracy = evaluate::accuracy(p, dataset, &inputs)?;
        let points = if variant.sweep {
            evaluate::sweep(p, dataset, &inputs, &variant.thresholds)?
        } else {
            Vec::new()
        };
        Ok(Evaluation {
            inputs,
            accuracy,
            points,
        })
    })())
}

/// Prepares each variant of `jobs` once, writing its blob into `blobs`.
pub(super) fn prepare_variants(
    suite: &Suite,
    jobs: &[Job],
    blobs: &Path,
    progress: &mut dyn Progress,
) -> Variants {
    let mut out = Variants::default();
    let mut needed: Vec<usize> = jobs.iter().map(|j| j.variant).collect();
    needed.sort_unstable();
    needed.dedup();
    progress.start("prepare models", needed.len());
    for &v in &needed {
        if crate::device::process::interrupted() {
            break;
        }
        let variant = &suite.variants[v];
        let model = &suite.models[variant.model];
        progress.step(&format!("{}/{}", model.name, variant.name));
        let result = prepare::prepare(&model.graph, &variant.recipe)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let path = blobs.join(format!("{}--{}.blob", model.name, variant.name));
                std::fs::write(&path, p.lowered.blob.as_bytes())
                    .map_err(|e| format!("failed to write {}: {e}", path.display()))?;
                Ok((p, path))
            });
        if let Ok((p, _)) = &result {
            if let Some(e) = evaluation(suite, v, p) {
                out.evaluations.insert(v, e);
            }
        }
        out.prepared.insert(v, result);
    }
    progress.finish();
    out
}
