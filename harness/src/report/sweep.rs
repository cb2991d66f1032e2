//! The threshold-sweep tables of early-exit variants.

use super::format::{lay_out, Format};
use super::tables::{grouped, latency, percent};
use crate::results::store::{ExitRow, Row, SweepRow};

/// Threshold sweeps: for each model and variant one row per threshold with
/// accuracy, exit rates, mean MACs and each target's predicted mean cost
/// (with the measured check where there is one), then each exit's cost and
/// the best threshold within `drop` (a fraction) of the no-exit accuracy.
pub fn render_sweep(
    rows: &[Row],
    sweep: &[SweepRow],
    exits: &[ExitRow],
    drop: f64,
    format: Format,
) -> String {
    let mut groups: Vec<(String, String)> = Vec::new();
    for r in sweep {
        let key = (
            r.model.clone().unwrap_or_default(),
            r.variant.clone().unwrap_or_default(),
        );
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let mut out = String::new();
    for (model, variant) in groups {
        let g = SweepGroup::new(model, variant, sweep, exits);
        let body = g.thresholds.iter().map(|&th| g.line(th)).collect();
        let baseline = rows
            .iter()
            .find(|r| g.holds(&r.model, &r.variant))
            .and_then(|r| r.accuracy);
        let notes: Vec<String> = g
            .targets
            .iter()
            .flat_map(|t| g.notes(t, baseline, drop))
            .collect();
        out.push_str(&g.title());
        out.push_str(&lay_out(g.header(), body, &notes, format));
    }
    out
}

/// One model and variant's sweep: its points and what labels them.
struct SweepGroup<'a> {
    model: String,
    variant: String,
    points: Vec<&'a SweepRow>,
    /// Its exits' rows, in exit order.
    exits: Vec<&'a ExitRow>,
    targets: Vec<String>,
    thresholds: Vec<f64>,
    /// Targets with a measured check.
    validated: Vec<String>,
    /// Whether the variant has binary layers (a column of binary ops).
    binary: bool,
}

impl<'a> SweepGroup<'a> {
    fn new(model: String, variant: String, sweep: &'a [SweepRow], exits: &'a [ExitRow]) -> Self {
        let holds = |m: &Option<String>, v: &Option<String>| {
            m.as_deref() == Some(model.as_str()) && v.as_deref() == Some(variant.as_str())
        };
        let points: Vec<&SweepRow> = sweep
            .iter()
            .filter(|r| holds(&r.model, &r.variant))
            .collect();
        let mut exits: Vec<&ExitRow> = exits
            .iter()
            .filter(|e| holds(&e.model, &e.variant))
            .collect();
        exits.sort_by_key(|e| e.index);
        let (mut targets, mut thresholds) = (Vec::<String>::new(), Vec::<f64>::new());
        for r in &points {
            let t = r.target.clone().unwrap_or_default();
            if !targets.contains(&t) {
                targets.push(t);
            }
            let th = r.threshold.unwrap_or(f64::NAN);
            if !thresholds.iter().any(|x| x.to_bits() == th.to_bits()) {
                thresholds.push(th);
            }
        }
        let validated = targets
            .iter()
            .filter(|t| {
                points
                    .iter()
                    .any(|r| r.target.as_ref() == Some(*t) && r.validated_samples.is_some())
            })
            .cloned()
            .collect();
        let binary = points
            .iter()
            .any(|r| r.mean_binary_ops.is_some_and(|b| b > 0.0));
        Self {
            model,
            variant,
            points,
            exits,
            targets,
            thresholds,
            validated,
            binary,
        }
    }

    fn holds(&self, model: &Option<String>, variant: &Option<String>) -> bool {
        model.as_deref() == Some(self.model.as_str())
            && variant.as_deref() == Some(self.variant.as_str())
    }

    fn unit_of(&self, t: &str) -> String {
        let point = self.points.iter().find(|r| r.target.as_deref() == Some(t));
        point.and_then(|r| r.cost_unit.clone()).unwrap_or_default()
    }

    fn at(&self, t: &str, th: f64) -> Option<&'a SweepRow> {
        let same = |r: &&&SweepRow| r.threshold.map(f64::to_bits) == Some(th.to_bits());
        self.points
            .iter()
            .filter(same)
            .find(|r| r.target.as_deref() == Some(t))
            .copied()
    }

    fn title(&self) -> String {
        let first = self.points.first();
        let samples = first.and_then(|r| r.samples).unwrap_or(0);
        let dataset = first.and_then(|r| r.dataset.clone()).unwrap_or_default();
        let measure = first.and_then(|r| r.measure.clone()).unwrap_or_default();
        let (model, variant) = (&self.model, &self.variant);
        format!("\nthreshold sweep of {model}/{variant} ({measure}, exit decisions from the host reference on {dataset}, {samples} samples)\n")
    }

    fn header(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exits.iter().filter_map(|e| e.exit.clone()).collect();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        let mut header = vec![
            "threshold".to_string(),
            "accuracy".into(),
            format!("exit rates ({})", names.join(" / ")),
            "mean MACs".into(),
        ];
        if self.binary {
            header.push("mean binary ops".into());
        }
        header.extend(self.targets.iter().map(|t| format!("{t} mean (saving)")));
        header.extend(
            self.validated
                .iter()
                .map(|t| format!("{t} measured, first n inputs (vs predicted)")),
        );
        header
    }

    /// The row of threshold `th`.
    fn line(&self, th: f64) -> Vec<String> {
        let first = self
            .points
            .iter()
            .find(|r| r.threshold.map(f64::to_bits) == Some(th.to_bits()))
            .expect("threshold from points");
        let rates = first.exit_rates.as_deref().unwrap_or("").split(' ');
        let rates: Vec<String> = rates
            .map(|r| r.parse::<f64>().map_or("?".into(), percent))
            .collect();
        let count = |m: Option<f64>| m.map_or("-".into(), |m| grouped(m.round() as i64));
        let mut line = vec![
            format!("{th}"),
            first.accuracy.map_or("-".into(), percent),
            rates.join(" / "),
            count(first.mean_macs),
        ];
        if self.binary {
            line.push(count(first.mean_binary_ops));
        }
        for t in &self.targets {
            let cell = self.at(t, th).and_then(|r| {
                Some(format!(
                    "{} ({})",
                    latency(r.mean_cost?, &self.unit_of(t)),
                    percent(r.saving?)
                ))
            });
            line.push(cell.unwrap_or("-".into()));
        }
        for t in &self.validated {
            let cell = self.at(t, th).and_then(|r| {
                Some(format!(
                    "{} ({:+.4}%, n={})",
                    latency(r.measured_subset_cost?, &self.unit_of(t)),
                    100.0 * r.cost_error?,
                    r.validated_samples?
                ))
            });
            line.push(cell.unwrap_or("-".into()));
        }
        line
    }

    /// A target's notes: each exit's cost, the best threshold within
    /// `drop` of the no-exit accuracy `baseline`, the measured check.
    fn notes(&self, t: &str, baseline: Option<f64>, drop: f64) -> Vec<String> {
        let mine: Vec<&SweepRow> = self
            .points
            .iter()
            .filter(|r| r.target.as_deref() == Some(t))
            .copied()
            .collect();
        let unit = self.unit_of(t);
        let cost = |c: Option<f64>| c.map_or("-".into(), |c| latency(c, &unit));
        let costs: Vec<String> = self
            .exits
            .iter()
            .filter(|e| e.target.as_deref() == Some(t))
            .map(|e| format!("{} {}", e.exit.as_deref().unwrap_or("?"), cost(e.cost)))
            .collect();
        let source = mine
            .first()
            .and_then(|r| r.cost_source.clone())
            .unwrap_or_default();
        let mut notes = vec![format!(
            "{t}: cost of each exit {}; mean = exit rates x those ({source})",
            costs.join(", ")
        )];
        if let Some(base) = baseline {
            let pairs: Vec<(f64, f64)> = mine
                .iter()
                .map(|r| {
                    (
                        r.accuracy.unwrap_or(0.0),
                        r.mean_cost.unwrap_or(f64::INFINITY),
                    )
                })
                .collect();
            notes.push(match crate::accuracy::evaluate::best_within(&pairs, base, drop) {
                Some(i) => format!(
                    "{t}: largest saving within {} of the no-exit accuracy ({}): threshold {}, accuracy {}, {} per inference ({} less)",
                    percent(drop),
                    percent(base),
                    mine[i].threshold.unwrap_or(f64::NAN),
                    mine[i].accuracy.map_or("-".into(), percent),
                    cost(mine[i].mean_cost),
                    mine[i].saving.map_or("-".into(), percent)
                ),
                None => format!(
                    "{t}: no threshold stays within {} of the no-exit accuracy ({})",
                    percent(drop),
                    percent(base)
                ),
            });
        }
        let errors: Vec<f64> = mine.iter().filter_map(|r| r.cost_error).collect();
        if let Some(worst) = errors
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        {
            let n = mine.iter().find_map(|r| r.validated_samples).unwrap_or(0);
            notes.push(format!(
                "{t}: predicted vs measured mean over the first {n} inputs at {} thresholds (threshold set on the device, same exits as the host): largest difference {:+.4}%",
                errors.len(),
                100.0 * worst
            ));
        }
        notes
    }
}
