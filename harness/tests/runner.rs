//! A device that hangs, sends garbage or dies gets a clear error within its
//! deadline, with the last bytes it sent; never a hang or a number.

use harness::device::link::ProcessLink;
use harness::device::runner::{JobInput, RunError};
use harness::device::session::Session;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn session_with(script: &str) -> Result<harness::device::runner::Measurement, RunError> {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    let link = ProcessLink::spawn(command).unwrap();
    let mut session = Session::new(link, Duration::from_secs(1));
    let job = JobInput {
        blob: Path::new("unused"),
        input: &[0; 4],
        thresholds: &[],
        warmup: 0,
        repetitions: 1,
        timeout: Duration::from_secs(1),
        profile: false,
        icount_shift: None,
        clock_hz: None,
    };
    session.measure(&job)
}

#[test]
fn a_silent_device_times_out() {
    let start = Instant::now();
    let e = session_with("sleep 30").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    let e = e.to_string();
    // Silent the whole second (the tenths vary with the machine's load).
    assert!(
        e.starts_with(
            "failed to finish within 1 s: the device stopped answering: nothing for the last 1."
        ) && e.ends_with(" s (nothing received)"),
        "{e}"
    );
}

#[test]
fn a_device_still_sending_when_time_runs_out_is_told_apart_from_a_silent_one() {
    let e = session_with("while true; do printf a; sleep 0.05; done")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("failed to finish within 1 s: the device was still answering when the job's 1 s ran out; give it a longer timeout (suite or target file) (last bytes received: [61,"),
        "{e}"
    );
}

#[test]
fn garbage_is_reported_with_the_bytes_received() {
    let e = session_with("printf 'hello\\000'; sleep 30").unwrap_err();
    assert_eq!(e.to_string(), "failed to follow the protocol: while waiting for the device's hello: frame is not valid COBS");
    let e = session_with("printf 'abc'; sleep 30").unwrap_err();
    let e = e.to_string();
    assert!(
        e.starts_with(
            "failed to finish within 1 s: the device stopped answering: nothing for the last "
        ) && e.ends_with(" s (last bytes received: [61, 62, 63])"),
        "{e}"
    );
}

#[test]
fn a_device_that_exits_is_a_link_error() {
    let e = session_with("head -c 1 > /dev/null; exit 0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to talk to the device: the device closed its output (nothing received)"
    );
}

/// A link that received a device's error frame and then broke: sending fails.
struct Dying {
    said: Option<Vec<u8>>,
}

impl harness::device::link::Link for Dying {
    fn send(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "Broken pipe",
        ))
    }
    fn recv(&mut self, _: Duration) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.said.take())
    }
    fn stop(&mut self) -> String {
        String::new()
    }
}

#[test]
fn a_device_that_said_why_before_its_link_broke_is_reported_by_its_words() {
    let (mut scratch, mut frame) = ([0u8; 128], [0u8; 160]);
    let n = protocol::encode(
        &protocol::Response::Error("firmware panicked: at boot"),
        &mut scratch,
        &mut frame,
    )
    .unwrap();
    let mut session = Session::new(
        Dying {
            said: Some(frame[..n].to_vec()),
        },
        Duration::from_secs(1),
    );
    assert_eq!(
        session.identify().unwrap_err().to_string(),
        "failed on the device: firmware panicked: at boot"
    );
    // Nothing said: the broken link itself is the error.
    let mut session = Session::new(Dying { said: None }, Duration::from_secs(1));
    assert_eq!(
        session.identify().unwrap_err().to_string(),
        "failed to talk to the device: Broken pipe (nothing received)"
    );
}
