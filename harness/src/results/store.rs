//! The result store: one directory per run, never overwritten, holding flat
//! tables written as Parquet and CSV (`results`: one [`Row`] per job, which
//! every exporter reads; `layers`, `sweep` and `exits` when a run profiles
//! or sweeps) and a `manifest.json` with the provenance and each table's
//! checksum. The schema is documented in `docs/results.md`.

use polars::prelude::*;
use std::path::{Path, PathBuf};

/// A value type of the flat schema, convertible to and from a polars column.
pub trait Cell: Sized + Clone {
    /// A column of optional values.
    fn column(name: &str, values: Vec<Option<Self>>) -> Column;
    /// The values of a column.
    fn read(column: &Column) -> PolarsResult<Vec<Option<Self>>>;
    /// The value as a number, if it is one.
    fn number(&self) -> Option<f64> {
        None
    }
    /// The value as text, if it is text.
    fn text(&self) -> Option<&str> {
        None
    }
}

impl Cell for String {
    fn column(name: &str, values: Vec<Option<Self>>) -> Column {
        Column::new(name.into(), values)
    }
    fn read(column: &Column) -> PolarsResult<Vec<Option<Self>>> {
        let ca = column.str()?;
        Ok((0..ca.len()).map(|i| ca.get(i).map(String::from)).collect())
    }
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Cell for f64 {
    fn column(name: &str, values: Vec<Option<Self>>) -> Column {
        Column::new(name.into(), values)
    }
    fn read(column: &Column) -> PolarsResult<Vec<Option<Self>>> {
        let ca = column.f64()?;
        Ok((0..ca.len()).map(|i| ca.get(i)).collect())
    }
    fn number(&self) -> Option<f64> {
        Some(*self)
    }
}

impl Cell for i64 {
    fn column(name: &str, values: Vec<Option<Self>>) -> Column {
        Column::new(name.into(), values)
    }
    fn read(column: &Column) -> PolarsResult<Vec<Option<Self>>> {
        let ca = column.i64()?;
        Ok((0..ca.len()).map(|i| ca.get(i)).collect())
    }
    fn number(&self) -> Option<f64> {
        Some(*self as f64)
    }
}

impl Cell for bool {
    fn column(name: &str, values: Vec<Option<Self>>) -> Column {
        Column::new(name.into(), values)
    }
    fn read(column: &Column) -> PolarsResult<Vec<Option<Self>>> {
        let ca = column.bool()?;
        Ok((0..ca.len()).map(|i| ca.get(i)).collect())
    }
}

/// A flat table of the store, written as `<STEM>.parquet` and `<STEM>.csv`.
pub trait Table: Sized {
    /// File stem in the run directory.
    const STEM: &'static str;
    /// Column names, in order.
    const COLUMNS: &'static [&'static str];
    /// The rows as a data frame.
    fn to_frame(rows: &[Self]) -> PolarsResult<DataFrame>;
    /// Rows from a data frame written by [`Table::to_frame`].
    fn from_frame(df: &DataFrame) -> PolarsResult<Vec<Self>>;
}

/// Declares a table's schema once: the struct, its columns and their order.
macro_rules! schema {
    ($(#[doc = $sdoc:literal])* $name:ident in $stem:literal { $($(#[doc = $doc:literal])* $field:ident: $ty:ty,)* }) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $($(#[doc = $doc])* pub $field: Option<$ty>,)*
        }

        impl Table for $name {
            const STEM: &'static str = $stem;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn to_frame(rows: &[Self]) -> PolarsResult<DataFrame> {
                DataFrame::new(rows.len(), vec![$(<$ty as Cell>::column(stringify!($field), rows.iter().map(|r| r.$field.clone()).collect())),*])
            }

            fn from_frame(df: &DataFrame) -> PolarsResult<Vec<Self>> {
                let mut rows = vec![Self::default(); df.height()];
                $(
                    // A column an older bench did not write stays empty, so older runs stay readable.
                    if let Ok(column) = df.column(stringify!($field)) {
                        for (row, value) in rows.iter_mut().zip(<$ty as Cell>::read(column)?) {
                            row.$field = value;
                        }
                    }
                )*
                Ok(rows)
            }
        }

        impl $name {
            /// The number in `column` (`None`: empty, not numeric, or no such column).
            pub fn number(&self, column: &str) -> Option<f64> {
                match column {
                    $(stringify!($field) => self.$field.as_ref().and_then(Cell::number),)*
                    _ => None,
                }
            }

            /// The text in `column` (`None`: empty, not text, or no such column).
            pub fn text(&self, column: &str) -> Option<&str> {
                match column {
                    $(stringify!($field) => self.$field.as_ref().and_then(Cell::text),)*
                    _ => None,
                }
            }
        }
    };
}

schema! {
    /// One job's results: the flat schema every exporter reads.
    Row in "results" {
    /// Run id (the run directory's name).
    run_id: String,
    /// Suite name.
    suite: String,
    /// `model/variant[@threshold]/target`.
    job: String,
    /// Model name.
    model: String,
    /// Variant name.
    variant: String,
    /// Target name.
    target: String,
    /// Who ran it: `bench`, or a peer (`tflm`, `tflm-cmsis-nn`); empty in
    /// runs stored before runtimes existed, which are all bench's.
    runtime: String,
    /// Number format, e.g. `int8 per-channel`.
    quant: String,
    /// Pruning, e.g. `channels 0.5` (empty: none).
    pruning: String,
    /// Memory schedule: `tensor`, `partial` or `patch` (empty in runs stored before schedules existed, which are all `tensor`).
    memory: String,
    /// Exit heads and measure (empty: none).
    exits: String,
    /// Exit threshold of this job.
    threshold: f64,
    /// `ok` or `failed`.
    status: String,
    /// Why the job failed.
    error: String,
    /// Median time per inference.
    latency_median: f64,
    /// Fastest inference.
    latency_min: f64,
    /// Slowest inference.
    latency_max: f64,
    /// Median absolute deviation.
    latency_mad: f64,
    /// Mean.
    latency_mean: f64,
    /// Timed inferences.
    latency_n: i64,
    /// Mild + severe outliers (Tukey fences).
    latency_outliers: i64,
    /// `ns`, `cycles` or `instructions`.
    latency_unit: String,
    /// `host clock`, `DWT CYCCNT`, `QEMU icount`, ...
    latency_source: String,
    /// Core cycles per inference estimated from what QEMU executed (beside
    /// the exact instruction count, never in its place).
    cycles_estimated: f64,
    /// The core timings and board flash costs of the estimate.
    cycles_source: String,
    /// Untimed inferences before.
    warmup: i64,
    /// Peak activation memory.
    arena_bytes: i64,
    /// Where the arena figure comes from (`planner`).
    arena_source: String,
    /// Size of the model blob (graph + constants).
    model_bytes: i64,
    /// Bytes of constants (weights, biases, requantization).
    weight_bytes: i64,
    /// Where the model sizes come from (`blob`).
    model_bytes_source: String,
    /// Flash used by the device program (`.text + .rodata + .data`).
    flash_bytes: i64,
    /// Code of the device program: its executable sections (`.text`).
    code_bytes: i64,
    /// Static SRAM of the device program (`.data + .bss`).
    sram_bytes: i64,
    /// Peak stack.
    stack_bytes: i64,
    /// Where flash, SRAM and stack figures come from.
    memory_source: String,
    /// Multiply-accumulates per inference (all layers, exit heads included).
    macs: i64,
    /// Binary operations per inference.
    binary_ops: i64,
    /// Parameters (weights + biases).
    params: i64,
    /// Where MACs and parameters come from (`model`).
    counts_source: String,
    /// Energy per inference.
    energy_uj: f64,
    /// `meter`, `model` or empty.
    energy_source: String,
    /// Timed inferences that left at each head: `head0:12 head1:3 final:15`.
    exit_counts: String,
    /// Fraction of the model's dataset predicted correctly with no exit taken (host reference).
    accuracy: f64,
    /// The dataset and how many of its samples, e.g. `digits-test, 360 samples, host reference`.
    accuracy_source: String,
    /// CRC-32 of the device's last output.
    output_crc32: String,
    /// Whether the device's output equals the host reference, byte for byte.
    output_matches_reference: bool,
}}

schema! {
    /// One operator of a job's profiled inference (`bench run --profile`).
    LayerRow in "layers" {
    /// Run id.
    run_id: String,
    /// The job, as in [`Row::job`].
    job: String,
    /// Model name.
    model: String,
    /// Variant name.
    variant: String,
    /// Target name.
    target: String,
    /// Index of the operator in the model blob.
    op: i64,
    /// Layer of the model graph the operator computes (`conv1`), or `head<h>`
    /// for the decision of exit head `h`.
    layer: String,
    /// Kernel (`conv2d`, `depthwise_conv2d`, ...).
    kind: String,
    /// What the operator took, in `unit`.
    count: f64,
    /// As [`Row::latency_unit`].
    unit: String,
    /// As [`Row::latency_source`], for one profiled inference.
    source: String,
}}

schema! {
    /// One layer of a prepared variant's memory timeline (`memory.csv`):
    /// the activation bytes alive while it runs, under the variant's
    /// memory schedule. The same on every target, so one set per variant.
    MemoryRow in "memory" {
    /// Run id.
    run_id: String,
    /// Model name.
    model: String,
    /// Variant name.
    variant: String,
    /// Memory schedule (`tensor`, `partial`, `patch`).
    memory: String,
    /// Position of the layer in the model graph.
    step: i64,
    /// The layer (`conv1`).
    layer: String,
    /// Activation bytes alive while it runs (planner's buffers).
    live_bytes: i64,
    /// The variant's planned arena (at least the largest `live_bytes`).
    arena_bytes: i64,
}}

schema! {
    /// One threshold of a job's sweep over its model's dataset.
    SweepRow in "sweep" {
    /// Run id.
    run_id: String,
    /// The job, as in [`Row::job`].
    job: String,
    /// Model name.
    model: String,
    /// Variant name.
    variant: String,
    /// Target name.
    target: String,
    /// Dataset the decisions come from.
    dataset: String,
    /// Confidence measure.
    measure: String,
    /// Threshold, the same at every head.
    threshold: f64,
    /// Inputs evaluated.
    samples: i64,
    /// Fraction predicted correctly.
    accuracy: f64,
    /// Fraction leaving at each head, then at the final classifier, space separated.
    exit_rates: String,
    /// Mean MACs per inference.
    mean_macs: f64,
    /// Mean binary operations per inference.
    mean_binary_ops: f64,
    /// Predicted mean cost per inference: exit rates x the device's cost of each exit.
    mean_cost: f64,
    /// Cost with no exit taken (every head evaluated, none leaving).
    full_cost: f64,
    /// `1 - mean_cost / full_cost`.
    saving: f64,
    /// As [`Row::latency_unit`].
    cost_unit: String,
    /// How `mean_cost` was obtained.
    cost_source: String,
    /// Inputs run one by one on the device to check the prediction (emulated targets).
    validated_samples: i64,
    /// Predicted mean cost of those inputs.
    predicted_subset_cost: f64,
    /// Measured mean cost of those inputs, with the threshold set on the device.
    measured_subset_cost: f64,
    /// `measured / predicted - 1`.
    cost_error: f64,
}}

schema! {
    /// The cost of reaching one exit of a swept job.
    ExitRow in "exits" {
    /// Run id.
    run_id: String,
    /// The job, as in [`Row::job`].
    job: String,
    /// Model name.
    model: String,
    /// Variant name.
    variant: String,
    /// Target name.
    target: String,
    /// The head's output name, or `final`.
    exit: String,
    /// 0-based position, the final classifier last.
    index: i64,
    /// MACs of every layer run before the decision.
    macs: i64,
    /// Binary operations run before the decision.
    binary_ops: i64,
    /// Median cost of an inference that leaves here.
    cost: f64,
    /// As [`Row::latency_unit`].
    unit: String,
    /// As [`Row::latency_source`].
    source: String,
}}

/// Why the store could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored file is not the one bench wrote.
    #[error("failed to read {path}: it changed after bench wrote it (its SHA-256 is {found}, manifest.json says {expected}); restore it or run again")]
    Changed {
        /// The file.
        path: PathBuf,
        /// What the manifest records.
        expected: String,
        /// What the file hashes to now.
        found: String,
    },
    /// The run's manifest is missing or unreadable.
    #[error("{0}")]
    Manifest(#[from] crate::results::manifest::ManifestError),
    /// Another process writes the run.
    #[error("failed to lock {path}: another bench ({holder}) is writing this run; wait for it to finish")]
    Locked {
        /// The run directory.
        path: PathBuf,
        /// What the lock file says of its holder.
        holder: String,
    },
    /// A parser failed on a damaged file.
    #[error("failed to read {path}: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// File system.
    #[error("failed to {action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Polars.
    #[error("failed to {action} {path}: {error}")]
    Frame {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        error: PolarsError,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |error| StoreError::Io {
        action,
        path,
        error,
    }
}

fn frame(action: &'static str, path: &Path) -> impl FnOnce(PolarsError) -> StoreError {
    let path = path.to_path_buf();
    move |error| StoreError::Frame {
        action,
        path,
        error,
    }
}

/// Creates a new run directory under `root/<suite>/`, named by the UTC
/// time (a suffix keeps it new if two runs start in the same second), and
/// locked for this process. `init` fills it before it appears under its
/// name (it is built as a hidden directory and renamed), so a run directory
/// is readable from the first moment anyone can see it.
pub fn create_run_dir(
    root: &Path,
    suite: &str,
    init: impl FnOnce(&Path, &str) -> Result<RunWriter, StoreError>,
) -> Result<(String, PathBuf, RunWriter), StoreError> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let parent = root.join(suite);
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let building = parent.join(format!(".{stamp}.{}.partial", std::process::id()));
    std::fs::create_dir(&building).map_err(io("create", &building))?;
    let mut writer = init(&building, &stamp)?;
    for n in 0..1000 {
        let id = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let dir = parent.join(&id);
        // rename(2) onto an existing directory fails unless it is empty; never take one over.
        if dir.exists() {
            continue;
        }
        match std::fs::rename(&building, &dir) {
            Ok(()) => {
                writer.dir = dir.clone();
                if n > 0 {
                    writer.manifest["run_id"] = id.clone().into();
                    writer.write_manifest()?;
                }
                return Ok((id, dir, writer));
            }
            // Another run took the name between the check and the rename.
            Err(_) if dir.exists() => continue,
            Err(e) => return Err(io("create", &dir)(e)),
        }
    }
    Err(io("create", &parent)(std::io::Error::other(
        "a thousand runs started in one second",
    )))
}

/// Writes `bytes` to `path` through a temporary file (named after this
/// process) and a rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = temporary(path);
    std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into", path))
}

/// The temporary name `path` is written under before its rename.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The SHA-256 of each file a writer stored: one value, or the old and the
/// new one while a file is being replaced (so a run killed between the
/// rename and the manifest's update still verifies).
const CHECKSUMS: &str = "files";

/// An exclusive lock on a run directory, held while one process writes it
/// (an advisory `flock` on `run.lock`, released when the process ends, even
/// by SIGKILL).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Locks `dir`, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("run.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::{Seek, Write};
                let _ = file.set_len(0);
                let _ = file.seek(std::io::SeekFrom::Start(0));
                let _ = write!(file, "pid {}", std::process::id());
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "pid unknown".into());
                Err(StoreError::Locked {
                    path: dir.into(),
                    holder,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io("lock", &path)(e)),
        }
    }
}

/// Writes the files of one run directory: each through a rename, with its
/// SHA-256 in `manifest.json`, so readers can tell a file that changed
/// after bench wrote it from one bench wrote.
pub struct RunWriter {
    dir: PathBuf,
    manifest: serde_json::Value,
    _lock: Option<RunLock>,
}

impl RunWriter {
    /// A writer of `dir` with this manifest (keeping the checksums it records),
    /// holding `lock`; stray temporary files of a killed writer are removed.
    pub fn open(dir: &Path, manifest: serde_json::Value, lock: Option<RunLock>) -> Self {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Self {
            dir: dir.into(),
            manifest,
            _lock: lock,
        }
    }

    /// The manifest as last written.
    pub fn manifest(&self) -> &serde_json::Value {
        &self.manifest
    }

    /// Replaces the manifest's fields, keeping the checksums, and writes it.
    pub fn set_manifest(&mut self, mut manifest: serde_json::Value) -> Result<(), StoreError> {
        manifest[CHECKSUMS] = self
            .manifest
            .get(CHECKSUMS)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        self.manifest = manifest;
        self.write_manifest()
    }

    fn write_manifest(&self) -> Result<(), StoreError> {
        write_atomic(
            &self.dir.join("manifest.json"),
            serde_json::to_string_pretty(&self.manifest)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    /// Writes `files` (name, bytes) into the run, each through a rename; the
    /// manifest accepts the old and the new checksum while they are swapped.
    pub fn write_files(&mut self, files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if !self.manifest[CHECKSUMS].is_object() {
            self.manifest[CHECKSUMS] = serde_json::json!({});
        }
        let mut staged = Vec::new();
        for (name, bytes) in files {
            let path = self.dir.join(name);
            let tmp = temporary(&path);
            std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
            let new = crate::results::manifest::sha256(bytes);
            let both = match self.manifest[CHECKSUMS][name].as_str() {
                Some(old) if old != new => serde_json::json!([old, new]),
                _ => new.clone().into(),
            };
            self.manifest[CHECKSUMS][name] = both;
            staged.push((tmp, path, name, new));
        }
        self.write_manifest()?;
        for (tmp, path, name, new) in staged {
            std::fs::rename(&tmp, &path).map_err(io("rename into", &path))?;
            self.manifest[CHECKSUMS][name] = new.into();
        }
        self.write_manifest()
    }

    /// Writes a table as `<STEM>.parquet` and `<STEM>.csv`.
    pub fn write_table<T: Table>(&mut self, rows: &[T]) -> Result<(), StoreError> {
        let files = table_files(&self.dir, rows)?;
        self.write_files(&files)
    }
}

/// Checks the file `name` of the run `dir` against the checksum its manifest
/// records (none for runs of an older bench, or files it does not list).
pub fn verify(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let manifest = match crate::results::manifest::read(dir) {
        Ok(m) => m,
        Err(crate::results::manifest::ManifestError::Missing { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let accepted: Vec<&str> = match &manifest[CHECKSUMS][name] {
        serde_json::Value::String(one) => vec![one.as_str()],
        serde_json::Value::Array(many) => many.iter().filter_map(|v| v.as_str()).collect(),
        _ => return Ok(()),
    };
    let found = crate::results::manifest::sha256(bytes);
    if accepted.contains(&found.as_str()) {
        return Ok(());
    }
    Err(StoreError::Changed {
        path: dir.join(name),
        expected: accepted.join(" or "),
        found,
    })
}

/// Writes the rows as `results.parquet` and `results.csv` in `dir`.
pub fn write_rows(dir: &Path, rows: &[Row]) -> Result<(), StoreError> {
    write_table(dir, rows)
}

/// Reads the rows of a run directory.
pub fn read_rows(dir: &Path) -> Result<Vec<Row>, StoreError> {
    read_table(dir)
}

/// Writes a table as `<STEM>.parquet` and `<STEM>.csv` in `dir`, without
/// checksums (a directory that is not a run, e.g. in tests; runs use [`RunWriter`]).
pub fn write_table<T: Table>(dir: &Path, rows: &[T]) -> Result<(), StoreError> {
    for (name, bytes) in table_files(dir, rows)? {
        write_atomic(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// Files of a run directory to write together: `(name, bytes)`.
pub type Files = Vec<(String, Vec<u8>)>;

/// A table's files and their bytes: `<STEM>.parquet` and `<STEM>.csv`
/// (`dir` only names them in errors), for [`RunWriter::write_files`].
pub fn table_files<T: Table>(dir: &Path, rows: &[T]) -> Result<Files, StoreError> {
    let (parquet, csv) = (format!("{}.parquet", T::STEM), format!("{}.csv", T::STEM));
    let mut df = T::to_frame(rows).map_err(frame("build the table for", &dir.join(&parquet)))?;
    let mut parquet_bytes = Vec::new();
    ParquetWriter::new(&mut parquet_bytes)
        .finish(&mut df)
        .map_err(frame("write", &dir.join(&parquet)))?;
    let mut csv_bytes = Vec::new();
    CsvWriter::new(&mut csv_bytes)
        .finish(&mut df)
        .map_err(frame("write", &dir.join(&csv)))?;
    Ok(vec![(parquet, parquet_bytes), (csv, csv_bytes)])
}

/// The per-operator profiles of a run directory (none if it was run without `--profile`).
pub fn read_layers(dir: &Path) -> Result<Vec<LayerRow>, StoreError> {
    read_optional(dir)
}

/// Reads a table of a run directory; empty if the run did not write it.
pub fn read_optional<T: Table>(dir: &Path) -> Result<Vec<T>, StoreError> {
    if !dir.join(format!("{}.parquet", T::STEM)).exists() {
        return Ok(Vec::new());
    }
    read_table(dir)
}

/// Reads a table of a run directory, checked against the manifest's
/// checksum first; polars is only handed files bench wrote, and a panic of
/// its Parquet reader (on a file without a checksum) is an error naming the file.
pub fn read_table<T: Table>(dir: &Path) -> Result<Vec<T>, StoreError> {
    let name = format!("{}.parquet", T::STEM);
    let path = dir.join(&name);
    if !dir.join("manifest.json").exists() && !path.exists() && dir.is_dir() {
        return Err(crate::results::manifest::ManifestError::Missing { dir: dir.into() }.into());
    }
    let bytes = crate::input::files::read(&path).map_err(io("open", &path))?;
    verify(dir, &name, &bytes)?;
    parse_table(&bytes).map_err(|why| StoreError::Damaged { path, why })
}

/// The rows of a table's Parquet bytes. Page headers are checked first (a
/// damaged one would abort polars); a panic of polars' reader is an error.
pub fn parse_table<T: Table>(bytes: &[u8]) -> Result<Vec<T>, String> {
    crate::guard::catching("polars", || crate::results::table_pages::check(bytes))?
        .map_err(|e| format!("damaged Parquet: {e}"))?;
    crate::guard::catching("polars", || {
        let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish()?;
        T::from_frame(&df)
    })?
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_an_older_bench_without_newer_columns_still_read() {
        let row = Row {
            job: Some("m/v/t".into()),
            status: Some("ok".into()),
            accuracy: Some(0.9),
            latency_median: Some(12.5),
            ..Row::default()
        };
        let mut df = Row::to_frame(std::slice::from_ref(&row)).unwrap();
        df = df
            .drop("accuracy")
            .unwrap()
            .drop("accuracy_source")
            .unwrap();
        let back = Row::from_frame(&df).unwrap();
        assert_eq!(
            back,
            [Row {
                accuracy: None,
                ..row
            }]
        );
    }
}
