//! The MLPerf Tiny (EEMBC) DUT serial protocol, device side: what the
//! reference API (`benchmark/api/internally_implemented.cpp` of
//! mlcommons/tiny) answers, so that the official EnergyRunner, bench's own
//! `bench-dut` runtime, or any runner of that protocol can measure bench's
//! kernels. Commands end with `%` and are cut at 80 characters; every
//! answer ends with `m-ready`. `infer N W` runs W warm-up inferences, then
//! N between two `m-lap-us-` timestamps, then prints the results: the
//! reference format (`m-results-[...]`, dequantized with three decimals)
//! and, as bench's TFLM firmware does, every output byte in hex
//! (`m-results-bytes-[...]`) so that a runner can compare them exactly.

use crate::{Clock, Port};
use core::fmt::Write;
use kernels::model::{DType, Model};

/// The reference API's command buffer (`EE_CMD_SIZE`).
const COMMAND_BYTES: usize = 80;

/// The reference API's default warm-up for `infer N` without `W`.
const DEFAULT_WARMUP: u32 = 10;

/// How the output's integers map to real values (`real = scale * (q - zero)`);
/// `None` prints a float output as it is, or integers as they are.
pub type OutputQuant = Option<(f32, i32)>;

/// Formats into the port, a line at a time (no allocator on a board).
struct Out<'p, P: Port>(&'p mut P);

impl<P: Port> Write for Out<'_, P> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes());
        Ok(())
    }
}

/// The DUT's state between commands.
struct Dut<'a, 'm, P: Port, C: Clock> {
    model: &'a Model<'m>,
    arena: &'a mut [u8],
    input: &'a mut [u8],
    port: &'a mut P,
    clock: &'a mut C,
    quant: OutputQuant,
    /// Bytes `db load` announced, and bytes loaded since.
    expected: usize,
    loaded: usize,
    /// Microseconds of the board's clock before the current window: the
    /// timestamps count on from one window to the next.
    elapsed_us: u64,
    /// Whether an inference ran, so `results` has an output.
    ran: bool,
}

/// Answers MLPerf Tiny DUT commands on `port` until it closes: the model's
/// input is loaded with `db`, `infer` runs it in `arena` timed by `clock`.
pub fn serve<P: Port, C: Clock>(
    model: &Model,
    arena: &mut [u8],
    input: &mut [u8],
    port: &mut P,
    clock: &mut C,
    quant: OutputQuant,
) {
    let mut dut = Dut {
        model,
        arena,
        input,
        port,
        clock,
        quant,
        expected: 0,
        loaded: 0,
        elapsed_us: 0,
        ran: false,
    };
    dut.line(format_args!("m-timestamp-mode-performance"));
    dut.lap();
    dut.line(format_args!("m-init-done"));
    dut.line(format_args!("m-ready"));
    let mut command = [0u8; COMMAND_BYTES];
    let mut len = 0;
    let mut chunk = [0u8; 64];
    loop {
        let Some(n) = dut.port.read(&mut chunk) else {
            return;
        };
        for &b in &chunk[..n] {
            if b == b'%' {
                let text = core::str::from_utf8(&command[..len]).unwrap_or("");
                dut.command(text);
                dut.line(format_args!("m-ready"));
                len = 0;
            } else if len < COMMAND_BYTES {
                command[len] = b;
                len += 1;
            }
        }
    }
}

impl<P: Port, C: Clock> Dut<'_, '_, P, C> {
    fn line(&mut self, args: core::fmt::Arguments) {
        let mut out = Out(self.port);
        let _ = out.write_fmt(args);
        let _ = out.write_str("\r\n");
    }

    fn lap(&mut self) {
        let us = self.elapsed_us;
        self.line(format_args!("m-lap-us-{us}"));
    }

    fn command(&mut self, text: &str) {
        let mut words = text.split_ascii_whitespace();
        match words.next() {
            None => {}
            Some("name") => self.line(format_args!("m-name-dut-[bench]")),
            Some("profile") => {
                self.line(format_args!(
                    "m-profile-[ULPMark for tinyML Firmware V0.0.1]"
                ));
                self.line(format_args!("m-model-[bench]"));
            }
            Some("timestamp") => self.lap(),
            Some("db") => self.db(words.next(), words.next()),
            Some("infer") => self.infer(words.next(), words.next()),
            Some("results") => self.results(),
            Some(other) => self.line(format_args!("e-[Unknown command: {other}]")),
        }
    }

    fn db(&mut self, sub: Option<&str>, arg: Option<&str>) {
        match (sub, arg.and_then(|a| a.parse::<usize>().ok())) {
            (None, _) => self.line(format_args!("e-[Command 'db' requires a subcommand]")),
            (Some("load"), Some(n)) if n > 0 && n <= self.input.len() => {
                (self.expected, self.loaded) = (n, 0);
                self.line(format_args!("m-[Expecting {n} bytes]"));
            }
            (Some("load"), Some(n)) if n > 0 => {
                let most = self.input.len();
                self.line(format_args!(
                    "e-[the input has {n} bytes, the model takes {most}]"
                ));
            }
            (Some("load"), _) => self.line(format_args!("e-[Command 'db load' must be >0 bytes]")),
            (Some(hex), _) => self.load_hex(hex),
        }
    }

    fn load_hex(&mut self, hex: &str) {
        if !hex.len().is_multiple_of(2) {
            self.line(format_args!("e-[Insufficent number of hex digits]"));
            return;
        }
        for pair in hex.as_bytes().chunks(2) {
            let byte = core::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok());
            let Some(byte) = byte else {
                self.line(format_args!("e-[Invalid hex digit '{hex}']"));
                return;
            };
            if self.loaded < self.expected {
                self.input[self.loaded] = byte;
                self.loaded += 1;
                if self.loaded == self.expected {
                    self.line(format_args!("m-load-done"));
                }
            }
        }
    }

    fn infer(&mut self, n: Option<&str>, warmup: Option<&str>) {
        let Some(n) = n.and_then(|n| n.parse::<u32>().ok()).filter(|&n| n > 0) else {
            self.line(format_args!("e-[Inference iterations must be >0]"));
            return;
        };
        let warmup = warmup.map_or(Some(DEFAULT_WARMUP), |w| w.parse::<u32>().ok());
        let Some(warmup) = warmup else {
            self.line(format_args!("e-[Inference warmup must be >=0]"));
            return;
        };
        self.line(format_args!("m-warmup-start-{warmup}"));
        if !self.run(warmup) {
            return;
        }
        self.line(format_args!("m-warmup-done"));
        self.line(format_args!("m-infer-start-{n}"));
        self.lap();
        self.clock.start();
        let ok = self.run(n);
        let ticks = self.clock.elapsed();
        let per_second = self.clock.ticks_per_second().max(1);
        self.elapsed_us += (u128::from(ticks) * 1_000_000 / u128::from(per_second)) as u64;
        if !ok {
            return;
        }
        self.lap();
        self.line(format_args!("m-infer-done"));
        self.results();
    }

    /// `n` inferences, each on the loaded input (the executor may reuse the
    /// input's memory); `false` after an error line.
    fn run(&mut self, n: u32) -> bool {
        for _ in 0..n {
            if let Some(slot) = self.model.input_mut(self.arena) {
                slot.copy_from_slice(self.input);
            }
            if let Err(e) = self.model.run(self.arena, &[]) {
                self.line(format_args!("e-[{e}]"));
                return false;
            }
            self.ran = true;
        }
        true
    }

    fn results(&mut self) {
        let output = &self.model.header().output;
        let dtype = output.dtype;
        let bytes = match self.model.tensor(self.arena, output) {
            Some(bytes) if self.ran => bytes,
            _ => {
                self.line(format_args!("e-[no inference has run]"));
                return;
            }
        };
        let mut out = Out(self.port);
        let _ = out.write_str("m-results-[");
        let size = match dtype {
            DType::I16 => 2,
            DType::F32 => 4,
            _ => 1,
        };
        for (i, value) in bytes.chunks_exact(size).enumerate() {
            let real = real_value(dtype, value, self.quant);
            if i > 0 {
                let _ = out.write_str(",");
            }
            let _ = write_fixed3(&mut out, real);
        }
        let _ = out.write_str("]\r\nm-results-bytes-[");
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        let _ = out.write_str("]\r\n");
    }
}

/// Reports a model that failed to load, as the protocol's error line.
pub fn refuse<P: Port>(port: &mut P, error: &dyn core::fmt::Display) {
    let _ = write!(Out(port), "e-[{error}]\r\n");
}

/// Writes `value` as `{value:.3}` would (round half to even on its exact
/// binary value, `-` on negative zero, `NaN`, `inf`), without core's
/// general float formatting, which took about 15 KiB of every firmware
/// image for this one line. Exact: below 2^24 an f32 times 1000 is exact
/// in f64; from 2^24 on it has no fraction.
fn write_fixed3(out: &mut impl Write, value: f32) -> core::fmt::Result {
    if value.is_nan() {
        return out.write_str("NaN");
    }
    let sign = if value.is_sign_negative() { "-" } else { "" };
    let magnitude = value.abs();
    if magnitude.is_infinite() {
        return write!(out, "{sign}inf");
    }
    if magnitude >= (1u32 << 24) as f32 {
        return write!(out, "{sign}{}.000", magnitude as u128);
    }
    let scaled = magnitude as f64 * 1000.0;
    let mut thousandths = scaled as u64;
    let rest = scaled - thousandths as f64;
    if rest > 0.5 || (rest == 0.5 && thousandths % 2 == 1) {
        thousandths += 1;
    }
    write!(
        out,
        "{sign}{}.{:03}",
        thousandths / 1000,
        thousandths % 1000
    )
}

/// One output element as a real value.
fn real_value(dtype: DType, bytes: &[u8], quant: OutputQuant) -> f32 {
    let q = match dtype {
        DType::F32 => return f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        DType::I16 => i32::from(i16::from_le_bytes([bytes[0], bytes[1]])),
        DType::U8 => i32::from(bytes[0]),
        _ => i32::from(bytes[0] as i8),
    };
    match quant {
        Some((scale, zero)) => scale * (q - zero) as f32,
        None => q as f32,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::write_fixed3;
    use std::string::String;
    use std::{format, vec};

    fn fixed3(value: f32) -> String {
        let mut s = String::new();
        write_fixed3(&mut s, value).unwrap();
        s
    }

    /// The same text as core's `{:.3}` for the special values, the ties
    /// (odd multiples of 1/2000 that f32 holds exactly), the powers of two
    /// around 2^24, and a million f32 bit patterns from every exponent.
    #[test]
    fn writes_what_core_writes_with_three_decimals() {
        let mut values = vec![
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -1e-9,
            0.0625,
            0.1875,
            -0.0625,
            2.0625,
            0.9995,
            999.9995,
        ];
        for e in 20..=26 {
            let p = (1u32 << e) as f32;
            values.extend([p, p - 0.5, p + 0.5, p - 1.0, -p]);
        }
        for k in 0..4000u32 {
            values.push((2 * k + 1) as f32 / 16.0 / 125.0);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1_000_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            values.push(f32::from_bits(seed as u32));
        }
        for v in values {
            assert_eq!(fixed3(v), format!("{v:.3}"), "{v:e} ({:#x})", v.to_bits());
        }
    }
}
