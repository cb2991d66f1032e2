//! One job on a peer runtime (TFLite Micro, LiteRT, a user's `[[dut]]`
//! firmware): its program started (booted in QEMU, or LiteRT's Python
//! process on the host), driven through the MLPerf Tiny DUT protocol with
//! the same input bench's job uses, the output bytes checked against the
//! same host reference, and the row filled with the same columns (arena
//! from TFLM's `arena_used_bytes()`, memory from the ELF).

use super::job::{energy_figures, measured_row, JobContext, JobDone};
use super::windows::{DeviceClock, WindowPlan};
use crate::device::dut::{Dut, DutError};
use crate::device::link::{Link, ProcessLink, QemuLink};
use crate::device::runner::{qemu_command, Measurement};
use crate::input::runtime::{LitertKernels, Runtime};
use crate::input::target::{RunnerKind, Target};
use crate::model::prepare;
use crate::results::store::Row;
use crate::telemetry::cycles::PluginRun;
use crate::telemetry::elf;
use std::path::Path;
use std::time::Duration;

/// Runs `ctx`'s job on its peer runtime, filling `row`.
pub(super) fn run_peer_job(ctx: &JobContext, row: &mut Row) -> Result<JobDone, String> {
    let (p, _) = ctx.prepared.as_ref().map_err(Clone::clone)?;
    let program = ctx.program.as_ref().map_err(Clone::clone)?;
    if ctx.job.runtime.runs_model_file() {
        file_figures(ctx, row, p);
    } else {
        super::job::model_figures(row, p);
    }
    let (reference, _) = prepare::reference(p, &[]).map_err(|e| e.to_string())?;
    let plugin = match ctx.target.run.qemu {
        Some(_) => super::job::cycle_plugin(ctx, program, row),
        None => None,
    };
    let (link, clock) = start_device(ctx, program, row, plugin.as_ref())?;
    let mut dut = Dut::new(link, ctx.target.timeout(ctx.suite.timeout));
    let plan = WindowPlan::of(ctx.suite, clock, ctx.mlperf);
    let session = (|| {
        let start = dut.start()?;
        dut.load(&p.input)?;
        let windows = plan.run(&mut dut)?;
        Ok::<_, DutError>((start, windows))
    })();
    let said = dut.link().stop();
    super::job::cycle_figures(row, ctx.target, plugin.as_ref());
    let (start, measured) = session.map_err(|e| with_device_words(e.to_string(), &said))?;
    if let Some(arena) = start
        .iter()
        .find_map(|l| l.strip_prefix("m-arena-used-bytes-"))
        .and_then(|n| n.parse::<i64>().ok())
    {
        row.arena_bytes = Some(arena);
        row.arena_source = Some("TFLM arena_used_bytes()".into());
    }
    let mut measured = measured?;
    // The protocol's results are rounded floats; bench's TFLM and LiteRT
    // DUTs also send the bytes. A user's firmware that does not is timed,
    // and its output is not compared.
    let compared = measured.output.is_some();
    if !compared && ctx.job.runtime.bit_exact() {
        return Err("the DUT sent no output bytes (m-results-bytes-[...])".into());
    }
    let output: Vec<u8> = measured.output.take().unwrap_or_default().concat();
    let m = Measurement {
        clock: clock.unit(),
        ticks_per_second: clock.ticks_per_second(),
        ticks: measured.ticks,
        exits: vec![None; measured.inferences],
        output,
        stack_peak: measured.stack_bytes,
        layers: Vec::new(),
        profiled: 0,
        device: String::new(),
        windows: None,
    };
    measured_row(row, &m, &reference, 0);
    if m.stack_peak.is_some() {
        row.memory_source = Some("ELF sections; stack painting (m-stack-used-bytes)".into());
    }
    row.latency_source = Some(format!(
        "{}, {}{}",
        runtime_words(ctx),
        measured.source,
        if compared {
            ""
        } else {
            "; no output bytes (m-results-bytes-[...]): output not compared"
        }
    ));
    if !compared {
        row.output_matches_reference = None;
        row.output_crc32 = None;
    }
    energy_figures(row, ctx.target, None, clock.unit());
    if ctx.job.runtime.bit_exact() {
        super::job::check_output(&m.output, &reference)?;
    }
    Ok(JobDone {
        ops: Vec::new(),
        profiled: 0,
        sweep: None,
    })
}

/// The model's figures for a runtime that runs its file: counts from the
/// graph, size from the file.
fn file_figures(ctx: &JobContext, row: &mut Row, p: &crate::model::prepare::Prepared) {
    row.macs = Some(p.graph.macs() as i64);
    row.params = Some(p.graph.params() as i64);
    row.counts_source = Some("model".into());
    let model = &ctx.suite.models[ctx.suite.variants[ctx.job.variant].model];
    if let Some(size) = model
        .tflite
        .as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
    {
        row.model_bytes = Some(size.len() as i64);
        row.model_bytes_source = Some("tflite file".into());
    }
}

/// Starts the job's program and returns its link and clock: an ELF booted
/// in the target's QEMU, or LiteRT's Python process on the host. The ELF's
/// memory goes into `row`.
fn start_device(
    ctx: &JobContext,
    program: &Path,
    row: &mut Row,
    plugin: Option<&PluginRun>,
) -> Result<(Box<dyn Link>, DeviceClock), String> {
    let target = ctx.target;
    let name = ctx.suite.runtime_name(ctx.job.runtime);
    if let Runtime::Litert(kernels) = ctx.job.runtime {
        if target.run.qemu.is_some() || target.builds_per_model() {
            return Err(format!(
                "{name} runs on the host target only: {} is not the host",
                target.target.name
            ));
        }
        return Ok((litert_process(program, kernels)?, DeviceClock::Host));
    }
    let memory = elf::static_memory(program)?;
    row.flash_bytes = Some(memory.flash as i64);
    row.code_bytes = Some(memory.code as i64);
    row.sram_bytes = Some(memory.sram as i64);
    row.memory_source = Some("ELF sections".into());
    if target.run.runner == RunnerKind::ProbeRs {
        return board(target, program);
    }
    let qemu = target.run.qemu.as_ref().ok_or(format!(
        "{name} runs under QEMU or on a board: {} is neither",
        target.target.name
    ))?;
    let link = QemuLink::spawn(qemu_command(qemu, program, plugin), Duration::from_secs(30))
        .map_err(|e| format!("failed to start {}: {e}", qemu.binary))?;
    Ok((
        Box::new(link),
        DeviceClock::Emulated {
            icount_shift: qemu.icount_shift,
        },
    ))
}

/// A real board: the firmware flashed and started through its debug probe,
/// then spoken to over its UART (`[run.probe] port`); timestamps are
/// microseconds of the board's own timer, stored as core cycles.
#[cfg(feature = "probe-rs")]
fn board(target: &Target, program: &Path) -> Result<(Box<dyn Link>, DeviceClock), String> {
    let clock_hz = target.target.clock_hz.ok_or(format!(
        "target {} names no clock_hz, which converts the DUT's microseconds to cycles",
        target.target.name
    ))?;
    let timeout = Duration::from_secs(30);
    let link = crate::device::probe::ProbeLink::attach(
        target,
        program,
        timeout,
        crate::input::target::LinkKind::Serial,
    )
    .map_err(|e| e.to_string())?;
    Ok((Box::new(link), DeviceClock::Board { clock_hz }))
}

#[cfg(not(feature = "probe-rs"))]
fn board(target: &Target, _: &Path) -> Result<(Box<dyn Link>, DeviceClock), String> {
    Err(format!(
        "{} is a board: this bench was built without the probe-rs feature",
        target.target.name
    ))
}

/// The environment variable naming the Python that runs LiteRT.
pub const PYTHON_ENV: &str = "BENCH_PYTHON";

/// The environment variable naming the Python that runs the Larq Compute
/// Engine (it needs TensorFlow 2.16 and Python 3.11, so it has its own).
pub const LCE_PYTHON_ENV: &str = "BENCH_LCE_PYTHON";

/// The Python the interpreter runs in: the environment variable, else the
/// venv `scripts/setup.sh` makes under `target/` (`BENCH_LITERT=1` for
/// LiteRT, `BENCH_LCE=1` for LCE), else `python3` on the path.
fn interpreter_python(kernels: LitertKernels) -> std::path::PathBuf {
    let (env, venv) = match kernels {
        LitertKernels::Lce => (LCE_PYTHON_ENV, "target/larq-venv/bin/python"),
        _ => (PYTHON_ENV, "target/litert-venv/bin/python"),
    };
    if let Some(python) = std::env::var_os(env) {
        return python.into();
    }
    let venv = crate::workspace_root().join(venv);
    if venv.is_file() {
        venv
    } else {
        "python3".into()
    }
}

/// LiteRT or LCE as an MLPerf Tiny DUT in a Python process
/// (`litert_dut.py`, given with `-c`, so nothing is written).
fn litert_process(model: &Path, kernels: LitertKernels) -> Result<Box<dyn Link>, String> {
    let python = interpreter_python(kernels);
    let mut command = std::process::Command::new(&python);
    command
        .arg("-c")
        .arg(include_str!("../device/litert_dut.py"))
        .arg(model)
        .arg(match kernels {
            LitertKernels::Xnnpack => "xnnpack",
            LitertKernels::Reference => "reference",
            LitertKernels::Lce => "lce",
        });
    let link = ProcessLink::spawn(command).map_err(|e| {
        let (runtime, install) = match kernels {
            LitertKernels::Lce => ("LCE", LCE_INSTALL),
            _ => ("LiteRT", LITERT_INSTALL),
        };
        format!(
            "failed to start {} for {runtime}: {e}; {install}",
            python.display()
        )
    })?;
    Ok(Box::new(link))
}

/// How to get a Python with LiteRT.
pub const LITERT_INSTALL: &str = "install LiteRT with `BENCH_LITERT=1 scripts/setup.sh` (a venv under target/) or `pip install ai-edge-litert numpy`, or set BENCH_PYTHON to a Python that has them";

/// How to get a Python with the Larq Compute Engine.
pub const LCE_INSTALL: &str = "install the Larq Compute Engine with `BENCH_LCE=1 scripts/setup.sh` (a Python 3.11 venv under target/) or `pip install larq-compute-engine tensorflow==2.16.* numpy`, or set BENCH_LCE_PYTHON to a Python that has them";

/// What ran the job, for its latency source.
fn runtime_words(ctx: &JobContext) -> String {
    match ctx.job.runtime {
        Runtime::Litert(LitertKernels::Xnnpack) => {
            "LiteRT (ai-edge-litert) default resolver with XNNPACK (not bit-exact with TFLite's reference kernels), 1 thread, host clock around invoke() in Python".into()
        }
        Runtime::Litert(LitertKernels::Reference) => {
            "LiteRT (ai-edge-litert) reference kernels (BUILTIN_REF), host clock around invoke() in Python".into()
        }
        Runtime::Litert(LitertKernels::Lce) => {
            "Larq Compute Engine interpreter (larq-compute-engine; its optimized kernels are Arm v8's, on x86 its portable C++ ones), 1 thread, host clock around predict() in Python, which also copies the inputs in and the outputs out".into()
        }
        other => format!("{} firmware", ctx.suite.runtime_name(other)),
    }
}

/// `error`, and what the device's process said on the side if it said anything.
fn with_device_words(error: String, said: &str) -> String {
    match said.trim() {
        "" => error,
        words => format!("{error} (the device's process said: {words})"),
    }
}
