//! `bench report`: pivot tables over stored runs. The runs' rows become one
//! polars frame; any of its text columns can label rows or columns and any
//! numeric column be the figure. Cells with several rows (the same job in
//! two runs) hold their mean. A relative table divides every cell by the
//! cell of a baseline (a variant, a target, ...) on the same row.

use super::format::{latex, lay_out, Format};
use super::tables::grouped;
use crate::results::figures::{self, Better, Figure, Nature, Unit, UnitOf, FIGURES};
use crate::results::store::{LayerRow, Row, Table};
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
    /// Order the rows by their cell in the column whose `(column, value)`
    /// is this, the worst first (rows without one last): `("runtime", "bench")`.
    pub worst_first: Option<(String, String)>,
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
    /// The unit of each column (`None` if its cells mix units: a runtime
    /// column over host and emulated targets).
    pub units: Vec<Option<Unit>>,
    /// `cell_units[row][col]`: each cell's own unit.
    pub cell_units: Vec<Vec<Option<Unit>>>,
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

/// The figure of every successful row with its labels and unit.
struct Observations {
    row_labels: Vec<Vec<String>>,
    col_labels: Vec<Vec<String>>,
    values: Vec<Option<f64>>,
    units: Vec<String>,
}

impl Observations {
    fn of(ok: &[Row], spec: &PivotSpec, figure: &Figure) -> Result<Self, String> {
        let df = Row::to_frame(ok).map_err(|e| e.to_string())?;
        let units = match figure.unit {
            UnitOf::Clock => strings(&df, "latency_unit")?,
            UnitOf::Fixed(u) => vec![u.label().to_string(); df.height()],
        };
        Self::labelled(&df, spec, numbers(&df, &spec.metric)?, units)
    }

    /// The rows of `df` labelled by `spec`'s columns, with their figures.
    fn labelled(
        df: &DataFrame,
        spec: &PivotSpec,
        values: Vec<Option<f64>>,
        units: Vec<String>,
    ) -> Result<Self, String> {
        let label = |names: &[String]| -> Result<Vec<Vec<String>>, String> {
            let columns = names
                .iter()
                .map(|n| strings(df, n))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((0..df.height())
                .map(|i| columns.iter().map(|c| c[i].clone()).collect())
                .collect())
        };
        Ok(Self {
            row_labels: label(&spec.rows)?,
            col_labels: label(&spec.cols)?,
            values,
            units,
        })
    }

    /// The unit of the cell where row key `r` meets column key `c`.
    fn unit_at(&self, r: &[String], c: &[String]) -> Option<Unit> {
        (0..self.values.len())
            .find(|&i| {
                self.row_labels[i] == r && self.col_labels[i] == c && self.values[i].is_some()
            })
            .and_then(|i| Unit::from_label(&self.units[i]))
    }

    /// The mean where row key `r` meets column key `c`; an error if it would mix units.
    fn mean_at(&self, r: &[String], c: &[String], metric: &str) -> Result<Option<f64>, String> {
        let hits: Vec<usize> = (0..self.values.len())
            .filter(|&i| self.row_labels[i] == r && self.col_labels[i] == c)
            .filter(|&i| self.values[i].is_some())
            .collect();
        let units = &self.units;
        if let Some(&other) = hits.iter().find(|&&i| units[i] != units[hits[0]]) {
            return Err(format!(
                "the cell ({}) x ({}) would average {metric} in {} with {metric} in {}: add `target` to --rows or --cols",
                r.join(", "),
                c.join(", "),
                units[hits[0]],
                units[other]
            ));
        }
        let sum = hits.iter().filter_map(|&i| self.values[i]).sum::<f64>();
        Ok((!hits.is_empty()).then(|| sum / hits.len() as f64))
    }

    /// The unit of column key `c`, if all its values share one.
    fn unit_of_column(&self, c: &[String]) -> Option<Unit> {
        let mut us = (0..self.values.len())
            .filter(|&i| self.col_labels[i] == c && self.values[i].is_some())
            .map(|i| &self.units[i]);
        let first = us.next()?;
        us.all(|u| u == first)
            .then(|| Unit::from_label(first))
            .flatten()
    }
}

/// Labels in the order they first appear.
fn first_seen(labels: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut keys: Vec<Vec<String>> = Vec::new();
    for l in labels {
        if !keys.contains(l) {
            keys.push(l.clone());
        }
    }
    keys
}

/// Builds the pivot table of `rows` (any number of runs) for `spec`.
pub fn pivot(rows: &[Row], spec: &PivotSpec) -> Result<Pivot, String> {
    let figure = figures::by_column(&spec.metric).ok_or_else(|| {
        let known: Vec<&str> = FIGURES.iter().map(|f| f.column).collect();
        format!(
            "--metric {}: not a figure bench reports; one of {}",
            spec.metric,
            known.join(", ")
        )
    })?;
    let ok: Vec<Row> = rows.iter().filter(|r| r.is_ok()).cloned().collect();
    let obs = Observations::of(&ok, spec, figure)?;
    let mut sources: Vec<String> = Vec::new();
    for r in &ok {
        let s = source_note(figure, r);
        if !s.is_empty() && !sources.contains(&s) {
            sources.push(s);
        }
    }
    tabulate(&obs, spec, figure.better == Better::Lower, sources)
}

/// The columns of the layer table that label rows or columns.
const LAYER_LABELS: [&str; 8] = [
    "model", "variant", "target", "job", "layer", "kind", "op", "run_id",
];

/// Builds the pivot table of profiled operators (`layers` of
/// `bench run --profile`, any number of runs): labels are the columns of
/// the layer table (`model`, `variant`, `target`, `layer`, `op`, `kind`),
/// the figure what each operator took (instructions, ns).
pub fn pivot_layers(layers: &[LayerRow], spec: &PivotSpec) -> Result<Pivot, String> {
    let layers = &with_packing_in_its_layer(layers);
    if let Some(other) = spec
        .rows
        .iter()
        .chain(&spec.cols)
        .find(|n| !LAYER_LABELS.contains(&n.as_str()))
    {
        return Err(format!(
            "`{other}` is not a column of the layer table: one of {}",
            LAYER_LABELS.join(", ")
        ));
    }
    let df = LayerRow::to_frame(layers).map_err(|e| e.to_string())?;
    let obs = Observations::labelled(&df, spec, numbers(&df, "count")?, strings(&df, "unit")?)?;
    let mut sources: Vec<String> = Vec::new();
    if layers
        .iter()
        .any(|l| l.kind.as_deref() == Some("pack_bits"))
    {
        sources.push("bit packing (pack_bits) counted in the binary layer that reads it".into());
    }
    for l in layers {
        let text = |v: &Option<String>| v.as_deref().unwrap_or("?").to_string();
        let s = format!(
            "{}: {} ({})",
            text(&l.target),
            text(&l.source),
            text(&l.unit)
        );
        if !sources.contains(&s) {
            sources.push(s);
        }
    }
    tabulate(&obs, spec, true, sources)
}

/// The operators of each job with bit packing (`pack_bits`, the signs a
/// binary layer reads) counted in the layer after it, so that a binary
/// layer is compared with the int8 layer of the same shape at its whole
/// cost; operators of one layer in one job are summed.
fn with_packing_in_its_layer(layers: &[LayerRow]) -> Vec<LayerRow> {
    let mut merged: Vec<LayerRow> = Vec::new();
    let same_job = |a: &LayerRow, b: &LayerRow| (&a.run_id, &a.job) == (&b.run_id, &b.job);
    for (i, l) in layers.iter().enumerate() {
        let mut l = l.clone();
        if l.kind.as_deref() == Some("pack_bits") {
            let reader = layers[i + 1..]
                .iter()
                .find(|n| same_job(n, &l) && n.kind.as_deref() != Some("pack_bits"));
            if let Some(reader) = reader {
                l.layer = reader.layer.clone();
            }
        }
        let earlier = merged
            .iter_mut()
            .find(|m| same_job(m, &l) && m.layer == l.layer);
        match earlier {
            Some(m) => m.count = Some(m.count.unwrap_or(0.0) + l.count.unwrap_or(0.0)),
            None => merged.push(l),
        }
    }
    merged
}

/// The table of `obs`: the mean of each cell, then the ratios of a
/// relative table, without empty rows and columns.
fn tabulate(
    obs: &Observations,
    spec: &PivotSpec,
    lower_is_better: bool,
    sources: Vec<String>,
) -> Result<Pivot, String> {
    let (row_keys, col_keys) = (first_seen(&obs.row_labels), first_seen(&obs.col_labels));
    let cells = row_keys
        .iter()
        .map(|r| {
            col_keys
                .iter()
                .map(|c| obs.mean_at(r, c, &spec.metric))
                .collect()
        })
        .collect::<Result<Vec<Vec<_>>, _>>()?;
    let units: Vec<Option<Unit>> = col_keys.iter().map(|c| obs.unit_of_column(c)).collect();
    let cell_units = row_keys
        .iter()
        .map(|r| col_keys.iter().map(|c| obs.unit_at(r, c)).collect())
        .collect();
    let mut p = Pivot {
        spec: spec.clone(),
        row_keys,
        col_keys,
        cells,
        units,
        cell_units,
        lower_is_better,
        sources,
    };
    if let Some((dimension, base)) = &spec.relative_to {
        relative(&mut p, dimension, base)?;
    }
    drop_empty(&mut p);
    if let Some((dimension, value)) = &spec.worst_first {
        sort_worst_first(&mut p, dimension, value)?;
    }
    Ok(p)
}

/// The table column whose label has `dimension` (one of the spec's
/// columns) equal to `value`; the error names `option`.
fn column_where(p: &Pivot, dimension: &str, value: &str, option: &str) -> Result<usize, String> {
    let what = format!("{option} {dimension}={value}");
    let at = p
        .spec
        .cols
        .iter()
        .position(|c| c == dimension)
        .ok_or_else(|| {
            format!(
                "{what}: `{dimension}` is not one of the --cols ({})",
                p.spec.cols.join(", ")
            )
        })?;
    p.col_keys
        .iter()
        .position(|k| k[at] == value)
        .ok_or_else(|| format!("{what}: no column has {dimension} = {value}"))
}

/// Orders the rows by their cell in the column where `dimension` is
/// `value`, the worst first (the highest where lower is better, else the
/// lowest); rows without a cell there keep their order after the others.
fn sort_worst_first(p: &mut Pivot, dimension: &str, value: &str) -> Result<(), String> {
    let column = column_where(p, dimension, value, "--worst-first")?;
    let badness = |row: &[Option<f64>]| row[column].map(|v| if p.lower_is_better { -v } else { v });
    let mut order: Vec<usize> = (0..p.row_keys.len()).collect();
    // Stable: ties and rows without a value keep the order they came in.
    order.sort_by(
        |&a, &b| match (badness(&p.cells[a]), badness(&p.cells[b])) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        },
    );
    p.row_keys = reordered(std::mem::take(&mut p.row_keys), &order);
    p.cells = reordered(std::mem::take(&mut p.cells), &order);
    p.cell_units = reordered(std::mem::take(&mut p.cell_units), &order);
    Ok(())
}

/// `items` in the order `order` gives (a permutation of their indices).
fn reordered<T>(items: Vec<T>, order: &[usize]) -> Vec<T> {
    let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.iter().filter_map(|&i| items[i].take()).collect()
}

/// Divides every row by its cell in the column where `dimension` is
/// `base`: > 1 means better than the baseline (a speed-up, a size or energy
/// saving factor, an accuracy ratio), whatever the figure.
fn relative(p: &mut Pivot, dimension: &str, base: &str) -> Result<(), String> {
    let base_col = column_where(p, dimension, base, "--relative-to")?;
    // A ratio of two clocks (host nanoseconds over emulated instructions)
    // means nothing: such cells go. Units are compared cell by cell, as a
    // column may hold several (a runtime over host and emulated targets).
    for (row, units) in p.cells.iter_mut().zip(&p.cell_units) {
        let reference = row[base_col];
        for (cell, unit) in row.iter_mut().zip(units) {
            let comparable = unit.is_some() && *unit == units[base_col];
            *cell = match (*cell, reference) {
                (Some(v), Some(b)) if comparable && v != 0.0 && b != 0.0 => {
                    Some(if p.lower_is_better { b / v } else { v / b })
                }
                _ => None,
            };
        }
    }
    p.units = vec![Some(Unit::Ratio); p.col_keys.len()];
    p.cell_units = vec![vec![Some(Unit::Ratio); p.col_keys.len()]; p.cells.len()];
    p.lower_is_better = false;
    Ok(())
}

/// Removes the columns, then the rows, with no value at all: they say nothing.
fn drop_empty(p: &mut Pivot) {
    let keep: Vec<bool> = (0..p.col_keys.len())
        .map(|j| p.cells.iter().any(|r| r[j].is_some()))
        .collect();
    p.col_keys = kept(std::mem::take(&mut p.col_keys), &keep);
    p.units = kept(std::mem::take(&mut p.units), &keep);
    p.cells = std::mem::take(&mut p.cells)
        .into_iter()
        .map(|r| kept(r, &keep))
        .collect();
    p.cell_units = std::mem::take(&mut p.cell_units)
        .into_iter()
        .map(|r| kept(r, &keep))
        .collect();
    let keep: Vec<bool> = p
        .cells
        .iter()
        .map(|r| r.iter().any(Option::is_some))
        .collect();
    p.row_keys = kept(std::mem::take(&mut p.row_keys), &keep);
    p.cells = kept(std::mem::take(&mut p.cells), &keep);
    p.cell_units = kept(std::mem::take(&mut p.cell_units), &keep);
}

/// A row's source of a figure, for the notes: per target for timings and
/// energy (they depend on the target's clock or meter), as stored otherwise.
fn source_note(figure: &Figure, r: &Row) -> String {
    let target = r.target.as_deref().unwrap_or("?");
    match figure.nature {
        Nature::OfClock => format!(
            "{target}: {} ({})",
            figure.source_in(r).unwrap_or("?"),
            r.latency_unit.as_deref().unwrap_or("?")
        ),
        Nature::OfEnergy => format!("{target}: {}", figure.source_in(r).unwrap_or("none")),
        Nature::Exact => figure.source_in(r).unwrap_or_default().to_string(),
    }
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

/// A pivot cell in its column's unit, scaled for reading, and the unit the
/// header shows; a column of several units shows each cell's.
fn scaled(unit: Option<Unit>) -> (f64, usize, &'static str) {
    unit.map_or((1.0, 4, "units per cell"), Unit::scale)
}

/// A cell's text: scaled by its column's unit, or by its own with the unit
/// written out where the column mixes units.
fn cell_text(value: f64, column: Option<Unit>, own: Option<Unit>) -> String {
    let number = |v: f64, digits: usize| {
        if digits == 0 {
            grouped(v.round() as i64)
        } else {
            format!("{v:.digits$}")
        }
    };
    match (column, own) {
        (Some(unit), _) => {
            let (scale, digits, _) = unit.scale();
            number(value * scale, digits)
        }
        (None, Some(unit)) => {
            let (scale, digits, label) = unit.scale();
            format!("{} {label}", number(value * scale, digits))
        }
        (None, None) => number(value, 4),
    }
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
    let mut bold = Vec::new();
    let body: Vec<Vec<String>> = p
        .row_keys
        .iter()
        .zip(&p.cells)
        .zip(&p.cell_units)
        .map(|((key, cells), cell_units)| {
            // The best of a row where its cells share one unit.
            let mut units = cells.iter().zip(cell_units).filter(|(c, _)| c.is_some());
            let first = units.next().and_then(|(_, u)| *u);
            let same_unit = first.is_some() && units.all(|(_, u)| *u == first);
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
            for ((cell, column), own) in cells.iter().zip(&p.units).zip(cell_units) {
                let text = cell.map_or("-".to_string(), |v| cell_text(v, *column, *own));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, runtime: &str, median: f64, unit: &str) -> Row {
        Row {
            model: Some("kws".into()),
            target: Some(target.into()),
            runtime: Some(runtime.into()),
            status: Some("ok".into()),
            latency_median: Some(median),
            latency_unit: Some(unit.into()),
            latency_source: Some("test".into()),
            ..Row::default()
        }
    }

    fn spec(relative_to: Option<(&str, &str)>) -> PivotSpec {
        PivotSpec {
            rows: vec!["model".into(), "target".into()],
            cols: vec!["runtime".into()],
            metric: "latency_median".into(),
            relative_to: relative_to.map(|(d, b)| (d.into(), b.into())),
            worst_first: None,
        }
    }

    fn op(job: &str, op: i64, layer: &str, kind: &str, count: f64) -> LayerRow {
        let variant = job.split('/').nth(1).unwrap_or_default();
        LayerRow {
            run_id: Some("r".into()),
            job: Some(job.into()),
            model: Some("kws".into()),
            variant: Some(variant.into()),
            target: Some("qemu-m4".into()),
            op: Some(op),
            layer: Some(layer.into()),
            kind: Some(kind.into()),
            count: Some(count),
            unit: Some("instructions".into()),
            source: Some("QEMU icount".into()),
        }
    }

    /// Each layer of a binary job against the int8 layer of the same name,
    /// its sign packing counted in it: (38 + 532) vs 798 thousand.
    #[test]
    fn layer_tables_compare_each_layer_with_its_packing() {
        let layers = [
            op("kws/int8/qemu-m4", 0, "dw1", "depthwise_conv2d", 500_000.0),
            op("kws/int8/qemu-m4", 1, "pw1", "conv2d", 798_000.0),
            op(
                "kws/binary/qemu-m4",
                0,
                "dw1",
                "depthwise_conv2d",
                500_000.0,
            ),
            op("kws/binary/qemu-m4", 1, "pw1.sign", "pack_bits", 38_000.0),
            op("kws/binary/qemu-m4", 2, "pw1", "conv2d", 532_000.0),
        ];
        let spec = PivotSpec {
            rows: vec!["layer".into()],
            cols: vec!["variant".into()],
            metric: "count".into(),
            relative_to: None,
            worst_first: None,
        };
        let p = pivot_layers(&layers, &spec).unwrap();
        assert_eq!(p.row_keys, [["dw1"], ["pw1"]]);
        assert_eq!(
            p.cells,
            [
                [Some(500_000.0), Some(500_000.0)],
                [Some(798_000.0), Some(570_000.0)]
            ]
        );
        let relative = PivotSpec {
            relative_to: Some(("variant".into(), "int8".into())),
            ..spec.clone()
        };
        let p = pivot_layers(&layers, &relative).unwrap();
        assert_eq!(p.cells[1], [Some(1.0), Some(798.0 / 570.0)]);
        assert_eq!(
            p.sources[0],
            "bit packing (pack_bits) counted in the binary layer that reads it"
        );
        let bad = PivotSpec {
            rows: vec!["latency_median".into()],
            ..spec
        };
        assert_eq!(
            pivot_layers(&layers, &bad).unwrap_err(),
            "`latency_median` is not a column of the layer table: one of model, variant, target, job, layer, kind, op, run_id"
        );
    }

    /// bench's column holds host nanoseconds and emulated instructions;
    /// each row compares with its own runtime's cell in the same unit.
    #[test]
    fn a_column_of_several_units_compares_cell_by_cell() {
        let rows = [
            row("host", "bench", 25_000.0, "ns"),
            row("host", "litert", 20_000.0, "ns"),
            row("qemu-m4", "bench", 6_000_000.0, "instructions"),
            row("qemu-m4", "tflm-cmsis-nn", 7_800_000.0, "instructions"),
        ];
        let p = pivot(&rows, &spec(None)).unwrap();
        assert_eq!(
            p.units,
            [None, Some(Unit::Nanoseconds), Some(Unit::Instructions)]
        );
        let table = render_pivot(&p, &[], Format::Markdown);
        assert!(
            table.contains("| kws   | host    | 25.0 us                |"),
            "{table}"
        );
        assert!(
            table.contains("| kws   | qemu-m4 | 6.000 M instructions*  |"),
            "{table}"
        );
        let p = pivot(&rows, &spec(Some(("runtime", "tflm-cmsis-nn")))).unwrap();
        assert_eq!(p.row_keys, [vec!["kws".to_string(), "qemu-m4".into()]]);
        assert_eq!(p.cells, [vec![Some(1.3), Some(1.0)]]);
        let p = pivot(&rows, &spec(Some(("runtime", "litert")))).unwrap();
        assert_eq!(p.cells, [vec![Some(0.8), Some(1.0)]]);
    }

    /// Rows ordered by bench's ratio, the worst first: a ratio is better
    /// high, a count low; rows without bench's cell come last.
    #[test]
    fn worst_first_orders_rows_by_one_column() {
        let at = |model: &str, target: &str, runtime: &str, count: f64| Row {
            model: Some(model.into()),
            ..row(target, runtime, count, "instructions")
        };
        let rows = [
            at("kws", "qemu-m4", "bench", 8.0),
            at("kws", "qemu-m4", "tflm-cmsis-nn", 10.0),
            at("ic", "qemu-m4", "bench", 9.0),
            at("ic", "qemu-m4", "tflm-cmsis-nn", 10.0),
            at("lstm", "qemu-m4", "tflm-cmsis-nn", 10.0),
            at("add", "qemu-m4", "bench", 5.0),
            at("add", "qemu-m4", "tflm-cmsis-nn", 10.0),
        ];
        let sorted = |relative_to| PivotSpec {
            worst_first: Some(("runtime".into(), "bench".into())),
            ..spec(relative_to)
        };
        let models = |p: &Pivot| p.row_keys.iter().map(|k| k[0].clone()).collect::<Vec<_>>();
        let p = pivot(&rows, &sorted(Some(("runtime", "tflm-cmsis-nn")))).unwrap();
        assert_eq!(models(&p), ["ic", "kws", "add", "lstm"]);
        assert_eq!(p.cells[0], [Some(10.0 / 9.0), Some(1.0)]);
        let p = pivot(&rows, &sorted(None)).unwrap();
        assert_eq!(models(&p), ["ic", "kws", "add", "lstm"]);
        let wrong = PivotSpec {
            worst_first: Some(("runtime".into(), "tvm".into())),
            ..spec(None)
        };
        assert_eq!(
            pivot(&rows, &wrong).unwrap_err(),
            "--worst-first runtime=tvm: no column has runtime = tvm"
        );
    }
}
