//! The host target's device: the role firmware plays on a board, played by
//! an optimized host process. It loads a model blob and serves the protocol
//! ([`device::serve`], the same code every board runs) on stdin/stdout,
//! timing each inference with the host's monotonic clock.
//!
//! Usage: `bench-firmware-host MODEL.blob` (the harness starts it).

use device::{Buffers, Clock, Identity, Port};
use kernels::model::Model;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

/// A zeroed buffer of `bytes` bytes, 16-byte aligned (what blobs and arenas ask for).
fn aligned(bytes: usize) -> Vec<u128> {
    vec![0u128; bytes.div_ceil(16)]
}

/// stdin and stdout. Answers wait in `pending` until the device next
/// reads (a request, or the end of the session): during a timed run the
/// device makes no system call and the harness on the other end does not
/// wake up to read, so neither preempts the inferences being timed.
struct Stdio {
    stdin: std::io::StdinLock<'static>,
    stdout: std::io::StdoutLock<'static>,
    pending: Vec<u8>,
}

impl Stdio {
    /// Writes out the answers held so far.
    fn flush(&mut self) {
        // A harness that went away shows up as a closed stdin next.
        let _ = self
            .stdout
            .write_all(&self.pending)
            .and_then(|()| self.stdout.flush());
        self.pending.clear();
    }
}

impl Port for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.flush();
        match self.stdin.read(buf) {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }
}

impl Drop for Stdio {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The host's monotonic clock, in nanoseconds.
struct HostClock(Instant);

impl Clock for HostClock {
    const KIND: protocol::Clock = protocol::Clock::HostNanos;

    fn ticks_per_second(&self) -> u64 {
        1_000_000_000
    }

    fn start(&mut self) {
        self.0 = Instant::now();
    }

    fn elapsed(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Frame buffer size for a message of `bytes` payload bytes, with 256 bytes of room for its header.
fn framed(bytes: usize) -> usize {
    protocol::frame_len(bytes) + 256
}

/// The x86 kernels this process runs: the best this CPU has, or the level
/// `BENCH_HOST_ISA` names (`portable`, `avx2`, `avx512-vnni`) to compare
/// them; `None` after saying why when that level is unknown or missing.
#[cfg(target_arch = "x86_64")]
fn kernel_isa() -> Option<kernels::x86::Isa> {
    use kernels::x86::{select, Isa};
    let wanted = match std::env::var("BENCH_HOST_ISA") {
        Err(_) => Isa::best_available(),
        Ok(name) => match Isa::ALL.into_iter().find(|isa| isa.name() == name) {
            Some(isa) if isa.is_available() => isa,
            Some(_) => {
                eprintln!("failed to select kernels: BENCH_HOST_ISA={name}, but this CPU lacks it");
                return None;
            }
            None => {
                eprintln!("failed to select kernels: BENCH_HOST_ISA={name} is not one of portable, avx2, avx512-vnni");
                return None;
            }
        },
    };
    Some(select(wanted))
}

/// Other hosts run the portable kernels.
#[cfg(not(target_arch = "x86_64"))]
fn kernel_isa() -> Option<Portable> {
    Some(Portable)
}

/// The name of the portable kernels, on hosts with no others.
#[cfg(not(target_arch = "x86_64"))]
struct Portable;

#[cfg(not(target_arch = "x86_64"))]
impl Portable {
    fn name(&self) -> &'static str {
        "portable"
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
    // The model lives as long as the process, as on a board: `'static`, so
    // its filters can be packed once for the x86 kernels.
    let blob_words: &'static mut [u128] = aligned(bytes.len()).leak();
    let blob = &mut bytemuck::cast_slice_mut::<u128, u8>(blob_words)[..bytes.len()];
    blob.copy_from_slice(&bytes);
    let blob: &'static [u8] = blob;
    let mut port = Stdio {
        stdin: std::io::stdin().lock(),
        stdout: std::io::stdout().lock(),
        pending: Vec::new(),
    };
    let model = match Model::parse(blob) {
        Ok(m) => m,
        Err(e) => {
            let (mut scratch, mut frame) = (vec![0u8; 512], vec![0u8; framed(512)]);
            device::refuse(&mut port, &e, &mut scratch, &mut frame);
            return ExitCode::from(3);
        }
    };
    let Some(isa) = kernel_isa() else {
        return ExitCode::from(2);
    };
    #[cfg(target_arch = "x86_64")]
    {
        kernels::int8::x86::prepare(&model);
        kernels::float::x86::prepare(&model);
    }
    // Decoded once for the process, as the blob is.
    let model = model.with_decoded_ops(model.ops().collect::<Vec<_>>().leak());
    let input_bytes = model.header().input.byte_len().unwrap_or(0);
    let output_bytes = model.header().output.byte_len().unwrap_or(0);
    let mut arena_words = aligned(model.arena_bytes());
    let arena = &mut bytemuck::cast_slice_mut::<u128, u8>(&mut arena_words)[..model.arena_bytes()];
    let (mut input, mut rx) = (
        vec![0u8; input_bytes],
        vec![0u8; framed(input_bytes.min(protocol::MAX_INPUT_CHUNK))],
    );
    let (mut scratch, mut frame) = (
        vec![0u8; framed(output_bytes)],
        vec![0u8; framed(framed(output_bytes))],
    );
    let board = format!("host, {} kernels", isa.name());
    let id = Identity {
        board: &board,
        arena_capacity: arena.len() as u32,
    };
    let buffers = Buffers {
        arena,
        input: &mut input,
        rx: &mut rx,
        scratch: &mut scratch,
        frame: &mut frame,
    };
    device::serve(
        &model,
        id,
        buffers,
        &mut port,
        (&mut HostClock(Instant::now()), &mut device::NoMarker),
        || None,
    );
    ExitCode::SUCCESS
}
