//! The wire protocol between the bench harness and a device.
//!
//! The same messages travel over every link: a host runner's stdin and
//! stdout, a QEMU serial PTY, a board's UART or RTT channel. A frame is a
//! postcard-encoded message followed by its CRC-32 (little endian), COBS
//! encoded and terminated by a zero byte, so a receiver can resynchronize
//! after garbage and a corrupted frame is detected, never turned into a number.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// Version of the message set; a device reports it in [`Response::Hello`].
pub const VERSION: u16 = 2;

/// Largest piece of input one [`Request::SetInput`] carries: a device's
/// receive buffer needs `MAX_INPUT_CHUNK + 64` bytes plus framing, whatever
/// the size of its model's input, which matters on a board with 16 KiB of RAM.
pub const MAX_INPUT_CHUNK: usize = 192;

/// Most exit heads a model may have (thresholds travel in a fixed array).
pub const MAX_HEADS: usize = 8;

/// Bytes a frame adds around its message: CRC-32, COBS overhead for up to
/// 254 bytes, and the terminator. Size buffers with [`frame_len`].
pub const FRAME_OVERHEAD: usize = 4 + 1 + 1;

/// The frame buffer a message of at most `message` bytes needs: the one
/// sizing every sender (firmware, host program, harness) uses.
pub const fn frame_len(message: usize) -> usize {
    message + message / 254 + FRAME_OVERHEAD
}

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What the harness asks of a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Reply with [`Response::Hello`].
    Identify,
    /// Write these bytes into the model input (the input tensor, raw) at
    /// `offset`; an input travels in pieces of at most [`MAX_INPUT_CHUNK`]
    /// bytes, each acknowledged, and is used from the next run on.
    SetInput {
        /// Where the piece goes in the input tensor.
        offset: u32,
        /// The piece.
        bytes: &'a [u8],
    },
    /// Exit thresholds per head, applied at run time (no rebuild, no reflash).
    SetThresholds(Thresholds),
    /// Run `warmup` untimed inferences, then `inferences` timed ones, each
    /// answered by [`Response::Inference`]; then [`Response::Output`] with
    /// the last output and [`Response::Done`].
    Run {
        /// Untimed inferences first.
        warmup: u32,
        /// Timed inferences.
        inferences: u32,
    },
    /// Run one untimed inference with each operator timed, answered by one
    /// [`Response::Layer`] per operator that ran, then [`Response::Done`].
    Profile,
    /// Time a loop of `loops` iterations of exactly [`CALIBRATION_INSTRUCTIONS`]
    /// instructions each, answered by [`Response::Calibrated`]: two lengths
    /// tell how many ticks the device's clock counts per instruction.
    Calibrate {
        /// Iterations.
        loops: u32,
    },
    /// Acknowledge, then end the device program (an emulator exits with
    /// status 0, a host process too; a board idles).
    Stop,
}

/// Instructions per iteration of the calibration loop (decrement, branch).
pub const CALIBRATION_INSTRUCTIONS: u64 = 2;

/// Thresholds for up to [`MAX_HEADS`] exit heads; heads past `count` never exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Number of heads with a threshold.
    pub count: u8,
    /// The thresholds, in head order.
    pub values: [f32; MAX_HEADS],
}

impl Thresholds {
    /// Thresholds from a slice, or `None` if it has more than [`MAX_HEADS`] values.
    pub fn from_slice(values: &[f32]) -> Option<Self> {
        let mut t = Thresholds {
            count: u8::try_from(values.len()).ok()?,
            values: [0.0; MAX_HEADS],
        };
        t.values.get_mut(..values.len())?.copy_from_slice(values);
        Some(t)
    }

    /// The thresholds that are set.
    pub fn as_slice(&self) -> &[f32] {
        &self.values[..(self.count as usize).min(MAX_HEADS)]
    }
}

/// What a device's tick counts mean; the harness labels every figure with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Clock {
    /// Nanoseconds of the host's monotonic clock.
    HostNanos,
    /// CPU cycles (DWT CYCCNT, SysTick on a real core, `mcycle`).
    Cycles,
    /// Retired instructions (QEMU with `-icount`, `minstret`).
    Instructions,
}

/// What a device answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// Who the device is and what it holds.
    Hello {
        /// [`VERSION`] of the device's protocol.
        version: u16,
        /// Board or runner name.
        board: &'a str,
        /// Unit of tick counts.
        clock: Clock,
        /// Ticks per second (0 when the unit is not time-based).
        ticks_per_second: u64,
        /// Arena bytes the device has.
        arena_capacity: u32,
        /// Arena bytes the loaded model needs.
        arena_needed: u32,
        /// Input tensor bytes.
        input_bytes: u32,
    },
    /// The request was carried out.
    Ack,
    /// One timed inference.
    Inference {
        /// Index among the timed inferences.
        index: u32,
        /// Ticks it took.
        ticks: u64,
        /// Exit head that fired, `None` for the final output.
        exit: Option<u8>,
    },
    /// The output bytes of the last inference.
    Output(&'a [u8]),
    /// Ticks the calibration loop took.
    Calibrated {
        /// Ticks.
        ticks: u64,
    },
    /// One operator of a profiled inference.
    Layer {
        /// Index of the operator in the model.
        op: u32,
        /// Ticks it took (the profiling itself excluded).
        ticks: u64,
    },
    /// The run finished.
    Done {
        /// Peak stack bytes, where the device measures it.
        stack_peak: Option<u32>,
    },
    /// The request failed on the device.
    Error(&'a str),
}

/// Why a frame could not be built or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The output buffer is too small for the frame.
    BufferTooSmall,
    /// The bytes are not valid COBS.
    Cobs,
    /// The frame is shorter than its checksum.
    Truncated,
    /// The checksum does not match the contents.
    Checksum {
        /// CRC carried by the frame.
        sent: u32,
        /// CRC of the received contents.
        computed: u32,
    },
    /// The checksum matched but the message does not decode.
    Decode,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::BufferTooSmall => write!(f, "frame does not fit the buffer"),
            FrameError::Cobs => write!(f, "frame is not valid COBS"),
            FrameError::Truncated => write!(f, "frame is shorter than its checksum"),
            FrameError::Checksum { sent, computed } => write!(
                f,
                "frame checksum mismatch (sent {sent:#010x}, computed {computed:#010x})"
            ),
            FrameError::Decode => {
                write!(f, "frame checksum is right but the message does not decode")
            }
        }
    }
}

/// Encodes `message` as one frame into `out`, using `scratch` for the
/// unframed bytes; returns the frame length, terminator included.
pub fn encode<T: Serialize>(
    message: &T,
    scratch: &mut [u8],
    out: &mut [u8],
) -> Result<usize, FrameError> {
    let used = postcard::to_slice(message, scratch)
        .map_err(|_| FrameError::BufferTooSmall)?
        .len();
    let crc = CRC.checksum(&scratch[..used]);
    let end = used.checked_add(4).ok_or(FrameError::BufferTooSmall)?;
    scratch
        .get_mut(used..end)
        .ok_or(FrameError::BufferTooSmall)?
        .copy_from_slice(&crc.to_le_bytes());
    let n = cobs::try_encode(&scratch[..end], out).map_err(|_| FrameError::BufferTooSmall)?;
    *out.get_mut(n).ok_or(FrameError::BufferTooSmall)? = 0;
    Ok(n + 1)
}

/// Decodes one frame (the bytes before its zero terminator), in place.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a mut [u8]) -> Result<T, FrameError> {
    let n = cobs::decode_in_place(frame).map_err(|_| FrameError::Cobs)?;
    let body_len = n.checked_sub(4).ok_or(FrameError::Truncated)?;
    let (body, tail) = frame[..n].split_at(body_len);
    let sent = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = CRC.checksum(body);
    if sent != computed {
        return Err(FrameError::Checksum { sent, computed });
    }
    postcard::from_bytes(body).map_err(|_| FrameError::Decode)
}

/// Collects incoming bytes into frames in a fixed buffer (borrowed on a
/// device, owned on the host).
pub struct FrameReader<B: AsMut<[u8]>> {
    buf: B,
    len: usize,
    overflowed: bool,
}

/// What one pushed byte completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The frame is not complete yet.
    Pending,
    /// A frame of this many bytes is in [`FrameReader::frame`].
    Frame(usize),
    /// A frame longer than the buffer was dropped.
    Overflow,
}

impl<B: AsMut<[u8]>> FrameReader<B> {
    /// A reader collecting into `buf`.
    pub fn new(buf: B) -> Self {
        Self {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    /// Adds one received byte. After [`Pushed::Frame`], read the frame with
    /// [`FrameReader::frame`] before pushing again. A delimiter with nothing
    /// before it is no frame: senders use one to end whatever partial frame
    /// came before (a device that panicked mid-message, say).
    pub fn push(&mut self, byte: u8) -> Pushed {
        if byte == 0 {
            if self.len == 0 && !self.overflowed {
                return Pushed::Pending;
            }
            let (len, overflowed) = (self.len, self.overflowed);
            (self.len, self.overflowed) = (0, false);
            return if overflowed {
                Pushed::Overflow
            } else {
                Pushed::Frame(len)
            };
        }
        match self.buf.as_mut().get_mut(self.len) {
            Some(slot) if !self.overflowed => {
                *slot = byte;
                self.len += 1;
            }
            _ => self.overflowed = true,
        }
        Pushed::Pending
    }

    /// The first `len` bytes, as reported by [`Pushed::Frame`].
    pub fn frame(&mut self, len: usize) -> &mut [u8] {
        &mut self.buf.as_mut()[..len]
    }
}
