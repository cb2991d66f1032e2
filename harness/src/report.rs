//! Tables from stored rows: the terminal table (comfy-table), and the same
//! table as Markdown and CSV. Rows are model x variant (x threshold), with
//! one latency column per target; every figure shows its unit and source.

use crate::store::Row;
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
}

/// A count with a thousands separator.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A byte count in KiB with one decimal.
fn kib(bytes: Option<i64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0))
}

/// A median with its unit scaled for reading: `412.3 us`, `7.70 M instr`.
pub fn latency(median: f64, unit: &str) -> String {
    match unit {
        "ns" if median >= 1e6 => format!("{:.3} ms", median / 1e6),
        "ns" if median >= 1e3 => format!("{:.1} us", median / 1e3),
        "ns" => format!("{median:.0} ns"),
        "instructions" => format!("{:.3} M instr", median / 1e6),
        "cycles" => format!("{:.3} M cycles", median / 1e6),
        other => format!("{median} {other}"),
    }
}

/// Energy per inference scaled for reading: `812.4 uJ`, `5.31 mJ`.
fn energy(microjoules: f64) -> String {
    if microjoules >= 1e3 {
        format!("{:.2} mJ", microjoules / 1e3)
    } else {
        format!("{microjoules:.1} uJ")
    }
}

fn cell(row: &Row) -> String {
    if row.status.as_deref() != Some("ok") {
        return "FAILED (see below)".into();
    }
    let (Some(median), Some(unit)) = (row.latency_median, row.latency_unit.as_deref()) else { return "-".into() };
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
    (r.model.clone().unwrap_or_default(), r.variant.clone().unwrap_or_default(), r.threshold.map(|t| (t as f32).to_bits()))
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
    let mut header: Vec<String> = ["model", "variant", "MACs", "binary ops", "params", "arena", "model size"].map(String::from).to_vec();
    header.extend(targets.iter().map(|t| {
        let source = rows.iter().filter(|r| r.target.as_deref() == Some(t.as_str())).find_map(|r| r.latency_source.as_deref());
        format!("{t} latency (median ± MAD, {})", source.unwrap_or("no data"))
    }));
    let body = keys
        .iter()
        .map(|key| {
            let same =
                |r: &&Row| (r.model.clone().unwrap_or_default(), r.variant.clone().unwrap_or_default(), r.threshold.map(|t| (t as f32).to_bits())) == *key;
            let first = rows.iter().find(same).expect("key from rows");
            let variant = match first.threshold {
                Some(t) => format!("{} @{}", key.1, t as f32),
                None => key.1.clone(),
            };
            let mut line = vec![
                key.0.clone(),
                variant,
                first.macs.map_or("-".into(), grouped),
                first.binary_ops.filter(|&b| b > 0).map_or("-".into(), grouped),
                first.params.map_or("-".into(), grouped),
                kib(first.arena_bytes),
                kib(first.model_bytes),
            ];
            for t in &targets {
                line.push(rows.iter().filter(same).find(|r| r.target.as_deref() == Some(t.as_str())).map_or("-".into(), cell));
            }
            line
        })
        .collect();
    (header, body)
}

/// Notes under the table: sources of every figure, then failures.
pub fn notes(rows: &[Row]) -> Vec<String> {
    let mut sources: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.status.as_deref() == Some("ok")) {
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
            let e = format!("{} energy per inference: {energy}", r.target.as_deref().unwrap_or("?"));
            if !sources.contains(&e) {
                sources.push(e);
            }
        }
    }
    sources.push("MACs, binary ops, params: counted from the model graph; arena: memory planner; model size: blob bytes".into());
    for r in rows.iter().filter(|r| r.status.as_deref() != Some("ok")) {
        sources.push(format!("FAILED {}: {}", r.job.as_deref().unwrap_or("?"), r.error.as_deref().unwrap_or("unknown error")));
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
pub fn render_layers(layers: &[crate::store::LayerRow], format: Format) -> String {
    let mut jobs: Vec<&str> = Vec::new();
    for l in layers {
        let job = l.job.as_deref().unwrap_or("?");
        if !jobs.contains(&job) {
            jobs.push(job);
        }
    }
    let mut out = String::new();
    for job in jobs {
        let ops: Vec<&crate::store::LayerRow> = layers.iter().filter(|l| l.job.as_deref() == Some(job)).collect();
        let total: f64 = ops.iter().filter_map(|l| l.count).sum();
        let unit = ops.iter().find_map(|l| l.unit.as_deref()).unwrap_or("?");
        let header = vec!["op".to_string(), "layer".into(), "kernel".into(), unit.into(), "share".into()];
        let mut body: Vec<Vec<String>> = ops
            .iter()
            .map(|l| {
                let count = l.count.unwrap_or(0.0);
                let share = if total > 0.0 { format!("{:.1}%", 100.0 * count / total) } else { "-".into() };
                vec![
                    l.op.map_or("?".into(), |o| o.to_string()),
                    l.layer.clone().unwrap_or_default(),
                    l.kind.clone().unwrap_or_default(),
                    grouped(count as i64),
                    share,
                ]
            })
            .collect();
        body.push(vec![String::new(), "total".into(), String::new(), grouped(total as i64), "100.0%".into()]);
        let source = ops.iter().find_map(|l| l.source.as_deref()).unwrap_or("?");
        out.push_str(&format!("\nper-layer profile of {job}\n"));
        out.push_str(&lay_out(header, body, &[format!("{unit} from {source}")], format));
    }
    out
}

/// A header, body and notes in `format`.
fn lay_out(header: Vec<String>, body: Vec<Vec<String>>, notes: &[String], format: Format) -> String {
    match format {
        Format::Csv => {
            let quote = |s: &String| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.clone() };
            let mut out: Vec<String> = std::iter::once(&header).chain(&body).map(|l| l.iter().map(quote).collect::<Vec<_>>().join(",")).collect();
            out.extend(notes.iter().map(|n| format!("# {n}")));
            out.join("\n") + "\n"
        }
        Format::Terminal | Format::Markdown => {
            let mut table = Table::new();
            table.load_preset(if format == Format::Markdown { presets::ASCII_MARKDOWN } else { presets::UTF8_FULL_CONDENSED });
            if format == Format::Terminal {
                table.set_content_arrangement(ContentArrangement::Dynamic);
            }
            table.set_header(header);
            for line in body {
                table.add_row(line);
            }
            let bullet = if format == Format::Markdown { "- " } else { "  " };
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
    use crate::store::LayerRow;

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
        let layers = [layer(0, "conv1", "conv2d", 3_000_000.0), layer(1, "fc", "fully_connected", 1_000_000.0)];
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
