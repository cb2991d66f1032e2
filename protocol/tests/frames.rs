//! Framing: round trips, and every corruption or truncation detected.

use protocol::{
    decode, encode, Clock, FrameError, FrameReader, Pushed, Request, Response, Thresholds,
};

fn frame_of<T: serde::Serialize>(message: &T) -> Vec<u8> {
    let (mut scratch, mut out) = (vec![0u8; 4096], vec![0u8; 4200]);
    let n = encode(message, &mut scratch, &mut out).unwrap();
    out.truncate(n);
    out
}

fn sample_responses() -> Vec<Response<'static>> {
    vec![
        Response::Hello {
            version: 1,
            board: "host",
            clock: Clock::HostNanos,
            ticks_per_second: 1_000_000_000,
            arena_capacity: 65536,
            arena_needed: 1024,
            input_bytes: 490,
        },
        Response::Ack,
        Response::Inference {
            index: 7,
            ticks: 123_456,
            exit: Some(1),
        },
        Response::Output(&[0, 1, 2, 0, 0, 255, 128]),
        Response::Layer {
            op: 3,
            ticks: 4_096_000,
        },
        Response::Calibrated { ticks: 819_200 },
        Response::Done {
            stack_peak: Some(2048),
        },
        Response::Error("input has 3 bytes, the model takes 490"),
    ]
}

#[test]
fn frames_round_trip_and_contain_no_zero_before_the_end() {
    for message in sample_responses() {
        let mut frame = frame_of(&message);
        assert_eq!(frame.last(), Some(&0));
        assert!(!frame[..frame.len() - 1].contains(&0), "{message:?}");
        let n = frame.len() - 1;
        assert_eq!(decode::<Response>(&mut frame[..n]).unwrap(), message);
    }
    let input: Vec<u8> = (0..=255).cycle().take(1000).collect();
    for request in [
        Request::Identify,
        Request::SetInput {
            offset: 384,
            bytes: &input,
        },
        Request::SetThresholds(Thresholds::from_slice(&[0.5, 0.9]).unwrap()),
        Request::Run {
            warmup: 2,
            inferences: 30,
        },
        Request::Profile,
        Request::Calibrate { loops: 100_000 },
        Request::Stop,
    ] {
        let mut frame = frame_of(&request);
        let n = frame.len() - 1;
        assert_eq!(decode::<Request>(&mut frame[..n]).unwrap(), request);
    }
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let mut checked = 0;
    for message in sample_responses() {
        let frame = frame_of(&message);
        let body = frame.len() - 1;
        for at in 0..body {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = frame[..body].to_vec();
                bad[at] ^= flip;
                match decode::<Response>(&mut bad) {
                    Err(FrameError::Cobs | FrameError::Checksum { .. } | FrameError::Truncated) => {
                        checked += 1
                    }
                    other => panic!("{message:?}: flipping byte {at} by {flip:#x} gave {other:?}"),
                }
            }
        }
    }
    assert!(checked > 300, "{checked}");
}

#[test]
fn truncated_frames_are_errors() {
    let frame = frame_of(&Response::Inference {
        index: 3,
        ticks: 99,
        exit: None,
    });
    for cut in 0..frame.len() - 1 {
        let mut part = frame[..cut].to_vec();
        assert!(decode::<Response>(&mut part).is_err(), "cut at {cut}");
    }
}

#[test]
fn reader_splits_a_stream_and_survives_garbage_and_overflow() {
    let mut stream = vec![0x13, 0x37, 0x00]; // garbage, then a terminator
    stream.extend(frame_of(&Response::Ack));
    stream.extend([0xAAu8; 40]); // an over-long frame
    stream.push(0);
    stream.extend(frame_of(&Response::Done { stack_peak: None }));
    let mut buf = [0u8; 32];
    let mut reader = FrameReader::new(&mut buf);
    let mut seen = Vec::new();
    for b in stream {
        match reader.push(b) {
            Pushed::Pending => {}
            Pushed::Overflow => seen.push("overflow".to_string()),
            Pushed::Frame(len) => seen.push(match decode::<Response>(reader.frame(len)) {
                Ok(r) => format!("{r:?}"),
                Err(e) => format!("error: {e}"),
            }),
        }
    }
    assert_eq!(
        seen,
        [
            "error: frame is not valid COBS",
            "Ack",
            "overflow",
            "Done { stack_peak: None }"
        ]
    );
}

#[test]
fn thresholds_hold_at_most_max_heads() {
    assert_eq!(
        Thresholds::from_slice(&[0.1; 8]).unwrap().as_slice(),
        &[0.1; 8]
    );
    assert!(Thresholds::from_slice(&[0.1; 9]).is_none());
}

#[test]
fn a_lone_delimiter_is_no_frame() {
    let mut buf = [0u8; 64];
    let mut reader = FrameReader::new(&mut buf[..]);
    let (mut scratch, mut frame) = ([0u8; 64], [0u8; 80]);
    let n = protocol::encode(&Response::Ack, &mut scratch, &mut frame).unwrap();
    let mut frames = 0;
    for &b in [0u8, 0].iter().chain(&frame[..n]) {
        if let Pushed::Frame(len) = reader.push(b) {
            frames += 1;
            assert!(matches!(
                protocol::decode::<Response>(reader.frame(len)),
                Ok(Response::Ack)
            ));
        }
    }
    assert_eq!(frames, 1);
}
