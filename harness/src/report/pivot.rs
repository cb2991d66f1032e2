//! `bench report`: pivot tables over stored runs. The runs' rows become one
//! polars frame; any of its text columns can label rows or columns and any
//! numeric column be the figure. Cells with several rows (the same job in
//! two runs) hold their mean. A relative table divides every cell by the
//! cell of a baseline (a variant, a target, ...) on the same row.

use crate::results::figures::{self, Better, Figure, Unit, UnitOf, FIGURES};
use crate::results::store::{Row, Table};
use polars::prelude::*;

/// What to tabulate.
#[derive(Clone, Debug, PartialEq)]
pub struct PivotSpec {
    /// Columns whose values label the table's rows, e.g. `model`, `variant`.
    pub rows: Vec<String>,
    /// Columns whose values label the table's columns, e.g. `target`.
    pub cols: Vec<String>,
    /// The figure in the cells, e.g. `latency_median`.
    pub metric: String,
    /// Divide by the cell whose `(column, value)` is this, on the same row: `("variant", "int8")`.
    pub relative_to: Option<(String, String)>,
}

/// A pivot table, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Pivot {
    /// The spec it was made from.
    pub spec: PivotSpec,
    /// Row labels, one value per `spec.rows` column.
    pub row_keys: Vec<Vec<String>>,
    /// Column labels, one value per `spec.cols` column.
    pub col_keys: Vec<Vec<String>>,
    /// `cells[row][col]`: the figure, or the ratio in a relative table.
    pub cells: Vec<Vec<Option<f64>>>,
    /// The unit of each column (`None` if its cells mix units).
    pub units: Vec<Option<Unit>>,
    /// Whether lower values are better.
    pub lower_is_better: bool,
    /// Sources of the figures (latency sources, counts), for a footnote.
    pub sources: Vec<String>,
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>, String> {
    let column = df
        .column(name)
        .map_err(|_| format!("no column `{name}` in the results; see docs/results.md"))?;
    let cast = column.cast(&DataType::String).map_err(|e| e.to_string())?;
    let ca = cast.str().map_err(|e| e.to_string())?;
    Ok((0..ca.len())
        .map(|i| ca.get(i).unwrap_or("").to_string())
        .collect())
}

fn numbers(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>, String> {
    let cast = df
        .column(name)
        .map_err(|e| e.to_string())?
        .cast(&DataType::Float64)
        .map_err(|e| e.to_string())?;
    let ca = cast.f64().map_err(|e| e.to_string())?;
    Ok((0..ca.len()).map(|i| ca.get(i)).collect())
}

/// Builds the pivot table of `rows` (any number of runs) for `spec`.
pub fn pivot(rows: &[Row], spec: &PivotSpec) -> Result<Pivot, String> {
    let figure = figures::by_column(&spec.metric).ok_or_else(|| {
        format!(
            "--metric {}: not a figure bench reports; one of {}",
            spec.metric,
            FIGURES
                .iter()
                .map(|f| f.column)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let lower_is_better = figure.better == Better::Lower;
    let ok: Vec<Row> = rows.iter().filter(|r| r.is_ok()).cloned().collect();
    let df = Row::to_frame(&ok).map_err(|e| e.to_string())?;
    let label = |names: &[String]| -> Result<Vec<Vec<String>>, String> {
        let columns = names
            .iter()
            .map(|n| strings(&df, n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((0..df.height())
            .map(|i| columns.iter().map(|c| c[i].clone()).collect())
            .collect())
    };
    let (row_labels, col_labels) = (label(&spec.rows)?, label(&spec.cols)?);
    let values = numbers(&df, &spec.metric)?;
    let units: Vec<String> = match figure.unit {
        UnitOf::Clock => strings(&df, "latency_unit")?,
        UnitOf::Fixed(u) => vec![u.label().to_string(); df.height()],
    };
    let first_seen = |labels: &[Vec<String>]| {
        let mut keys: Vec<Vec<String>> = Vec::new();
        for l in labels {
            if !keys.contains(l) {
                keys.push(l.clone());
            }
        }
        keys
    };
    let (row_keys, mut col_keys) = (first_seen(&row_labels), first_seen(&col_labels));
    let mean_at = |r: &Vec<String>, c: &Vec<String>| -> Result<Option<f64>, String> {
        let hits: Vec<usize> = (0..df.height())
            .filter(|&i| &row_labels[i] == r && &col_labels[i] == c && values[i].is_some())
            .collect();
        if let Some(&other) = hits.iter().find(|&&i| units[i] != units[hits[0]]) {
            return Err(format!(
                "the cell ({}) x ({}) would average {} in {} with {} in {}: add `target` to --rows or --cols",
                r.join(", "),
                c.join(", "),
                spec.metric,
                units[hits[0]],
                spec.metric,
                units[other]
            ));
        }
        Ok((!hits.is_empty())
            .then(|| hits.iter().filter_map(|&i| values[i]).sum::<f64>() / hits.len() as f64))
    };
    let mut cells: Vec<Vec<Option<f64>>> = row_keys
        .iter()
        .map(|r| {
            col_keys
                .iter()
                .map(|c| mean_at(r, c))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut col_units: Vec<Option<Unit>> = col_keys
        .iter()
        .map(|c| {
            let mut us = (0..df.height())
                .filter(|&i| &col_labels[i] == c && values[i].is_some())
                .map(|i| &units[i]);
            let first = us.next()?;
            us.all(|u| u == first)
                .then(|| Unit::from_label(first))
                .flatten()
        })
        .collect();
    if let Some((dimension, base)) = &spec.relative_to {
        let at = spec
            .cols
            .iter()
            .position(|c| c == dimension)
            .ok_or_else(|| {
                format!(
                    "--relative-to {dimension}={base}: `{dimension}` is not one of the --cols ({})",
                    spec.cols.join(", ")
                )
            })?;
        let base_col = col_keys
            .iter()
            .position(|k| &k[at] == base)
            .ok_or_else(|| {
                format!("--relative-to {dimension}={base}: no column has {dimension} = {base}")
            })?;
        // A ratio of two clocks (host nanoseconds over emulated instructions) means nothing: such columns go.
        let comparable: Vec<bool> = col_units
            .iter()
            .map(|u| u.is_some() && *u == col_units[base_col])
            .collect();
        for row in &mut cells {
            let reference = row[base_col];
            for (cell, _) in row.iter_mut().zip(&comparable).filter(|(_, &ok)| !ok) {
                *cell = None;
            }
            for cell in row.iter_mut() {
                // > 1 means better than the baseline: a speed-up, a size or energy saving factor, an accuracy ratio.
                *cell = match (*cell, reference) {
                    (Some(v), Some(b)) if v != 0.0 && b != 0.0 => {
                        Some(if lower_is_better { b / v } else { v / b })
                    }
                    _ => None,
                };
            }
        }
        col_units = vec![Some(Unit::Ratio); col_keys.len()];
    }
    // A ratio is better higher, whatever the figure.
    let lower_is_better = lower_is_better && spec.relative_to.is_none();
    // Columns with no value at all say nothing.
    let keep: Vec<bool> = (0..col_keys.len())
        .map(|j| cells.iter().any(|r| r[j].is_some()))
        .collect();
    col_keys = kept(col_keys, &keep);
    col_units = kept(col_units, &keep);
    cells = cells.into_iter().map(|r| kept(r, &keep)).collect();
    // And rows with no value neither.
    let keep: Vec<bool> = cells
        .iter()
        .map(|r| r.iter().any(Option::is_some))
        .collect();
    let (row_keys, cells) = (kept(row_keys, &keep), kept(cells, &keep));
    let mut sources: Vec<String> = Vec::new();
    for r in &ok {
        let s = source_note(figure, r);
        if !s.is_empty() && !sources.contains(&s) {
            sources.push(s);
        }
    }
    Ok(Pivot {
        spec: spec.clone(),
        row_keys,
        col_keys,
        cells,
        units: col_units,
        lower_is_better,
        sources,
    })
}

/// The items whose `keep` flag is set.
fn kept<T>(items: Vec<T>, keep: &[bool]) -> Vec<T> {
    items
        .into_iter()
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|(t, _)| t)
        .collect()
}

/// A row's source of a figure, for the notes: per target for timings and
/// energy (they depend on the target's clock or meter), as stored otherwise.
fn source_note(figure: &Figure, r: &Row) -> String {
    let target = r.target.as_deref().unwrap_or("?");
    match (figure.unit, figure.source_column) {
        (UnitOf::Clock, _) => format!(
            "{target}: {} ({})",
            figure.source_in(r).unwrap_or("?"),
            r.latency_unit.as_deref().unwrap_or("?")
        ),
        (_, "energy_source") => format!("{target}: {}", figure.source_in(r).unwrap_or("none")),
        _ => figure.source_in(r).unwrap_or_default().to_string(),
    }
}
