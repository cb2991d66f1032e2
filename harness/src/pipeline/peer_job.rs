//! One job on a peer runtime (TFLite Micro): its firmware booted in QEMU,
//! driven through the MLPerf Tiny DUT protocol with the same input bench's
//! job uses, one timed inference per `infer 1 0` window, the output bytes
//! checked against the same host reference, and the row filled with the
//! same columns (arena from TFLM's `arena_used_bytes()`, memory from the
//! ELF).

use super::job::{energy_figures, measured_row, JobContext, JobDone};
use crate::device::dut::Dut;
use crate::device::link::{Link, QemuLink};
use crate::device::runner::{qemu_command, Measurement};
use crate::model::prepare;
use crate::results::store::Row;
use crate::telemetry::elf;
use protocol::Clock;
use std::time::Duration;

/// Runs `ctx`'s job on its peer firmware, filling `row`.
pub(super) fn run_peer_job(ctx: &JobContext, row: &mut Row) -> Result<JobDone, String> {
    let target = ctx.target;
    let (p, _) = ctx.prepared.as_ref().map_err(Clone::clone)?;
    let program = ctx.program.as_ref().map_err(Clone::clone)?;
    let qemu = target.run.qemu.as_ref().ok_or(format!(
        "{} runs under QEMU only: {} is not an emulated target",
        ctx.job.runtime.name(),
        target.target.name
    ))?;
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
    let memory = elf::static_memory(program)?;
    row.flash_bytes = Some(memory.flash as i64);
    row.code_bytes = Some(memory.code as i64);
    row.sram_bytes = Some(memory.sram as i64);
    row.memory_source = Some("ELF sections".into());
    let (reference, _) = prepare::reference(p, &[]).map_err(|e| e.to_string())?;
    let timeout = target.timeout(ctx.suite.timeout);
    let link = QemuLink::spawn(qemu_command(qemu, program), Duration::from_secs(30))
        .map_err(|e| format!("failed to start {}: {e}", qemu.binary))?;
    let mut dut = Dut::new(link, timeout);
    let session = (|| {
        let start = dut.start()?;
        dut.load(&p.input)?;
        if ctx.suite.warmup > 0 {
            dut.infer(1, ctx.suite.warmup)?;
        }
        let windows = (0..ctx.suite.repetitions)
            .map(|_| dut.infer(1, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, crate::device::dut::DutError>((start, windows))
    })();
    let said = dut.link().stop();
    let (start, windows) = session.map_err(|e| with_device_words(e.to_string(), &said))?;
    if let Some(arena) = start
        .iter()
        .find_map(|l| l.strip_prefix("m-arena-used-bytes-"))
        .and_then(|n| n.parse::<i64>().ok())
    {
        row.arena_bytes = Some(arena);
        row.arena_source = Some("TFLM arena_used_bytes()".into());
    }
    // The firmware's timestamps are microseconds of the board's clock; under
    // -icount shift=N an instruction is 2^N ns, so one microsecond is
    // 1000 / 2^N instructions (7.8 at N = 7: the figures are within 8
    // instructions of the exact count).
    let per_micro = 1000.0 / f64::from(1u32 << qemu.icount_shift);
    let output: Vec<u8> = windows
        .last()
        .and_then(|w| w.result_bytes.clone())
        .ok_or("the DUT sent no output bytes (m-results-bytes-[...])")?
        .concat();
    let m = Measurement {
        clock: Clock::Instructions,
        ticks_per_second: 0,
        ticks: windows
            .iter()
            .map(|w| (w.micros as f64 * per_micro).round() as u64)
            .collect(),
        exits: vec![None; windows.len()],
        output,
        stack_peak: None,
        layers: Vec::new(),
        device: String::new(),
    };
    measured_row(row, &m, &reference, 0);
    row.latency_source = Some(format!(
        "QEMU icount, MLPerf Tiny DUT timestamps (1 us = {per_micro} instructions)"
    ));
    energy_figures(row, target, None, Clock::Instructions);
    super::job::check_output(&m.output, &reference)?;
    Ok(JobDone {
        ops: Vec::new(),
        sweep: None,
    })
}

/// `error`, and what QEMU said on the side if it said anything.
fn with_device_words(error: String, said: &str) -> String {
    match said.trim() {
        "" => error,
        words => format!("{error} (QEMU: {words})"),
    }
}
