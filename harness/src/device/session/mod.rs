//! A protocol session with a running device over any [`Link`], under a
//! deadline: requests framed out, responses decoded, the device's last
//! words kept for errors. The clock check lives in `clock`.

mod clock;

use super::runner::{JobInput, Measurement, RunError};
use crate::device::link::Link;
use protocol::{Clock, FrameReader, Pushed, Request, Response, Thresholds};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// Profiled inferences whose per-operator median a timed (not emulated)
/// profile reports: one inference's operators vary run to run on a host.
const TIMED_PROFILES: u32 = 9;

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
            profiled: 0,
            device: self.device.clone(),
            windows: None,
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
            // QEMU's instruction counts repeat exactly; clocks do not.
            m.profiled = if job.icount_shift.is_some() {
                1
            } else {
                TIMED_PROFILES
            };
            m.layers = self.profile_median(m.profiled)?;
        }
        Ok(m)
    }

    /// The per-operator median of `runs` profiled inferences.
    fn profile_median(&mut self, runs: u32) -> Result<Vec<(u32, u64)>, RunError> {
        let first = self.profile_layers()?;
        let mut ticks: Vec<Vec<u64>> = first.iter().map(|&(_, t)| vec![t]).collect();
        for _ in 1..runs {
            let again = self.profile_layers()?;
            if again.len() != first.len() || again.iter().zip(&first).any(|(a, b)| a.0 != b.0) {
                return Err(RunError::Protocol(
                    "two profiles of the same inference ran different operators".into(),
                ));
            }
            ticks
                .iter_mut()
                .zip(again)
                .for_each(|(t, (_, v))| t.push(v));
        }
        Ok(first
            .iter()
            .zip(ticks)
            .map(|(&(op, _), mut t)| {
                t.sort_unstable();
                (op, t[t.len() / 2])
            })
            .collect())
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
