//! The run's tables from stored rows: the result table (rows are model x
//! variant (x threshold), one latency column per target; every figure shows
//! its unit and source), the per-layer tables and the comparison table; the
//! files a run directory stores rendered.

use super::format::{lay_out, Format};
use super::sweep::render_sweep;
use crate::results::store::{ExitRow, Row, SweepRow};

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
    if let Some(cycles) = row.cycles_estimated {
        s.push_str(&format!(" ({} est.)", Unit::Cycles.show(cycles)));
    }
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

/// What makes a table row: model, variant, threshold (as f32 bits, so it
/// compares exactly), runtime.
type RowKey = (String, String, Option<u32>, String);

fn row_key(r: &Row) -> RowKey {
    (
        r.model.clone().unwrap_or_default(),
        r.variant.clone().unwrap_or_default(),
        r.threshold.map(|t| (t as f32).to_bits()),
        runtime(r).to_string(),
    )
}

/// The row's runtime; runs stored before runtimes existed are bench's.
fn runtime(r: &Row) -> &str {
    r.runtime
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("bench")
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
    // A runtime column when the run has peers beside bench.
    let with_runtime = keys.iter().any(|k| k.3 != "bench");
    if with_runtime {
        header.insert(2, "runtime".into());
    }
    let with_accuracy = rows.iter().any(|r| r.accuracy.is_some());
    if with_accuracy {
        header.push("accuracy (no exit)".into());
    }
    // Runtimes time themselves differently: with several, the notes under
    // the table name each source and the header names none.
    header.extend(targets.iter().map(|t| {
        let source = rows
            .iter()
            .filter(|r| r.target.as_deref() == Some(t.as_str()))
            .find_map(|r| r.latency_source.as_deref());
        match source {
            Some(_) if with_runtime => format!("{t} latency (median ± MAD)"),
            source => format!(
                "{t} latency (median ± MAD, {})",
                source.unwrap_or("no data")
            ),
        }
    }));
    let body = keys
        .iter()
        .map(|key| {
            let same = |r: &&Row| row_key(r) == *key;
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
            if with_runtime {
                line.insert(2, key.3.clone());
            }
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

/// Where the model columns come from: bench's planner and blob, and for
/// peer runtimes (TFLM) their own arena figure and the model file.
fn counts_note(rows: &[Row]) -> String {
    let mut arenas = vec!["memory planner".to_string()];
    for r in rows.iter().filter(|r| r.arena_bytes.is_some()) {
        if let Some(source) = r.arena_source.as_deref().filter(|s| *s != "planner") {
            let described = format!("{source} ({})", runtime(r));
            if !arenas.contains(&described) {
                arenas.push(described);
            }
        }
    }
    let peers = rows.iter().any(|r| runtime(r) != "bench");
    format!(
        "MACs, binary ops, params: counted from the model graph; arena: {}; model size: blob bytes{}",
        arenas.join(", "),
        if peers { " (bench), the .tflite file (peers)" } else { "" }
    )
}

/// Whether a row runs a low-precision scheme whose point is to beat int8:
/// binary, int4, or int8 with magnitude-pruned (sparse) weights.
fn low_precision(r: &Row) -> bool {
    let quant = r.quant.as_deref().unwrap_or_default();
    let pruning = r.pruning.as_deref().unwrap_or_default();
    quant.starts_with("binary")
        || quant.starts_with("int4")
        || (quant.starts_with("int8") && pruning.starts_with("magnitude"))
}

/// A warning for each low-precision job slower than the plain int8 job of
/// the same model, target and runtime (no pruning, no exits), by more than
/// the two medians' absolute deviations: what binary, int4 and sparse
/// weights are for is beating it.
fn slower_than_int8(rows: &[Row]) -> Vec<String> {
    let plain_int8 = |r: &&Row| {
        r.quant.as_deref().unwrap_or_default().starts_with("int8")
            && r.pruning.as_deref().unwrap_or_default().is_empty()
            && r.exits.as_deref().unwrap_or_default().is_empty()
    };
    let same_place = |a: &Row, b: &Row| {
        (&a.model, &a.target, &a.runtime, &a.latency_unit)
            == (&b.model, &b.target, &b.runtime, &b.latency_unit)
    };
    let ok = rows.iter().filter(|r| r.is_ok());
    ok.clone()
        .filter(|r| low_precision(r))
        .filter_map(|r| {
            let base = ok.clone().filter(plain_int8).find(|b| same_place(r, b))?;
            let (slow, fast) = (r.latency_median?, base.latency_median?);
            let unit = r.latency_unit.as_deref().unwrap_or_default();
            // Slower beyond both medians' spread: host clocks vary from run
            // to run, QEMU's instruction counts (no spread) do not.
            let noise = r.latency_mad.unwrap_or(0.0) + base.latency_mad.unwrap_or(0.0);
            (slow - fast > noise).then(|| {
                format!(
                    "SLOWER THAN INT8: {} takes {} against {} for {} (a kernel to fix, not a finding)",
                    r.job.as_deref().unwrap_or("?"),
                    latency(slow, unit),
                    latency(fast, unit),
                    base.job.as_deref().unwrap_or("?")
                )
            })
        })
        .collect()
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
        let target = r.target.as_deref().unwrap_or("?");
        let cycles = r
            .cycles_source
            .as_deref()
            .map(|c| format!("{target} cycles (est.): from what QEMU executed, by {c}"));
        let energy = r
            .energy_source
            .as_deref()
            .map(|e| format!("{target} energy per inference: {e}"));
        for note in [Some(s), cycles, energy].into_iter().flatten() {
            if !sources.contains(&note) {
                sources.push(note);
            }
        }
    }
    sources.push(counts_note(rows));
    let mut accuracy_sources: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.accuracy_source.as_deref())
        .collect();
    let mut seen = std::collections::HashSet::new();
    accuracy_sources.retain(|s| seen.insert(*s));
    if !accuracy_sources.is_empty() {
        sources.push(format!("accuracy: {}", accuracy_sources.join("; ")));
    }
    sources.extend(slower_than_int8(rows));
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

    /// Binary, int4 and sparse jobs slower than their plain int8 twin (same
    /// model, target, runtime) are flagged; faster ones, other models and
    /// other targets are not.
    #[test]
    fn low_precision_slower_than_int8_is_flagged() {
        let row = |job: &str, quant: &str, pruning: &str, median: f64, mad: f64| {
            let mut parts = job.split('/');
            let (model, _, target) = (parts.next(), parts.next(), parts.next());
            Row {
                job: Some(job.into()),
                model: model.map(Into::into),
                target: target.map(Into::into),
                runtime: Some("bench".into()),
                quant: Some(quant.into()),
                pruning: Some(pruning.into()),
                exits: Some(String::new()),
                status: Some("ok".into()),
                latency_median: Some(median),
                latency_mad: Some(mad),
                latency_unit: Some("instructions".into()),
                ..Row::default()
            }
        };
        let rows = [
            row("kws/int8/qemu-m4", "int8 per-channel", "", 5_919_000.0, 0.0),
            row("kws/binary/qemu-m4", "binary", "", 5_237_000.0, 0.0),
            row(
                "kws/sparse80/qemu-m4",
                "int8 per-channel",
                "magnitude 0.8",
                8_625_000.0,
                0.0,
            ),
            row("kws/int4/qemu-m4", "int4", "", 6_014_000.0, 0.0),
            row(
                "kws/pruned/qemu-m4",
                "int8 per-channel",
                "channels 0.5",
                9_000_000.0,
                0.0,
            ),
            row("kws/binary/qemu-m0", "binary", "", 9_000_000.0, 0.0),
            // Measures with a spread (as a host clock's): within the two
            // spreads (10,000 + 15,000 > 20,000) not flagged, beyond them flagged.
            row(
                "kws/int8/host",
                "int8 per-channel",
                "",
                1_000_000.0,
                10_000.0,
            ),
            row("kws/int4/host", "int4", "", 1_020_000.0, 15_000.0),
            row("kws/binary/host", "binary", "", 1_030_000.0, 10_000.0),
        ];
        assert_eq!(
            slower_than_int8(&rows),
            [
                "SLOWER THAN INT8: kws/sparse80/qemu-m4 takes 8.625 M instr against 5.919 M instr for kws/int8/qemu-m4 (a kernel to fix, not a finding)",
                "SLOWER THAN INT8: kws/int4/qemu-m4 takes 6.014 M instr against 5.919 M instr for kws/int8/qemu-m4 (a kernel to fix, not a finding)",
                "SLOWER THAN INT8: kws/binary/host takes 1.030 M instr against 1.000 M instr for kws/int8/host (a kernel to fix, not a finding)",
            ]
        );
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
