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
    let notes = notes(rows);
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
