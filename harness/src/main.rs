//! The `bench` command line.

use clap::{Parser, Subcommand, ValueEnum};
use harness::exit;
use harness::input::{plan, suite, target};
use harness::pipeline::Progress;
use harness::report::tables::{self, Format};
use harness::results::store;
use harness::results::store::{ExitRow, SweepRow};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// Benchmarks and profiles neural-network inference across hardware targets.
#[derive(Parser)]
#[command(name = "bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a suite: every model variant on every target; store and print the results.
    Run {
        /// The suite file.
        suite: PathBuf,
        /// Run on these targets instead of the suite's (repeatable).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Only jobs whose id (`model/variant[@threshold]/target`) matches this glob.
        #[arg(long)]
        only: Option<String>,
        /// Results root; the run goes to `<out>/<suite>/<run-id>/`.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Also time every layer of one inference per job (stored as `layers.csv`).
        #[arg(long)]
        profile: bool,
        /// Accuracy drop, in percent, the best-threshold summary of a sweep allows.
        #[arg(long, default_value_t = 1.0, value_parser = percent)]
        accuracy_drop: f64,
        /// Run only slice i of n of the job matrix (round robin over the plan), e.g. 2/3.
        #[arg(long)]
        shard: Option<harness::input::plan::Shard>,
        /// Finish this interrupted run directory: run the jobs it has not stored.
        #[arg(long)]
        resume: Option<PathBuf>,
    },
    /// Parse, expand and check a suite and its targets without running anything.
    Validate {
        /// The suite file.
        suite: PathBuf,
    },
    /// List what bench knows.
    List {
        /// targets or models.
        what: ListWhat,
    },
    /// Run one model, as it is, over the inputs of a .npy file and write its outputs to another.
    Infer {
        /// A .tflite file or a zoo model name.
        model: String,
        /// Inputs: an array of shape [N, *input_shape] (or exactly input_shape) in the model's input type.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the outputs, [N, *output_shape] in the model's output type.
        #[arg(long)]
        output: PathBuf,
        /// The target to run on.
        #[arg(long, default_value = "host")]
        target: String,
        /// Seconds each inference may take (at most a week).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=harness::input::suite::MAX_TIMEOUT_SECONDS))]
        timeout: u64,
    },
    /// Pivot stored runs into a table for a paper: rows x columns of one figure.
    Report {
        /// Run directories (their rows are pooled).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Result columns that label the rows.
        #[arg(long, value_delimiter = ',', default_value = "model,variant")]
        rows: Vec<String>,
        /// Result columns that label the columns.
        #[arg(long, value_delimiter = ',', default_value = "target")]
        cols: Vec<String>,
        /// The figure: latency_median, energy_uj, flash_bytes, sram_bytes, arena_bytes, accuracy, ...
        #[arg(long, default_value = "latency_median")]
        metric: String,
        /// Divide each row by its cell where COLUMN = VALUE (one of --cols), e.g. variant=int8.
        #[arg(long)]
        relative_to: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "terminal")]
        format: ReportFormat,
    },
    /// Join the runs of `bench run --shard i/n` into one run.
    Merge {
        /// The shard run directories.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The merged run directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare a run with a baseline run, job by job; exit 4 if it regressed.
    Compare {
        /// The baseline run directory.
        baseline: PathBuf,
        /// The run directory to judge.
        current: PathBuf,
        /// Percent a figure may worsen by before it is a regression.
        #[arg(long, default_value_t = 3.0, value_parser = non_negative)]
        threshold: f64,
        /// A timing must also worsen by more than this many MADs of the runs.
        #[arg(long, default_value_t = 3.0, value_parser = non_negative)]
        noise_mads: f64,
        /// Output format.
        #[arg(long, value_enum, default_value = "terminal")]
        format: ShowFormat,
    },
    /// List the debug probes attached to this machine (for `runner = "probe-rs"` targets).
    Probes {
        /// Instead, list the chip names probe-rs knows that contain this text.
        #[arg(long)]
        chips: Option<String>,
    },
    /// Print the tables of a stored run.
    Show {
        /// The run directory.
        run_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "terminal")]
        format: ShowFormat,
        /// Accuracy drop, in percent, the best-threshold summary of a sweep allows.
        #[arg(long, default_value_t = 1.0, value_parser = percent)]
        accuracy_drop: f64,
    },
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
enum ListWhat {
    Targets,
    Models,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
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
enum ShowFormat {
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

/// A progress bar on stderr, hidden when stderr is not a terminal.
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, phase: &str, total: usize) {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        self.0 = Some(bar);
    }
    fn step(&mut self, label: &str) {
        if let Some(b) = &self.0 {
            b.set_message(label.to_string());
            b.inc(1);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

fn invalid(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit::INVALID_INPUT)
}

/// Loads a suite and its targets (or the `--target` ones), all checked.
fn load(
    suite_path: &std::path::Path,
    override_targets: &[String],
) -> Result<(suite::Suite, Vec<target::Target>), ExitCode> {
    let suite = suite::load(suite_path).map_err(invalid)?;
    let names = if override_targets.is_empty() {
        suite.targets.clone()
    } else {
        override_targets.to_vec()
    };
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        return Err(invalid(format!(
            "--target {twice} is given twice: each job id must be unique"
        )));
    }
    let dir = target::targets_dir();
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for name in &names {
        match target::load(&dir, name) {
            Ok(t) => targets.push(t),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(invalid(errors.join("\n")));
    }
    Ok((suite, targets))
}

/// `bench infer`: nothing runs unless the model, the target and the input file are all usable.
fn infer(
    model: &str,
    input: &std::path::Path,
    output: &std::path::Path,
    target_name: &str,
    timeout: u64,
) -> ExitCode {
    use harness::pipeline::infer::{self, InferError};
    let graph = match infer::resolve_model(model) {
        Ok(g) => g,
        Err(e) => return invalid(e),
    };
    let target = match target::load(&target::targets_dir(), target_name) {
        Ok(t) => t,
        Err(e) => return invalid(e),
    };
    // The output must be writable before any inference runs (a FIFO would block).
    let existed = output.exists();
    let writable = if existed && !output.is_file() {
        Err(std::io::Error::other("it exists and is not a regular file"))
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(output)
            .map(drop)
    };
    if let Err(e) = writable {
        eprintln!(
            "error: failed to create {}: {e} (nothing ran)",
            output.display()
        );
        return ExitCode::from(exit::INTERNAL);
    }
    if !existed {
        let _ = std::fs::remove_file(output);
    }
    let prepared = match infer::as_is(&graph) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    let work = match tempfile::tempdir() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: failed to create a work directory: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    match infer::infer(
        &prepared,
        &target,
        input,
        output,
        work.path(),
        std::time::Duration::from_secs(timeout),
    ) {
        Ok(s) => {
            println!(
                "{}: {} inputs on {}; outputs {:?} written to {}; {} of {} equal to the host reference",
                graph.name,
                s.inputs,
                target.target.name,
                s.output_shape,
                output.display(),
                s.matching_reference,
                s.inputs
            );
            ExitCode::from(if s.matching_reference == s.inputs {
                exit::OK
            } else {
                exit::JOBS_FAILED
            })
        }
        Err(e @ InferError::Invalid(_)) => invalid(e),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::JOBS_FAILED)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            suite,
            targets,
            only,
            out,
            profile,
            accuracy_drop,
            shard,
            resume,
        } => {
            let (suite, targets) = match load(&suite, &targets) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let only = match only.as_deref().map(globset::Glob::new) {
                Some(Ok(g)) => Some(g.compile_matcher()),
                Some(Err(e)) => return invalid(format!("--only: {e}")),
                None => None,
            };
            let jobs = match plan::plan(&suite, &targets, only.as_ref()) {
                Ok(jobs) => jobs,
                Err(e) => return invalid(e),
            };
            let jobs = match shard {
                Some(s) => s.select(jobs),
                None => jobs,
            };
            if jobs.is_empty() {
                return invalid("no job to run: the suite, --only and --shard select nothing");
            }
            // Held until the run ends: a second bench on the same directory is refused.
            let _lock = match resume
                .as_deref()
                .map(|dir| harness::pipeline::run::resumable(dir, &suite, &targets, shard))
            {
                Some(Err(e)) => return invalid(e),
                Some(Ok(lock)) => Some(lock),
                None => None,
            };
            harness::device::process::handle_signals();
            let all_jobs = jobs.len();
            let command: Vec<String> = std::env::args().collect();
            let options = harness::pipeline::run::RunOptions {
                out: &out,
                command: &command,
                profile,
                shard,
                resume: resume.as_deref(),
            };
            let outcome = match harness::pipeline::run::run(
                &suite,
                &targets,
                &jobs,
                &options,
                &mut Bar(None),
            ) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(exit::INTERNAL);
                }
            };
            print!("{}", tables::render(&outcome.rows, Format::Terminal));
            print!(
                "{}",
                tables::render_sweep(
                    &outcome.rows,
                    &outcome.sweep,
                    &outcome.exits,
                    accuracy_drop / 100.0,
                    Format::Terminal
                )
            );
            match &outcome.plots {
                Ok(files) => files.iter().for_each(|f| println!("plot: {}", f.display())),
                Err(e) => eprintln!("warning: no plots: {e}"),
            }
            if profile {
                match store::read_layers(&outcome.dir) {
                    Ok(layers) => print!("{}", tables::render_layers(&layers, Format::Terminal)),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            println!("\nresults: {}", outcome.dir.display());
            if outcome.interrupted {
                let suite_file = suite.path.display();
                eprintln!(
                    "error: stopped by a signal with {} of {} jobs stored; finish the run with: bench run {suite_file} --resume {}",
                    outcome.rows.len(),
                    all_jobs,
                    outcome.dir.display()
                );
                return ExitCode::from(harness::device::process::INTERRUPTED_EXIT);
            }
            let failed = outcome.rows.iter().filter(|r| !r.is_ok()).count();
            if failed > 0 {
                eprintln!("error: {failed} of {} jobs failed", outcome.rows.len());
                return ExitCode::from(exit::JOBS_FAILED);
            }
            ExitCode::from(exit::OK)
        }
        Command::Validate { suite } => {
            let (suite, targets) = match load(&suite, &[]) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let jobs = match plan::plan(&suite, &targets, None) {
                Ok(jobs) => jobs,
                Err(e) => return invalid(e),
            };
            println!(
                "{}: {} models, {} variants, {} targets, {} jobs",
                suite.path.display(),
                suite.models.len(),
                suite.variants.len(),
                targets.len(),
                jobs.len()
            );
            for job in &jobs {
                println!("  {}", job.id);
            }
            ExitCode::from(exit::OK)
        }
        Command::List {
            what: ListWhat::Targets,
        } => {
            let dir = target::targets_dir();
            for name in target::available(&dir) {
                match target::load(&dir, &name) {
                    Ok(t) => println!("{name:<14} {:<28} {}", t.triple(), t.target.description),
                    Err(e) => println!("{name:<14} (invalid: {e})"),
                }
            }
            ExitCode::from(exit::OK)
        }
        Command::Probes { chips } => probes(chips.as_deref()),
        Command::List {
            what: ListWhat::Models,
        } => {
            for name in harness::model::zoo::NAMES {
                let g = harness::model::zoo::build(name).expect("listed");
                let s = g.tensors[g.input].shape;
                println!(
                    "{name:<20} input {}x{}x{}  {:>12} MACs {:>12} binary ops {:>9} params",
                    s.h,
                    s.w,
                    s.c,
                    tables::grouped(g.macs() as i64),
                    tables::grouped(g.binary_ops() as i64),
                    tables::grouped(g.params() as i64)
                );
            }
            ExitCode::from(exit::OK)
        }
        Command::Infer {
            model,
            input,
            output,
            target,
            timeout,
        } => infer(&model, &input, &output, &target, timeout),
        Command::Report {
            runs,
            rows,
            cols,
            metric,
            relative_to,
            format,
        } => {
            let mut all = Vec::new();
            let mut provenance = Vec::new();
            for dir in &runs {
                match store::read_rows(dir) {
                    Ok(r) => all.extend(r),
                    Err(e) => return invalid(e),
                }
                provenance.push(harness::results::manifest::read(dir).map_or_else(
                    |e| e.to_string(),
                    |m| harness::results::manifest::provenance_line(&m),
                ));
            }
            let relative_to = match relative_to.as_deref().map(|r| r.split_once('=')) {
                None => None,
                Some(Some((column, value))) => Some((column.to_string(), value.to_string())),
                Some(None) => {
                    return invalid("--relative-to: expected COLUMN=VALUE, e.g. variant=int8")
                }
            };
            let spec = harness::report::pivot::PivotSpec {
                rows,
                cols,
                metric,
                relative_to,
            };
            match harness::report::pivot::pivot(&all, &spec) {
                Ok(p) => {
                    print!("{}", tables::render_pivot(&p, &provenance, format.into()));
                    ExitCode::from(exit::OK)
                }
                Err(e) => invalid(e),
            }
        }
        Command::Merge { shards, out } => match harness::pipeline::merge::merge(&shards, &out) {
            Ok(merged) => {
                print!("{}", tables::render(&merged.rows, Format::Terminal));
                println!(
                    "\nmerged {} shards, {} jobs: {}",
                    shards.len(),
                    merged.rows.len(),
                    merged.dir.display()
                );
                ExitCode::from(exit::OK)
            }
            Err(e) => invalid(e),
        },
        Command::Compare {
            baseline,
            current,
            threshold,
            noise_mads,
            format,
        } => {
            let (b, c) = match (store::read_rows(&baseline), store::read_rows(&current)) {
                (Ok(b), Ok(c)) => (b, c),
                (Err(e), _) | (_, Err(e)) => return invalid(e),
            };
            let policy = harness::results::compare::Policy {
                threshold: threshold / 100.0,
                noise_mads,
            };
            let comparison = harness::results::compare::compare(&b, &c, policy);
            print!("{}", tables::render_comparison(&comparison, format.into()));
            // Counts move with the toolchain and the emulator too: say what each run was made with.
            for (what, dir) in [("baseline", &baseline), ("current", &current)] {
                println!(
                    "{what}: {}",
                    harness::results::manifest::read(dir).map_or_else(
                        |e| e.to_string(),
                        |m| harness::results::manifest::provenance_line(&m)
                    )
                );
            }
            if comparison.regressed() {
                eprintln!(
                    "error: {} regressed against {} (threshold {threshold}%)",
                    current.display(),
                    baseline.display()
                );
                return ExitCode::from(exit::REGRESSED);
            }
            ExitCode::from(exit::OK)
        }
        Command::Show {
            run_dir,
            format,
            accuracy_drop,
        } => match store::read_rows(&run_dir) {
            Ok(rows) => {
                let format = format.into();
                print!("{}", tables::render(&rows, format));
                match (
                    store::read_optional::<SweepRow>(&run_dir),
                    store::read_optional::<ExitRow>(&run_dir),
                ) {
                    (Ok(sweep), Ok(exits)) => print!(
                        "{}",
                        tables::render_sweep(&rows, &sweep, &exits, accuracy_drop / 100.0, format)
                    ),
                    (Err(e), _) | (_, Err(e)) => return invalid(e),
                }
                match store::read_layers(&run_dir) {
                    Ok(layers) => print!("{}", tables::render_layers(&layers, format)),
                    Err(e) => return invalid(e),
                }
                for plot in harness::report::plot::existing(&run_dir) {
                    println!("plot: {}", plot.display());
                }
                ExitCode::from(exit::OK)
            }
            Err(e) => invalid(e),
        },
    }
}

/// `bench probes`: what probe-rs sees on this machine, or the chips it knows.
#[cfg(feature = "probe-rs")]
fn probes(chips: Option<&str>) -> ExitCode {
    if let Some(part) = chips {
        let names = harness::device::probe::chips_like(part, usize::MAX);
        if names.is_empty() {
            eprintln!("error: probe-rs knows no chip whose name contains `{part}`");
            return ExitCode::from(exit::INVALID_INPUT);
        }
        names.iter().for_each(|n| println!("{n}"));
        return ExitCode::from(exit::OK);
    }
    let probes = harness::device::probe::list();
    if probes.is_empty() {
        println!("no debug probe attached (USB probes need read access to their device node; see the README's board section)");
    }
    probes.iter().for_each(|p| println!("{p}"));
    ExitCode::from(exit::OK)
}

#[cfg(not(feature = "probe-rs"))]
fn probes(_chips: Option<&str>) -> ExitCode {
    eprintln!("error: this bench was built without the probe-rs feature");
    ExitCode::from(exit::INVALID_INPUT)
}
