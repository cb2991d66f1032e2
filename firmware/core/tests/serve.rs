//! The device server against a scripted harness: the exact responses to
//! good requests, and errors (never numbers) for corrupted or wrong ones.

use device::{Buffers, Clock, Identity, Marker, Port};
use kernels::model::Model;
use protocol::{FrameReader, Pushed, Request, Response};
use std::cell::RefCell;

mod common;
use common::blob;

/// Requests queued as bytes; responses collected as bytes.
struct Scripted {
    incoming: Vec<u8>,
    outgoing: Vec<u8>,
}

impl Port for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.incoming.is_empty() {
            return None;
        }
        let n = buf.len().min(self.incoming.len()).min(7);
        buf[..n].copy_from_slice(&self.incoming[..n]);
        self.incoming.drain(..n);
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        self.outgoing.extend_from_slice(bytes);
    }
}

thread_local! {
    /// Clock and marker events in the order they happened.
    static EVENTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn event(e: String) {
    EVENTS.with(|log| log.borrow_mut().push(e));
}

/// Each inference takes 1000 + 10 * its index ticks.
struct FakeClock(u64);

impl Clock for FakeClock {
    const KIND: protocol::Clock = protocol::Clock::Instructions;
    fn ticks_per_second(&self) -> u64 {
        25_000_000
    }
    fn start(&mut self) {
        event("start".into());
    }
    fn elapsed(&mut self) -> u64 {
        self.0 += 1;
        event("elapsed".into());
        990 + 10 * self.0
    }
}

/// Records the marker calls.
struct Recorder;

impl Marker for Recorder {
    fn begin(&mut self, first: bool) {
        event(format!("begin first={first}"));
    }
    fn end(&mut self, last: bool) {
        event(format!("end last={last}"));
    }
}

fn frame(request: &Request) -> Vec<u8> {
    let (mut scratch, mut out) = (vec![0u8; 256], vec![0u8; 300]);
    let n = protocol::encode(request, &mut scratch, &mut out).unwrap();
    out[..n].to_vec()
}

/// Serves `requests` and returns the decoded responses as debug strings.
fn serve(requests: Vec<u8>) -> Vec<String> {
    let blob = blob();
    let model = Model::parse(blob.as_bytes()).unwrap();
    let mut words = [0u32; 8];
    let (mut input, mut rx, mut scratch, mut frame) = ([0u8; 4], [0u8; 64], [0u8; 64], [0u8; 80]);
    let buffers = Buffers {
        arena: bytemuck::cast_slice_mut(&mut words),
        input: &mut input,
        rx: &mut rx,
        scratch: &mut scratch,
        frame: &mut frame,
    };
    let mut port = Scripted {
        incoming: requests,
        outgoing: Vec::new(),
    };
    let id = Identity {
        board: "test",
        arena_capacity: 32,
    };
    EVENTS.with(|log| log.borrow_mut().clear());
    device::serve(
        &model,
        id,
        buffers,
        &mut port,
        (&mut FakeClock(0), &mut Recorder),
        || Some(512),
    );
    let mut buf = vec![0u8; 256];
    let mut reader = FrameReader::new(&mut buf[..]);
    let mut out = Vec::new();
    for b in port.outgoing {
        if let Pushed::Frame(len) = reader.push(b) {
            let mut f = reader.frame(len).to_vec();
            out.push(format!(
                "{:?}",
                protocol::decode::<Response>(&mut f).unwrap()
            ));
        }
    }
    out
}

#[test]
fn answers_identify_input_thresholds_and_runs_with_exact_responses() {
    let mut requests = frame(&Request::Identify);
    requests.extend(frame(&Request::SetInput {
        offset: 0,
        bytes: &[4, 2],
    }));
    requests.extend(frame(&Request::SetInput {
        offset: 2,
        bytes: &[254, 1],
    }));
    requests.extend(frame(&Request::SetThresholds(
        protocol::Thresholds::from_slice(&[]).unwrap(),
    )));
    requests.extend(frame(&Request::Run {
        warmup: 1,
        inferences: 2,
    }));
    assert_eq!(
        serve(requests),
        [
            "Hello { version: 2, board: \"test\", clock: Instructions, ticks_per_second: 25000000, arena_capacity: 32, arena_needed: 32, input_bytes: 4 }",
            "Ack",
            "Ack",
            "Ack",
            // The warm-up inference took 1000 ticks and is not reported.
            "Inference { index: 0, ticks: 1010, exit: None }",
            "Inference { index: 1, ticks: 1020, exit: None }",
            // x = [4, 2, -2, 1]: (4 + 2 - 2 + 1) / 2 = 2.5 -> 3; (8 - 2) / 2 = 3.
            "Output([3, 3])",
            "Done { stack_peak: Some(512) }",
        ]
    );
}

#[test]
fn the_marker_frames_each_timed_inference_and_no_warm_up() {
    let mut requests = frame(&Request::SetInput {
        offset: 0,
        bytes: &[4, 2, 254, 1],
    });
    requests.extend(frame(&Request::Run {
        warmup: 2,
        inferences: 3,
    }));
    serve(requests);
    let events = EVENTS.with(|log| log.borrow().clone());
    let warm_up = ["start", "elapsed"];
    let timed = |first: bool, last: bool| {
        [
            format!("begin first={first}"),
            "start".into(),
            "elapsed".into(),
            format!("end last={last}"),
        ]
    };
    let mut expected: Vec<String> = warm_up
        .iter()
        .chain(&warm_up)
        .map(|s| s.to_string())
        .collect();
    expected.extend(timed(true, false));
    expected.extend(timed(false, false));
    expected.extend(timed(false, true));
    assert_eq!(events, expected);
}

#[test]
fn profile_reports_each_operator_then_done() {
    let mut requests = frame(&Request::SetInput {
        offset: 0,
        bytes: &[4, 2, 254, 1],
    });
    requests.extend(frame(&Request::Profile));
    // One operator: the fake clock's first reading is 1000 ticks.
    assert_eq!(
        serve(requests),
        [
            "Ack",
            "Layer { op: 0, ticks: 1000 }",
            "Done { stack_peak: Some(512) }"
        ]
    );
}

#[test]
fn calibrate_times_the_loop_with_the_device_clock() {
    // The fake clock's first two readings: 1000 and 1010 ticks.
    let mut requests = frame(&Request::Calibrate { loops: 1000 });
    requests.extend(frame(&Request::Calibrate { loops: 2000 }));
    assert_eq!(
        serve(requests),
        ["Calibrated { ticks: 1000 }", "Calibrated { ticks: 1010 }"]
    );
}

#[test]
fn stop_is_acknowledged_and_ends_serving() {
    // The identify after the stop is never read.
    let mut requests = frame(&Request::Stop);
    requests.extend(frame(&Request::Identify));
    assert_eq!(serve(requests), ["Ack"]);
}

#[test]
fn corrupted_truncated_and_wrong_requests_get_errors() {
    let mut corrupted = frame(&Request::Run {
        warmup: 0,
        inferences: 3,
    });
    corrupted[2] ^= 0x10;
    let truncated = frame(&Request::Identify);
    let mut requests = corrupted;
    requests.extend(&truncated[..truncated.len() - 3]);
    requests.push(0); // the frame delimiter arrives early
    requests.extend(frame(&Request::SetInput {
        offset: 2,
        bytes: &[1, 2, 3],
    }));
    requests.extend(vec![0x55; 100]); // longer than the receive buffer, then a delimiter
    requests.push(0);
    assert_eq!(
        serve(requests),
        [
            "Error(\"bad request frame (checksum or encoding)\")",
            "Error(\"bad request frame (checksum or encoding)\")",
            "Error(\"input bytes 2..5 are outside the model's 4-byte input\")",
            "Error(\"request frame longer than the device buffer\")",
        ]
    );
}
