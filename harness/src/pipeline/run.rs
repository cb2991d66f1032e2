//! `bench run` and `--resume`: open the run directory (an unfinished
//! manifest and an empty results table from the first moment), then the
//! stages in order: prepare, build, run the jobs (each stored as it ends),
//! finish. A job that fails is stored as failed with its reason; the others
//! go on.

use super::build::{build_programs, Programs};
use super::finish::{finish, Tables};
use super::job::{layer_rows, run_job, JobContext};
use super::prepare::{prepare_variants, Variants};
use super::Progress;
use crate::accuracy::sweep::{self, SweepInput};
use crate::input::plan::Job;
use crate::input::suite::Suite;
use crate::input::target::Target;
use crate::results::figures::Status;
use crate::results::manifest;
use crate::results::store::{self, ExitRow, MemoryRow, Row, RunWriter, StoreError, SweepRow};
use std::path::{Path, PathBuf};

/// What `bench run` produced.
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// One row per job.
    pub rows: Vec<Row>,
    /// One row per threshold of every swept job.
    pub sweep: Vec<SweepRow>,
    /// One row per exit of every swept job.
    pub exits: Vec<ExitRow>,
    /// Plots written into the run directory, or why there are none.
    pub plots: Result<Vec<PathBuf>, String>,
    /// A signal stopped the run before every job ran (the rest can be resumed).
    pub interrupted: bool,
}

/// How `bench run` was asked to run.
pub struct RunOptions<'a> {
    /// Results root: the run goes to `<out>/<suite>/<run-id>/`.
    pub out: &'a Path,
    /// The command line, for the manifest.
    pub command: &'a [String],
    /// Also profile every layer of one inference per job.
    pub profile: bool,
    /// Time clock-timed DUT jobs by MLPerf Tiny's run rules (five windows
    /// of at least 10 s, the median).
    pub mlperf: bool,
    /// The slice of the plan these jobs are, if sharded.
    pub shard: Option<crate::input::plan::Shard>,
    /// An interrupted run directory to finish instead of starting a new one.
    pub resume: Option<&'a Path>,
}

/// Checks that `dir` is a run of this suite (same file, targets and shard)
/// that can be resumed, and locks it: the lock must be held until the run ends.
pub fn resumable(
    dir: &Path,
    suite: &Suite,
    targets: &[Target],
    shard: Option<crate::input::plan::Shard>,
) -> Result<store::RunLock, String> {
    let manifest =
        crate::results::manifest::read(dir).map_err(|e| format!("failed to resume: {e}"))?;
    let lock = store::RunLock::acquire(dir)
        .map_err(|e| format!("failed to resume {}: {e}", dir.display()))?;
    if manifest["suite"]["sha256"].as_str()
        != Some(&crate::results::manifest::sha256(suite.text.as_bytes()))
    {
        return Err(format!(
            "failed to resume {}: the suite file changed since the run started; start a new run",
            dir.display()
        ));
    }
    let before: Vec<&str> = manifest["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let now: Vec<&str> = targets.iter().map(|t| t.target.name.as_str()).collect();
    if before != now {
        return Err(format!(
            "failed to resume {}: it ran on {}, not {}",
            dir.display(),
            before.join(", "),
            now.join(", ")
        ));
    }
    if manifest["shard"].as_str().map(String::from) != shard.map(|s| s.to_string()) {
        return Err(format!(
            "failed to resume {}: it ran as shard {}, give the same --shard",
            dir.display(),
            manifest["shard"]
        ));
    }
    Stored::read(dir)
        .map(|_| lock)
        .map_err(|e| format!("failed to resume {}: {e}", dir.display()))
}

/// Runs `jobs` and stores the results in a new run directory under
/// `options.out`, or in the run `options.resume` names.
pub fn run(
    suite: &Suite,
    targets: &[Target],
    jobs: &[Job],
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<RunOutcome, StoreError> {
    let (started, source) = (jiff::Timestamp::now(), manifest::Source::now());
    let unfinished = |run_id: &str| {
        let start = (started, &source);
        let mut m = manifest::manifest(run_id, (suite, targets), &[], start, options.command);
        m["shard"] = options.shard.map(|s| s.to_string()).into();
        m["finished"] = serde_json::Value::Null;
        m
    };
    let (run_id, dir, mut writer) = open(options, &suite.name, unfinished)?;
    let earlier_manifest = options.resume.map(|_| writer.manifest().clone());
    let mut stored = match options.resume {
        Some(_) => Stored::read(&dir)?,
        None => Stored::default(),
    };
    // A resumed run keeps every job it stored and runs the others.
    let remaining: Vec<Job> = jobs
        .iter()
        .filter(|j| {
            !stored
                .rows
                .iter()
                .any(|r| r.job.as_deref() == Some(j.id.as_str()))
        })
        .cloned()
        .collect();
    let blobs = dir.join("models");
    std::fs::create_dir_all(&blobs).map_err(|error| StoreError::Io {
        action: "create",
        path: blobs.clone(),
        error,
    })?;
    let variants = prepare_variants(suite, &remaining, &blobs, progress);
    store_memory_rows(
        &mut stored,
        variants.memory_rows(suite, &run_id),
        &dir,
        &mut writer,
    )?;
    let programs = build_programs(suite, targets, &remaining, &variants, progress);
    let stage = JobStage {
        suite,
        targets,
        variants: &variants,
        programs: &programs,
        profile: options.profile,
        mlperf: options.mlperf,
        run_id: &run_id,
        dir: &dir,
        order: jobs.iter().map(|j| j.id.as_str()).collect(),
    };
    run_jobs(&stage, &remaining, &mut stored, &mut writer, progress)?;

    let entries = programs.manifest_entries(suite, targets);
    let start = (started, &source);
    let mut m = manifest::manifest(&run_id, (suite, targets), &entries, start, options.command);
    m["shard"] = options.shard.map(|s| s.to_string()).into();
    if let Some(earlier) = &earlier_manifest {
        manifest::resumed(&mut m, earlier);
    }
    let interrupted = crate::device::process::interrupted();
    if interrupted {
        m["finished"] = serde_json::Value::Null;
        m["interrupted"] = true.into();
    }
    let tables = Tables {
        rows: &stored.rows,
        sweep: &stored.sweep,
        exits: &stored.exits,
        memory: &stored.memory,
    };
    let plots = finish(&mut writer, &dir, m, tables)?;
    Ok(RunOutcome {
        dir,
        rows: stored.rows,
        sweep: stored.sweep,
        exits: stored.exits,
        plots,
        interrupted,
    })
}

/// The run directory to write: a new one with an unfinished manifest and an
/// empty results table, so an interrupted run can be read and resumed, or
/// the one `--resume` names.
fn open(
    options: &RunOptions,
    suite: &str,
    unfinished: impl Fn(&str) -> serde_json::Value,
) -> Result<(String, PathBuf, RunWriter), StoreError> {
    match options.resume {
        Some(dir) => {
            let earlier = manifest::read(dir)?;
            let run_id = dir
                .file_name()
                .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
            Ok((
                run_id,
                dir.to_path_buf(),
                RunWriter::open(dir, earlier, None),
            ))
        }
        None => store::create_run_dir(options.out, suite, |building, run_id| {
            let lock = store::RunLock::acquire(building)?;
            let mut writer = RunWriter::open(building, serde_json::json!({}), Some(lock));
            writer.set_manifest(unfinished(run_id))?;
            writer.write_table::<Row>(&[])?;
            Ok(writer)
        }),
    }
}

/// What the job stage works with.
struct JobStage<'a> {
    suite: &'a Suite,
    targets: &'a [Target],
    variants: &'a Variants,
    programs: &'a Programs,
    profile: bool,
    mlperf: bool,
    run_id: &'a str,
    dir: &'a Path,
    /// Every job id of the plan, in order: rows are stored in this order.
    order: Vec<&'a str>,
}

/// Stage 3: runs every job and stores it as soon as it ends (one manifest
/// update per job), so a killed run keeps every job before the one it was on.
fn run_jobs(
    stage: &JobStage,
    jobs: &[Job],
    stored: &mut Stored,
    writer: &mut RunWriter,
    progress: &mut dyn Progress,
) -> Result<(), StoreError> {
    let position = |job: &Option<String>| {
        stage
            .order
            .iter()
            .position(|j| Some(*j) == job.as_deref())
            .unwrap_or(usize::MAX)
    };
    progress.start("run jobs", jobs.len());
    for job in jobs {
        // Every job before this one is stored; this one and the rest are left to --resume.
        if crate::device::process::interrupted() {
            break;
        }
        progress.step(&job.id);
        // A job a signal cut short is not stored: --resume runs it again.
        let Some((row, mut files)) = one_job(stage, job, stored)? else {
            break;
        };
        stored.rows.push(row);
        stored.rows.sort_by_key(|r| position(&r.job));
        files.extend(store::table_files(stage.dir, &stored.rows)?);
        writer.write_files(&files)?;
    }
    progress.finish();
    Ok(())
}

/// The row every job starts from: what it is.
fn new_row(stage: &JobStage, job: &Job) -> Row {
    let variant = &stage.suite.variants[job.variant];
    Row {
        run_id: Some(stage.run_id.into()),
        suite: Some(stage.suite.name.clone()),
        job: Some(job.id.clone()),
        model: Some(stage.suite.models[variant.model].name.clone()),
        variant: Some(variant.name.clone()),
        target: Some(stage.targets[job.target].target.name.clone()),
        runtime: Some(stage.suite.runtime_name(job.runtime).into()),
        quant: Some(variant.summary.quant.clone()),
        pruning: Some(variant.summary.pruning.clone()),
        memory: Some(variant.recipe.memory.name().into()),
        exits: Some(variant.summary.exits.clone()),
        threshold: job.threshold.map(f64::from),
        warmup: Some(stage.suite.warmup as i64),
        ..Row::default()
    }
}

/// Runs one job: its row, and the files of the other tables it added to
/// (profile layers, sweep and exit rows), ready to store; `None` when a
/// signal came while it ran.
fn one_job(
    stage: &JobStage,
    job: &Job,
    stored: &mut Stored,
) -> Result<Option<(Row, store::Files)>, StoreError> {
    let suite = stage.suite;
    let variant = &suite.variants[job.variant];
    let mut row = new_row(stage, job);
    let prepared = &stage.variants.prepared[&job.variant];
    let evaluation = stage.variants.evaluations.get(&job.variant);
    let dataset = suite.models[variant.model]
        .dataset
        .map(|d| &suite.datasets[d]);
    if let (Some(Ok(e)), Some(dataset)) = (evaluation, dataset) {
        if let Some((correct, n)) = e.accuracy {
            row.accuracy = Some(correct as f64 / n as f64);
            row.accuracy_source = Some(format!("{}, {n} samples, host reference", dataset.name));
        }
    }
    let sweep_input = match (prepared, evaluation) {
        (Ok((p, _)), Some(Ok(e))) if variant.sweep => Some(SweepInput {
            prepared: p,
            points: &e.points,
            inputs: &e.inputs,
            validate: variant.validate,
            warmup: suite.warmup,
            repetitions: suite.repetitions,
        }),
        _ => None,
    };
    let ctx = JobContext {
        suite,
        job,
        target: &stage.targets[job.target],
        prepared,
        program: stage.programs.of(stage.targets, job),
        profile: stage.profile,
        mlperf: stage.mlperf,
        sweep: sweep_input.as_ref(),
        dir: stage.dir,
    };
    let result = match evaluation {
        Some(Err(e)) => Err(format!("failed to evaluate on the dataset: {e}")),
        _ => run_job(&ctx, &mut row),
    };
    if crate::device::process::interrupted() {
        return Ok(None);
    }
    let result = result.and_then(|done| match (&sweep_input, &done.sweep, dataset) {
        (Some(input), Some(device), Some(dataset)) => {
            let (s, e) = sweep::rows(&row, dataset, input, device)?;
            stored.sweep.extend(s);
            stored.exits.extend(e);
            Ok(done)
        }
        _ => Ok(done),
    });
    // The job's tables are stored together.
    let mut files = Vec::new();
    match result {
        Ok(done) => {
            row.status = Some(Status::Ok.label().into());
            if let (false, Ok((p, _))) = (done.ops.is_empty(), prepared) {
                let blob = p.lowered.blob.as_bytes();
                stored
                    .layers
                    .extend(layer_rows(&row, &p.graph, blob, &done.ops, done.profiled));
                files.extend(store::table_files(stage.dir, &stored.layers)?);
            }
            if done.sweep.is_some() {
                files.extend(store::table_files(stage.dir, &stored.sweep)?);
                files.extend(store::table_files(stage.dir, &stored.exits)?);
            }
        }
        Err(e) => {
            row.status = Some(Status::Failed.label().into());
            row.error = Some(e);
        }
    }
    Ok(Some((row, files)))
}

/// The tables a run directory already holds (all empty for a new run).
#[derive(Default)]
struct Stored {
    rows: Vec<Row>,
    layers: Vec<store::LayerRow>,
    sweep: Vec<SweepRow>,
    exits: Vec<ExitRow>,
    memory: Vec<MemoryRow>,
}

/// Stores the memory timelines of the variants just prepared, in place of
/// any a resumed run stored for them.
fn store_memory_rows(
    stored: &mut Stored,
    rows: Vec<MemoryRow>,
    dir: &Path,
    writer: &mut RunWriter,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let key = |r: &MemoryRow| (r.model.clone(), r.variant.clone());
    stored
        .memory
        .retain(|old| !rows.iter().any(|new| key(new) == key(old)));
    stored.memory.extend(rows);
    writer.write_files(&store::table_files(dir, &stored.memory)?)
}

impl Stored {
    fn read(dir: &Path) -> Result<Self, store::StoreError> {
        Ok(Self {
            rows: store::read_optional(dir)?,
            layers: store::read_optional(dir)?,
            sweep: store::read_optional(dir)?,
            exits: store::read_optional(dir)?,
            memory: store::read_optional(dir)?,
        })
    }
}
