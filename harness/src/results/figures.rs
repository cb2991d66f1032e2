//! Every figure bench stores, declared once: its column, unit, source
//! column, which way is better and whether it is counted exactly or timed
//! with noise. The store's labels, `compare`'s verdicts, `report`'s and the
//! pivot's headers, and the figure table of `docs/results.md` are all
//! derived from [`FIGURES`], [`Unit`], [`Clock`] and [`Status`]; no other
//! place spells a unit or a source.

use crate::results::store::Row;
use protocol::Clock;

/// The unit of a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Host wall-clock nanoseconds.
    Nanoseconds,
    /// Core clock cycles.
    Cycles,
    /// Emulated instructions (QEMU icount): exact.
    Instructions,
    /// Microjoules.
    Microjoules,
    /// Bytes.
    Bytes,
    /// Multiply-accumulates.
    Macs,
    /// Binary operations.
    BinaryOps,
    /// Parameters (weights and biases).
    Parameters,
    /// A fraction in [0, 1], shown as a percentage.
    Fraction,
    /// A ratio of two figures (a relative pivot table's cells).
    Ratio,
}

impl Unit {
    /// Every unit.
    pub const ALL: [Unit; 10] = [
        Unit::Nanoseconds,
        Unit::Cycles,
        Unit::Instructions,
        Unit::Microjoules,
        Unit::Bytes,
        Unit::Macs,
        Unit::BinaryOps,
        Unit::Parameters,
        Unit::Fraction,
        Unit::Ratio,
    ];

    /// The label stored (`latency_unit`) and shown.
    pub const fn label(self) -> &'static str {
        match self {
            Unit::Nanoseconds => "ns",
            Unit::Cycles => "cycles",
            Unit::Instructions => "instructions",
            Unit::Microjoules => "uJ",
            Unit::Bytes => "bytes",
            Unit::Macs => "MACs",
            Unit::BinaryOps => "ops",
            Unit::Parameters => "parameters",
            Unit::Fraction => "fraction",
            Unit::Ratio => "x",
        }
    }

    /// The unit a stored label names.
    pub fn from_label(label: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.label() == label)
    }

    /// Whether a value in this unit is a count that repeats exactly (a
    /// timing in it has no noise).
    pub const fn exact(self) -> bool {
        !matches!(self, Unit::Nanoseconds | Unit::Cycles)
    }

    /// How a column of this unit is scaled for reading: the factor, the
    /// decimals and the unit the header shows.
    pub fn scale(self) -> (f64, usize, &'static str) {
        match self {
            Unit::Instructions => (1e-6, 3, "M instructions"),
            Unit::Cycles => (1e-6, 3, "M cycles"),
            Unit::Nanoseconds => (1e-3, 1, "us"),
            Unit::Bytes => (1.0 / 1024.0, 1, "KiB"),
            Unit::Microjoules => (1.0, 1, "uJ"),
            Unit::Fraction => (100.0, 1, "%"),
            Unit::Ratio => (1.0, 2, "x"),
            Unit::Macs | Unit::BinaryOps | Unit::Parameters => (1.0, 0, self.label()),
        }
    }

    /// One value, scaled for reading: `412.3 us`, `7.700 M instr`, `81.2%`.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Nanoseconds if value >= 1e6 => format!("{:.3} ms", value / 1e6),
            Unit::Nanoseconds if value >= 1e3 => format!("{:.1} us", value / 1e3),
            Unit::Nanoseconds => format!("{value:.0} ns"),
            Unit::Instructions => format!("{:.3} M instr", value / 1e6),
            Unit::Cycles => format!("{:.3} M cycles", value / 1e6),
            Unit::Microjoules if value >= 1e3 => format!("{:.2} mJ", value / 1e3),
            Unit::Microjoules => format!("{value:.1} uJ"),
            Unit::Bytes => grouped(value as i64),
            Unit::Fraction => format!("{:.1}%", 100.0 * value),
            Unit::Ratio => format!("{value:.2}x"),
            Unit::Macs | Unit::BinaryOps | Unit::Parameters => grouped(value as i64),
        }
    }
}

impl Unit {
    /// The unit a device clock's ticks are counted in.
    pub const fn of_clock(clock: Clock) -> Unit {
        match clock {
            Clock::HostNanos => Unit::Nanoseconds,
            Clock::Cycles => Unit::Cycles,
            Clock::Instructions => Unit::Instructions,
        }
    }
}

/// The `latency_source` a device clock is named by.
pub const fn clock_source(clock: Clock) -> &'static str {
    match clock {
        Clock::HostNanos => "host clock",
        Clock::Cycles => "cycle counter",
        Clock::Instructions => "QEMU icount",
    }
}

/// Where an energy figure comes from: the prefix of `energy_source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnergyOrigin {
    /// A power meter: measured, with noise.
    Meter,
    /// The target file's datasheet figures times counted cycles: exact.
    Model,
}

impl EnergyOrigin {
    /// The source text: `meter: <how>` or `model: <how>`.
    pub fn source(self, how: &str) -> String {
        let label = match self {
            EnergyOrigin::Meter => "meter",
            EnergyOrigin::Model => "model",
        };
        format!("{label}: {how}")
    }

    /// The origin a stored `energy_source` names.
    pub fn of_source(source: &str) -> Option<EnergyOrigin> {
        [EnergyOrigin::Meter, EnergyOrigin::Model]
            .into_iter()
            .find(|o| source.starts_with(&o.source("")))
    }
}

/// A job's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It ran and its figures are stored.
    Ok,
    /// It failed; `error` says why.
    Failed,
}

impl Status {
    /// The stored label.
    pub const fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

impl Row {
    /// Whether the job succeeded.
    pub fn is_ok(&self) -> bool {
        self.status.as_deref() == Some(Status::Ok.label())
    }
}

/// A count with a thousands separator.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Less is better (time, energy, bytes).
    Lower,
    /// More is better (accuracy).
    Higher,
}

/// Whether a figure repeats exactly or is measured with noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nature {
    /// Counted: any change is real.
    Exact,
    /// As exact as its clock's unit ([`Unit::exact`]).
    OfClock,
    /// Exact from the energy model, noisy from a meter.
    OfEnergy,
}

/// Where a figure's unit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitOf {
    /// Always this unit.
    Fixed(Unit),
    /// In `latency_unit`, per row (the target's clock).
    Clock,
}

/// One figure of [`Row`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    /// Its column.
    pub column: &'static str,
    /// Its unit.
    pub unit: UnitOf,
    /// The column naming where it comes from.
    pub source_column: &'static str,
    /// Which way is better.
    pub better: Better,
    /// Exact or timed.
    pub nature: Nature,
    /// The column of its spread (median absolute deviation), if timed.
    pub spread_column: Option<&'static str>,
    /// Whether `bench compare` judges it (the mean and minimum follow the median).
    pub compared: bool,
    /// What it is, for the docs.
    pub meaning: &'static str,
}

const fn figure(
    column: &'static str,
    unit: UnitOf,
    source_column: &'static str,
    nature: Nature,
    meaning: &'static str,
) -> Figure {
    Figure {
        column,
        unit,
        source_column,
        better: Better::Lower,
        nature,
        spread_column: None,
        compared: true,
        meaning,
    }
}

const fn bytes(column: &'static str, source_column: &'static str, meaning: &'static str) -> Figure {
    figure(
        column,
        UnitOf::Fixed(Unit::Bytes),
        source_column,
        Nature::Exact,
        meaning,
    )
}

/// Every figure a report, a pivot or a comparison can show.
pub const FIGURES: &[Figure] = &[
    Figure {
        spread_column: Some("latency_mad"),
        ..figure(
            "latency_median",
            UnitOf::Clock,
            "latency_source",
            Nature::OfClock,
            "median per timed inference",
        )
    },
    Figure {
        compared: false,
        ..figure(
            "latency_mean",
            UnitOf::Clock,
            "latency_source",
            Nature::OfClock,
            "mean per timed inference",
        )
    },
    Figure {
        compared: false,
        ..figure(
            "latency_min",
            UnitOf::Clock,
            "latency_source",
            Nature::OfClock,
            "fastest timed inference",
        )
    },
    Figure {
        compared: false,
        ..figure(
            "cycles_estimated",
            UnitOf::Fixed(Unit::Cycles),
            "cycles_source",
            Nature::Exact,
            "core cycles per inference estimated from what QEMU executed",
        )
    },
    figure(
        "energy_uj",
        UnitOf::Fixed(Unit::Microjoules),
        "energy_source",
        Nature::OfEnergy,
        "energy per inference",
    ),
    bytes(
        "flash_bytes",
        "memory_source",
        "every loaded section of the device program",
    ),
    bytes("code_bytes", "memory_source", "its executable sections"),
    bytes("sram_bytes", "memory_source", "its static RAM (data + bss)"),
    bytes(
        "stack_bytes",
        "memory_source",
        "deepest stack seen, by painting",
    ),
    bytes("arena_bytes", "arena_source", "peak activation memory"),
    bytes("model_bytes", "model_bytes_source", "the model blob"),
    bytes("weight_bytes", "model_bytes_source", "the blob's constants"),
    figure(
        "macs",
        UnitOf::Fixed(Unit::Macs),
        "counts_source",
        Nature::Exact,
        "multiply-accumulates per inference",
    ),
    figure(
        "binary_ops",
        UnitOf::Fixed(Unit::BinaryOps),
        "counts_source",
        Nature::Exact,
        "binary operations per inference",
    ),
    figure(
        "params",
        UnitOf::Fixed(Unit::Parameters),
        "counts_source",
        Nature::Exact,
        "weights and biases",
    ),
    Figure {
        better: Better::Higher,
        ..figure(
            "accuracy",
            UnitOf::Fixed(Unit::Fraction),
            "accuracy_source",
            Nature::Exact,
            "the dataset predicted correctly by the host reference",
        )
    },
];

/// The figure stored in `column`.
pub fn by_column(column: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.column == column)
}

impl Figure {
    /// Its value in a row.
    pub fn value(&self, row: &Row) -> Option<f64> {
        row.number(self.column)
    }

    /// Its unit in a row (`None`: a clock unit bench does not know).
    pub fn unit_in(&self, row: &Row) -> Option<Unit> {
        match self.unit {
            UnitOf::Fixed(unit) => Some(unit),
            UnitOf::Clock => row.latency_unit.as_deref().and_then(Unit::from_label),
        }
    }

    /// Where it comes from in a row.
    pub fn source_in<'r>(&self, row: &'r Row) -> Option<&'r str> {
        row.text(self.source_column)
    }

    /// Whether its value in a row repeats exactly.
    pub fn exact_in(&self, row: &Row) -> bool {
        match self.nature {
            Nature::Exact => true,
            Nature::OfClock => self.unit_in(row).is_some_and(Unit::exact),
            Nature::OfEnergy => {
                self.source_in(row).and_then(EnergyOrigin::of_source) == Some(EnergyOrigin::Model)
            }
        }
    }
}

/// The figure table of `docs/results.md`, in Markdown.
pub fn docs_table() -> String {
    let mut out = String::from(
        "| column | unit | source column | better | nature | meaning |\n|---|---|---|---|---|---|\n",
    );
    for f in FIGURES {
        let unit = match f.unit {
            UnitOf::Fixed(u) => format!("`{}`", u.label()),
            UnitOf::Clock => {
                let clocks = [Clock::HostNanos, Clock::Cycles, Clock::Instructions];
                let labels: Vec<String> = clocks
                    .iter()
                    .map(|&c| format!("`{}` ({})", Unit::of_clock(c).label(), clock_source(c)))
                    .collect();
                format!("`latency_unit`: {}", labels.join(", "))
            }
        };
        let better = match f.better {
            Better::Lower => "lower",
            Better::Higher => "higher",
        };
        let nature = match f.nature {
            Nature::Exact => "exact",
            Nature::OfClock => "exact in instructions, timed otherwise",
            Nature::OfEnergy => "exact from `model`, timed from `meter`",
        };
        let compared = if f.compared { "" } else { " (not compared)" };
        out += &format!(
            "| `{}` | {unit} | `{}` | {better} | {nature} | {}{compared} |\n",
            f.column, f.source_column, f.meaning
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The labels this module owns. Each appears as a string literal here
    /// and nowhere else in the harness's code (tests aside), so renaming
    /// one here renames it in the store, every exporter and `compare`.
    fn owned_labels() -> Vec<String> {
        // `x` (a ratio) is too short to own: an array in an .npz is called `x` too.
        let units = Unit::ALL.iter().filter(|&&u| u != Unit::Ratio);
        let mut labels: Vec<String> = units.map(|u| u.label().into()).collect();
        labels.extend(
            [Clock::HostNanos, Clock::Cycles, Clock::Instructions].map(|c| clock_source(c).into()),
        );
        labels.extend([Status::Ok, Status::Failed].map(|s| s.label().into()));
        labels.extend([EnergyOrigin::Meter, EnergyOrigin::Model].map(|o| o.source("")));
        labels
    }

    #[test]
    fn units_sources_and_statuses_are_spelled_only_here() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        let this = root.join("results/figures.rs");
        let mut found = Vec::new();
        // The generated flatbuffer schema names its own fields (`bytes`).
        let generated = root.join("model/tflite_schema.rs");
        for file in files.iter().filter(|f| **f != this && **f != generated) {
            let text = std::fs::read_to_string(file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for label in owned_labels() {
                // A label as a whole literal, or as the start of one (`"meter: ...`).
                let quoted = format!("\"{label}");
                let whole = label.ends_with(' ') || code.contains(&format!("\"{label}\""));
                if code.contains(&quoted) && whole {
                    found.push(format!(
                        "{}: \"{label}\"",
                        file.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
        assert!(
            found.is_empty(),
            "labels spelled outside results/figures.rs: {found:?}"
        );
    }

    #[test]
    fn every_label_reads_back_and_every_figure_is_a_numeric_column() {
        for unit in Unit::ALL {
            assert_eq!(Unit::from_label(unit.label()), Some(unit));
        }
        let row = Row {
            latency_median: Some(1.0),
            latency_mean: Some(1.0),
            latency_min: Some(1.0),
            cycles_estimated: Some(1.0),
            energy_uj: Some(1.0),
            flash_bytes: Some(1),
            code_bytes: Some(1),
            sram_bytes: Some(1),
            stack_bytes: Some(1),
            arena_bytes: Some(1),
            model_bytes: Some(1),
            weight_bytes: Some(1),
            macs: Some(1),
            binary_ops: Some(1),
            params: Some(1),
            accuracy: Some(1.0),
            ..Row::default()
        };
        for f in FIGURES {
            assert_eq!(f.value(&row), Some(1.0), "{}", f.column);
            assert!(
                <Row as crate::results::store::Table>::COLUMNS.contains(&f.source_column),
                "{}",
                f.column
            );
        }
    }

    #[test]
    fn exactness_follows_the_unit_and_the_energy_origin() {
        let latency = by_column("latency_median").unwrap();
        let energy = by_column("energy_uj").unwrap();
        let row = |clock: Clock, energy: EnergyOrigin| Row {
            latency_unit: Some(Unit::of_clock(clock).label().into()),
            energy_source: Some(energy.source("x")),
            ..Row::default()
        };
        assert!(latency.exact_in(&row(Clock::Instructions, EnergyOrigin::Model)));
        assert!(!latency.exact_in(&row(Clock::Cycles, EnergyOrigin::Model)));
        assert!(!latency.exact_in(&row(Clock::HostNanos, EnergyOrigin::Model)));
        assert!(energy.exact_in(&row(Clock::HostNanos, EnergyOrigin::Model)));
        assert!(!energy.exact_in(&row(Clock::HostNanos, EnergyOrigin::Meter)));
        assert_eq!(Unit::Instructions.show(7_700_000.0), "7.700 M instr");
        assert_eq!(Unit::Nanoseconds.show(412_300.0), "412.3 us");
        assert_eq!(Unit::Fraction.show(0.8125), "81.2%");
        assert_eq!(Unit::Bytes.show(1_234_567.0), "1,234,567");
    }

    #[test]
    fn figure_table_in_the_docs_is_generated_from_this_module() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = ("<!-- figures:begin -->\n", "<!-- figures:end -->");
        let a = text
            .find(begin)
            .expect("docs/results.md has the figures markers")
            + begin.len();
        let b = text.find(end).unwrap();
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(
                &path,
                format!("{}{}{}", &text[..a], docs_table(), &text[b..]),
            )
            .unwrap();
            return;
        }
        assert_eq!(
            &text[a..b],
            docs_table(),
            "run BLESS=1 cargo test -p bench-harness figure_table"
        );
    }
}
