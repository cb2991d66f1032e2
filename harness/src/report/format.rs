//! The four renderings every table has: a header, body and notes laid out
//! for the terminal (comfy-table), as Markdown, CSV or a LaTeX booktabs
//! table.

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

/// A header, body and notes in `format`.
pub fn lay_out(
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
pub fn latex(
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
