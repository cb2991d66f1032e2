//! Plots of a run, with plotters, as PNG and SVG in `<run>/plots/`:
//! accuracy versus mean cost of every threshold sweep, one chart per target
//! (the no-exit point marked, the Pareto front circled), accuracy versus
//! peak SRAM of every variant with an accuracy, and each model's memory
//! timeline: live activation bytes per layer, one line per variant and
//! memory schedule, each line's peak marked.

use crate::accuracy::evaluate::pareto_front;
use crate::results::store::{MemoryRow, Row, SweepRow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Where a font for plot text is looked for; `BENCH_FONT` goes first.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Registers a TrueType font for plot text, once.
fn font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT").map(PathBuf::from).into_iter().chain(FONTS.iter().map(PathBuf::from)).collect();
            let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                format!(
                    "no font for plot text: install fonts-dejavu-core (scripts/setup.sh does) or set BENCH_FONT to a .ttf file; looked at {}",
                    FONTS.join(", ")
                )
            })?;
            let bytes = std::fs::read(path).map_err(|e| format!("failed to read font {}: {e}", path.display()))?;
            plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
                .map_err(|_| format!("failed to load font {}", path.display()))
        })
        .clone()
}

/// One line of an accuracy-versus-cost chart.
struct Series {
    label: String,
    /// (mean cost, accuracy %) per threshold.
    points: Vec<(f64, f64)>,
    /// (cost, accuracy %) with no exit taken.
    baseline: Option<(f64, f64)>,
}

/// Writes every plot of a run into `dir/plots/` and returns the files written.
pub fn write(
    dir: &Path,
    rows: &[Row],
    sweep: &[SweepRow],
    memory: &[MemoryRow],
) -> Result<Vec<PathBuf>, String> {
    let mut charts = sweep_charts(rows, sweep);
    charts.extend(memory_chart(rows));
    charts.extend(timeline_charts(memory));
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    font()?;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots)
        .map_err(|e| format!("failed to create {}: {e}", plots.display()))?;
    let mut written = Vec::new();
    for (stem, chart) in &charts {
        let png = plots.join(format!("{stem}.png"));
        chart
            .draw(BitMapBackend::new(&png, (960, 640)).into_drawing_area())
            .map_err(|e| format!("failed to draw {}: {e}", png.display()))?;
        let svg = plots.join(format!("{stem}.svg"));
        chart
            .draw(SVGBackend::new(&svg, (960, 640)).into_drawing_area())
            .map_err(|e| format!("failed to draw {}: {e}", svg.display()))?;
        written.extend([png, svg]);
    }
    Ok(written)
}

/// One accuracy-vs-cost chart per target a sweep ran on.
fn sweep_charts(rows: &[Row], sweep: &[SweepRow]) -> Vec<(String, Chart)> {
    let mut charts: Vec<(String, Chart)> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for r in sweep {
        let t = r.target.clone().unwrap_or_default();
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    for target in &targets {
        let mine: Vec<&SweepRow> = sweep
            .iter()
            .filter(|r| r.target.as_deref() == Some(target.as_str()))
            .collect();
        let mut series: Vec<Series> = Vec::new();
        for r in &mine {
            let label = format!(
                "{}/{}",
                r.model.as_deref().unwrap_or("?"),
                r.variant.as_deref().unwrap_or("?")
            );
            let (Some(cost), Some(accuracy)) = (r.mean_cost, r.accuracy) else {
                continue;
            };
            let baseline = rows
                .iter()
                .find(|row| row.job == r.job)
                .and_then(|row| Some((r.full_cost?, 100.0 * row.accuracy?)));
            match series.iter_mut().find(|s| s.label == label) {
                Some(s) => s.points.push((cost, 100.0 * accuracy)),
                None => series.push(Series {
                    label,
                    points: vec![(cost, 100.0 * accuracy)],
                    baseline,
                }),
            }
        }
        let unit = mine
            .first()
            .and_then(|r| r.cost_unit.clone())
            .unwrap_or_default();
        let source = mine
            .first()
            .and_then(|r| r.cost_source.clone())
            .unwrap_or_default();
        let title = format!("accuracy vs mean cost per inference on {target}");
        charts.push((
            format!("accuracy-vs-cost-{target}"),
            Chart::Sweep {
                title,
                x: format!("mean {unit} per inference ({source})"),
                series,
            },
        ));
    }
    charts
}

/// Accuracy against peak SRAM of every job with an accuracy.
fn memory_chart(rows: &[Row]) -> Option<(String, Chart)> {
    let memory: Vec<(String, String, f64, f64)> = rows
        .iter()
        .filter(|r| r.is_ok())
        .filter_map(|r| {
            let accuracy = r.accuracy?;
            let sram = match (r.sram_bytes, r.stack_bytes) {
                (Some(sram), Some(stack)) if r.flash_bytes.is_some() => sram + stack,
                _ => r.arena_bytes?,
            };
            Some((
                r.target.clone()?,
                format!("{}/{}", r.model.as_deref()?, r.variant.as_deref()?),
                sram as f64 / 1024.0,
                100.0 * accuracy,
            ))
        })
        .collect();
    (!memory.is_empty()).then(|| ("accuracy-vs-sram".into(), Chart::Memory { points: memory }))
}

/// One memory timeline per model with more than one layer:
/// `memory-<model>`, a line per variant (its schedule in the label).
fn timeline_charts(memory: &[MemoryRow]) -> Vec<(String, Chart)> {
    let mut models: Vec<&str> = Vec::new();
    for r in memory {
        if let Some(m) = r.model.as_deref().filter(|m| !models.contains(m)) {
            models.push(m);
        }
    }
    models
        .into_iter()
        .filter_map(|model| {
            let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            for r in memory.iter().filter(|r| r.model.as_deref() == Some(model)) {
                let label = format!(
                    "{} ({})",
                    r.variant.as_deref().unwrap_or("?"),
                    r.memory.as_deref().unwrap_or("?")
                );
                let point = (r.step? as f64, r.live_bytes? as f64 / 1024.0);
                match series.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, points)) => points.push(point),
                    None => series.push((label, vec![point])),
                }
            }
            series.iter().any(|(_, p)| p.len() > 1).then(|| {
                (
                    format!("memory-{model}"),
                    Chart::Timeline {
                        model: model.to_string(),
                        series,
                    },
                )
            })
        })
        .collect()
}

/// The plots written for a run directory, if any.
pub fn existing(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("plots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

enum Chart {
    Sweep {
        title: String,
        x: String,
        series: Vec<Series>,
    },
    /// (target, variant, peak SRAM KiB, accuracy %).
    Memory {
        points: Vec<(String, String, f64, f64)>,
    },
    /// A model's live KiB per layer, per variant.
    Timeline {
        model: String,
        series: Vec<(String, Vec<(f64, f64)>)>,
    },
}

/// A range with a margin around `values`.
fn span(values: impl Iterator<Item = f64>, floor: Option<f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-9);
    let lo = floor.map_or(lo - pad, |f| (lo - pad).max(f));
    lo..hi + pad
}

impl Chart {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        match self {
            Chart::Sweep { title, x, series } => draw_sweep(&root, title, x, series)?,
            Chart::Memory { points } => draw_memory(&root, points)?,
            Chart::Timeline { model, series } => draw_timeline(&root, model, series)?,
        }
        root.present().map_err(e)
    }
}

/// Accuracy against mean cost, one line per variant, the Pareto front and the no-exit points.
fn draw_sweep<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x: &str,
    series: &[Series],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied().chain(s.baseline))
        .collect();
    let xr = span(all.iter().map(|p| p.0), Some(0.0));
    let yr = span(all.iter().map(|p| p.1), None);
    let mut chart = axes(root, title, (xr, yr), (x, "accuracy (%)"))?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut line = s.points.clone();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(format!("{} (one point per threshold)", s.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
    }
    let front: Vec<(f64, f64)> = {
        let pts: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|&(c, a)| (a, c)))
            .collect();
        let mut f: Vec<(f64, f64)> = pareto_front(&pts)
            .into_iter()
            .map(|i| (pts[i].1, pts[i].0))
            .collect();
        f.sort_by(|a, b| a.0.total_cmp(&b.0));
        f
    };
    chart
        .draw_series(
            front
                .iter()
                .map(|&p| Circle::new(p, 7, RED.stroke_width(2))),
        )
        .map_err(e)?
        .label("Pareto front (no point is both cheaper and more accurate)")
        .legend(|(x, y)| Circle::new((x + 10, y), 6, RED.stroke_width(2)));
    let baselines: Vec<(f64, f64)> = series.iter().filter_map(|s| s.baseline).collect();
    chart
        .draw_series(
            baselines
                .iter()
                .map(|&p| Cross::new(p, 8, BLACK.stroke_width(3))),
        )
        .map_err(e)?
        .label("no exit (every head evaluated, none taken)")
        .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(3)));
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Accuracy against peak SRAM, one colour per target, each point labelled.
fn draw_memory<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[(String, String, f64, f64)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let xr = span(points.iter().map(|p| p.2), Some(0.0));
    // Room on the right for the labels of the largest variants.
    let xr = xr.start..xr.end + 0.3 * (xr.end - xr.start);
    let yr = span(points.iter().map(|p| p.3), None);
    let x = "peak SRAM, KiB (boards: static SRAM + painted stack from the ELF and device; host: planned arena)";
    let mut chart = axes(
        root,
        "accuracy vs peak SRAM per variant",
        (xr, yr),
        (x, "accuracy, no exit (%)"),
    )?;
    let mut targets: Vec<&str> = Vec::new();
    for p in points {
        if !targets.contains(&p.0.as_str()) {
            targets.push(&p.0);
        }
    }
    for (i, t) in targets.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mine: Vec<&(String, String, f64, f64)> = points.iter().filter(|p| p.0 == *t).collect();
        chart
            .draw_series(
                mine.iter()
                    .map(|p| Circle::new((p.2, p.3), 5, color.filled())),
            )
            .map_err(e)?
            .label(t.to_string())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        // Targets often share a variant's accuracy and nearly its SRAM: each gets its own label row.
        let dy = [4, -16, 22, -34, 40, -52][i % 6];
        chart
            .draw_series(mine.iter().map(|p| {
                EmptyElement::at((p.2, p.3))
                    + Text::new(format!("{} ({t})", p.1), (8, dy), ("sans-serif", 13))
            }))
            .map_err(e)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Live KiB per layer, a line per variant, each line's peak marked and labelled.
fn draw_timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    model: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let xr = span(all().map(|p| p.0), Some(0.0));
    let yr = span(all().map(|p| p.1), Some(0.0));
    let mut chart = axes(
        root,
        &format!("{model}: activation memory per layer"),
        (xr, yr),
        ("layer (graph order)", "live activations, KiB (planner)"),
    )?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        let peak =
            points.iter().copied().fold(
                (0.0, f64::NEG_INFINITY),
                |a, p| if p.1 > a.1 { p } else { a },
            );
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(peak)
                    + Circle::new((0, 0), 6, color.filled())
                    + Text::new(
                        format!("peak {:.1} KiB", peak.1),
                        (8, -16 - 16 * i as i32),
                        ("sans-serif", 13),
                    ),
            ))
            .map_err(e)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

type Plane<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A titled chart with both axes described.
fn axes<'a, DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_desc, y_desc): (&str, &str),
) -> Result<Plane<'a, DB>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| short(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// The legend box, at `position`.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// An axis number in a few characters: `1.2M`, `350k`, `12.5`.
fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.2}M", v / 1e6),
        a if a >= 1e3 => format!("{:.0}k", v / 1e3),
        _ => format!("{v:.1}"),
    }
}
