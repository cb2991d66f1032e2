//! Stage 2: each target's device program built once; board firmware, which
//! has the model built in, once per model (cached by what goes in).

use super::prepare::Variants;
use super::Progress;
use crate::input::plan::Job;
use crate::input::suite::Suite;
use crate::input::target::Target;
use crate::results::manifest::Program;
use std::collections::HashMap;
use std::path::PathBuf;

/// A device program: its target, and the variant built in (board firmware).
type Key = (usize, Option<usize>);

/// The device programs of a run, in build order.
pub(super) struct Programs {
    order: Vec<Key>,
    built: HashMap<Key, Result<PathBuf, String>>,
}

fn key(targets: &[Target], job: &Job) -> Key {
    (
        job.target,
        targets[job.target]
            .builds_per_model()
            .then_some(job.variant),
    )
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
                Some((
                    targets[key.0].target.name.clone(),
                    key.1.map(label),
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
    for &(t, variant) in &order {
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
        let program = match variant {
            None => crate::build::firmware::build(target).map_err(|e| e.to_string()),
            Some(v) => match &variants.prepared[&v] {
                Ok((_, blob)) => {
                    crate::build::firmware::build_firmware(target, blob).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.clone()),
            },
        };
        built.insert((t, variant), program);
    }
    progress.finish();
    Programs { order, built }
}
