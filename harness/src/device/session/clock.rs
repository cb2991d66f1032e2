//! Checking the device's clock under QEMU: two calibration loops of known
//! length, timed by the device, against what the target file claims.

use super::Session;
use crate::device::link::Link;
use crate::device::runner::RunError;
use protocol::{Clock, Request, Response};

/// Iterations of the shorter calibration loop (the longer one runs twice as many).
const CALIBRATION_LOOPS: u32 = 200_000;

impl<L: Link> Session<L> {
    /// Ticks of the device's calibration loop of `loops` iterations.
    pub fn calibrate(&mut self, loops: u32) -> Result<u64, RunError> {
        self.send(&Request::Calibrate { loops })?;
        self.respond("a calibration", |response| match response {
            Response::Calibrated { ticks } => Ok(ticks),
            other => Err(RunError::Protocol(format!(
                "expected a calibration, got {other:?}"
            ))),
        })
    }

    /// Under QEMU `-icount shift=N` every instruction takes `2^N` ns, so a
    /// clock of `f` ticks per second counts `f * 2^N / 1e9` ticks per
    /// instruction, and a retired-instruction counter exactly one. Times
    /// two loops whose lengths differ by a known number of instructions and
    /// refuses a clock that counts more than 1% away from that: a wrong
    /// frequency in a target file would otherwise scale every figure.
    pub fn check_clock(&mut self, shift: u32) -> Result<f64, RunError> {
        let (clock, ticks_per_second) = self.clock.ok_or_else(|| {
            RunError::Protocol("asked for a calibration before the device identified itself".into())
        })?;
        let expected = match clock {
            Clock::Cycles => {
                crate::telemetry::icount::ticks_per_instruction(ticks_per_second, shift)
            }
            Clock::Instructions => 1.0,
            Clock::HostNanos => return Ok(f64::NAN),
        };
        let short = self.calibrate(CALIBRATION_LOOPS)?;
        let long = self.calibrate(2 * CALIBRATION_LOOPS)?;
        let instructions = u64::from(CALIBRATION_LOOPS) * protocol::CALIBRATION_INSTRUCTIONS;
        let measured = long.saturating_sub(short) as f64 / instructions as f64;
        if measured == 0.0 {
            return Err(RunError::Calibration(format!("it did not advance over {instructions} instructions (is the timer in the target file right?)")));
        }
        if (measured / expected - 1.0).abs() > 0.01 {
            let claim = match clock {
                Clock::Cycles => {
                    let actual_mhz = measured * 1e3 / (1u64 << shift) as f64;
                    format!("the device says {ticks_per_second} ticks per second, which at -icount shift={shift} is {expected:.3} ticks per instruction; it counted {measured:.3}, so its clock runs at about {actual_mhz:.1} MHz")
                }
                _ => format!("a retired-instruction counter should count 1 per instruction; it counted {measured:.3}"),
            };
            return Err(RunError::Calibration(claim));
        }
        Ok(measured)
    }
}
