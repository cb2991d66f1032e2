//! One function per `bench` command. Each returns `Ok` or the
//! [`BenchError`] that names what failed and carries the exit code.

use super::progress::Bar;
use super::*;
use harness::error::BenchError;
use harness::input::{plan, suite, target};
use harness::pipeline::run::{resumable, run, RunOptions, RunOutcome};
use harness::report::tables;
use harness::results::store::{self, ExitRow, SweepRow};
use harness::results::{compare, manifest};

/// Runs the command `cli` names.
pub fn dispatch(cli: Cli) -> Result<(), BenchError> {
    match cli.command {
        Command::Run(args) => bench_run(args),
        Command::Validate(args) => validate(args),
        Command::List(args) => list(args),
        Command::Infer(args) => infer(args),
        Command::Report(args) => report(args),
        Command::Merge(args) => merge(args),
        Command::Compare(args) => bench_compare(args),
        Command::Probes(args) => probes(args.chips.as_deref()),
        Command::Show(args) => show(args),
    }
}

/// Loads a suite and its targets (or the `--target` ones), all checked.
fn load(
    suite_path: &std::path::Path,
    override_targets: &[String],
) -> Result<(suite::Suite, Vec<target::Target>), BenchError> {
    let suite = suite::load(suite_path)?;
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
        return Err(BenchError::invalid(format!(
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
        return Err(BenchError::invalid(errors.join("\n")));
    }
    Ok((suite, targets))
}

/// The jobs of `bench run`: the plan, filtered by `--only` and `--shard`.
fn jobs_of(
    args: &RunArgs,
    suite: &suite::Suite,
    targets: &[target::Target],
) -> Result<Vec<plan::Job>, BenchError> {
    let only = match args.only.as_deref().map(globset::Glob::new) {
        Some(Ok(g)) => Some(g.compile_matcher()),
        Some(Err(e)) => return Err(BenchError::invalid(format!("--only: {e}"))),
        None => None,
    };
    let jobs = plan::plan(suite, targets, only.as_ref()).map_err(BenchError::invalid)?;
    for note in plan::notes(suite, targets) {
        eprintln!("note: {note}");
    }
    let jobs = match args.shard {
        Some(s) => s.select(jobs),
        None => jobs,
    };
    if jobs.is_empty() {
        return Err(BenchError::invalid(
            "no job to run: the suite, --only and --shard select nothing",
        ));
    }
    Ok(jobs)
}

/// `bench run`.
fn bench_run(args: RunArgs) -> Result<(), BenchError> {
    let (suite, targets) = load(&args.suite, &args.targets)?;
    let jobs = jobs_of(&args, &suite, &targets)?;
    // Held until the run ends: a second bench on the same directory is refused.
    let _lock = match args.resume.as_deref() {
        Some(dir) => {
            Some(resumable(dir, &suite, &targets, args.shard).map_err(BenchError::Invalid)?)
        }
        None => None,
    };
    harness::device::process::handle_signals();
    let command: Vec<String> = std::env::args().collect();
    let options = RunOptions {
        out: &args.out,
        command: &command,
        profile: args.profile,
        mlperf: args.mlperf,
        shard: args.shard,
        resume: args.resume.as_deref(),
    };
    let outcome = run(&suite, &targets, &jobs, &options, &mut Bar(None))?;
    print_outcome(&outcome, &args);
    if outcome.interrupted {
        return Err(BenchError::Interrupted {
            stored: outcome.rows.len(),
            total: jobs.len(),
            suite: suite.path.clone(),
            dir: outcome.dir,
        });
    }
    let failed = outcome.rows.iter().filter(|r| !r.is_ok()).count();
    if failed > 0 {
        return Err(BenchError::JobsFailed {
            failed,
            total: outcome.rows.len(),
        });
    }
    Ok(())
}

/// The tables, plots and directory of a finished `bench run`.
fn print_outcome(outcome: &RunOutcome, args: &RunArgs) {
    let drop = args.accuracy_drop / 100.0;
    print!("{}", tables::render(&outcome.rows, Format::Terminal));
    let sweep = harness::report::sweep::render_sweep(
        &outcome.rows,
        &outcome.sweep,
        &outcome.exits,
        drop,
        Format::Terminal,
    );
    print!("{sweep}");
    print_plots(&outcome.plots);
    if args.profile {
        match store::read_layers(&outcome.dir) {
            Ok(layers) => print!("{}", tables::render_layers(&layers, Format::Terminal)),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    println!("\nresults: {}", outcome.dir.display());
}

fn print_plots(plots: &Result<Vec<PathBuf>, String>) {
    match plots {
        Ok(files) => files.iter().for_each(|f| println!("plot: {}", f.display())),
        Err(e) => eprintln!("warning: no plots: {e}"),
    }
}

/// `bench validate`.
fn validate(args: ValidateArgs) -> Result<(), BenchError> {
    let (suite, targets) = load(&args.suite, &[])?;
    let jobs = plan::plan(&suite, &targets, None).map_err(BenchError::invalid)?;
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
    for note in plan::notes(&suite, &targets) {
        eprintln!("note: {note}");
    }
    Ok(())
}

/// `bench list targets|models`.
fn list(args: ListArgs) -> Result<(), BenchError> {
    match args.what {
        ListWhat::Targets => {
            let dir = target::targets_dir();
            for name in target::available(&dir) {
                match target::load(&dir, &name) {
                    Ok(t) => println!("{name:<14} {:<28} {}", t.triple(), t.target.description),
                    Err(e) => println!("{name:<14} (invalid: {e})"),
                }
            }
        }
        ListWhat::Energy => list_energy(),
        ListWhat::Models => {
            for name in harness::model::zoo::NAMES {
                let g = harness::model::zoo::build(name).expect("listed");
                let s = g.tensors[g.input].shape;
                // Zoo models are architectures: a variant decides which layers are binary.
                println!(
                    "{name:<20} input {}x{}x{}  {:>12} MACs {:>9} params",
                    s.h,
                    s.w,
                    s.c,
                    tables::grouped(g.macs() as i64),
                    tables::grouped(g.params() as i64)
                );
            }
        }
    }
    Ok(())
}

/// `bench list energy`: every target's energy and cycle models (Markdown),
/// then each calibration's published energies beside its model's.
fn list_energy() {
    let dir = target::targets_dir();
    println!("| target | energy model | cycles under QEMU |\n|---|---|---|");
    let mut calibrations = Vec::new();
    for name in target::available(&dir) {
        let Ok(t) = target::load(&dir, &name) else {
            continue;
        };
        let energy = t.energy.as_ref().map_or("none".to_string(), |e| {
            match (&e.calibrated, e.model_ua_per_mhz, e.model_volts) {
                (Some(c), _, Some(v)) => {
                    calibrations.push((c.clone(), e.model_ua_per_mhz));
                    format!("{:.1} uA/MHz x {v} V, calibrated on {} ({} published energies, each within {:.1}%)", c.ua_per_mhz(), c.name, c.measurements.len(), c.worst_error() * 100.0)
                }
                (None, Some(ua), Some(v)) => format!("{ua} uA/MHz x {v} V, datasheet, not calibrated"),
                _ => "incomplete".into(),
            }
        });
        let cycles = t
            .cycles
            .as_ref()
            .map_or("instructions only".to_string(), |c| {
                format!(
                    "{} timings, {} flash wait states",
                    c.core, c.flash_wait_states
                )
            });
        println!("| `{name}` | {energy} | {cycles} |");
    }
    calibrations.dedup_by(|a, b| a.0.name == b.0.name);
    for (c, datasheet) in calibrations {
        println!(
            "\n{}: {} ({}, {} at {} MHz and {} V)\n",
            c.name, c.source, c.software, c.board, c.clock_mhz, c.volts
        );
        print!("{}", c.table(datasheet));
    }
}

/// Fails unless `output` can be written, before any inference runs (a FIFO
/// would block); leaves no file behind that was not there.
fn check_writable(output: &std::path::Path) -> Result<(), BenchError> {
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
        let action = format!("create {} (nothing ran)", output.display());
        return Err(BenchError::internal(action, e));
    }
    if !existed {
        let _ = std::fs::remove_file(output);
    }
    Ok(())
}

/// `bench infer`: nothing runs unless the model, the target and the output file are all usable.
fn infer(args: InferArgs) -> Result<(), BenchError> {
    use harness::pipeline::infer::{self, InferError};
    let graph = infer::resolve_model(&args.model).map_err(BenchError::invalid)?;
    let target = target::load(&target::targets_dir(), &args.target)?;
    check_writable(&args.output)?;
    let prepared = infer::as_is(&graph).map_err(BenchError::invalid)?;
    let input = graph.tensors[graph.input].shape;
    if graph.layout.differs(input) {
        eprintln!(
            "note: {} is NCHW: inputs are read as {:?} and outputs written in the model's layout; bench transposes once at each end",
            graph.name,
            graph.layout.item_dims(input)
        );
    }
    let work =
        tempfile::tempdir().map_err(|e| BenchError::internal("create a work directory", e))?;
    let timeout = std::time::Duration::from_secs(args.timeout);
    let s = match infer::infer(
        &prepared,
        &target,
        &args.input,
        &args.output,
        work.path(),
        timeout,
    ) {
        Ok(s) => s,
        Err(e @ InferError::Invalid(_)) => return Err(BenchError::invalid(e)),
        Err(e) => return Err(BenchError::DeviceFailed(e.to_string())),
    };
    println!(
        "{}: {} inputs on {}; outputs {:?} written to {}; {} of {} equal to the host reference",
        graph.name,
        s.inputs,
        target.target.name,
        s.output_shape,
        args.output.display(),
        s.matching_reference,
        s.inputs
    );
    if s.matching_reference != s.inputs {
        let differ = s.inputs - s.matching_reference;
        return Err(BenchError::DeviceFailed(format!(
            "{differ} of {} outputs differ from the host reference",
            s.inputs
        )));
    }
    Ok(())
}

/// The provenance line of a run, or why it cannot be read.
fn provenance(dir: &std::path::Path) -> String {
    manifest::read(dir).map_or_else(|e| e.to_string(), |m| manifest::provenance_line(&m))
}

/// One table of every run, pooled.
fn pooled<T>(
    runs: &[std::path::PathBuf],
    read: fn(&std::path::Path) -> Result<Vec<T>, store::StoreError>,
) -> Result<Vec<T>, BenchError> {
    let mut all = Vec::new();
    for dir in runs {
        all.extend(read(dir).map_err(BenchError::invalid)?);
    }
    Ok(all)
}

/// An option's `COLUMN=VALUE`, split.
fn column_value(
    given: Option<&str>,
    option: &str,
    example: &str,
) -> Result<Option<(String, String)>, BenchError> {
    match given.map(|g| g.split_once('=')) {
        None => Ok(None),
        Some(Some((column, value))) => Ok(Some((column.to_string(), value.to_string()))),
        Some(None) => Err(BenchError::invalid(format!(
            "{option}: expected COLUMN=VALUE, e.g. {example}"
        ))),
    }
}

/// `bench report`.
fn report(args: ReportArgs) -> Result<(), BenchError> {
    let provenance: Vec<String> = args.runs.iter().map(|d| provenance(d)).collect();
    let relative_to = column_value(args.relative_to.as_deref(), "--relative-to", "variant=int8")?;
    let worst_first = column_value(
        args.worst_first.as_deref(),
        "--worst-first",
        "runtime=bench",
    )?;
    let labels = |given: Option<Vec<String>>, default: &str| {
        given.unwrap_or_else(|| default.split(',').map(String::from).collect())
    };
    let (rows, cols) = match args.layers {
        false => (
            labels(args.rows, "model,variant"),
            labels(args.cols, "target"),
        ),
        true => (
            labels(args.rows, "model,target,layer"),
            labels(args.cols, "variant"),
        ),
    };
    let spec = harness::report::pivot::PivotSpec {
        rows,
        cols,
        // A layer's one figure is what it took, in its target's unit.
        metric: if args.layers {
            "count".to_string()
        } else {
            args.metric
        },
        relative_to,
        worst_first,
    };
    let p = if args.layers {
        let layers = pooled(&args.runs, store::read_layers)?;
        if layers.is_empty() {
            return Err(BenchError::invalid(
                "--layers: no profiled operators in these runs; run `bench run --profile` first",
            ));
        }
        harness::report::pivot::pivot_layers(&layers, &spec)
    } else {
        harness::report::pivot::pivot(&pooled(&args.runs, store::read_rows)?, &spec)
    }
    .map_err(BenchError::invalid)?;
    print!(
        "{}",
        harness::report::pivot::render_pivot(&p, &provenance, args.format.into())
    );
    Ok(())
}

/// `bench merge`.
fn merge(args: MergeArgs) -> Result<(), BenchError> {
    let merged =
        harness::pipeline::merge::merge(&args.shards, &args.out).map_err(BenchError::invalid)?;
    print!("{}", tables::render(&merged.rows, Format::Terminal));
    print_plots(&merged.plots);
    println!(
        "\nmerged {} shards, {} jobs: {}",
        args.shards.len(),
        merged.rows.len(),
        merged.dir.display()
    );
    Ok(())
}

/// `bench compare`.
fn bench_compare(args: CompareArgs) -> Result<(), BenchError> {
    let b = store::read_rows(&args.baseline).map_err(BenchError::invalid)?;
    let c = store::read_rows(&args.current).map_err(BenchError::invalid)?;
    let policy = compare::Policy {
        threshold: args.threshold / 100.0,
        noise_mads: args.noise_mads,
    };
    let comparison = compare::compare(&b, &c, policy);
    print!(
        "{}",
        tables::render_comparison(&comparison, args.format.into())
    );
    // Counts move with the toolchain and the emulator too: say what each run was made with.
    for (what, dir) in [("baseline", &args.baseline), ("current", &args.current)] {
        println!("{what}: {}", provenance(dir));
    }
    if comparison.regressed() {
        return Err(BenchError::Regressed {
            baseline: args.baseline,
            current: args.current,
            threshold: args.threshold,
        });
    }
    Ok(())
}

/// `bench show`.
fn show(args: ShowArgs) -> Result<(), BenchError> {
    let dir = &args.run_dir;
    let rows = store::read_rows(dir).map_err(BenchError::invalid)?;
    let format = args.format.into();
    print!("{}", tables::render(&rows, format));
    let sweep = store::read_optional::<SweepRow>(dir).map_err(BenchError::invalid)?;
    let exits = store::read_optional::<ExitRow>(dir).map_err(BenchError::invalid)?;
    let drop = args.accuracy_drop / 100.0;
    print!(
        "{}",
        harness::report::sweep::render_sweep(&rows, &sweep, &exits, drop, format)
    );
    let layers = store::read_layers(dir).map_err(BenchError::invalid)?;
    print!("{}", tables::render_layers(&layers, format));
    for plot in harness::report::plot::existing(dir) {
        println!("plot: {}", plot.display());
    }
    Ok(())
}

/// `bench probes`: what probe-rs sees on this machine, or the chips it knows.
#[cfg(feature = "probe-rs")]
fn probes(chips: Option<&str>) -> Result<(), BenchError> {
    if let Some(part) = chips {
        let names = harness::device::probe::chips_like(part, usize::MAX);
        if names.is_empty() {
            return Err(BenchError::invalid(format!(
                "probe-rs knows no chip whose name contains `{part}`"
            )));
        }
        names.iter().for_each(|n| println!("{n}"));
        return Ok(());
    }
    let probes = harness::device::probe::list();
    if probes.is_empty() {
        println!("no debug probe attached (USB probes need read access to their device node; see the README's board section)");
    }
    probes.iter().for_each(|p| println!("{p}"));
    Ok(())
}

#[cfg(not(feature = "probe-rs"))]
fn probes(_chips: Option<&str>) -> Result<(), BenchError> {
    Err(BenchError::invalid(
        "this bench was built without the probe-rs feature",
    ))
}
