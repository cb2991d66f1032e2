//! `bench compare BASELINE CURRENT`: matches the jobs of two runs and
//! decides, figure by figure, whether the current run regressed. Exact
//! figures (emulated instruction counts, byte sizes, datasheet-model
//! energy, accuracy) report any change and regress past the threshold;
//! timings from a clock regress only past the threshold *and* beyond the
//! two runs' spread, so noise does not fail a CI job.

use crate::results::figures::{Better, Figure, Unit, FIGURES};
use crate::results::store::Row;

/// How big a change must be to count as a regression.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Relative change (0.03 = 3%) a figure may worsen by.
    pub threshold: f64,
    /// A timed figure must also worsen by more than this many MADs (the larger of the two runs').
    pub noise_mads: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            threshold: 0.03,
            noise_mads: 3.0,
        }
    }
}

/// What a change means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Worse past the policy.
    Regressed,
    /// Better past the policy.
    Improved,
    /// Different, within the policy (exact figures only; timings within their noise are `Same`).
    Changed,
    /// Equal, or a timing within its noise and the threshold.
    Same,
}

impl Verdict {
    /// The word in tables.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::Changed => "changed",
            Verdict::Same => "same",
        }
    }
}

/// One figure of one job in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    /// Job id.
    pub job: String,
    /// Figure, e.g. `latency_median`.
    pub metric: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// The verdict.
    pub verdict: Verdict,
}

impl Delta {
    /// `current / baseline - 1` (0 when both are 0).
    pub fn change(&self) -> f64 {
        if self.baseline == 0.0 {
            if self.current == 0.0 {
                0.0
            } else {
                f64::INFINITY.copysign(self.current)
            }
        } else {
            self.current / self.baseline - 1.0
        }
    }
}

/// Two runs, matched job by job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Every compared figure.
    pub deltas: Vec<Delta>,
    /// Jobs of the baseline the current run does not have.
    pub missing: Vec<String>,
    /// Jobs only the current run has.
    pub new: Vec<String>,
    /// Jobs that succeeded in the baseline and failed now, with the reason.
    pub failed: Vec<(String, String)>,
    /// Jobs that failed in the baseline and succeed now.
    pub fixed: Vec<String>,
}

impl Comparison {
    /// Whether the current run is worse: a figure regressed, a job failed or went missing.
    pub fn regressed(&self) -> bool {
        !self.missing.is_empty()
            || !self.failed.is_empty()
            || self.deltas.iter().any(|d| d.verdict == Verdict::Regressed)
    }
}

/// Whether a figure is counted exactly, or measured with noise.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Exact,
    /// A timing with the two runs' MADs.
    Timed {
        mads: (f64, f64),
    },
}

/// How one figure of two rows is judged: exact only if exact in both,
/// timed with each run's spread otherwise.
fn kind(figure: &Figure, baseline: &Row, current: &Row) -> Kind {
    if figure.exact_in(baseline) && figure.exact_in(current) {
        return Kind::Exact;
    }
    let spread = |r: &Row| {
        figure
            .spread_column
            .and_then(|c| r.number(c))
            .unwrap_or(0.0)
    };
    Kind::Timed {
        mads: (spread(baseline), spread(current)),
    }
}

fn verdict(baseline: f64, current: f64, better: Better, kind: Kind, policy: Policy) -> Verdict {
    if baseline == current {
        return Verdict::Same;
    }
    let worse_by = match better {
        Better::Lower => current - baseline,
        Better::Higher => baseline - current,
    };
    let relative = if baseline == 0.0 {
        f64::INFINITY
    } else {
        worse_by.abs() / baseline.abs()
    };
    let past_noise = match kind {
        Kind::Exact => true,
        Kind::Timed { mads: (a, b) } => worse_by.abs() > policy.noise_mads * a.max(b),
    };
    match (
        relative > policy.threshold && past_noise,
        worse_by > 0.0,
        kind,
    ) {
        (true, true, _) => Verdict::Regressed,
        (true, false, _) => Verdict::Improved,
        (false, _, Kind::Exact) => Verdict::Changed,
        (false, _, Kind::Timed { .. }) => Verdict::Same,
    }
}

/// Compares `current` with `baseline`, job by job.
pub fn compare(baseline: &[Row], current: &[Row], policy: Policy) -> Comparison {
    let id = |r: &Row| r.job.clone().unwrap_or_default();
    let mut out = Comparison::default();
    for b in baseline {
        let Some(c) = current.iter().find(|c| id(c) == id(b)) else {
            out.missing.push(id(b));
            continue;
        };
        match (b.is_ok(), c.is_ok()) {
            (true, false) => {
                out.failed
                    .push((id(c), c.error.clone().unwrap_or_default()));
                continue;
            }
            (false, true) => out.fixed.push(id(c)),
            (false, false) => continue,
            (true, true) => {}
        }
        for figure in FIGURES.iter().filter(|f| f.compared) {
            let (Some(bv), Some(cv)) = (figure.value(b), figure.value(c)) else {
                continue;
            };
            let (Some(unit), Some(cunit)) = (figure.unit_in(b), figure.unit_in(c)) else {
                continue;
            };
            if unit != cunit {
                continue;
            }
            let verdict = verdict(bv, cv, figure.better, kind(figure, b, c), policy);
            out.deltas.push(Delta {
                job: id(b),
                metric: figure.column,
                unit,
                baseline: bv,
                current: cv,
                verdict,
            });
        }
    }
    out.new = current
        .iter()
        .map(id)
        .filter(|j| !baseline.iter().any(|b| &id(b) == j))
        .collect();
    out
}
