//! The MLPerf Tiny (EEMBC) DUT serial protocol, host side: what the
//! official EnergyRunner sends a device under test in performance mode, as
//! the reference API (`benchmark/api/internally_implemented.cpp`) answers
//! it. Commands end with `%` and hold at most 80 characters; the device
//! answers with `m-` lines and ends every command with `m-ready`; `e-[...]`
//! lines are its errors. An inference window is `infer N W`: `W` warm-up
//! inferences, then `N` timed between two `m-lap-us-T` timestamps of the
//! device's own clock, then the results.

use super::link::Link;
use std::time::{Duration, Instant};

/// The reference API's command buffer (`EE_CMD_SIZE`): longer commands
/// are cut there, silently.
pub const COMMAND_BYTES: usize = 80;

/// How long a device that sent an error line has to send `m-ready`.
const AFTER_ERROR: Duration = Duration::from_secs(2);

/// Bytes per `db` command: `db ` and two hex digits a byte within 80.
const LOAD_BYTES_PER_COMMAND: usize = (COMMAND_BYTES - 3) / 2;

/// Why a DUT exchange failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DutError {
    /// The device said nothing complete in time.
    #[error(
        "failed to get m-ready after `{command}` within {seconds:.0} s; the device said: {said}"
    )]
    Timeout {
        /// The command (or `start-up`).
        command: String,
        /// The deadline.
        seconds: f64,
        /// Its last words, for the report.
        said: String,
    },
    /// The device answered with an `e-[...]` line.
    #[error("the device refused `{command}`: {message}")]
    Device {
        /// The command.
        command: String,
        /// What it said in the brackets.
        message: String,
    },
    /// The device answered, but not as the protocol says.
    #[error("failed to read the device's answer to `{command}`: {why}")]
    Protocol {
        /// The command.
        command: String,
        /// What was missing or malformed.
        why: String,
    },
    /// The link failed.
    #[error("failed to talk to the device: {0}")]
    Link(String),
}

/// One timed window of `infer N W`.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Timed inferences.
    pub inferences: u32,
    /// Microseconds between the two timestamps, by the device's clock.
    pub micros: u64,
    /// The `m-results-[...]` values.
    pub results: Vec<f32>,
    /// The raw bytes of each output, where the device sends them
    /// (`m-results-bytes-[...]`, bench's TFLM firmware; not in the protocol).
    pub result_bytes: Option<Vec<Vec<u8>>>,
    /// The stack's peak so far by painting, where the device reports it
    /// (`m-stack-used-bytes-N`, bench's TFLM firmware; not in the protocol).
    pub stack_bytes: Option<u32>,
}

/// A device under test over a [`Link`].
pub struct Dut<L: Link> {
    link: L,
    pending: Vec<u8>,
    timeout: Duration,
}

impl<L: Link> Dut<L> {
    /// A DUT on `link`; every command must end within `timeout`.
    pub fn new(link: L, timeout: Duration) -> Self {
        Dut {
            link,
            pending: Vec::new(),
            timeout,
        }
    }

    /// The link, to stop the device.
    pub fn link(&mut self) -> &mut L {
        &mut self.link
    }

    /// Waits for the device's first `m-ready` and returns the lines before
    /// it; an `e-[...]` line (a model the runtime refused) fails at once.
    pub fn start(&mut self) -> Result<Vec<String>, DutError> {
        let lines = self.until_ready("start-up")?;
        match lines.iter().find_map(|l| bracketed(l, "e-[")) {
            // Its log before the error says why (TFLM's "Hybrid models are
            // not supported", an arena too small).
            Some(message) => {
                let log: Vec<&str> = lines
                    .iter()
                    .map(String::as_str)
                    .filter(|l| !l.starts_with("m-") && !l.starts_with("e-["))
                    .collect();
                Err(DutError::Device {
                    command: "start-up".into(),
                    message: match log.as_slice() {
                        [] => message,
                        log => format!("{message}; its log: {}", log.join(" | ")),
                    },
                })
            }
            None => Ok(lines),
        }
    }

    /// Sends `command` and returns the lines up to `m-ready`; an `e-[...]`
    /// line is an error.
    pub fn command(&mut self, command: &str) -> Result<Vec<String>, DutError> {
        if command.len() > COMMAND_BYTES || command.contains('%') {
            return Err(DutError::Protocol {
                command: command.into(),
                why: format!("a command holds at most {COMMAND_BYTES} characters and no `%`"),
            });
        }
        self.link
            .send(format!("{command}%").as_bytes())
            .map_err(|e| DutError::Link(e.to_string()))?;
        let lines = self.until_ready(command)?;
        if let Some(message) = lines.iter().find_map(|l| bracketed(l, "e-[")) {
            return Err(DutError::Device {
                command: command.into(),
                message,
            });
        }
        Ok(lines)
    }

    /// The model the device runs (`profile`'s `m-model-[...]`).
    pub fn model(&mut self) -> Result<String, DutError> {
        let lines = self.command("profile")?;
        lines
            .iter()
            .find_map(|l| bracketed(l, "m-model-["))
            .ok_or_else(|| missing("profile", "m-model-[...]"))
    }

    /// Loads `input` into the device's buffer (`db load N`, then `db HEX`).
    pub fn load(&mut self, input: &[u8]) -> Result<(), DutError> {
        let load = format!("db load {}", input.len());
        let lines = self.command(&load)?;
        let expected = format!("m-[Expecting {} bytes]", input.len());
        if !lines.iter().any(|l| l == &expected) {
            return Err(DutError::Protocol {
                command: load,
                why: format!("no {expected}; it said: {}", last_words(&lines, &[])),
            });
        }
        let mut done = false;
        for chunk in input.chunks(LOAD_BYTES_PER_COMMAND) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let lines = self.command(&format!("db {hex}"))?;
            done = lines.iter().any(|l| l == "m-load-done");
        }
        if done {
            Ok(())
        } else {
            Err(missing("db", "m-load-done after the last bytes"))
        }
    }

    /// Runs `infer N W` and reads its window.
    pub fn infer(&mut self, inferences: u32, warmup: u32) -> Result<Window, DutError> {
        let command = format!("infer {inferences} {warmup}");
        let lines = self.command(&command)?;
        parse_window(&command, inferences, &lines)
    }

    /// Reads lines up to `m-ready`. After an error line the device has
    /// [`AFTER_ERROR`] to get ready: one that faulted says `e-[...]` and
    /// stops, and waiting out the job's deadline would add nothing.
    fn until_ready(&mut self, command: &str) -> Result<Vec<String>, DutError> {
        let mut deadline = Instant::now() + self.timeout;
        let mut lines = Vec::new();
        loop {
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                // A device that fails to start (TFLM's AllocateTensors, a
                // model LiteRT refuses) says why and may never be ready.
                let failed_start = command == "start-up" && line.starts_with("e-[");
                if line == "m-ready" {
                    return Ok(lines);
                }
                if failed_start {
                    lines.push(line);
                    return Ok(lines);
                }
                if line.starts_with("e-[") {
                    deadline = deadline.min(Instant::now() + AFTER_ERROR);
                }
                if !line.is_empty() {
                    lines.push(line);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Silence after an error line: the device stopped with that error.
            let timeout = || match lines.iter().find_map(|l| bracketed(l, "e-[")) {
                Some(message) => DutError::Device {
                    command: command.into(),
                    message: format!("{message} (and it stopped answering)"),
                },
                None => DutError::Timeout {
                    command: command.into(),
                    seconds: self.timeout.as_secs_f64(),
                    said: last_words(&lines, &self.pending),
                },
            };
            if left.is_zero() {
                return Err(timeout());
            }
            match self.link.recv(left) {
                Ok(Some(bytes)) => self.pending.extend_from_slice(&bytes),
                Ok(None) => return Err(timeout()),
                Err(e) => return Err(DutError::Link(e.to_string())),
            }
        }
    }
}

/// The window of an `infer` answer: two `m-lap-us-` timestamps around the
/// timed inferences, then the results.
fn parse_window(command: &str, inferences: u32, lines: &[String]) -> Result<Window, DutError> {
    let laps: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("m-lap-us-"))
        .map(|t| t.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| DutError::Protocol {
            command: command.into(),
            why: format!("a timestamp is not a number of microseconds ({e})"),
        })?;
    let [start, end] = laps[..] else {
        return Err(missing(command, "two m-lap-us- timestamps"));
    };
    if end < start {
        return Err(DutError::Protocol {
            command: command.into(),
            why: format!("the second timestamp ({end} us) is before the first ({start} us): the device's clock wrapped or reset"),
        });
    }
    let results = lines
        .iter()
        .find_map(|l| bracketed(l, "m-results-["))
        .ok_or_else(|| missing(command, "m-results-[...]"))?;
    let results = if results.is_empty() {
        Vec::new()
    } else {
        results
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| DutError::Protocol {
                command: command.into(),
                why: format!("m-results-[...] holds a value that is not a number ({e})"),
            })?
    };
    let result_bytes = lines
        .iter()
        .find_map(|l| bracketed(l, "m-results-bytes-["))
        .map(|hex| hex.split(',').map(from_hex).collect::<Option<Vec<_>>>())
        .map(|bytes| bytes.ok_or_else(|| missing(command, "hex digits in m-results-bytes-[...]")))
        .transpose()?;
    let stack_bytes = lines
        .iter()
        .find_map(|l| l.strip_prefix("m-stack-used-bytes-"))
        .and_then(|n| n.parse().ok());
    Ok(Window {
        inferences,
        micros: end - start,
        results,
        result_bytes,
        stack_bytes,
    })
}

/// The text between `prefix` and the line's last `]`.
fn bracketed(line: &str, prefix: &str) -> Option<String> {
    let rest = line.strip_prefix(prefix)?;
    Some(rest.strip_suffix(']').unwrap_or(rest).to_string())
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn missing(command: &str, what: &str) -> DutError {
    DutError::Protocol {
        command: command.into(),
        why: format!("no {what}"),
    }
}

/// The last lines and unfinished bytes, for a timeout's report.
fn last_words(lines: &[String], pending: &[u8]) -> String {
    let mut words: Vec<String> = lines.iter().rev().take(3).rev().cloned().collect();
    if !pending.is_empty() {
        words.push(String::from_utf8_lossy(pending).into_owned());
    }
    if words.is_empty() {
        "nothing".into()
    } else {
        words.join(" | ")
    }
}

/// A scripted device for tests: each command it receives gets the next
/// answer, delivered in two chunks as a UART delivers bytes.
#[cfg(test)]
pub(crate) mod scripted {
    use super::Link;
    use std::collections::VecDeque;
    use std::time::Duration;

    pub(crate) struct Scripted {
        answers: VecDeque<String>,
        pub sent: Vec<String>,
        ready: VecDeque<Vec<u8>>,
    }

    impl Scripted {
        pub fn new<S: AsRef<str>>(start: &str, answers: &[S]) -> Self {
            Scripted {
                answers: answers.iter().map(|a| a.as_ref().to_string()).collect(),
                sent: Vec::new(),
                ready: VecDeque::from([start.as_bytes().to_vec()]),
            }
        }
    }

    impl Link for Scripted {
        fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.sent.push(String::from_utf8_lossy(bytes).into_owned());
            if let Some(answer) = self.answers.pop_front() {
                let (a, b) = answer.as_bytes().split_at(answer.len() / 2);
                self.ready.extend([a.to_vec(), b.to_vec()]);
            }
            Ok(())
        }
        fn recv(&mut self, _timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
            Ok(self.ready.pop_front())
        }
        fn stop(&mut self) -> String {
            String::new()
        }
    }

    /// What the reference API says at start-up.
    pub const START: &str =
        "m-timestamp-mode-performance\r\nm-lap-us-100\r\nm-init-done\r\nm-ready\r\n";
}

#[cfg(test)]
mod tests {
    use super::scripted::{Scripted, START};
    use super::*;

    #[test]
    fn a_window_is_read_from_the_reference_api_answer() {
        let infer = "m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-10\r\nm-lap-us-4152645\r\nm-lap-us-14006089\r\nm-infer-done\r\nm-results-[0.000,0.996]\r\nm-results-bytes-[807f]\r\nm-ready\r\n";
        let mut dut = Dut::new(Scripted::new(START, &[infer]), Duration::from_secs(1));
        assert_eq!(
            dut.start().unwrap(),
            [
                "m-timestamp-mode-performance",
                "m-lap-us-100",
                "m-init-done"
            ]
        );
        let window = dut.infer(10, 1).unwrap();
        assert_eq!(
            window,
            Window {
                inferences: 10,
                micros: 9_853_444,
                results: vec![0.0, 0.996],
                result_bytes: Some(vec![vec![0x80, 0x7f]]),
                stack_bytes: None,
            }
        );
        assert_eq!(dut.link().sent, ["infer 10 1%"]);
    }

    #[test]
    fn a_load_is_cut_into_commands_of_at_most_80_characters() {
        let input: Vec<u8> = (0..100).collect();
        let answers = [
            "m-[Expecting 100 bytes]\r\nm-ready\r\n",
            "m-ready\r\n",
            "m-ready\r\n",
            "m-load-done\r\nm-ready\r\n",
        ];
        let mut dut = Dut::new(Scripted::new(START, &answers), Duration::from_secs(1));
        dut.start().unwrap();
        dut.load(&input).unwrap();
        let sent = &dut.link().sent;
        assert_eq!(sent.len(), 4);
        assert_eq!(sent[0], "db load 100%");
        assert!(
            sent.iter().all(|c| c.len() <= COMMAND_BYTES + 1),
            "{sent:?}"
        );
        let hex: String = sent[1..].iter().map(|c| &c[3..c.len() - 1]).collect();
        assert_eq!(from_hex(&hex).unwrap(), input);
    }

    #[test]
    fn errors_silence_and_malformed_answers_each_fail_with_what_went_wrong() {
        let short = ["m-[Expecting 4 bytes]\r\nm-ready\r\n", "m-ready\r\n"];
        let mut dut = Dut::new(Scripted::new(START, &short), Duration::from_secs(1));
        dut.start().unwrap();
        let err = dut.load(&[1, 2, 3, 4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read the device's answer to `db`: no m-load-done after the last bytes"
        );

        let refused = ["e-[Inference iterations must be >0]\r\nm-ready\r\n"];
        let mut dut = Dut::new(Scripted::new(START, &refused), Duration::from_secs(1));
        dut.start().unwrap();
        let err = dut.command("infer 0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the device refused `infer 0`: Inference iterations must be >0"
        );

        let mut silent = Dut::new(
            Scripted::new::<&str>("m-init-do", &[]),
            Duration::from_millis(10),
        );
        let err = silent.start().unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to get m-ready after `start-up` within 0 s; the device said: m-init-do"
        );

        let reset = ["m-infer-start-1\r\nm-lap-us-900\r\nm-timestamp-mode-performance\r\nm-lap-us-100\r\nm-results-[1.0]\r\nm-ready\r\n"];
        let mut dut = Dut::new(Scripted::new(START, &reset), Duration::from_secs(1));
        dut.start().unwrap();
        let err = dut.infer(1, 0).unwrap_err();
        assert!(
            err.to_string().contains("before the first (900 us)"),
            "{err}"
        );

        let garbage = ["m-lap-us-1\r\nm-lap-us-2\r\nm-results-[1.0,x]\r\nm-ready\r\n"];
        let mut dut = Dut::new(Scripted::new(START, &garbage), Duration::from_secs(1));
        dut.start().unwrap();
        let err = dut.infer(1, 0).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");

        let mut dut = Dut::new(Scripted::new::<&str>(START, &[]), Duration::from_secs(1));
        dut.start().unwrap();
        let long = "db ".to_string() + &"00".repeat(40);
        assert!(matches!(dut.command(&long), Err(DutError::Protocol { .. })));
    }

    #[test]
    fn a_device_that_faults_mid_answer_fails_with_its_error_line() {
        let faulted = ["m-infer-start-1\r\nm-lap-us-10\r\nm-results-[0.0\r\ne-[hard fault]\r\n"];
        let mut dut = Dut::new(Scripted::new(START, &faulted), Duration::from_secs(60));
        dut.start().unwrap();
        assert_eq!(
            dut.infer(1, 0).unwrap_err().to_string(),
            "the device refused `infer 1 0`: hard fault (and it stopped answering)"
        );
    }

    #[test]
    fn a_device_that_fails_to_start_fails_at_once_with_its_words() {
        // TFLM's firmware says why and never gets ready (board_fault).
        let failed = "m-timestamp-mode-performance\r\nHybrid models are not supported on TFLite Micro.\r\ne-[AllocateTensors failed (see the TFLM log above)]\r\n";
        let mut dut = Dut::new(Scripted::new::<&str>(failed, &[]), Duration::from_secs(60));
        assert_eq!(
            dut.start().unwrap_err().to_string(),
            "the device refused `start-up`: AllocateTensors failed (see the TFLM log above); its log: Hybrid models are not supported on TFLite Micro."
        );
        // A buffer smaller than the input: the reference API says so outside the protocol.
        let small = ["Supplied buffer size 76800 exceeds maximum of 27648\nm-ready\r\n"];
        let mut dut = Dut::new(Scripted::new(START, &small), Duration::from_secs(1));
        dut.start().unwrap();
        assert_eq!(
            dut.load(&[0; 76_800]).unwrap_err().to_string(),
            "failed to read the device's answer to `db load 76800`: no m-[Expecting 76800 bytes]; it said: Supplied buffer size 76800 exceeds maximum of 27648"
        );
    }
}
