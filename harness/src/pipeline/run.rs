//! `bench run`: plan, prepare each variant once, build each target's device
//! program once, run every job on its device, store and render. A job that
//! fails is stored as failed with its reason; the others go on.

use crate::accuracy::evaluate::{self, SweepPoint};
use crate::accuracy::sweep::{self, DeviceSweep, SweepInput};
use crate::device::runner::{self, JobInput, Measurement};
use crate::input::plan::Job;
use crate::input::suite::Suite;
use crate::input::target::Target;
use crate::model::prepare::{self, Prepared};
use crate::results::figures::{clock_source, Status, Unit};
use crate::results::store::{self, ExitRow, Row, SweepRow};
use crate::telemetry::{elf, energy, icount, stats};
use protocol::Clock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reports progress; the CLI draws a bar, tests stay silent.
pub trait Progress {
    /// A phase with `total` steps begins.
    fn start(&mut self, phase: &str, total: usize);
    /// One step of the phase is done.
    fn step(&mut self, label: &str);
    /// The phase is over.
    fn finish(&mut self);
}

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

/// A variant's figures on its model's dataset, from the host.
struct Evaluation {
    /// The dataset's inputs as model input bytes.
    inputs: Vec<Vec<u8>>,
    /// `(correct, samples)` with no exit taken, if the dataset has labels.
    accuracy: Option<(usize, usize)>,
    /// One point per threshold, for a swept variant.
    points: Vec<SweepPoint>,
}

fn evaluation(suite: &Suite, v: usize, p: &Prepared) -> Option<Result<Evaluation, String>> {
    let variant = &suite.variants[v];
    let dataset = &suite.datasets[suite.models[variant.model].dataset?];
    Some((|| {
        let inputs = evaluate::inputs(p, dataset)?;
        let accuracy = evaluate::accuracy(p, dataset, &inputs)?;
        let points = if variant.sweep {
            evaluate::sweep(p, dataset, &inputs, &variant.thresholds)?
        } else {
            Vec::new()
        };
        Ok(Evaluation {
            inputs,
            accuracy,
            points,
        })
    })())
}

/// Fills the row figures that depend only on the prepared model.
fn model_figures(row: &mut Row, p: &Prepared) {
    let blob = p.lowered.blob.as_bytes();
    let consts = kernels::model::Model::parse(blob)
        .map(|m| m.const_bytes())
        .unwrap_or(0);
    row.arena_bytes = Some(p.lowered.arena_bytes as i64);
    row.arena_source = Some("planner".into());
    row.model_bytes = Some(blob.len() as i64);
    row.weight_bytes = Some(consts as i64);
    row.model_bytes_source = Some("blob".into());
    row.macs = Some(p.graph.macs() as i64);
    row.binary_ops = Some(p.graph.binary_ops() as i64);
    row.params = Some(p.graph.params() as i64);
    row.counts_source = Some("model".into());
}

/// Fills the measured figures of a row.
fn measured_row(row: &mut Row, m: &Measurement, reference: &[u8], heads: usize) {
    let values: Vec<f64> = m.ticks.iter().map(|&t| t as f64).collect();
    let (unit, source) = (Unit::of_clock(m.clock).label(), clock_source(m.clock));
    if let Some(s) = stats::summarize(&values) {
        row.latency_median = Some(s.median);
        row.latency_min = Some(s.min);
        row.latency_max = Some(s.max);
        row.latency_mad = Some(s.mad);
        row.latency_mean = Some(s.mean);
        row.latency_n = Some(s.n as i64);
        row.latency_outliers = Some((s.mild_outliers + s.severe_outliers) as i64);
    }
    row.latency_unit = Some(unit.into());
    // The host target's kernels depend on the CPU: its hello names them
    // (`host, avx512-vnni kernels`).
    row.latency_source = Some(match m.clock {
        Clock::HostNanos if !m.device.is_empty() => format!(
            "{source}, {}",
            m.device.strip_prefix("host, ").unwrap_or(&m.device)
        ),
        _ => source.into(),
    });
    if let Some(stack) = m.stack_peak {
        row.stack_bytes = Some(stack as i64);
        row.memory_source
            .get_or_insert_with(|| "stack painting".into());
    }
    let mut counts: Vec<String> = (0..heads)
        .map(|h| {
            format!(
                "head{h}:{}",
                m.exits.iter().filter(|&&e| e == Some(h as u8)).count()
            )
        })
        .collect();
    counts.push(format!(
        "final:{}",
        m.exits.iter().filter(|e| e.is_none()).count()
    ));
    row.exit_counts = Some(counts.join(" "));
    row.output_crc32 = Some(format!("{:08x}", crc32(&m.output)));
    row.output_matches_reference = Some(m.output == reference);
}

fn crc32(bytes: &[u8]) -> u32 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    CRC.checksum(bytes)
}

/// How `bench run` was asked to run.
pub struct RunOptions<'a> {
    /// Results root: the run goes to `<out>/<suite>/<run-id>/`.
    pub out: &'a Path,
    /// The command line, for the manifest.
    pub command: &'a [String],
    /// Also profile every layer of one inference per job.
    pub profile: bool,
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

/// Runs `jobs` and stores the results in a new run directory under `options.out`.
pub fn run(
    suite: &Suite,
    targets: &[Target],
    jobs: &[Job],
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<RunOutcome, store::StoreError> {
    let RunOptions {
        out,
        command,
        profile,
        shard,
        resume,
    } = *options;
    let started = jiff::Timestamp::now();
    let unfinished = |run_id: &str| {
        let mut manifest =
            crate::results::manifest::manifest(run_id, suite, targets, &[], started, command);
        manifest["shard"] = shard.map(|s| s.to_string()).into();
        manifest["finished"] = serde_json::Value::Null;
        manifest
    };
    // The manifest and an empty results table are there from the start, so
    // an interrupted run can be read and resumed.
    let (run_id, dir, mut writer) = match resume {
        Some(dir) => {
            let earlier = crate::results::manifest::read(dir)?;
            let run_id = dir
                .file_name()
                .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
            (
                run_id,
                dir.to_path_buf(),
                store::RunWriter::open(dir, earlier, None),
            )
        }
        None => store::create_run_dir(out, &suite.name, |building, run_id| {
            let lock = store::RunLock::acquire(building)?;
            let mut writer = store::RunWriter::open(building, serde_json::json!({}), Some(lock));
            writer.set_manifest(unfinished(run_id))?;
            writer.write_table::<Row>(&[])?;
            Ok(writer)
        })?,
    };
    let earlier_manifest = resume.map(|_| writer.manifest().clone());
    // A resumed run keeps every job it stored and runs the others; rows stay in plan order.
    let order: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let previous = match resume {
        Some(_) => Stored::read(&dir)?,
        None => Stored::default(),
    };
    let remaining: Vec<Job> = jobs
        .iter()
        .filter(|j| {
            !previous
                .rows
                .iter()
                .any(|r| r.job.as_deref() == Some(j.id.as_str()))
        })
        .cloned()
        .collect();
    let jobs = &remaining[..];
    let blobs = dir.join("models");
    std::fs::create_dir_all(&blobs).map_err(|error| store::StoreError::Io {
        action: "create",
        path: blobs.clone(),
        error,
    })?;

    // Prepare every variant the jobs need, once.
    let mut prepared: HashMap<usize, Result<(Prepared, PathBuf), String>> = HashMap::new();
    let mut evaluations: HashMap<usize, Result<Evaluation, String>> = HashMap::new();
    let mut needed: Vec<usize> = jobs.iter().map(|j| j.variant).collect();
    needed.sort_unstable();
    needed.dedup();
    progress.start("prepare models", needed.len());
    for &v in &needed {
        if crate::device::process::interrupted() {
            break;
        }
        let variant = &suite.variants[v];
        let model = &suite.models[variant.model];
        progress.step(&format!("{}/{}", model.name, variant.name));
        let result = prepare::prepare(&model.graph, &variant.recipe)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let path = blobs.join(format!("{}--{}.blob", model.name, variant.name));
                std::fs::write(&path, p.lowered.blob.as_bytes())
                    .map_err(|e| format!("failed to write {}: {e}", path.display()))?;
                Ok((p, path))
            });
        if let Ok((p, _)) = &result {
            if let Some(e) = evaluation(suite, v, p) {
                evaluations.insert(v, e);
            }
        }
        prepared.insert(v, result);
    }
    progress.finish();

    // Build each target's device program once; board firmware, which has
    // the model built in, once per model (cached by what goes in).
    let mut programs: HashMap<(usize, Option<usize>), Result<PathBuf, String>> = HashMap::new();
    let mut builds: Vec<(usize, Option<usize>)> = jobs
        .iter()
        .map(|j| {
            (
                j.target,
                targets[j.target].builds_per_model().then_some(j.variant),
            )
        })
        .collect();
    builds.sort_unstable();
    builds.dedup();
    progress.start("build device programs", builds.len());
    for &(t, variant) in &builds {
        if crate::device::process::interrupted() {
            break;
        }
        let target = &targets[t];
        progress.step(&match variant {
            Some(v) => format!(
                "{} {}/{}",
                target.target.name,
                suite.models[suite.variants[v].model].name,
                suite.variants[v].name
            ),
            None => target.target.name.clone(),
        });
        let program = match variant {
            None => crate::build::firmware::build(target).map_err(|e| e.to_string()),
            Some(v) => match &prepared[&v] {
                Ok((_, blob)) => {
                    crate::build::firmware::build_firmware(target, blob).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.clone()),
            },
        };
        programs.insert((t, variant), program);
    }
    progress.finish();

    let Stored {
        mut rows,
        mut layers,
        sweep: mut sweep_rows,
        exits: mut exit_rows,
    } = previous;
    let position = |job: &Option<String>| {
        order
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
        let variant = &suite.variants[job.variant];
        let target = &targets[job.target];
        let mut row = Row {
            run_id: Some(run_id.clone()),
            suite: Some(suite.name.clone()),
            job: Some(job.id.clone()),
            model: Some(suite.models[variant.model].name.clone()),
            variant: Some(variant.name.clone()),
            target: Some(target.target.name.clone()),
            quant: Some(variant.summary.quant.clone()),
            pruning: Some(variant.summary.pruning.clone()),
            exits: Some(variant.summary.exits.clone()),
            threshold: job.threshold.map(f64::from),
            warmup: Some(suite.warmup as i64),
            ..Row::default()
        };
        let program = &programs[&(job.target, target.builds_per_model().then_some(job.variant))];
        let evaluation = evaluations.get(&job.variant);
        if let (Some(Ok(e)), Some(d)) = (evaluation, suite.models[variant.model].dataset) {
            if let Some((correct, n)) = e.accuracy {
                row.accuracy = Some(correct as f64 / n as f64);
                row.accuracy_source = Some(format!(
                    "{}, {n} samples, host reference",
                    suite.datasets[d].name
                ));
            }
        }
        let sweep_input = match (&prepared[&job.variant], evaluation) {
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
        let result = match evaluation {
            Some(Err(e)) => Err(format!("failed to evaluate on the dataset: {e}")),
            _ => run_job(
                suite,
                job,
                target,
                &prepared[&job.variant],
                program,
                &mut row,
                profile,
                sweep_input.as_ref(),
            ),
        };
        if crate::device::process::interrupted() {
            break;
        }
        let result = result.and_then(|done| match (&sweep_input, &done.sweep) {
            (Some(input), Some(device)) => {
                let dataset = &suite.datasets[suite.models[variant.model]
                    .dataset
                    .expect("a sweep has a dataset")];
                let (s, e) = sweep::rows(&row, dataset, input, device)?;
                sweep_rows.extend(s);
                exit_rows.extend(e);
                Ok(done)
            }
            _ => Ok(done),
        });
        // The job's tables are stored together: one manifest update per job.
        let mut files = Vec::new();
        match result {
            Ok(done) => {
                row.status = Some(Status::Ok.label().into());
                if let (false, Ok((p, _))) = (done.ops.is_empty(), &prepared[&job.variant]) {
                    layers.extend(layer_rows(
                        &row,
                        &p.graph,
                        p.lowered.blob.as_bytes(),
                        &done.ops,
                    ));
                    files.extend(store::table_files(&dir, &layers)?);
                }
                if done.sweep.is_some() {
                    files.extend(store::table_files(&dir, &sweep_rows)?);
                    files.extend(store::table_files(&dir, &exit_rows)?);
                }
            }
            Err(e) => {
                row.status = Some(Status::Failed.label().into());
                row.error = Some(e);
            }
        }
        rows.push(row);
        rows.sort_by_key(|r| position(&r.job));
        files.extend(store::table_files(&dir, &rows)?);
        writer.write_files(&files)?;
    }
    progress.finish();
    let label = |v: usize| {
        format!(
            "{}/{}",
            suite.models[suite.variants[v].model].name, suite.variants[v].name
        )
    };
    let program_paths: Vec<crate::results::manifest::Program> = builds
        .iter()
        .filter_map(|key| {
            programs[key].as_ref().ok().map(|p| {
                (
                    targets[key.0].target.name.clone(),
                    key.1.map(label),
                    p.as_path(),
                )
            })
        })
        .collect();
    let mut manifest = crate::results::manifest::manifest(
        &run_id,
        suite,
        targets,
        &program_paths,
        started,
        command,
    );
    manifest["shard"] = shard.map(|s| s.to_string()).into();
    if let Some(earlier) = &earlier_manifest {
        crate::results::manifest::resumed(&mut manifest, earlier);
    }
    let interrupted = crate::device::process::interrupted();
    if interrupted {
        manifest["finished"] = serde_json::Value::Null;
        manifest["interrupted"] = true.into();
    }
    writer.set_manifest(manifest)?;
    writer.write_files(&crate::report::tables::stored_renderings(
        &rows,
        &sweep_rows,
        &exit_rows,
    ))?;
    let plots = crate::report::plot::write(&dir, &rows, &sweep_rows);
    Ok(RunOutcome {
        dir,
        rows,
        sweep: sweep_rows,
        exits: exit_rows,
        plots,
        interrupted,
    })
}

/// The tables a run directory already holds (all empty for a new run).
#[derive(Default)]
struct Stored {
    rows: Vec<Row>,
    layers: Vec<store::LayerRow>,
    sweep: Vec<SweepRow>,
    exits: Vec<ExitRow>,
}

impl Stored {
    fn read(dir: &Path) -> Result<Self, store::StoreError> {
        Ok(Self {
            rows: store::read_optional(dir)?,
            layers: store::read_optional(dir)?,
            sweep: store::read_optional(dir)?,
            exits: store::read_optional(dir)?,
        })
    }
}

/// What a job produced besides its row.
struct JobDone {
    /// Per-operator counts of a profiled inference.
    ops: Vec<(u32, f64)>,
    /// The device side of a sweep.
    sweep: Option<DeviceSweep>,
}

/// Turns device ticks into the unit the row reports: emulated instructions
/// for a timer under QEMU `-icount`, the ticks themselves otherwise.
fn tick_unit(target: &Target, clock: Clock, per_second: u64) -> (Clock, impl Fn(u64) -> f64) {
    let shift = match (&target.run.qemu, clock) {
        (Some(qemu), Clock::Cycles) => Some(qemu.icount_shift),
        _ => None,
    };
    let convert = move |ticks: u64| match shift {
        Some(shift) => icount::instructions(ticks, per_second, shift) as f64,
        None => ticks as f64,
    };
    (
        if shift.is_some() {
            Clock::Instructions
        } else {
            clock
        },
        convert,
    )
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    suite: &Suite,
    job: &Job,
    target: &Target,
    prepared: &Result<(Prepared, PathBuf), String>,
    program: &Result<PathBuf, String>,
    row: &mut Row,
    profile: bool,
    sweep_input: Option<&SweepInput>,
) -> Result<JobDone, String> {
    let (p, blob) = prepared.as_ref().map_err(Clone::clone)?;
    model_figures(row, p);
    let program = program.as_ref().map_err(Clone::clone)?;
    if target.builds_per_model() {
        let memory = elf::static_memory(program)?;
        row.flash_bytes = Some(memory.flash as i64);
        row.code_bytes = Some(memory.code as i64);
        row.sram_bytes = Some(memory.sram as i64);
        row.memory_source = Some("ELF sections; stack painting".into());
    }
    let thresholds: Vec<f32> = job
        .threshold
        .map(|t| vec![t; p.graph.exits.len()])
        .unwrap_or_default();
    let (reference, _) = prepare::reference(p, &thresholds).map_err(|e| e.to_string())?;
    let input = JobInput {
        blob,
        input: &p.input,
        thresholds: &thresholds,
        warmup: suite.warmup,
        repetitions: suite.repetitions,
        timeout: target.timeout(suite.timeout),
        profile,
        icount_shift: target.run.qemu.as_ref().map(|q| q.icount_shift),
        clock_hz: target.run.probe.as_ref().and(target.target.clock_hz),
    };
    // A meter the target names must be there before the device starts.
    let mut meter = match &target.meter {
        Some(spec) => Some(crate::device::meter::Meter::open(spec).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut session =
        runner::connect(target, program, blob, input.timeout).map_err(|e| e.to_string())?;
    let result = (|| {
        if let Some(meter) = meter.as_mut() {
            meter
                .start()
                .map_err(|e| runner::RunError::Device(e.to_string()))?;
        }
        let m = session.measure(&input)?;
        let device_sweep = match sweep_input {
            Some(sweep) => {
                let (clock, to_unit) = tick_unit(target, m.clock, m.ticks_per_second);
                Some(sweep::measure(
                    &mut session,
                    sweep,
                    clock == Clock::Instructions,
                    &to_unit,
                )?)
            }
            None => None,
        };
        Ok((m, device_sweep))
    })();
    let (mut m, device_sweep) = session.close(result).map_err(|e| e.to_string())?;
    let captured = match meter.as_mut() {
        Some(meter) => Some(meter.stop(suite.repetitions).map_err(|e| e.to_string())?),
        None => None,
    };
    if !m.ticks.is_empty() && m.ticks.iter().all(|&t| t == 0) {
        return Err("the device's clock did not advance: every inference took 0 ticks (is the timer in the target file right?)".into());
    }
    // Under QEMU -icount the board's timer ticks stand for emulated instructions.
    let (clock, to_unit) = tick_unit(target, m.clock, m.ticks_per_second);
    m.ticks.iter_mut().for_each(|t| *t = to_unit(*t) as u64);
    m.layers
        .iter_mut()
        .for_each(|(_, t)| *t = to_unit(*t) as u64);
    m.clock = clock;
    measured_row(row, &m, &reference, p.graph.exits.len());
    // Painting found no untouched word: the stack ran through the free RAM into static data.
    let ram = target
        .memory
        .iter()
        .find(|r| r.name == "RAM")
        .map(|r| r.length as i64);
    if let (Some(peak), Some(sram), Some(ram)) = (m.stack_peak, row.sram_bytes, ram) {
        if i64::from(peak) >= ram - sram {
            return Err(format!(
                "the stack overflowed into static data: it reached {peak} bytes, and RAM ({ram} bytes) less static data ({sram}) leaves {}",
                ram - sram
            ));
        }
    }
    if let Some(capture) = captured {
        row.energy_uj = Some(capture.joules_per_inference * 1e6);
        row.energy_source = Some(capture.source);
    } else if let (Some(model), Some(median)) = (&target.energy, row.latency_median) {
        let counted = match m.clock {
            Clock::HostNanos => None,
            Clock::Cycles => Some(false),
            Clock::Instructions => Some(true),
        };
        if let Some(e) =
            counted.and_then(|instructions| energy::model_estimate(model, median, instructions))
        {
            row.energy_uj = Some(e.microjoules);
            row.energy_source = Some(e.source);
        }
    }
    match m.output.iter().zip(&reference).position(|(d, h)| d != h) {
        _ if m.output.len() != reference.len() => Err(format!(
            "device output has {} bytes, the host reference {}",
            m.output.len(),
            reference.len()
        )),
        Some(i) => Err(format!(
            "device output differs from the host reference at byte {i} of {}: device {}, host {}",
            reference.len(),
            m.output[i],
            reference[i]
        )),
        None => Ok(JobDone {
            ops: m
                .layers
                .iter()
                .map(|&(op, ticks)| (op, ticks as f64))
                .collect(),
            sweep: device_sweep,
        }),
    }
}

/// The per-operator rows of a job's profile, labelled like its result row.
fn layer_rows(
    row: &Row,
    graph: &crate::model::Graph,
    blob: &[u8],
    ops: &[(u32, f64)],
) -> Vec<store::LayerRow> {
    let labels = crate::model::lower::op_labels(graph, blob);
    ops.iter()
        .map(|&(op, count)| {
            let (layer, kind) = labels
                .get(op as usize)
                .cloned()
                .unwrap_or_else(|| (format!("op{op}"), "?"));
            store::LayerRow {
                run_id: row.run_id.clone(),
                job: row.job.clone(),
                model: row.model.clone(),
                variant: row.variant.clone(),
                target: row.target.clone(),
                op: Some(op as i64),
                layer: Some(layer),
                kind: Some(kind.to_string()),
                count: Some(count),
                unit: row.latency_unit.clone(),
                source: row
                    .latency_source
                    .clone()
                    .map(|s| format!("{s}, one profiled inference")),
            }
        })
        .collect()
}
