//! Tables from stored rows: the terminal table (comfy-table), and the same
//! table as Markdown and CSV. Rows are model x variant (x threshold), with
//! one latency column per target; every figure shows its unit and source.

use crate::results::store::{ExitRow, Row, SweepRow};
use comfy_table::{presets, ContentArrangement, Table};

/// Output formats of the result table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Box-drawn for the terminal.
    Terminal,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// Comma-separated values.
    Csv,
    /// A LaTeX `table` with booktabs rules, notes as a footnote.
    Latex,
}

pub use crate::results::figures::grouped;
use crate::results::figures::Unit;

/// A byte count in KiB with one decimal.
fn kib(bytes: Option<i64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0))
}

/// A figure in a stored unit label, scaled for reading: `412.3 us`, `7.700 M instr`.
pub fn latency(value: f64, unit: &str) -> String {
    match Unit::from_label(unit) {
        Some(unit) => unit.show(value),
        None => format!("{value} {unit}"),
    }
}

/// A fraction as a percentage with one decimal.
pub fn percent(fraction: f64) -> String {
    Unit::Fraction.show(fraction)
}

/// A relative change as a signed percentage; tiny nonzero changes keep enough digits to show.
fn signed_percent(change: f64) -> String {
    let pct = 100.0 * change;
    if pct != 0.0 && pct.abs() < 0.005 {
        format!("{pct:+.4}%")
    } else {
        format!("{pct:+.2}%")
    }
}

/// Energy per inference scaled for reading: `812.4 uJ`, `5.31 mJ`.
fn energy(microjoules: f64) -> String {
    Unit::Microjoules.show(microjoules)
}

fn cell(row: &Row) -> String {
    if !row.is_ok() {
        return "FAILED (see below)".into();
    }
    let (Some(median), Some(unit)) = (row.latency_median, row.latency_unit.as_deref()) else {
        return "-".into();
    };
    let spread = match row.latency_mad {
        Some(mad) if median > 0.0 => format!(" ±{:.1}%", 100.0 * mad / median),
        _ => String::new(),
    };
    let mut s = format!("{}{spread}", latency(median, unit));
    if let Some(flash) = row.flash_bytes {
        s.push_str(&format!(", flash {}", kib(Some(flash))));
    }
    if let (Some(uj), Some(source)) = (row.energy_uj, row.energy_source.as_deref()) {
        let kind = source.split(':').next().unwrap_or(source);
        s.push_str(&format!(", {} ({kind})", energy(uj)));
    }
    if row.output_matches_reference == Some(false) {
        s.push_str(", OUTPUT DIFFERS");
    }
    s
}

/// What makes a table row: model, variant, threshold (as f32 bits, so it compares exactly).
type RowKey = (String, String, Option<u32>);

fn row_key(r: &Row) -> RowKey {
    (
        r.model.clone().unwrap_or_default(),
        r.variant.clone().unwrap_or_default(),
        r.threshold.map(|t| (t as f32).to_bits()),
    )
}

/// The table's header and body, in display order.
fn grid(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut targets: Vec<String> = Vec::new();
    let mut keys: Vec<RowKey> = Vec::new();
    for r in rows {
        let target = r.target.clone().unwrap_or_default();
        if !targets.contains(&target) {
            targets.push(target);
        }
        let key = row_key(r);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut header: Vec<String> = [
        "model",
        "variant",
        Unit::Macs.label(),
        "binary ops",
        "params",
        "arena",
        "model size",
    ]
    .map(String::from)
    .to_vec();
    let with_accuracy = rows.iter().any(|r| r.accuracy.is_some());
    if with_accuracy {
        header.push("accuracy (no exit)".into());
    }
    header.extend(targets.iter().map(|t| {
        let source = rows
            .iter()
            .filter(|r| r.target.as_deref() == Some(t.as_str()))
            .find_map(|r| r.latency_source.as_deref());
        format!(
            "{t} latency (median ± MAD, {})",
            source.unwrap_or("no data")
        )
    }));
    let body = keys
        .iter()
        .map(|key| {
            let same = |r: &&Row| {
                (
                    r.model.clone().unwrap_or_default(),
                    r.variant.clone().unwrap_or_default(),
                    r.threshold.map(|t| (t as f32).to_bits()),
                ) == *key
            };
            let first = rows.iter().find(same).expect("key from rows");
            let variant = match first.threshold {
                Some(t) => format!("{} @{}", key.1, t as f32),
                None => key.1.clone(),
            };
            let mut line = vec![
                key.0.clone(),
                variant,
                first.macs.map_or("-".into(), grouped),
                first
                    .binary_ops
                    .filter(|&b| b > 0)
                    .map_or("-".into(), grouped),
                first.params.map_or("-".into(), grouped),
                kib(first.arena_bytes),
                kib(first.model_bytes),
            ];
            if with_accuracy {
                line.push(first.accuracy.map_or("-".into(), percent));
            }
            for t in &targets {
                line.push(
                    rows.iter()
                        .filter(same)
                        .find(|r| r.target.as_deref() == Some(t.as_str()))
                        .map_or("-".into(), cell),
                );
            }
            line
        })
        .collect();
    (header, body)
}

/// Notes under the table: sources of every figure, then failures.
pub fn notes(rows: &[Row]) -> Vec<String> {
    let mut sources: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.is_ok()) {
        let s = format!(
            "{} latency: {} ({}), median ± MAD of {} runs after {} warm-up",
            r.target.as_deref().unwrap_or("?"),
            r.latency_source.as_deref().unwrap_or("?"),
            r.latency_unit.as_deref().unwrap_or("?"),
            r.latency_n.unwrap_or(0),
            r.warmup.unwrap_or(0)
        );
        if !sources.contains(&s) {
            sources.push(s);
        }
        if let Some(energy) = r.energy_source.as_deref() {
            let e = format!(
                "{} energy per inference: {energy}",
                r.target.as_deref().unwrap_or("?")
            );
            if !sources.contains(&e) {
                sources.push(e);
            }
        }
    }
    sources.push("MACs, binary ops, params: counted from the model graph; arena: memory planner; model size: blob bytes".into());
    let mut accuracy_sources: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.accuracy_source.as_deref())
        .collect();
    let mut seen = std::collections::HashSet::new();
    accuracy_sources.retain(|s| seen.insert(*s));
    if !accuracy_sources.is_empty() {
        sources.push(format!("accuracy: {}", accuracy_sources.join("; ")));
    }
    for r in rows.iter().filter(|r| !r.is_ok()) {
        sources.push(format!(
            "FAILED {}: {}",
            r.job.as_deref().unwrap_or("?"),
            r.error.as_deref().unwrap_or("unknown error")
        ));
    }
    sources
}

/// Renders the result table in `format`, notes included (as comments in CSV).
pub fn render(rows: &[Row], format: Format) -> String {
    let (header, body) = grid(rows);
    lay_out(header, body, &notes(rows), format)
}

/// Per-layer profiles: one table per job, each operator with its count and
/// its share of the profiled inference.
pub fn render_layers(layers: &[crate::results::store::LayerRow], format: Format) -> String {
    let mut jobs: Vec<&str> = Vec::new();
    for l in layers {
        let job = l.job.as_deref().unwrap_or("?");
        if !jobs.contains(&job) {
            jobs.push(job);
        }
    }
    let mut out = String::new();
    for job in jobs {
        let ops: Vec<&crate::results::store::LayerRow> = layers
            .iter()
            .filter(|l| l.job.as_deref() == Some(job))
            .collect();
        let total: f64 = ops.iter().filter_map(|l| l.count).sum();
        let unit = ops.iter().find_map(|l| l.unit.as_deref()).unwrap_or("?");
        let header = vec![
            "op".to_string(),
            "layer".into(),
            "kernel".into(),
            unit.into(),
            "share".into(),
        ];
        let mut body: Vec<Vec<String>> = ops
            .iter()
            .map(|l| {
                let count = l.count.unwrap_or(0.0);
                let share = if total > 0.0 {
                    format!("{:.1}%", 100.0 * count / total)
                } else {
                    "-".into()
                };
                vec![
                    l.op.map_or("?".into(), |o| o.to_string()),
                    l.layer.clone().unwrap_or_default(),
                    l.kind.clone().unwrap_or_default(),
                    grouped(count as i64),
                    share,
                ]
            })
            .collect();
        body.push(vec![
            String::new(),
            "total".into(),
            String::new(),
            grouped(total as i64),
            "100.0%".into(),
        ]);
        let source = ops.iter().find_map(|l| l.source.as_deref()).unwrap_or("?");
        out.push_str(&format!("\nper-layer profile of {job}\n"));
        out.push_str(&lay_out(
            header,
            body,
            &[format!("{unit} from {source}")],
            format,
        ));
    }
    out
}

/// The accuracy drop the best-threshold summary allows unless told otherwise (1%, as T-RECX quotes).
pub const DEFAULT_ACCURACY_DROP: f64 = 0.01;

/// The renderings a run directory keeps beside its tables (`bench run`
/// and `bench merge` alike): `table.md`, `table.csv`, and `sweep.md` when
/// the run swept thresholds; as (file name, bytes).
pub fn stored_renderings(
    rows: &[Row],
    sweep: &[SweepRow],
    exits: &[ExitRow],
) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        (
            "table.md".to_string(),
            render(rows, Format::Markdown).into_bytes(),
        ),
        (
            "table.csv".to_string(),
            render(rows, Format::Csv).into_bytes(),
        ),
    ];
    if !sweep.is_empty() {
        files.push((
            "sweep.md".into(),
            render_sweep(rows, sweep, exits, DEFAULT_ACCURACY_DROP, Format::Markdown).into_bytes(),
        ));
    }
    files
}

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

/// `bench compare`: every figure that is not the same, with both values and
/// the change, then the jobs that failed, went missing or are new, and a count.
pub fn render_comparison(c: &crate::results::compare::Comparison, format: Format) -> String {
    use crate::results::compare::Verdict;
    let mut deltas: Vec<&crate::results::compare::Delta> = c
        .deltas
        .iter()
        .filter(|d| d.verdict != Verdict::Same)
        .collect();
    deltas.sort_by(|a, b| (a.verdict, &a.job, a.metric).cmp(&(b.verdict, &b.job, b.metric)));
    let header = ["job", "figure", "baseline", "current", "change", "verdict"]
        .map(String::from)
        .to_vec();
    let body = deltas
        .iter()
        .map(|d| {
            vec![
                d.job.clone(),
                d.metric.to_string(),
                d.unit.show(d.baseline),
                d.unit.show(d.current),
                signed_percent(d.change()),
                d.verdict.word().into(),
            ]
        })
        .collect();
    let count = |v: Verdict| c.deltas.iter().filter(|d| d.verdict == v).count();
    let mut notes: Vec<String> = Vec::new();
    notes.extend(
        c.failed
            .iter()
            .map(|(job, why)| format!("FAILED now, ok in the baseline: {job}: {why}")),
    );
    notes.extend(
        c.missing
            .iter()
            .map(|job| format!("MISSING: {job} is in the baseline, not in the current run")),
    );
    notes.extend(
        c.new
            .iter()
            .map(|job| format!("new: {job} is not in the baseline")),
    );
    notes.extend(
        c.fixed
            .iter()
            .map(|job| format!("fixed: {job} failed in the baseline, ok now")),
    );
    notes.push(format!(
        "{} regressed, {} improved, {} changed within the threshold, {} the same; exact figures (QEMU icount, bytes, model energy, accuracy) show any change, timings only changes past the threshold and the runs' spread",
        count(Verdict::Regressed),
        count(Verdict::Improved),
        count(Verdict::Changed),
        count(Verdict::Same)
    ));
    if deltas.is_empty() {
        return notes.iter().map(|n| format!("{n}\n")).collect();
    }
    lay_out(header, body, &notes, format)
}

/// Escapes LaTeX's special characters in table text.
fn tex(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '<' | '>' => {
                out.push('$');
                out.push(c);
                out.push('$');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A booktabs table: the first column left-aligned text, the others right-aligned;
/// `bold[row][col]` cells in bold; notes as a small paragraph under the table.
fn latex(
    header: &[String],
    body: &[Vec<String>],
    bold: &[Vec<bool>],
    caption: &str,
    notes: &[String],
) -> String {
    let labels = header
        .iter()
        .take_while(|h| !h.contains('('))
        .count()
        .max(1);
    let align: String = (0..header.len())
        .map(|i| if i < labels { 'l' } else { 'r' })
        .collect();
    let mut out = String::from("\\begin{table}[t]\n\\centering\n");
    if !caption.is_empty() {
        out.push_str(&format!("\\caption{{{}}}\n", tex(caption)));
    }
    out.push_str(&format!("\\begin{{tabular}}{{{align}}}\n\\toprule\n"));
    out.push_str(
        &header
            .iter()
            .map(|h| tex(h))
            .collect::<Vec<_>>()
            .join(" & "),
    );
    out.push_str(" \\\\\n\\midrule\n");
    for (r, line) in body.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if bold.get(r).and_then(|b| b.get(c)).copied().unwrap_or(false) {
                    format!("\\textbf{{{}}}", tex(v))
                } else {
                    tex(v)
                }
            })
            .collect();
        out.push_str(&cells.join(" & "));
        out.push_str(" \\\\\n");
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n");
    if !notes.is_empty() {
        out.push_str("\\par\\smallskip\\footnotesize\n");
        out.push_str(
            &notes
                .iter()
                .map(|n| tex(n))
                .collect::<Vec<_>>()
                .join(" \\\\\n"),
        );
        out.push('\n');
    }
    out + "\\end{table}\n"
}

/// A pivot cell in its column's unit, scaled for reading, and the unit the header shows.
fn scaled(unit: Option<Unit>) -> (f64, usize, &'static str) {
    unit.map_or((1.0, 4, "mixed units"), Unit::scale)
}

/// `bench report`: a pivot table with its units in the headers, the best
/// value of each row marked (bold in LaTeX, `*` elsewhere) where the row's
/// cells share a unit, and the figures' sources and provenance as notes.
pub fn render_pivot(
    p: &crate::report::pivot::Pivot,
    provenance: &[String],
    format: Format,
) -> String {
    let mut header: Vec<String> = p.spec.rows.clone();
    let scales: Vec<(f64, usize, &str)> = p.units.iter().map(|&u| scaled(u)).collect();
    for (key, (_, _, unit)) in p.col_keys.iter().zip(&scales) {
        header.push(format!("{} ({unit})", key.join(" ")));
    }
    let same_unit = p.units.iter().all(|u| u.is_some() && *u == p.units[0]);
    let mut bold = Vec::new();
    let body: Vec<Vec<String>> = p
        .row_keys
        .iter()
        .zip(&p.cells)
        .map(|(key, cells)| {
            let best = if same_unit && cells.iter().flatten().count() > 1 {
                let better = |a: f64, b: f64| if p.lower_is_better { a < b } else { a > b };
                cells
                    .iter()
                    .flatten()
                    .copied()
                    .reduce(|a, b| if better(b, a) { b } else { a })
            } else {
                None
            };
            let marks: Vec<bool> = key
                .iter()
                .map(|_| false)
                .chain(cells.iter().map(|c| c.is_some() && *c == best))
                .collect();
            let mut line = key.clone();
            for (cell, (scale, digits, _)) in cells.iter().zip(&scales) {
                let text = cell.map_or("-".to_string(), |v| {
                    let v = v * scale;
                    if *digits == 0 {
                        grouped(v.round() as i64)
                    } else {
                        format!("{v:.digits$}")
                    }
                });
                let marked = format != Format::Latex && cell.is_some() && *cell == best;
                line.push(if marked { format!("{text}*") } else { text });
            }
            bold.push(marks);
            line
        })
        .collect();
    let what = match &p.spec.relative_to {
        Some((dimension, base)) => format!("{} relative to {dimension} = {base} (baseline / value for lower-is-better figures; > 1 is better)", p.spec.metric),
        None => p.spec.metric.clone(),
    };
    let mut notes = vec![format!(
        "{what}; {} best per row marked{}",
        if p.lower_is_better {
            "lowest"
        } else {
            "highest"
        },
        if format == Format::Latex {
            " in bold"
        } else {
            " with *"
        }
    )];
    notes.push(format!("sources: {}", p.sources.join("; ")));
    notes.extend(provenance.iter().cloned());
    match format {
        Format::Latex => latex(&header, &body, &bold, &what, &notes),
        _ => lay_out(header, body, &notes, format),
    }
}

/// A header, body and notes in `format`.
fn lay_out(
    header: Vec<String>,
    body: Vec<Vec<String>>,
    notes: &[String],
    format: Format,
) -> String {
    match format {
        Format::Latex => latex(
            &header,
            &body,
            &vec![vec![false; header.len()]; body.len()],
            "",
            notes,
        ),
        Format::Csv => {
            let quote = |s: &String| {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.clone()
                }
            };
            let mut out: Vec<String> = std::iter::once(&header)
                .chain(&body)
                .map(|l| l.iter().map(quote).collect::<Vec<_>>().join(","))
                .collect();
            out.extend(notes.iter().map(|n| format!("# {n}")));
            out.join("\n") + "\n"
        }
        Format::Terminal | Format::Markdown => {
            let mut table = Table::new();
            table.load_preset(if format == Format::Markdown {
                presets::ASCII_MARKDOWN
            } else {
                presets::UTF8_FULL_CONDENSED
            });
            if format == Format::Terminal {
                table.set_content_arrangement(ContentArrangement::Dynamic);
            }
            table.set_header(header);
            for line in body {
                table.add_row(line);
            }
            let bullet = if format == Format::Markdown {
                "- "
            } else {
                "  "
            };
            let mut out = table.to_string();
            out.push('\n');
            for n in notes {
                out.push_str(&format!("\n{bullet}{n}"));
            }
            out + "\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::store::LayerRow;

    fn layer(op: i64, name: &str, kind: &str, count: f64) -> LayerRow {
        LayerRow {
            job: Some("kws/int8/qemu-m4".into()),
            op: Some(op),
            layer: Some(name.into()),
            kind: Some(kind.into()),
            count: Some(count),
            unit: Some("instructions".into()),
            source: Some("QEMU icount, one profiled inference".into()),
            ..LayerRow::default()
        }
    }

    #[test]
    fn layer_profiles_render_counts_shares_and_their_source() {
        let layers = [
            layer(0, "conv1", "conv2d", 3_000_000.0),
            layer(1, "fc", "fully_connected", 1_000_000.0),
        ];
        let expected = "\nper-layer profile of kws/int8/qemu-m4\n\
| op | layer | kernel          | instructions | share  |\n\
|----|-------|-----------------|--------------|--------|\n\
| 0  | conv1 | conv2d          | 3,000,000    | 75.0%  |\n\
| 1  | fc    | fully_connected | 1,000,000    | 25.0%  |\n\
|    | total |                 | 4,000,000    | 100.0% |\n\
\n- instructions from QEMU icount, one profiled inference\n";
        assert_eq!(render_layers(&layers, Format::Markdown), expected);
    }
}
