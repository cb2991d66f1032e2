//! Energy meters on serial ports: the Nordic PPK2 and ST's LPM01A. A
//! target file names its meter (`[meter] kind, port, millivolts`); a run
//! starts the meter before the timed inferences and stops it after, and the
//! energy of the window the firmware marks (a digital input on the PPK2,
//! D7 events on the LPM01A), divided by the inferences in it, is the
//! energy per inference, labelled "meter".

pub mod lpm01a;
pub mod ppk2;

use serde::Deserialize;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a meter could not measure.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// The port could not be opened: the meter is absent or named wrongly.
    #[error("failed to open the {meter} on {port}: {why}; is it plugged in, and does [meter] port in the target file name its serial port?")]
    Open {
        /// Meter model.
        meter: &'static str,
        /// The serial port.
        port: String,
        /// The system's reason.
        why: String,
    },
    /// The target file asks for something the meter cannot do.
    #[error("failed to set up the meter: {0}")]
    Config(String),
    /// The meter answered unexpectedly or not at all.
    #[error("failed to read the meter: {0}")]
    Protocol(String),
    /// The board's current is outside what the meter measures.
    #[error("failed to measure energy: {0}")]
    Range(String),
    /// The stream held no complete marked run.
    #[error("failed to measure energy: the capture holds no complete marked run ({0}); does the firmware drive the marker line?")]
    NoWindow(String),
}

/// Meter models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeterKind {
    /// Nordic Power Profiler Kit II, source-meter mode.
    Ppk2,
    /// ST X-NUCLEO-LPM01A (PowerShield).
    Lpm01a,
}

/// `[meter]` in a target file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterSpec {
    /// Model.
    pub kind: MeterKind,
    /// Serial port, e.g. `/dev/ttyACM0`.
    pub port: String,
    /// Supply voltage it gives the board, mV.
    #[serde(default = "default_millivolts")]
    pub millivolts: u32,
    /// PPK2: the digital input the firmware raises around the timed inferences.
    #[serde(default)]
    pub marker: u8,
}

fn default_millivolts() -> u32 {
    3300
}

/// Energy per inference from one capture.
#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    /// Joules per inference.
    pub joules_per_inference: f64,
    /// Length of the marked window, seconds.
    pub window_seconds: f64,
    /// How it was measured, for the row's `energy_source`.
    pub source: String,
}

impl Capture {
    /// The capture of a marked window `(joules, seconds)` holding
    /// `inferences` inferences, measured as `how` says.
    pub fn from_window(
        window: Option<(f64, f64)>,
        inferences: u32,
        how: &str,
    ) -> Result<Self, MeterError> {
        let source = crate::results::figures::EnergyOrigin::Meter.source(how);
        let (joules, seconds) = window.ok_or_else(|| MeterError::NoWindow(source.clone()))?;
        Ok(Self {
            joules_per_inference: joules / f64::from(inferences.max(1)),
            window_seconds: seconds,
            source,
        })
    }
}

/// An opened meter.
pub enum Meter {
    /// A PPK2 (boxed: its calibration table makes it the larger one).
    Ppk2(Box<ppk2::Ppk2>),
    /// An LPM01A.
    Lpm01a(lpm01a::Lpm01a),
}

impl Meter {
    /// Opens the meter a target file names.
    pub fn open(spec: &MeterSpec) -> Result<Self, MeterError> {
        Ok(match spec.kind {
            MeterKind::Ppk2 => Meter::Ppk2(Box::new(ppk2::Ppk2::open(
                &spec.port,
                spec.millivolts,
                spec.marker,
            )?)),
            MeterKind::Lpm01a => Meter::Lpm01a(lpm01a::Lpm01a::open(&spec.port, spec.millivolts)?),
        })
    }

    /// Starts a capture.
    pub fn start(&mut self) -> Result<(), MeterError> {
        match self {
            Meter::Ppk2(m) => m.start(),
            Meter::Lpm01a(m) => m.start(),
        }
    }

    /// Ends the capture; the first run the firmware marked (the measured
    /// one) timed `inferences` inferences.
    pub fn stop(&mut self, inferences: u32) -> Result<Capture, MeterError> {
        match self {
            Meter::Ppk2(m) => m.stop(inferences),
            Meter::Lpm01a(m) => m.stop(inferences),
        }
    }
}

/// Opens a serial port with a short read timeout.
fn open_port(
    meter: &'static str,
    path: &str,
    baud: u32,
) -> Result<Box<dyn serialport::SerialPort>, MeterError> {
    serialport::new(path, baud)
        .timeout(Duration::from_millis(100))
        .open()
        .map_err(|e| MeterError::Open {
            meter,
            port: path.into(),
            why: e.to_string(),
        })
}

/// Writes `bytes` to the meter.
fn send(
    port: &mut dyn serialport::SerialPort,
    bytes: &[u8],
    meter: &str,
) -> Result<(), MeterError> {
    port.write_all(bytes)
        .map_err(|e| MeterError::Protocol(format!("failed to write to the {meter}: {e}")))
}

/// Reads until `end` arrives or `limit` passes.
fn read_until(
    port: &mut dyn serialport::SerialPort,
    end: &[u8],
    limit: Duration,
    meter: &str,
) -> Result<Vec<u8>, MeterError> {
    read_while(port, limit, meter, |out| {
        out.windows(end.len()).any(|w| w == end)
    })
}

/// Reads until what arrived is `done` or `limit` passes.
fn read_while(
    port: &mut dyn serialport::SerialPort,
    limit: Duration,
    meter: &str,
    done: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, MeterError> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => {
                return Err(MeterError::Protocol(format!(
                    "failed to read from the {meter}: {e}"
                )))
            }
        }
        if done(&out) {
            return Ok(out);
        }
    }
    Err(MeterError::Protocol(format!(
        "the {meter} did not answer within {} s",
        limit.as_secs()
    )))
}

/// Reads a meter's stream on a thread of its own while the device runs, so
/// no sample is lost to a full serial buffer.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<u8>, String>>,
}

impl Recorder {
    fn start(port: &dyn serialport::SerialPort, meter: &str) -> Result<Self, MeterError> {
        let mut reader = port
            .try_clone()
            .map_err(|e| MeterError::Protocol(format!("failed to read from the {meter}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match reader.read(&mut buf) {
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => return Err(e.to_string()),
                }
                if flag.load(Ordering::Relaxed) {
                    return Ok(bytes);
                }
            }
        });
        Ok(Self { stop, thread })
    }

    /// Stops reading and returns everything read.
    fn finish(self) -> Result<Vec<u8>, MeterError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(result) => {
                result.map_err(|e| MeterError::Protocol(format!("the meter's stream broke: {e}")))
            }
            Err(_) => Err(MeterError::Protocol(
                "the meter's reader thread panicked".into(),
            )),
        }
    }
}
