//! Runners: start a target's device program, and speak the protocol to it
//! over a link, under a deadline. Every figure comes back with the
//! device's clock kind, so it can be labelled.

use crate::device::link::{Link, ProcessLink, QemuLink};
use crate::input::target::{RunnerKind, Target};
use protocol::{Clock, FrameReader, Pushed, Request, Response, Thresholds};
use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
    /// Ticks of each operator of one profiled inference, as `(operator
    /// index, ticks)` in the order they ran (empty unless profiled).
    pub layers: Vec<(u32, u64)>,
    /// The device's name for itself (its hello's board: on the host
    /// target, which kernels it runs).
    pub device: String,
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

/// Iterations of the shorter calibration loop (the longer one runs twice as many).
const CALIBRATION_LOOPS: u32 = 200_000;

/// Runs one job on `target`, whose device program is `program`.
pub fn run(target: &Target, program: &Path, job: &JobInput) -> Result<Measurement, RunError> {
    let mut session = connect(target, program, job.blob, job.timeout)?;
    let result = session.measure(job);
    session.close(result)
}

/// Starts `target`'s device program on the model at `blob` and opens a
/// session with it; every answer must come within `timeout`. On the host
/// the program is a process reading the blob; under QEMU it is a firmware
/// ELF with the model built in, and `blob` is not read.
pub fn connect(
    target: &Target,
    program: &Path,
    blob: &Path,
    timeout: Duration,
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
            QemuLink::spawn(qemu_command(qemu, program), timeout).map_err(|error| {
                RunError::Start {
                    program: qemu.binary.clone(),
                    error,
                }
            })?,
        ),
        #[cfg(feature = "probe-rs")]
        (RunnerKind::ProbeRs, _) => Box::new(crate::device::probe::ProbeLink::attach(
            target, program, timeout,
        )?),
        (other, _) => return Err(RunError::Unsupported(other)),
    };
    Ok(Session::new(link, timeout))
}

/// The QEMU invocation for a board: no display or monitor, the first serial
/// port on a PTY, semihosting for the firmware's exit, and `-icount` so that
/// time is counted in emulated instructions, exactly and repeatably.
pub fn qemu_command(qemu: &crate::input::target::Qemu, elf: &Path) -> Command {
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
    command.arg("-kernel").arg(elf);
    command
}

impl<L: Link> Session<L> {
    /// Stops the device, adding what it said on the side to an error. A
    /// device that is still well is asked to end its program first, so an
    /// emulator exits by itself rather than being killed.
    pub fn close<T>(mut self, result: Result<T, RunError>) -> Result<T, RunError> {
        if result.is_ok() {
            self.request_stop();
        }
        let said = self.link.stop();
        result.map_err(|e| e.with_stderr(&said))
    }

    /// Asks the device to end its program and returns the link, to be
    /// stopped (and inspected) by the caller.
    pub fn stop(mut self) -> L {
        self.request_stop();
        self.link
    }

    /// Best effort: a device that does not acknowledge and end within two
    /// seconds is stopped by its link anyway.
    fn request_stop(&mut self) {
        let grace = self.timeout.min(Duration::from_secs(2));
        self.deadline = Instant::now() + grace;
        if self.send(&Request::Stop).is_ok() {
            // The device may end before its acknowledgement gets through.
            let _ = self.ack("the stop request");
            self.link
                .await_exit(self.deadline.saturating_duration_since(Instant::now()));
        }
    }
}

impl RunError {
    fn with_stderr(self, stderr: &str) -> Self {
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

/// A protocol conversation over a link, with one deadline.
pub struct Session<L: Link> {
    link: L,
    deadline: Instant,
    timeout: Duration,
    /// Complete frames received and not yet read.
    frames: VecDeque<Vec<u8>>,
    reader: FrameReader<Vec<u8>>,
    last_bytes: Vec<u8>,
    /// When the device last sent anything (or the session started).
    last_heard: Instant,
    /// The device's clock and ticks per second, once it has identified itself.
    clock: Option<(Clock, u64)>,
    /// The board name of the device's hello.
    device: String,
}

/// Largest frame a device may send (an output tensor and its framing).
const MAX_FRAME: usize = 1 << 20;

impl<L: Link> Session<L> {
    /// A session that must finish within `timeout`.
    pub fn new(link: L, timeout: Duration) -> Self {
        let reader = FrameReader::new(vec![0; MAX_FRAME]);
        let now = Instant::now();
        Self {
            link,
            deadline: now + timeout,
            timeout,
            frames: VecDeque::new(),
            reader,
            last_bytes: Vec::new(),
            last_heard: now,
            clock: None,
            device: String::new(),
        }
    }

    fn context(&self) -> String {
        if self.last_bytes.is_empty() {
            "nothing received".into()
        } else {
            format!("last bytes received: {:02x?}", self.last_bytes)
        }
    }

    fn send(&mut self, request: &Request) -> Result<(), RunError> {
        let size = match request {
            Request::SetInput { bytes, .. } => bytes.len() + 64,
            _ => 256,
        };
        let (mut scratch, mut frame) = (vec![0u8; size], vec![0u8; protocol::frame_len(size)]);
        let n = protocol::encode(request, &mut scratch, &mut frame)
            .map_err(|e| RunError::Protocol(e.to_string()))?;
        match self.link.send(&frame[..n]) {
            Ok(()) => Ok(()),
            // A device that stopped (a panic, say) may have said why before the link closed.
            Err(e) => Err(self.last_words().map_or_else(
                || RunError::Link {
                    error: e.to_string(),
                    context: self.context(),
                },
                RunError::Device,
            )),
        }
    }

    /// The error message among what the device sent last, if any: read
    /// what is still on the link, then look through the unread frames.
    fn last_words(&mut self) -> Option<String> {
        while let Ok(Some(chunk)) = self.link.recv(Duration::from_millis(200)) {
            if self.ingest(chunk).is_err() {
                break;
            }
        }
        self.frames
            .iter()
            .find_map(|f| match protocol::decode::<Response>(&mut f.clone()) {
                Ok(Response::Error(msg)) => Some(msg.to_string()),
                _ => None,
            })
    }

    /// Feeds received bytes to the frame reader, queueing complete frames.
    fn ingest(&mut self, chunk: Vec<u8>) -> Result<(), RunError> {
        self.last_heard = Instant::now();
        self.last_bytes.extend_from_slice(&chunk);
        let excess = self.last_bytes.len().saturating_sub(32);
        self.last_bytes.drain(..excess);
        for b in chunk {
            match self.reader.push(b) {
                Pushed::Pending => {}
                Pushed::Frame(len) => self.frames.push_back(self.reader.frame(len).to_vec()),
                Pushed::Overflow => {
                    return Err(RunError::Protocol(format!(
                        "the device sent a frame longer than {MAX_FRAME} bytes"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The next complete frame's bytes (still COBS-encoded).
    fn next_frame(&mut self) -> Result<Vec<u8>, RunError> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(frame);
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RunError::Timeout {
                    seconds: self.timeout.as_secs(),
                    silent_for: self.last_heard.elapsed(),
                    context: self.context(),
                });
            }
            let chunk = match self.link.recv(left) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    return Err(RunError::Link {
                        error: e.to_string(),
                        context: self.context(),
                    })
                }
            };
            self.ingest(chunk)?;
        }
    }

    /// Decodes the next response once and hands it to `handle`; a device
    /// error or an undecodable frame is an error naming `what` was awaited.
    fn respond<T>(
        &mut self,
        what: &str,
        handle: impl FnOnce(Response) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let mut frame = self.next_frame()?;
        match protocol::decode::<Response>(&mut frame) {
            Ok(Response::Error(msg)) => Err(RunError::Device(msg.to_string())),
            Ok(response) => handle(response),
            Err(e) => Err(RunError::Protocol(format!("while waiting for {what}: {e}"))),
        }
    }

    fn ack(&mut self, what: &str) -> Result<(), RunError> {
        self.respond(what, |response| match response {
            Response::Ack => Ok(()),
            other => Err(RunError::Protocol(format!(
                "expected an acknowledgement of {what}, got {other:?}"
            ))),
        })
    }

    /// Identify, load input and thresholds, run, collect.
    /// Asks the device who it is: `(clock, ticks per second, input bytes)`.
    pub fn identify(&mut self) -> Result<(Clock, u64, u32), RunError> {
        self.send(&Request::Identify)?;
        let hello = self.respond("the device's hello", |response| match response {
            Response::Hello {
                version,
                board,
                clock,
                ticks_per_second,
                input_bytes,
                ..
            } if version == protocol::VERSION => {
                Ok((clock, ticks_per_second, input_bytes, board.to_string()))
            }
            Response::Hello { version, .. } => Err(RunError::Protocol(format!(
                "device speaks protocol {version}, bench {}",
                protocol::VERSION
            ))),
            other => Err(RunError::Protocol(format!("expected hello, got {other:?}"))),
        })?;
        self.clock = Some((hello.0, hello.1));
        self.device = hello.3;
        Ok((hello.0, hello.1, hello.2))
    }

    /// Gives the device a new input.
    pub fn set_input(&mut self, input: &[u8]) -> Result<(), RunError> {
        for (i, bytes) in input.chunks(protocol::MAX_INPUT_CHUNK).enumerate() {
            self.send(&Request::SetInput {
                offset: (i * protocol::MAX_INPUT_CHUNK) as u32,
                bytes,
            })?;
            self.ack("the input")?;
        }
        Ok(())
    }

    /// Sets the exit thresholds of the following runs, one per head.
    pub fn set_thresholds(&mut self, thresholds: &[f32]) -> Result<(), RunError> {
        let thresholds = Thresholds::from_slice(thresholds)
            .ok_or_else(|| RunError::Protocol("too many exit thresholds".into()))?;
        self.send(&Request::SetThresholds(thresholds))?;
        self.ack("the thresholds")
    }

    /// Restarts the deadline: the next answers have the full timeout again.
    pub fn restart_deadline(&mut self) {
        self.deadline = Instant::now() + self.timeout;
    }

    /// Runs `warmup` unreported and `inferences` reported inferences on the
    /// current input, and collects the device's figures and last output.
    pub fn run_inferences(
        &mut self,
        warmup: u32,
        inferences: u32,
    ) -> Result<Measurement, RunError> {
        let (clock, ticks_per_second) = self.clock.ok_or_else(|| {
            RunError::Protocol("asked for a run before the device identified itself".into())
        })?;
        self.send(&Request::Run { warmup, inferences })?;
        let mut m = Measurement {
            clock,
            ticks_per_second,
            ticks: Vec::new(),
            exits: Vec::new(),
            output: Vec::new(),
            stack_peak: None,
            layers: Vec::new(),
            device: self.device.clone(),
        };
        loop {
            let done = self.respond("results", |response| {
                match response {
                    Response::Inference { index, ticks, exit }
                        if index as usize == m.ticks.len() =>
                    {
                        m.ticks.push(ticks);
                        m.exits.push(exit);
                    }
                    Response::Inference { index, .. } => {
                        return Err(RunError::Protocol(format!(
                            "inference {index} arrived out of order"
                        )))
                    }
                    Response::Output(bytes) => m.output = bytes.to_vec(),
                    Response::Done { stack_peak } => {
                        m.stack_peak = stack_peak;
                        return Ok(true);
                    }
                    other => {
                        return Err(RunError::Protocol(format!(
                            "unexpected {other:?} during a run"
                        )))
                    }
                }
                Ok(false)
            })?;
            if done {
                break;
            }
        }
        if m.ticks.len() != inferences as usize {
            return Err(RunError::Protocol(format!(
                "device reported {} of {inferences} inferences",
                m.ticks.len()
            )));
        }
        Ok(m)
    }

    /// Runs one job: identify, set the input and thresholds, warm up, measure.
    pub fn measure(&mut self, job: &JobInput) -> Result<Measurement, RunError> {
        let (_, _, input_bytes) = self.identify()?;
        if input_bytes as usize != job.input.len() {
            return Err(RunError::Protocol(format!(
                "device model takes {input_bytes} input bytes, the job has {}",
                job.input.len()
            )));
        }
        self.set_input(job.input)?;
        self.set_thresholds(job.thresholds)?;
        if let Some(shift) = job.icount_shift {
            self.check_clock(shift)?;
        }
        if let (Some(hz), Some((Clock::Cycles, counted))) = (job.clock_hz, self.clock) {
            if counted != hz {
                return Err(RunError::Calibration(format!(
                    "the firmware set the core clock to {counted} Hz, the target file says {hz} Hz"
                )));
            }
        }
        let mut m = self.run_inferences(job.warmup, job.repetitions)?;
        // Read back through a probe, the stack peak covers the start-up code too.
        if let Some(peak) = self.link.stack_peak() {
            m.stack_peak = Some(m.stack_peak.map_or(peak, |p| p.max(peak)));
        }
        if job.profile {
            m.layers = self.profile_layers()?;
        }
        Ok(m)
    }

    /// Ticks of the device's calibration loop of `loops` iterations.
    pub fn calibrate(&mut self, loops: u32) -> Result<u64, RunError> {
        self.send(&Request::Calibrate { loops })?;
        self.respond("a calibration", |response| match response {
            Response::Calibrated { ticks } => Ok(ticks),
            other => Err(RunError::Protocol(format!(
                "expected a calibration, got {other:?}"
            ))),
        })
    }

    /// Under QEMU `-icount shift=N` every instruction takes `2^N` ns, so a
    /// clock of `f` ticks per second counts `f * 2^N / 1e9` ticks per
    /// instruction, and a retired-instruction counter exactly one. Times
    /// two loops whose lengths differ by a known number of instructions and
    /// refuses a clock that counts more than 1% away from that: a wrong
    /// frequency in a target file would otherwise scale every figure.
    pub fn check_clock(&mut self, shift: u32) -> Result<f64, RunError> {
        let (clock, ticks_per_second) = self.clock.ok_or_else(|| {
            RunError::Protocol("asked for a calibration before the device identified itself".into())
        })?;
        let expected = match clock {
            Clock::Cycles => {
                crate::telemetry::icount::ticks_per_instruction(ticks_per_second, shift)
            }
            Clock::Instructions => 1.0,
            Clock::HostNanos => return Ok(f64::NAN),
        };
        let short = self.calibrate(CALIBRATION_LOOPS)?;
        let long = self.calibrate(2 * CALIBRATION_LOOPS)?;
        let instructions = u64::from(CALIBRATION_LOOPS) * protocol::CALIBRATION_INSTRUCTIONS;
        let measured = long.saturating_sub(short) as f64 / instructions as f64;
        if measured == 0.0 {
            return Err(RunError::Calibration(format!("it did not advance over {instructions} instructions (is the timer in the target file right?)")));
        }
        if (measured / expected - 1.0).abs() > 0.01 {
            let claim = match clock {
                Clock::Cycles => {
                    let actual_mhz = measured * 1e3 / (1u64 << shift) as f64;
                    format!("the device says {ticks_per_second} ticks per second, which at -icount shift={shift} is {expected:.3} ticks per instruction; it counted {measured:.3}, so its clock runs at about {actual_mhz:.1} MHz")
                }
                _ => format!("a retired-instruction counter should count 1 per instruction; it counted {measured:.3}"),
            };
            return Err(RunError::Calibration(claim));
        }
        Ok(measured)
    }

    /// Runs one inference with each operator timed: `(operator index, ticks)`.
    pub fn profile_layers(&mut self) -> Result<Vec<(u32, u64)>, RunError> {
        self.send(&Request::Profile)?;
        let mut layers = Vec::new();
        loop {
            let done = self.respond("a profile", |response| match response {
                Response::Layer { op, ticks }
                    if layers.last().is_none_or(|&(last, _)| op > last) =>
                {
                    layers.push((op, ticks));
                    Ok(false)
                }
                Response::Layer { op, .. } => Err(RunError::Protocol(format!(
                    "operator {op} profiled out of order"
                ))),
                Response::Done { .. } => Ok(true),
                other => Err(RunError::Protocol(format!(
                    "unexpected {other:?} during a profile"
                ))),
            })?;
            if done {
                return Ok(layers);
            }
        }
    }
}
