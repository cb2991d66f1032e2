//! The device side of the bench protocol, the same on every device: the
//! host process and each board's firmware only supply a [`Port`] (bytes to
//! and from the harness) and a [`Clock`] (the board's tick counter), and
//! call [`serve`] with their model and buffers.
#![no_std]
#![warn(missing_docs)]

pub mod eembc;

use core::fmt::Write;
use kernels::model::Model;
use protocol::{FrameReader, Pushed, Request, Response, Thresholds};

/// A message formatted into a fixed buffer (no allocator on a board);
/// what does not fit is cut.
struct Message {
    bytes: [u8; 160],
    len: usize,
}

impl Message {
    fn format(args: core::fmt::Arguments) -> Self {
        let mut m = Self {
            bytes: [0; 160],
            len: 0,
        };
        let _ = m.write_fmt(args);
        m
    }

    fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0u8; 4];
            let encoded = c.encode_utf8(&mut utf8).as_bytes();
            if self.len + encoded.len() > self.bytes.len() {
                return Err(core::fmt::Error);
            }
            self.bytes[self.len..self.len + encoded.len()].copy_from_slice(encoded);
            self.len += encoded.len();
        }
        Ok(())
    }
}

/// Where a timed inference starts and ends, as symbols a QEMU plugin can
/// watch (`harness/qemu-plugin`: bench's cycle models count the blocks run
/// between the two). They sit outside the clock's start and read, so the
/// counted ticks do not include them. The two store different values so
/// the linker cannot fold them into one address, and the stores are
/// volatile so that the optimizer cannot drop them, and the calls with them.
pub mod window {
    use core::sync::atomic::AtomicU32;

    static INSIDE: AtomicU32 = AtomicU32::new(0);

    /// A timed inference is about to start.
    #[inline(never)]
    #[no_mangle]
    pub extern "C" fn bench_timed_begin() {
        // SAFETY: an aligned word of a static, written only by these two.
        unsafe { INSIDE.as_ptr().write_volatile(1) }
    }

    /// The timed inference ended.
    #[inline(never)]
    #[no_mangle]
    pub extern "C" fn bench_timed_end() {
        // SAFETY: as above.
        unsafe { INSIDE.as_ptr().write_volatile(0) }
    }
}

/// The link to the harness.
pub trait Port {
    /// Blocks until at least one byte arrives; returns how many were read,
    /// or `None` when the link is closed for good.
    fn read(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Writes every byte (blocking).
    fn write_all(&mut self, bytes: &[u8]);
}

/// The board's time base for one inference.
pub trait Clock {
    /// What a tick is, for the harness's labels.
    const KIND: protocol::Clock;
    /// Ticks per second (for emulated instruction counts, the instructions
    /// per second of virtual time).
    fn ticks_per_second(&self) -> u64;
    /// Starts timing.
    fn start(&mut self);
    /// Ticks since [`Clock::start`].
    fn elapsed(&mut self) -> u64;
}

/// A line an energy meter watches, driven around the timed inferences so
/// the meter can tell their energy from the rest (PPK2 logic input, the
/// LPM01A's D7). Boards without a meter use [`NoMarker`].
pub trait Marker {
    /// A timed inference starts; `first` for the first of a run.
    fn begin(&mut self, first: bool);
    /// A timed inference ended; `last` for the last of a run.
    fn end(&mut self, last: bool);
}

/// No marker line.
pub struct NoMarker;

impl Marker for NoMarker {
    fn begin(&mut self, _first: bool) {}
    fn end(&mut self, _last: bool) {}
}

/// Who the device is, for the hello message.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// Board name.
    pub board: &'a str,
    /// Bytes of arena the device has.
    pub arena_capacity: u32,
}

/// Buffers the server works in: the model's arena, the current input,
/// received request frames, and two for encoding responses. `rx` must hold
/// a framed input (input bytes + 64 + input bytes / 254); `scratch` and
/// `frame` the framed output tensor.
pub struct Buffers<'b> {
    /// The model's arena (at least `model.arena_bytes()`, 4-byte aligned).
    pub arena: &'b mut [u8],
    /// The current input (exactly the model's input bytes).
    pub input: &'b mut [u8],
    /// Request frames being received.
    pub rx: &'b mut [u8],
    /// Serialized response before framing.
    pub scratch: &'b mut [u8],
    /// Framed response.
    pub frame: &'b mut [u8],
}

/// Why serving stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The port closed (the harness went away).
    Closed,
    /// The harness asked the device to stop.
    Requested,
}

/// Sends one response frame; a response too large for the buffers becomes an error message.
fn send<P: Port>(port: &mut P, scratch: &mut [u8], frame: &mut [u8], response: &Response) {
    match protocol::encode(response, scratch, frame) {
        Ok(n) => port.write_all(&frame[..n]),
        Err(_) => {
            if let Ok(n) = protocol::encode(
                &Response::Error("response larger than the device's frame buffer"),
                scratch,
                frame,
            ) {
                port.write_all(&frame[..n]);
            }
        }
    }
}

/// A loop of `loops` iterations of exactly two instructions each
/// (decrement, branch back while not zero), written in assembly so no
/// compiler changes the count; `loops` of 0 runs once.
#[inline(never)]
fn spin(loops: u32) {
    let n = loops.max(1);
    // SAFETY: touches only the register it is given.
    #[cfg(target_arch = "arm")]
    unsafe {
        core::arch::asm!("2:", "subs {n}, #1", "bne 2b", n = inout(reg) n => _, options(nomem, nostack));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "riscv32")]
    unsafe {
        core::arch::asm!("2:", "addi {n}, {n}, -1", "bnez {n}, 2b", n = inout(reg) n => _, options(nomem, nostack));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("2:", "dec {n:e}", "jnz 2b", n = inout(reg) n => _, options(nomem, nostack));
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32", target_arch = "x86_64")))]
    for _ in 0..core::hint::black_box(n) {}
}

/// Sends an error message. Out of line and cold: its message buffer then
/// takes stack only while an error is sent, not in every caller's frame,
/// which counts on a board with 16 KiB of RAM.
#[inline(never)]
#[cold]
fn send_error<P: Port>(
    port: &mut P,
    scratch: &mut [u8],
    frame: &mut [u8],
    args: core::fmt::Arguments,
) {
    send(
        port,
        scratch,
        frame,
        &Response::Error(Message::format(args).as_str()),
    );
}

/// Answers the harness's requests until the port closes. `stack_peak`
/// reports the deepest stack use seen so far, where the board can tell.
pub fn serve<P: Port, C: Clock, M: Marker>(
    model: &Model,
    id: Identity,
    buffers: Buffers,
    port: &mut P,
    (clock, marker): (&mut C, &mut M),
    mut stack_peak: impl FnMut() -> Option<u32>,
) -> Stop {
    let Buffers {
        arena,
        input,
        rx,
        scratch,
        frame,
    } = buffers;
    let mut thresholds = Thresholds::default();
    let mut reader = FrameReader::new(rx);
    let mut chunk = [0u8; 64];
    loop {
        let Some(n) = port.read(&mut chunk) else {
            return Stop::Closed;
        };
        for &b in &chunk[..n] {
            let len = match reader.push(b) {
                Pushed::Pending => continue,
                Pushed::Overflow => {
                    send(
                        port,
                        scratch,
                        frame,
                        &Response::Error("request frame longer than the device buffer"),
                    );
                    continue;
                }
                Pushed::Frame(len) => len,
            };
            let response_to = protocol::decode::<Request>(reader.frame(len));
            match response_to {
                Err(_) => send(
                    port,
                    scratch,
                    frame,
                    &Response::Error("bad request frame (checksum or encoding)"),
                ),
                Ok(Request::Identify) => {
                    let hello = Response::Hello {
                        version: protocol::VERSION,
                        board: id.board,
                        clock: C::KIND,
                        ticks_per_second: clock.ticks_per_second(),
                        arena_capacity: id.arena_capacity,
                        arena_needed: model.arena_bytes() as u32,
                        input_bytes: input.len() as u32,
                    };
                    send(port, scratch, frame, &hello);
                }
                Ok(Request::SetInput { offset, bytes }) => {
                    match input
                        .get_mut(offset as usize..)
                        .and_then(|rest| rest.get_mut(..bytes.len()))
                    {
                        Some(slot) => {
                            slot.copy_from_slice(bytes);
                            send(port, scratch, frame, &Response::Ack);
                        }
                        None => {
                            let end = offset as usize + bytes.len();
                            send_error(port, scratch, frame, format_args!("input bytes {offset}..{end} are outside the model's {}-byte input", input.len()));
                        }
                    }
                }
                Ok(Request::SetThresholds(t)) => {
                    thresholds = t;
                    send(port, scratch, frame, &Response::Ack);
                }
                Ok(Request::Stop) => {
                    send(port, scratch, frame, &Response::Ack);
                    return Stop::Requested;
                }
                Ok(Request::Calibrate { loops }) => {
                    clock.start();
                    spin(loops);
                    let ticks = clock.elapsed();
                    send(port, scratch, frame, &Response::Calibrated { ticks });
                }
                Ok(Request::Profile) => {
                    if profile(
                        model,
                        arena,
                        input,
                        thresholds.as_slice(),
                        (port, clock),
                        scratch,
                        frame,
                    ) {
                        send(
                            port,
                            scratch,
                            frame,
                            &Response::Done {
                                stack_peak: stack_peak(),
                            },
                        );
                    }
                }
                Ok(Request::Run { warmup, inferences }) => {
                    if run(
                        model,
                        arena,
                        input,
                        thresholds.as_slice(),
                        (warmup, inferences),
                        (port, clock, marker),
                        scratch,
                        frame,
                    ) {
                        let done = Response::Done {
                            stack_peak: stack_peak(),
                        };
                        send(port, scratch, frame, &done);
                    }
                }
            }
        }
    }
}

/// Warm-up, then timed inferences, each reported as it completes, then the
/// last output; `false` (after an error message) if the model failed.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn run<P: Port, C: Clock, M: Marker>(
    model: &Model,
    arena: &mut [u8],
    input: &[u8],
    thresholds: &[f32],
    (warmup, inferences): (u32, u32),
    (port, clock, marker): (&mut P, &mut C, &mut M),
    scratch: &mut [u8],
    frame: &mut [u8],
) -> bool {
    let mut last = None;
    let total = warmup.saturating_add(inferences);
    for i in 0..total {
        if let Some(slot) = model.input_mut(arena) {
            slot.copy_from_slice(input);
        }
        let timed = i >= warmup;
        if timed {
            marker.begin(i == warmup);
            window::bench_timed_begin();
        }
        clock.start();
        let outcome = model.run(arena, thresholds);
        let ticks = clock.elapsed();
        if timed {
            window::bench_timed_end();
            marker.end(i + 1 == total);
        }
        match outcome {
            Ok(outcome) => {
                if i >= warmup {
                    send(
                        port,
                        scratch,
                        frame,
                        &Response::Inference {
                            index: i - warmup,
                            ticks,
                            exit: outcome.exit,
                        },
                    );
                }
                last = Some(outcome);
            }
            Err(e) => {
                send_error(port, scratch, frame, format_args!("{e}"));
                return false;
            }
        }
    }
    if let Some(outcome) = last {
        send(
            port,
            scratch,
            frame,
            &Response::Output(model.tensor(arena, &outcome.output).unwrap_or(&[])),
        );
    }
    true
}

/// Times each operator and sends its count as soon as it ran; the clock
/// restarts after the message, so sending costs the operators nothing.
struct Streaming<'a, P: Port, C: Clock> {
    port: &'a mut P,
    clock: &'a mut C,
    scratch: &'a mut [u8],
    frame: &'a mut [u8],
}

impl<P: Port, C: Clock> kernels::clock::Profiler for Streaming<'_, P, C> {
    fn stamp(&mut self, after_op: Option<usize>) {
        if let Some(op) = after_op {
            let ticks = self.clock.elapsed();
            send(
                self.port,
                self.scratch,
                self.frame,
                &Response::Layer {
                    op: op as u32,
                    ticks,
                },
            );
        }
        self.clock.start();
    }
}

/// One inference with every operator timed; `false` (after an error
/// message) if the model failed. Out of line, like [`run`]: the two never
/// nest, so their frames need not add up in [`serve`]'s.
#[inline(never)]
fn profile<P: Port, C: Clock>(
    model: &Model,
    arena: &mut [u8],
    input: &[u8],
    thresholds: &[f32],
    (port, clock): (&mut P, &mut C),
    scratch: &mut [u8],
    frame: &mut [u8],
) -> bool {
    if let Some(slot) = model.input_mut(arena) {
        slot.copy_from_slice(input);
    }
    let mut streaming = Streaming {
        port,
        clock,
        scratch,
        frame,
    };
    match model.run_profiled(arena, thresholds, &mut streaming) {
        Ok(_) => true,
        Err(e) => {
            let Streaming {
                port,
                scratch,
                frame,
                ..
            } = streaming;
            send_error(port, scratch, frame, format_args!("{e}"));
            false
        }
    }
}

/// Reports a model that failed to load, so the harness can show why.
pub fn refuse<P: Port>(
    port: &mut P,
    error: &dyn core::fmt::Display,
    scratch: &mut [u8],
    frame: &mut [u8],
) {
    send_error(port, scratch, frame, format_args!("{error}"));
}
