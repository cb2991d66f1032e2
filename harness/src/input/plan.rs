//! The plan: every job of a suite (variant x threshold x target), in a
//! stable order, optionally filtered by a glob over job ids.

use crate::input::runtime::Runtime;
use crate::input::suite::Suite;
use crate::input::target::Target;

/// One measurement to make: a prepared variant, a threshold, a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `model/variant[@threshold]/target`, and `/runtime` for a peer
    /// runtime (bench's own jobs keep the ids earlier runs stored, so that
    /// they compare), unique in the run.
    pub id: String,
    /// Index into [`Suite::variants`].
    pub variant: usize,
    /// Exit threshold for every head, if the variant has exits.
    pub threshold: Option<f32>,
    /// Index into the run's targets.
    pub target: usize,
    /// Who runs it.
    pub runtime: Runtime,
}

/// Expands a suite into jobs (a threshold sweep over a dataset is one job
/// per target); `only` keeps the jobs whose id matches. Job ids key the
/// store (a resumed run skips the ids it holds), so two jobs with one id
/// are refused, naming it.
pub fn plan(
    suite: &Suite,
    targets: &[Target],
    only: Option<&globset::GlobMatcher>,
) -> Result<Vec<Job>, String> {
    let jobs = expand(suite, targets, only);
    let mut ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    ids.sort_unstable();
    match ids.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(format!(
            "two jobs would have the id `{}`: give each target, variant and threshold once",
            w[0]
        )),
        None => Ok(jobs),
    }
}

/// What a user should know before the jobs run: the runtime and target
/// pairs the plan leaves out, and the models whose data is transposed at
/// the boundary.
pub fn notes(suite: &Suite, targets: &[Target]) -> Vec<String> {
    let mut notes = unplanned(suite, targets);
    for m in &suite.models {
        let input = m.graph.tensors[m.graph.input].shape;
        if m.graph.layout.differs(input) {
            notes.push(format!(
                "model `{}` is NCHW: its inputs (dataset samples too) are read as {:?} and transposed once to bench's NHWC at the input",
                m.name,
                m.graph.layout.item_dims(input)
            ));
        }
    }
    notes
}

/// The runtime and target pairs the plan leaves out, one line per runtime:
/// `litert runs on the host target only: no jobs on qemu-m3, qemu-m4`.
fn unplanned(suite: &Suite, targets: &[Target]) -> Vec<String> {
    suite
        .runtimes
        .iter()
        .filter_map(|&runtime| {
            let mut why = None;
            let names: Vec<&str> = targets
                .iter()
                .filter_map(|t| {
                    let reason = runtime.runs_on(t).err()?;
                    why = Some(reason);
                    Some(t.target.name.as_str())
                })
                .collect();
            Some(format!(
                "{} {}: no jobs on {}",
                suite.runtime_name(runtime),
                why?,
                names.join(", ")
            ))
        })
        .collect()
}

fn expand(suite: &Suite, targets: &[Target], only: Option<&globset::GlobMatcher>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for (v, variant) in suite.variants.iter().enumerate() {
            let model = &suite.models[variant.model].name;
            // A sweep measures every exit once and derives each threshold's figures, so it is one job.
            let thresholds: Vec<Option<f32>> = if variant.thresholds.is_empty() || variant.sweep {
                vec![None]
            } else {
                variant.thresholds.iter().map(|&t| Some(t)).collect()
            };
            let runtimes = suite.runtimes.iter().filter(|r| r.runs_on(target).is_ok());
            for (threshold, &runtime) in thresholds
                .iter()
                .flat_map(|t| runtimes.clone().map(move |r| (*t, r)))
            {
                let at = threshold.map(|t| format!("@{t}")).unwrap_or_default();
                let by = suite
                    .peer_name(runtime)
                    .map(|name| format!("/{name}"))
                    .unwrap_or_default();
                let id = format!("{model}/{}{at}/{}{by}", variant.name, target.target.name);
                if only.is_none_or(|g| g.is_match(&id)) {
                    jobs.push(Job {
                        id,
                        variant: v,
                        threshold,
                        target: t,
                        runtime,
                    });
                }
            }
        }
    }
    jobs
}

/// One slice of a job matrix: shard `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `i/n` with 1 <= i <= n.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard {s}: expected i/n with 1 <= i <= n, e.g. 2/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The position in the whole plan of the `k`-th job of this shard.
    pub fn plan_position(self, k: usize) -> usize {
        k * self.count + self.index - 1
    }

    /// This shard's jobs: every `count`-th job of the plan, from the `index`-th
    /// (round robin, so each shard gets a share of every target and model).
    pub fn select(self, jobs: Vec<Job>) -> Vec<Job> {
        jobs.into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index - 1)
            .map(|(_, j)| j)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_plan_and_give_back_its_order() {
        let jobs: Vec<Job> = (0..10)
            .map(|i| Job {
                id: format!("j{i}"),
                variant: i,
                threshold: None,
                target: 0,
                runtime: Runtime::Bench,
            })
            .collect();
        let mut seen = vec![None; 10];
        for index in 1..=3 {
            let shard = Shard { index, count: 3 };
            for (k, job) in shard.select(jobs.clone()).into_iter().enumerate() {
                assert_eq!(seen[shard.plan_position(k)].replace(job.id.clone()), None);
                assert_eq!(job, jobs[shard.plan_position(k)]);
            }
        }
        assert!(seen.iter().all(Option::is_some));
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert_eq!(
                bad.parse::<Shard>().unwrap_err(),
                format!("--shard {bad}: expected i/n with 1 <= i <= n, e.g. 2/3")
            );
        }
    }
}
