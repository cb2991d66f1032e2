//! Stage 2: each target's device program built once; board firmware, which
//! has the model built in, once per model (cached by what goes in); a peer
//! runtime's firmware (TFLite Micro) once per model and target.

use super::prepare::Variants;
use super::Progress;
use crate::build::firmware::{build_firmware_speaking, Speaks};
use crate::input::plan::Job;
use crate::input::runtime::Runtime;
use crate::input::suite::Suite;
use crate::input::target::Target;
use crate::results::manifest::Program;
use std::collections::HashMap;
use std::path::PathBuf;

/// A device program: its target, the variant built in (board firmware,
/// peers), and the runtime.
type Key = (usize, Option<usize>, Runtime);

/// The device programs of a run, in build order.
pub(super) struct Programs {
    order: Vec<Key>,
    built: HashMap<Key, Result<PathBuf, String>>,
}

fn key(targets: &[Target], job: &Job) -> Key {
    let per_model = targets[job.target].builds_per_model() || job.runtime != Runtime::Bench;
    (job.target, per_model.then_some(job.variant), job.runtime)
}

impl Programs {
    /// The program `job` runs, or why there is none.
    pub fn of(&self, targets: &[Target], job: &Job) -> &Result<PathBuf, String> {
        &self.built[&key(targets, job)]
    }

    /// The programs built, for the manifest: target, variant, path.
    pub fn manifest_entries<'a>(
        &'a self,
        suite: &Suite,
        targets: &'a [Target],
    ) -> Vec<Program<'a>> {
        let label = |v: usize| {
            format!(
                "{}/{}",
                suite.models[suite.variants[v].model].name, suite.variants[v].name
            )
        };
        self.order
            .iter()
            .filter_map(|key| {
                let path = self.built.get(key)?.as_ref().ok()?;
                let runtime = suite
                    .peer_name(key.2)
                    .map(|name| format!(" ({name})"))
                    .unwrap_or_default();
                Some((
                    targets[key.0].target.name.clone(),
                    key.1.map(|v| label(v) + &runtime),
                    path.as_path(),
                ))
            })
            .collect()
    }
}

/// Builds every device program `jobs` need.
pub(super) fn build_programs(
    suite: &Suite,
    targets: &[Target],
    jobs: &[Job],
    variants: &Variants,
    progress: &mut dyn Progress,
) -> Programs {
    let mut order: Vec<Key> = jobs.iter().map(|j| key(targets, j)).collect();
    order.sort_unstable();
    order.dedup();
    let mut built = HashMap::new();
    progress.start("build device programs", order.len());
    for &(t, variant, runtime) in &order {
        if crate::device::process::interrupted() {
            break;
        }
        let target = &targets[t];
        progress.step(&match variant {
            Some(v) => format!(
                "{} {}/{}",
                target.target.name,
                suite.models[suite.variants[v].model].name,
                suite.variants[v].name
            ),
            None => target.target.name.clone(),
        });
        let program = match (variant, runtime) {
            (None, _) => crate::build::firmware::build(target).map_err(|e| e.to_string()),
            (Some(v), Runtime::Bench | Runtime::BenchDut) => match &variants.prepared[&v] {
                Ok((p, blob)) => {
                    let speaks = match runtime {
                        Runtime::BenchDut => Speaks::Eembc(p.graph.tensors[p.graph.output].quant),
                        _ => Speaks::Bench,
                    };
                    build_firmware_speaking(target, blob, speaks)
                        .map_err(|e| with_schedule_hint(e, suite, v, p))
                }
                Err(e) => Err(e.clone()),
            },
            (Some(v), peer) => peer_program(suite, target, v, peer),
        };
        built.insert((t, variant, runtime), program);
    }
    progress.finish();
    Programs { order, built }
}

/// A "does not fit" in RAM under the whole-tensor schedule, with what the
/// other schedules would save: the variant's arena prepared again with
/// `memory = "partial"` and `"patch"`, the smaller kept, and whether RAM
/// would then suffice.
fn with_schedule_hint(
    e: crate::build::firmware::BuildError,
    suite: &Suite,
    v: usize,
    p: &crate::model::prepare::Prepared,
) -> String {
    use crate::model::prepare::{self, Recipe, Schedule};
    let text = e.to_string();
    let crate::build::firmware::BuildError::DoesNotFit { regions, .. } = &e else {
        return text;
    };
    let variant = &suite.variants[v];
    let Some(&(_, needs, has)) = regions.iter().find(|(name, _, _)| name == "RAM") else {
        return text;
    };
    if variant.recipe.memory != Schedule::Tensor {
        return text;
    }
    let graph = &suite.models[variant.model].graph;
    let arena = |memory| {
        let recipe = Recipe {
            memory,
            ..variant.recipe.clone()
        };
        let prepared = prepare::prepare(graph, &recipe).ok()?;
        Some((prepared.lowered.arena_bytes, memory))
    };
    // Partial first: patch only where its arena is smaller.
    let Some((bytes, schedule)) = [Schedule::Partial, Schedule::Patch]
        .into_iter()
        .filter_map(arena)
        .min_by_key(|&(bytes, _)| bytes)
    else {
        return text;
    };
    let saved = p.lowered.arena_bytes.saturating_sub(bytes) as u64;
    let verdict = match (needs - saved).checked_sub(has) {
        None | Some(0) => "which fits".to_string(),
        Some(short) => format!("still {short} bytes short"),
    };
    format!(
        "{text}; with memory = \"{}\" the arena is {bytes} bytes ({saved} fewer): RAM would need {}, {verdict} (its row scratch, {} bytes, is on the stack)",
        schedule.name(),
        needs - saved,
        kernels::model::in_place::SCRATCH_BYTES
    )
}

/// What a peer runtime runs for variant `v` on `target`: TFLite Micro's
/// firmware built from the model's `.tflite`, LiteRT's `.tflite` itself, a
/// `[[dut]]`'s ELF for the model. A peer runs the model as it is, so a
/// variant that changes it (quant, prune, exits) is refused with that reason.
fn peer_program(
    suite: &Suite,
    target: &Target,
    v: usize,
    runtime: Runtime,
) -> Result<PathBuf, String> {
    let variant = &suite.variants[v];
    let model = &suite.models[variant.model];
    let name = suite.runtime_name(runtime);
    if !variant.as_imported {
        return Err(format!(
            "{name} runs the model as it is: variant `{}` of `{}` changes it (quant, prune, exits or a memory schedule); only a variant without them runs on {name}",
            variant.name, model.name
        ));
    }
    if let Runtime::Dut(i) = runtime {
        return suite.duts[i].elves[variant.model].clone().ok_or(format!(
            "[[dut]] `{name}` names no firmware for model `{}`",
            model.name
        ));
    }
    let file = model.tflite.clone().ok_or(format!(
        "{name} runs a .tflite file: model `{}` is not from one",
        model.name
    ))?;
    match runtime {
        Runtime::Tflm(kernels) => {
            crate::build::tflm::build(target, kernels, &file).map_err(|e| e.to_string())
        }
        _ => Ok(file),
    }
}
