//! The `bench` command line: its arguments (clap), one function per
//! command (`commands`), the progress bar (`progress`).

pub mod commands;
pub mod progress;

use clap::{Args, Parser, Subcommand, ValueEnum};
use harness::report::format::Format;
use std::path::PathBuf;

/// Benchmarks and profiles neural-network inference across hardware targets.
#[derive(Parser)]
#[command(name = "bench", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a suite: every model variant on every target; store and print the results.
    Run(RunArgs),
    /// Parse, expand and check a suite and its targets without running anything.
    Validate(ValidateArgs),
    /// List what bench knows.
    List(ListArgs),
    /// Run one model, as it is, over the inputs of a .npy file and write its outputs to another.
    Infer(InferArgs),
    /// Pivot stored runs into a table for a paper: rows x columns of one figure.
    Report(ReportArgs),
    /// Join the runs of `bench run --shard i/n` into one run.
    Merge(MergeArgs),
    /// Compare a run with a baseline run, job by job; exit 4 if it regressed.
    Compare(CompareArgs),
    /// List the debug probes attached to this machine (for `runner = "probe-rs"` targets).
    Probes(ProbesArgs),
    /// Print the tables of a stored run.
    Show(ShowArgs),
}

/// Arguments of `bench run`.
#[derive(Args)]
pub struct RunArgs {
    /// The suite file.
    pub suite: PathBuf,
    /// Run on these targets instead of the suite's (repeatable).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Only jobs whose id (`model/variant[@threshold]/target`) matches this glob.
    #[arg(long)]
    pub only: Option<String>,
    /// Results root; the run goes to `<out>/<suite>/<run-id>/`.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Also time every layer of one inference per job (stored as `layers.csv`).
    #[arg(long)]
    pub profile: bool,
    /// Time clock-timed jobs (the host, boards) by MLPerf Tiny's run rules:
    /// five windows of at least 10 s, the median window.
    #[arg(long)]
    pub mlperf: bool,
    /// Accuracy drop, in percent, the best-threshold summary of a sweep allows.
    #[arg(long, default_value_t = 1.0, value_parser = percent)]
    pub accuracy_drop: f64,
    /// Run only slice i of n of the job matrix (round robin over the plan), e.g. 2/3.
    #[arg(long)]
    pub shard: Option<harness::input::plan::Shard>,
    /// Finish this interrupted run directory: run the jobs it has not stored.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

/// Arguments of `bench validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The suite file.
    pub suite: PathBuf,
}

/// Arguments of `bench list`.
#[derive(Args)]
pub struct ListArgs {
    /// targets, models or energy.
    pub what: ListWhat,
}

/// Arguments of `bench infer`.
#[derive(Args)]
pub struct InferArgs {
    /// A .tflite or .onnx file, or a zoo model name.
    pub model: String,
    /// Inputs: an array of shape [N, *input_shape] (or exactly input_shape) in the model's input type; a .npz with one array per input, named as in the model, for several inputs.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the outputs, [N, *output_shape] in the model's output type (a .npz with one array per output for several).
    #[arg(long)]
    pub output: PathBuf,
    /// The target to run on.
    #[arg(long, default_value = "host")]
    pub target: String,
    /// Seconds each inference may take (at most a week).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=harness::input::suite::MAX_TIMEOUT_SECONDS))]
    pub timeout: u64,
}

/// Arguments of `bench report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Run directories (their rows are pooled).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Result columns that label the rows [default: model,variant; with
    /// --layers: model,target,layer].
    #[arg(long, value_delimiter = ',')]
    pub rows: Option<Vec<String>>,
    /// Result columns that label the columns [default: target; with
    /// --layers: variant].
    #[arg(long, value_delimiter = ',')]
    pub cols: Option<Vec<String>>,
    /// Tabulate the per-operator profiles of `bench run --profile` (what
    /// each layer took) instead of the results: e.g. each precision's
    /// layers against int8's with --relative-to variant=int8.
    #[arg(long)]
    pub layers: bool,
    /// The figure: latency_median, energy_uj, flash_bytes, sram_bytes, arena_bytes, accuracy, ...
    #[arg(long, default_value = "latency_median")]
    pub metric: String,
    /// Divide each row by its cell where COLUMN = VALUE (one of --cols), e.g. variant=int8.
    #[arg(long)]
    pub relative_to: Option<String>,
    /// Order the rows by their cell where COLUMN = VALUE (one of --cols),
    /// the worst first, e.g. runtime=bench.
    #[arg(long)]
    pub worst_first: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: ReportFormat,
}

/// Arguments of `bench merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// The shard run directories.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The merged run directory to create.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `bench compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// The baseline run directory.
    pub baseline: PathBuf,
    /// The run directory to judge.
    pub current: PathBuf,
    /// Percent a figure may worsen by before it is a regression.
    #[arg(long, default_value_t = 3.0, value_parser = non_negative)]
    pub threshold: f64,
    /// A timing must also worsen by more than this many MADs of the runs.
    #[arg(long, default_value_t = 3.0, value_parser = non_negative)]
    pub noise_mads: f64,
    /// Output format.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: ShowFormat,
}

/// Arguments of `bench probes`.
#[derive(Args)]
pub struct ProbesArgs {
    /// Instead, list the chip names probe-rs knows that contain this text.
    #[arg(long)]
    pub chips: Option<String>,
}

/// Arguments of `bench show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: ShowFormat,
    /// Accuracy drop, in percent, the best-threshold summary of a sweep allows.
    #[arg(long, default_value_t = 1.0, value_parser = percent)]
    pub accuracy_drop: f64,
}

/// A finite number >= 0 (a NaN or negative threshold would turn a gate off).
fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a finite number >= 0")),
    }
}

/// A percentage from 0 to 100.
fn percent(text: &str) -> Result<f64, String> {
    non_negative(text).and_then(|x| {
        if x <= 100.0 {
            Ok(x)
        } else {
            Err(format!("`{text}` is more than 100 percent"))
        }
    })
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListWhat {
    Targets,
    Models,
    /// Each target's energy and cycle model, and each calibration against its published energies.
    Energy,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Terminal,
    Md,
    Latex,
    Csv,
}

impl From<ReportFormat> for Format {
    fn from(f: ReportFormat) -> Self {
        match f {
            ReportFormat::Terminal => Format::Terminal,
            ReportFormat::Md => Format::Markdown,
            ReportFormat::Latex => Format::Latex,
            ReportFormat::Csv => Format::Csv,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    Terminal,
    Md,
    Csv,
}

impl From<ShowFormat> for Format {
    fn from(f: ShowFormat) -> Self {
        match f {
            ShowFormat::Terminal => Format::Terminal,
            ShowFormat::Md => Format::Markdown,
            ShowFormat::Csv => Format::Csv,
        }
    }
}
