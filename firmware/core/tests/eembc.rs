//! The MLPerf Tiny (EEMBC) DUT server against a scripted runner: the exact
//! lines the reference API answers, the window's timestamps from the board
//! clock, the results dequantized and in bytes, and an error line (never a
//! number) for every bad command.

use device::{Clock, Port};
use kernels::model::Model;

mod common;
use common::blob;

/// Commands queued as bytes, a few at a time; answers collected as text.
struct Runner {
    incoming: Vec<u8>,
    outgoing: Vec<u8>,
}

impl Port for Runner {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.incoming.is_empty() {
            return None;
        }
        let n = buf.len().min(self.incoming.len()).min(5);
        buf[..n].copy_from_slice(&self.incoming[..n]);
        self.incoming.drain(..n);
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        self.outgoing.extend_from_slice(bytes);
    }
}

/// A 25 MHz board clock on which every timed window lasts 12,500 ticks
/// (500 us).
struct BoardClock {
    started: bool,
}

impl Clock for BoardClock {
    const KIND: protocol::Clock = protocol::Clock::Cycles;
    fn ticks_per_second(&self) -> u64 {
        25_000_000
    }
    fn start(&mut self) {
        self.started = true;
    }
    fn elapsed(&mut self) -> u64 {
        assert!(self.started, "elapsed before start");
        12_500
    }
}

/// Serves `commands` and returns the answer lines.
fn serve(commands: &str, quant: device::eembc::OutputQuant) -> Vec<String> {
    let blob = blob();
    let model = Model::parse(blob.as_bytes()).unwrap();
    let (mut arena, mut input) = ([0u8; 32], [0u8; 4]);
    let mut runner = Runner {
        incoming: commands.as_bytes().to_vec(),
        outgoing: Vec::new(),
    };
    let mut clock = BoardClock { started: false };
    device::eembc::serve(
        &model,
        &mut arena,
        &mut input,
        &mut runner,
        &mut clock,
        quant,
    );
    let text = String::from_utf8(runner.outgoing).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    text.trim_end().split("\r\n").map(str::to_string).collect()
}

#[test]
fn a_window_answers_as_the_reference_api_does() {
    // x = [10, 20, 30, -40]: y0 = (10 + 20 + 30 - 40) / 2 = 10,
    // y1 = (20 + 80) / 2 = 50; the output scale 0.5 and zero point -2.
    let lines = serve(
        "name%profile%db load 4%db 0a14%db 1ed8%infer 2 1%results%",
        Some((0.5, -2)),
    );
    let expected = [
        "m-timestamp-mode-performance",
        "m-lap-us-0",
        "m-init-done",
        "m-ready",
        "m-name-dut-[bench]",
        "m-ready",
        "m-profile-[ULPMark for tinyML Firmware V0.0.1]",
        "m-model-[bench]",
        "m-ready",
        "m-[Expecting 4 bytes]",
        "m-ready",
        "m-ready",
        "m-load-done",
        "m-ready",
        "m-warmup-start-1",
        "m-warmup-done",
        "m-infer-start-2",
        "m-lap-us-0",
        "m-lap-us-500",
        "m-infer-done",
        "m-results-[6.000,26.000]",
        "m-results-bytes-[0a32]",
        "m-ready",
        "m-results-[6.000,26.000]",
        "m-results-bytes-[0a32]",
        "m-ready",
    ];
    assert_eq!(lines, expected);
}

#[test]
fn timestamps_count_on_from_one_window_to_the_next() {
    let lines = serve("db load 4%db 00000000%infer 1 0%infer 3 0%", None);
    let laps: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("m-lap-us-"))
        .collect();
    assert_eq!(laps, ["0", "0", "500", "500", "1000"]);
    // Without the output's quantization the results are its integers.
    assert!(
        lines.contains(&"m-results-[0.000,0.000]".to_string()),
        "{lines:?}"
    );
}

#[test]
fn every_bad_command_gets_an_error_line_and_the_device_stays_ready() {
    let lines = serve(
        "bogus%db%db load 0%db load 5%infer 0%infer 1 x%db load 2%db 0g%db 012%results%",
        None,
    );
    let errors: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("e-"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        errors,
        [
            "e-[Unknown command: bogus]",
            "e-[Command 'db' requires a subcommand]",
            "e-[Command 'db load' must be >0 bytes]",
            "e-[the input has 5 bytes, the model takes 4]",
            "e-[Inference iterations must be >0]",
            "e-[Inference warmup must be >=0]",
            "e-[Invalid hex digit '0g']",
            "e-[Insufficent number of hex digits]",
            "e-[no inference has run]",
        ]
    );
    // One m-ready for start-up and one for each of the ten commands.
    assert_eq!(lines.iter().filter(|l| *l == "m-ready").count(), 11);
}

#[test]
fn a_command_longer_than_80_characters_is_cut_there() {
    // The reference API keeps the first 80 characters and drops the rest.
    let lines = serve(&format!("{}%name%", "x".repeat(100)), None);
    assert_eq!(
        lines[4..],
        [
            format!("e-[Unknown command: {}]", "x".repeat(80)),
            "m-ready".into(),
            "m-name-dut-[bench]".into(),
            "m-ready".into()
        ]
    );
}
