//! Runners: start a target's device program (a process, QEMU, a board
//! through its probe) and open a [`Session`] to it over the right link.
//! Every figure comes back with the device's clock kind, so it can be
//! labelled.

use crate::device::link::{Link, ProcessLink, QemuLink};
use crate::device::session::Session;
use crate::input::target::{RunnerKind, Target};
use protocol::Clock;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one job measured on its device.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Unit of `ticks`.
    pub clock: Clock,
    /// Ticks per second of the clock (0 if not time-based).
    pub ticks_per_second: u64,
    /// Ticks of each timed inference.
    pub ticks: Vec<u64>,
    /// Exit head of each timed inference (`None`: final output).
    pub exits: Vec<Option<u8>>,
    /// Output bytes of the last inference.
    pub output: Vec<u8>,
    /// Peak stack bytes, where measured.
    pub stack_peak: Option<u32>,
    /// Ticks of each operator of a profiled inference, as `(operator
    /// index, ticks)` in the order they ran (empty unless profiled): the
    /// median of [`profiled`](Self::profiled) inferences per operator.
    pub layers: Vec<(u32, u64)>,
    /// Inferences profiled (0 unless profiled).
    pub profiled: u32,
    /// The device's name for itself (its hello's board: on the host
    /// target, which kernels it runs).
    pub device: String,
    /// How the ticks were grouped, when not one figure per inference
    /// (MLPerf Tiny's windows), for the latency source.
    pub windows: Option<String>,
}

/// Why a job failed on its device.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The device program could not be started.
    #[error("failed to start {program}: {error}{}", if error.kind() == std::io::ErrorKind::NotFound { " (not installed? scripts/setup.sh installs QEMU)" } else { "" })]
    Start {
        /// The program (the device program, or the emulator).
        program: String,
        /// Why.
        error: std::io::Error,
    },
    /// This build has no runner for the target's kind.
    #[error("failed to run: the {} runner is not available in this build", .0.name())]
    Unsupported(RunnerKind),
    /// The device did not answer in time.
    #[error("failed to finish within {seconds} s: {} ({context})", silence(*silent_for, *seconds))]
    Timeout {
        /// The deadline.
        seconds: u64,
        /// How long the device had been silent when time ran out.
        silent_for: Duration,
        /// Last bytes received and device stderr.
        context: String,
    },
    /// The link broke.
    #[error("failed to talk to the device: {error} ({context})")]
    Link {
        /// What broke.
        error: String,
        /// Last bytes received and device stderr.
        context: String,
    },
    /// The device reported an error.
    #[error("failed on the device: {0}")]
    Device(String),
    /// The board could not be reached through its probe.
    #[error("{0}")]
    Probe(#[from] crate::device::probe::ProbeError),
    /// The device's clock does not count what the target file says.
    #[error("failed to calibrate the device's clock: {0}")]
    Calibration(String),
    /// The device sent something the protocol does not allow here.
    #[error("failed to follow the protocol: {0}")]
    Protocol(String),
}

/// What a timeout means: a device that was still sending needed more time;
/// one that had fallen silent stopped answering.
fn silence(silent_for: Duration, seconds: u64) -> String {
    if silent_for < Duration::from_secs(5).min(Duration::from_secs(seconds) / 2) {
        format!("the device was still answering when the job's {seconds} s ran out; give it a longer timeout (suite or target file)")
    } else {
        format!(
            "the device stopped answering: nothing for the last {:.1} s",
            silent_for.as_secs_f64()
        )
    }
}

/// What a job asks of its device.
pub struct JobInput<'a> {
    /// The model blob file.
    pub blob: &'a Path,
    /// Input tensor bytes.
    pub input: &'a [u8],
    /// Exit thresholds.
    pub thresholds: &'a [f32],
    /// Untimed inferences.
    pub warmup: u32,
    /// Timed inferences.
    pub repetitions: u32,
    /// Deadline for the whole job.
    pub timeout: Duration,
    /// After the timed inferences, profile one inference operator by operator.
    pub profile: bool,
    /// Under QEMU `-icount shift=N`: `Some(N)`, and the device's clock is
    /// calibrated against it before anything is measured.
    pub icount_shift: Option<u32>,
    /// On a real board: the core clock the target file documents, which
    /// the clock the firmware configured must equal.
    pub clock_hz: Option<u64>,
}

/// Runs one job on `target`, whose device program is `program`.
pub fn run(target: &Target, program: &Path, job: &JobInput) -> Result<Measurement, RunError> {
    let mut session = connect(target, program, job.blob, job.timeout, None)?;
    let result = session.measure(job);
    session.close(result)
}

/// Starts `target`'s device program on the model at `blob` and opens a
/// session with it; every answer must come within `timeout`. On the host
/// the program is a process reading the blob; under QEMU it is a firmware
/// ELF with the model built in, and `blob` is not read; `plugin` counts
/// its blocks for a cycle estimate.
pub fn connect(
    target: &Target,
    program: &Path,
    blob: &Path,
    timeout: Duration,
    plugin: Option<&crate::telemetry::cycles::PluginRun>,
) -> Result<Session<Box<dyn Link>>, RunError> {
    let link: Box<dyn Link> = match (target.run.runner, &target.run.qemu) {
        (RunnerKind::Host, _) => {
            let mut command = Command::new(program);
            command.arg(blob);
            Box::new(
                ProcessLink::spawn(command).map_err(|error| RunError::Start {
                    program: program.display().to_string(),
                    error,
                })?,
            )
        }
        (RunnerKind::Qemu, Some(qemu)) => Box::new(
            QemuLink::spawn(qemu_command(qemu, program, plugin), timeout).map_err(|error| {
                RunError::Start {
                    program: qemu.binary.clone(),
                    error,
                }
            })?,
        ),
        #[cfg(feature = "probe-rs")]
        (RunnerKind::ProbeRs, _) => Box::new(crate::device::probe::ProbeLink::attach(
            target,
            program,
            timeout,
            target.telemetry.link,
        )?),
        (other, _) => return Err(RunError::Unsupported(other)),
    };
    Ok(Session::new(link, timeout))
}

/// The QEMU invocation for a board: no display or monitor, the first serial
/// port on a PTY, semihosting for the firmware's exit, and `-icount` so that
/// time is counted in emulated instructions, exactly and repeatably.
pub fn qemu_command(
    qemu: &crate::input::target::Qemu,
    elf: &Path,
    plugin: Option<&crate::telemetry::cycles::PluginRun>,
) -> Command {
    let mut command = Command::new(&qemu.binary);
    command.args(["-machine", &qemu.machine]);
    if let Some(cpu) = &qemu.cpu {
        command.args(["-cpu", cpu]);
    }
    command.args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "pty",
        "-semihosting-config",
        "enable=on,target=native",
    ]);
    command.args(["-icount", &format!("shift={},sleep=off", qemu.icount_shift)]);
    if let Some(plugin) = plugin {
        command.args(["-plugin", &plugin.qemu_arg()]);
    }
    command.arg("-kernel").arg(elf);
    command
}

impl RunError {
    pub(crate) fn with_stderr(self, stderr: &str) -> Self {
        let stderr = stderr.trim();
        if stderr.is_empty() {
            return self;
        }
        match self {
            RunError::Timeout {
                seconds,
                silent_for,
                context,
            } => RunError::Timeout {
                seconds,
                silent_for,
                context: format!("{context}; device stderr: {stderr}"),
            },
            RunError::Link { error, context } => RunError::Link {
                error,
                context: format!("{context}; device stderr: {stderr}"),
            },
            other => other,
        }
    }
}
