//! One job on its device: connect, measure (and sweep), check the output
//! against the host reference, and fill the row's figures.

use crate::accuracy::sweep::{self, DeviceSweep, SweepInput};
use crate::device::meter::Capture;
use crate::device::runner::{self, JobInput, Measurement};
use crate::input::plan::Job;
use crate::input::suite::Suite;
use crate::input::target::Target;
use crate::model::prepare::{self, Prepared};
use crate::results::figures::{clock_source, Unit};
use crate::results::store::{self, Row};
use crate::telemetry::cycles::PluginRun;
use crate::telemetry::{elf, energy, icount, stats};
use protocol::Clock;
use std::path::PathBuf;

/// What one job runs: its suite, target, prepared variant and program.
pub(super) struct JobContext<'a> {
    pub suite: &'a Suite,
    pub job: &'a Job,
    pub target: &'a Target,
    pub prepared: &'a Result<(Prepared, PathBuf), String>,
    pub program: &'a Result<PathBuf, String>,
    /// Also profile every layer of one inference.
    pub profile: bool,
    /// Time clock-timed jobs by MLPerf Tiny's run rules.
    pub mlperf: bool,
    /// The sweep to measure on the device, for a swept variant.
    pub sweep: Option<&'a SweepInput<'a>>,
    /// The run directory (the cycle plugin's reports go under `cycle-plugin/`).
    pub dir: &'a std::path::Path,
}

/// The QEMU cycle plugin for this job's program, if its target estimates
/// cycles; its report goes to `<run>/cycle-plugin/<job>.txt`. Without it
/// (no markers in the program, a QEMU that refuses plugins) the job runs
/// as it would without a cycle model, and the row says why.
pub(super) fn cycle_plugin(
    ctx: &JobContext,
    program: &std::path::Path,
    row: &mut Row,
) -> Option<PluginRun> {
    let file = format!("{}.txt", ctx.job.id.replace(['/', '@'], "_"));
    let report = ctx.dir.join("cycle-plugin").join(file);
    // bench's firmware marks its timed inferences, then a sweep's; a peer's
    // marks every inference it runs, all alike.
    let windows =
        (ctx.job.runtime == crate::input::runtime::Runtime::Bench).then_some(ctx.suite.repetitions);
    PluginRun::for_program(ctx.target, program, report, windows).unwrap_or_else(|e| {
        row.cycles_source = Some(format!("not estimated: {e}"));
        None
    })
}

/// Fills the row's cycle estimate from the plugin's report; a report that
/// cannot be read leaves the measured figures as they are and says why.
pub(super) fn cycle_figures(row: &mut Row, target: &Target, plugin: Option<&PluginRun>) {
    let (Some(plugin), Some(board)) = (plugin, &target.cycles) else {
        return;
    };
    match plugin.estimate(board) {
        Ok(e) => {
            row.cycles_estimated = Some(e.cycles.round());
            row.cycles_source = Some(e.source);
        }
        Err(e) => row.cycles_source = Some(format!("not estimated: {e}")),
    }
}

/// Fills the row figures that depend only on the prepared model.
pub(super) fn model_figures(row: &mut Row, p: &Prepared) {
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
pub(super) fn measured_row(row: &mut Row, m: &Measurement, reference: &[u8], heads: usize) {
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
    if let (Some(windows), Some(source)) = (&m.windows, row.latency_source.as_mut()) {
        source.push_str(&format!(", {windows}"));
    }
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

/// What a job produced besides its row.
pub(super) struct JobDone {
    /// Per-operator counts of a profiled inference.
    pub ops: Vec<(u32, f64)>,
    /// Inferences the counts are the per-operator median of.
    pub profiled: u32,
    /// The device side of a sweep.
    pub sweep: Option<DeviceSweep>,
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

/// Runs one job, filling `row`; an error is the job's failure reason.
pub(super) fn run_job(ctx: &JobContext, row: &mut Row) -> Result<JobDone, String> {
    if ctx.job.runtime != crate::input::runtime::Runtime::Bench {
        return super::peer_job::run_peer_job(ctx, row);
    }
    let target = ctx.target;
    let (p, blob) = ctx.prepared.as_ref().map_err(Clone::clone)?;
    model_figures(row, p);
    let program = ctx.program.as_ref().map_err(Clone::clone)?;
    if target.builds_per_model() {
        let memory = elf::static_memory(program)?;
        row.flash_bytes = Some(memory.flash as i64);
        row.code_bytes = Some(memory.code as i64);
        row.sram_bytes = Some(memory.sram as i64);
        row.memory_source = Some("ELF sections; stack painting".into());
    }
    let thresholds: Vec<f32> = ctx
        .job
        .threshold
        .map(|t| vec![t; p.graph.exits.len()])
        .unwrap_or_default();
    let (reference, _) = prepare::reference(p, &thresholds).map_err(|e| e.to_string())?;
    let input = JobInput {
        blob,
        input: &p.input,
        thresholds: &thresholds,
        warmup: ctx.suite.warmup,
        repetitions: ctx.suite.repetitions,
        timeout: target.timeout(ctx.suite.timeout),
        profile: ctx.profile,
        icount_shift: target.run.qemu.as_ref().map(|q| q.icount_shift),
        clock_hz: target.run.probe.as_ref().and(target.target.clock_hz),
    };
    let plugin = cycle_plugin(ctx, program, row);
    let (mut m, device_sweep, captured) = on_device(ctx, program, &input, plugin.as_ref())?;
    cycle_figures(row, target, plugin.as_ref());
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
    check_stack(target, &m, row)?;
    energy_figures(row, target, captured, m.clock);
    check_output(&m.output, &reference)?;
    Ok(JobDone {
        ops: m
            .layers
            .iter()
            .map(|&(op, ticks)| (op, ticks as f64))
            .collect(),
        profiled: m.profiled,
        sweep: device_sweep,
    })
}

/// One device session: the meter (if the target names one) started before
/// the device and stopped after it, the measurement and the sweep.
fn on_device(
    ctx: &JobContext,
    program: &std::path::Path,
    input: &JobInput,
    plugin: Option<&PluginRun>,
) -> Result<(Measurement, Option<DeviceSweep>, Option<Capture>), String> {
    let target = ctx.target;
    // A meter the target names opens before the device starts: a PPK2 powers
    // the board it supplies then, before the probe attaches.
    let mut meter = match &target.meter {
        Some(spec) => Some(crate::device::meter::Meter::open(spec).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut session = runner::connect(target, program, input.blob, input.timeout, plugin)
        .map_err(|e| e.to_string())?;
    let result = (|| {
        if let Some(meter) = meter.as_mut() {
            meter
                .start()
                .map_err(|e| runner::RunError::Device(e.to_string()))?;
        }
        // MLPerf Tiny's rules are for clocks; an emulated count is exact.
        // The meter integrates the first run the firmware marks: the timed
        // run, or under MLPerf's rules the one-inference run that sizes the
        // windows.
        let (m, marked) = if ctx.mlperf && target.run.qemu.is_none() {
            let (mut m, per_window) = super::windows::mlperf_on_session(&mut session, input)?;
            m.windows = Some(format!(
                "MLPerf Tiny run rules: {} windows of {per_window} inferences, at least {} s of inference each, the median window",
                super::windows::MLPERF_WINDOWS,
                super::windows::MLPERF_WINDOW_US / 1_000_000
            ));
            (m, super::windows::MLPERF_PROBE_INFERENCES)
        } else {
            (session.measure(input)?, input.repetitions)
        };
        let device_sweep = match ctx.sweep {
            Some(sweep) => {
                let (clock, to_unit) = tick_unit(target, m.clock, m.ticks_per_second);
                let exact = clock == Clock::Instructions;
                Some(sweep::measure(&mut session, sweep, exact, &to_unit)?)
            }
            None => None,
        };
        Ok((m, device_sweep, marked))
    })();
    let (m, device_sweep, marked) = session.close(result).map_err(|e| e.to_string())?;
    let captured = match meter.as_mut() {
        Some(meter) => Some(meter.stop(marked).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((m, device_sweep, captured))
}

/// Painting found no untouched word: the stack ran through the free RAM into static data.
fn check_stack(target: &Target, m: &Measurement, row: &Row) -> Result<(), String> {
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
    Ok(())
}

/// Energy per inference: the meter's capture, else the target's model over
/// counted cycles, estimated cycles, or instructions (none for host time).
pub(super) fn energy_figures(
    row: &mut Row,
    target: &Target,
    captured: Option<Capture>,
    clock: Clock,
) {
    if let Some(capture) = captured {
        row.energy_uj = Some(capture.joules_per_inference * 1e6);
        row.energy_source = Some(capture.source);
        return;
    }
    let (Some(model), Some(median)) = (&target.energy, row.latency_median) else {
        return;
    };
    let cycles = match (clock, row.cycles_estimated, &row.cycles_source) {
        (Clock::HostNanos, _, _) => return,
        (Clock::Cycles, _, _) => energy::Cycles::Counted(median),
        (Clock::Instructions, Some(cycles), Some(how)) => energy::Cycles::Estimated { cycles, how },
        (Clock::Instructions, _, _) => energy::Cycles::Instructions(median),
    };
    if let Some(e) = energy::model_estimate(model, cycles) {
        row.energy_uj = Some(e.microjoules);
        row.energy_source = Some(e.source);
    }
}

/// The device's output must equal the host reference, byte for byte.
pub(super) fn check_output(output: &[u8], reference: &[u8]) -> Result<(), String> {
    if output.len() != reference.len() {
        return Err(format!(
            "device output has {} bytes, the host reference {}",
            output.len(),
            reference.len()
        ));
    }
    match output.iter().zip(reference).position(|(d, h)| d != h) {
        Some(i) => Err(format!(
            "device output differs from the host reference at byte {i} of {}: device {}, host {}",
            reference.len(),
            output[i],
            reference[i]
        )),
        None => Ok(()),
    }
}

/// The per-operator rows of a job's profile, labelled like its result row.
pub(super) fn layer_rows(
    row: &Row,
    graph: &crate::model::Graph,
    blob: &[u8],
    ops: &[(u32, f64)],
    profiled: u32,
) -> Vec<store::LayerRow> {
    let how = match profiled {
        1 => "one profiled inference".to_string(),
        n => format!("median of {n} profiled inferences"),
    };
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
                source: row.latency_source.clone().map(|s| format!("{s}, {how}")),
            }
        })
        .collect()
}
