//! The host target's device: the role firmware plays on a board, played by
//! an optimized host process. It loads a model blob, then answers the
//! harness's protocol requests on stdin/stdout, timing each inference with
//! the host's monotonic clock.
//!
//! Usage: `bench-firmware-host MODEL.blob` (the harness starts it).

use kernels::model::Model;
use protocol::{Clock, FrameReader, Pushed, Request, Response, Thresholds};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

/// A zeroed buffer of `bytes` bytes, 16-byte aligned (what blobs and arenas ask for).
fn aligned(bytes: usize) -> Vec<u128> {
    vec![0u128; bytes.div_ceil(16)]
}

/// Writes frames to stdout, growing its buffers to the largest message sent.
struct Sender {
    scratch: Vec<u8>,
    frame: Vec<u8>,
    out: std::io::StdoutLock<'static>,
}

impl Sender {
    fn new() -> Self {
        Self { scratch: vec![0; 1 << 16], frame: vec![0; (1 << 16) + (1 << 16) / 254 + protocol::FRAME_OVERHEAD], out: std::io::stdout().lock() }
    }

    fn send(&mut self, response: &Response) -> std::io::Result<()> {
        let n = loop {
            match protocol::encode(response, &mut self.scratch, &mut self.frame) {
                Ok(n) => break n,
                Err(protocol::FrameError::BufferTooSmall) if self.scratch.len() < 1 << 30 => {
                    let size = self.scratch.len() * 2;
                    self.scratch.resize(size, 0);
                    self.frame.resize(size + size / 254 + protocol::FRAME_OVERHEAD, 0);
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        };
        self.out.write_all(&self.frame[..n])?;
        self.out.flush()
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bench-firmware-host MODEL.blob");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("failed to read model blob {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut blob_words = aligned(bytes.len());
    let blob = &mut bytes_mut(&mut blob_words)[..bytes.len()];
    blob.copy_from_slice(&bytes);
    let blob = &*blob;
    let mut sender = Sender::new();
    let model = match Model::parse(blob) {
        Ok(m) => m,
        Err(e) => {
            let _ = sender.send(&Response::Error(&e.to_string()));
            return ExitCode::from(3);
        }
    };
    match serve(&model, &mut sender) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failed to talk to the harness: {e}");
            ExitCode::from(1)
        }
    }
}

/// Byte view of a `u128` buffer.
fn bytes_mut(words: &mut [u128]) -> &mut [u8] {
    bytemuck::cast_slice_mut(words)
}

/// Answers requests until stdin closes.
fn serve(model: &Model, sender: &mut Sender) -> std::io::Result<()> {
    let input_bytes = model.header().input.byte_len().unwrap_or(0);
    let mut arena_words = aligned(model.arena_bytes());
    let arena = &mut bytes_mut(&mut arena_words)[..model.arena_bytes()];
    let mut input = vec![0u8; input_bytes];
    let mut thresholds = Thresholds::default();
    let mut buf = vec![0u8; input_bytes * 2 + 4096];
    let mut reader = FrameReader::new(&mut buf);
    let mut stdin = std::io::stdin().lock();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = stdin.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        for &b in &chunk[..n] {
            let len = match reader.push(b) {
                Pushed::Pending => continue,
                Pushed::Overflow => {
                    sender.send(&Response::Error("request frame longer than the device buffer"))?;
                    continue;
                }
                Pushed::Frame(len) => len,
            };
            let request = match protocol::decode::<Request>(reader.frame(len)) {
                Ok(r) => r,
                Err(e) => {
                    sender.send(&Response::Error(&format!("bad request frame: {e}")))?;
                    continue;
                }
            };
            match request {
                Request::Identify => sender.send(&Response::Hello {
                    version: protocol::VERSION,
                    board: "host",
                    clock: Clock::HostNanos,
                    ticks_per_second: 1_000_000_000,
                    arena_capacity: arena.len() as u32,
                    arena_needed: model.arena_bytes() as u32,
                    input_bytes: input_bytes as u32,
                })?,
                Request::SetInput(bytes) if bytes.len() == input.len() => {
                    input.copy_from_slice(bytes);
                    sender.send(&Response::Ack)?;
                }
                Request::SetInput(bytes) => {
                    sender.send(&Response::Error(&format!("input has {} bytes, the model takes {}", bytes.len(), input.len())))?;
                }
                Request::SetThresholds(t) => {
                    thresholds = t;
                    sender.send(&Response::Ack)?;
                }
                Request::Run { warmup, inferences } => run(model, arena, &input, thresholds.as_slice(), warmup, inferences, sender)?,
            }
        }
    }
}

/// Warm-up, then timed inferences, each reported as it completes.
fn run(model: &Model, arena: &mut [u8], input: &[u8], thresholds: &[f32], warmup: u32, inferences: u32, sender: &mut Sender) -> std::io::Result<()> {
    let mut last = None;
    for i in 0..warmup + inferences {
        if let Some(slot) = model.input_mut(arena) {
            slot.copy_from_slice(input);
        }
        let start = Instant::now();
        let outcome = model.run(arena, thresholds);
        let ticks = start.elapsed().as_nanos() as u64;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return sender.send(&Response::Error(&e.to_string())),
        };
        if i >= warmup {
            sender.send(&Response::Inference { index: i - warmup, ticks, exit: outcome.exit })?;
        }
        last = Some(outcome);
    }
    if let Some(outcome) = last {
        sender.send(&Response::Output(model.tensor(arena, &outcome.output).unwrap_or(&[])))?;
    }
    sender.send(&Response::Done { stack_peak: None })
}
