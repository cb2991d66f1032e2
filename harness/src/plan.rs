//! The plan: every job of a suite (variant x threshold x target), in a
//! stable order, optionally filtered by a glob over job ids.

use crate::suite::Suite;
use crate::target::Target;

/// One measurement to make: a prepared variant, a threshold, a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `model/variant[@threshold]/target`, unique in the run.
    pub id: String,
    /// Index into [`Suite::variants`].
    pub variant: usize,
    /// Exit threshold for every head, if the variant has exits.
    pub threshold: Option<f32>,
    /// Index into the run's targets.
    pub target: usize,
}

/// Expands a suite into jobs (a threshold sweep over a dataset is one job
/// per target); `only` keeps the jobs whose id matches.
pub fn plan(suite: &Suite, targets: &[Target], only: Option<&globset::GlobMatcher>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for (v, variant) in suite.variants.iter().enumerate() {
            let model = &suite.models[variant.model].name;
            // A sweep measures every exit once and derives each threshold's figures, so it is one job.
            let thresholds: Vec<Option<f32>> =
                if variant.thresholds.is_empty() || variant.sweep { vec![None] } else { variant.thresholds.iter().map(|&t| Some(t)).collect() };
            for threshold in thresholds {
                let at = threshold.map(|t| format!("@{t}")).unwrap_or_default();
                let id = format!("{model}/{}{at}/{}", variant.name, target.target.name);
                if only.is_none_or(|g| g.is_match(&id)) {
                    jobs.push(Job { id, variant: v, threshold, target: t });
                }
            }
        }
    }
    jobs
}
