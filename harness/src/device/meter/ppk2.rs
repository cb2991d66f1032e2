//! Nordic Power Profiler Kit II over its USB serial port: source-meter
//! mode at a set voltage, 100 k samples per second, each sample a 32-bit
//! word with a 14-bit ADC reading, a 3-bit measurement range and the 8
//! digital inputs (the firmware raises one of them around the timed
//! inferences). Currents come from the ADC through the per-range
//! calibration the kit reports in its metadata.

use super::{Capture, MeterError, Recorder};
use std::time::Duration;

/// Samples per second.
pub const SAMPLE_RATE: f64 = 100_000.0;

/// Command opcodes.
mod op {
    pub const AVERAGE_START: u8 = 0x06;
    pub const AVERAGE_STOP: u8 = 0x07;
    pub const DEVICE_RUNNING_SET: u8 = 0x0c;
    pub const REGULATOR_SET: u8 = 0x0d;
    pub const SET_POWER_MODE: u8 = 0x11;
    pub const GET_META_DATA: u8 = 0x19;
}

/// Lowest and highest source voltage, in mV.
pub const VOLTAGE_RANGE_MV: (u32, u32) = (800, 5000);

/// The bytes that set the source voltage: `mV - 800 + 32` as a 16-bit
/// value after the opcode, its high byte offset by 3 (the kit's encoding).
pub fn regulator_command(millivolts: u32) -> Result<[u8; 3], MeterError> {
    let (lo, hi) = VOLTAGE_RANGE_MV;
    if !(lo..=hi).contains(&millivolts) {
        return Err(MeterError::Config(format!(
            "PPK2 source voltage {millivolts} mV is outside {lo}..={hi} mV"
        )));
    }
    let value = millivolts - lo + 32;
    Ok([
        op::REGULATOR_SET,
        3 + (value / 256) as u8,
        (value % 256) as u8,
    ])
}

/// The commands that power the board at `millivolts` as a source meter:
/// source mode, voltage, DUT power on. Sent when the meter opens, before
/// the probe attaches: a board the PPK2 powers is off until then (Nordic's
/// examples power the DUT first too).
pub fn power_commands(millivolts: u32) -> Result<Vec<Vec<u8>>, MeterError> {
    Ok(vec![
        vec![op::SET_POWER_MODE, 2],
        regulator_command(millivolts)?.to_vec(),
        vec![op::DEVICE_RUNNING_SET, 1],
    ])
}

/// The command that starts the sample stream of a capture.
pub const START_CAPTURE: [u8; 1] = [op::AVERAGE_START];

/// Calibration of one measurement range, from the kit's metadata.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeCalibration {
    /// Shunt resistance, ohms (`R<n>`).
    pub r: f64,
    /// Gain, quadratic and linear terms (`GS<n>`, `GI<n>`).
    pub gs: f64,
    /// Linear gain term.
    pub gi: f64,
    /// ADC offset (`O<n>`).
    pub o: f64,
    /// Voltage-dependent offset, per volt (`S<n>`), and constant offset (`I<n>`).
    pub s: f64,
    /// Constant offset.
    pub i: f64,
    /// User gain (`UG<n>`).
    pub ug: f64,
}

/// The five ranges' calibration.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration(pub [RangeCalibration; 5]);

impl Default for Calibration {
    /// The nominal shunts with unit gains: what an uncalibrated kit reports.
    fn default() -> Self {
        let nominal = |r| RangeCalibration {
            r,
            gs: 0.0,
            gi: 1.0,
            o: 0.0,
            s: 0.0,
            i: 0.0,
            ug: 1.0,
        };
        Calibration([
            nominal(1031.64),
            nominal(101.65),
            nominal(10.15),
            nominal(0.94),
            nominal(0.043),
        ])
    }
}

/// Parses the metadata text the kit answers `GET_META_DATA` with
/// (`key: value` lines, ending with `END`).
pub fn parse_metadata(text: &str) -> Result<Calibration, MeterError> {
    if !text.contains("END") {
        return Err(MeterError::Protocol(
            "the PPK2 metadata did not end with END".into(),
        ));
    }
    let mut cal = Calibration::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (name, index) = key.trim().split_at(
            key.trim()
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .len(),
        );
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let Some(range) = cal.0.get_mut(index) else {
            continue;
        };
        let value: f64 = value.trim().parse().map_err(|_| {
            MeterError::Protocol(format!("PPK2 metadata line `{line}` has no number"))
        })?;
        match name {
            // A zero shunt is a known bad calibration record: keep the nominal one.
            "R" if value != 0.0 => range.r = value,
            "GS" => range.gs = value,
            "GI" => range.gi = value,
            "O" => range.o = value,
            "S" => range.s = value,
            "I" => range.i = value,
            "UG" => range.ug = value,
            _ => {}
        }
    }
    Ok(cal)
}

/// One decoded sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Current, amperes.
    pub amps: f64,
    /// The 8 digital inputs.
    pub logic: u8,
}

/// Decodes one 32-bit little-endian sample word at source voltage `volts`.
pub fn decode(word: u32, cal: &Calibration, volts: f64) -> Sample {
    let adc = f64::from(word & 0x3fff) * 4.0;
    let range = (((word >> 14) & 0x7) as usize).min(4);
    let c = cal.0[range];
    let x = (adc - c.o) * (1.8 / 163_840.0) / c.r;
    let amps = c.ug * (x * (c.gs * x + c.gi) + (c.s * volts + c.i));
    Sample {
        amps,
        logic: (word >> 24) as u8,
    }
}

/// Decodes a byte stream of samples (a trailing partial sample is ignored).
pub fn decode_stream(bytes: &[u8], cal: &Calibration, volts: f64) -> Vec<Sample> {
    bytes
        .chunks_exact(4)
        .map(|b| decode(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), cal, volts))
        .collect()
}

/// A logic byte the PPK2 sends when it has no digital data for a sample
/// (Nordic's ppk2-api): it says nothing about the marker.
const NO_LOGIC: u8 = 0xff;

/// Energy of the first `windows` windows in which digital input `bit` is
/// high, in joules, and how long they were: each sample stands for
/// 1 / [`SAMPLE_RATE`] seconds. The firmware raises the line (level mode)
/// for each timed inference of a run, so the measured run is the capture's
/// first `windows` windows, one per inference; a sweep's runs that follow
/// raise it again and are not counted. Samples without logic data neither
/// open nor close a window. `None` if fewer than `windows` windows opened.
pub fn marked_energy(samples: &[Sample], bit: u8, volts: f64, windows: u32) -> Option<(f64, f64)> {
    let high = |s: &Sample| s.logic & (1 << bit) != 0;
    let dt = 1.0 / SAMPLE_RATE;
    let (mut joules, mut count, mut rest) = (0.0, 0usize, samples);
    for _ in 0..windows.max(1) {
        let start = rest.iter().position(|s| s.logic != NO_LOGIC && high(s))?;
        let len = rest[start..]
            .iter()
            .position(|s| s.logic != NO_LOGIC && !high(s))
            .unwrap_or(rest.len() - start);
        let window = &rest[start..start + len];
        joules += window.iter().map(|s| s.amps * volts * dt).sum::<f64>();
        count += window.len();
        rest = &rest[start + len..];
    }
    Some((joules, count as f64 * dt))
}

/// A PPK2 on a serial port, set up as a source meter.
pub struct Ppk2 {
    port: Box<dyn serialport::SerialPort>,
    calibration: Calibration,
    millivolts: u32,
    marker_bit: u8,
    recorder: Option<Recorder>,
}

impl Ppk2 {
    /// Opens the kit on `path` and reads its calibration.
    pub fn open(path: &str, millivolts: u32, marker_bit: u8) -> Result<Self, MeterError> {
        regulator_command(millivolts)?;
        if marker_bit > 7 {
            return Err(MeterError::Config(format!(
                "PPK2 digital input D{marker_bit} does not exist (D0..D7)"
            )));
        }
        let mut port = super::open_port("PPK2", path, 115_200)?;
        super::send(&mut *port, &[op::GET_META_DATA], "PPK2")?;
        let text = super::read_until(&mut *port, b"END", Duration::from_secs(2), "PPK2")?;
        let calibration = parse_metadata(&String::from_utf8_lossy(&text))?;
        for command in power_commands(millivolts)? {
            super::send(&mut *port, &command, "PPK2")?;
        }
        Ok(Self {
            port,
            calibration,
            millivolts,
            marker_bit,
            recorder: None,
        })
    }

    /// Starts streaming into a background recorder (the board has been
    /// powered since [`Ppk2::open`]).
    pub fn start(&mut self) -> Result<(), MeterError> {
        super::send(&mut *self.port, &START_CAPTURE, "PPK2")?;
        self.recorder = Some(Recorder::start(&*self.port, "PPK2")?);
        Ok(())
    }

    /// Stops streaming and integrates the windows of the first marked run
    /// (`inferences` timed inferences) of what arrived.
    pub fn stop(&mut self, inferences: u32) -> Result<Capture, MeterError> {
        let bytes = self
            .recorder
            .take()
            .ok_or_else(|| {
                MeterError::Protocol("the PPK2 was stopped before it was started".into())
            })?
            .finish()?;
        super::send(&mut *self.port, &[op::AVERAGE_STOP], "PPK2")?;
        let volts = f64::from(self.millivolts) / 1000.0;
        let samples = decode_stream(&bytes, &self.calibration, volts);
        let source = format!(
            "PPK2 source meter at {} mV, D{} high in {inferences} inferences, {} samples captured",
            self.millivolts,
            self.marker_bit,
            samples.len()
        );
        Capture::from_window(
            marked_energy(&samples, self.marker_bit, volts, inferences),
            inferences,
            &source,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_mode_voltage_power_and_stream() {
        // 3300 mV: 3300 - 800 + 32 = 2532 = 9 * 256 + 228.
        assert_eq!(regulator_command(3300).unwrap(), [0x0d, 12, 228]);
        assert_eq!(regulator_command(800).unwrap(), [0x0d, 3, 32]);
        assert_eq!(regulator_command(5000).unwrap(), [0x0d, 19, 136]);
        assert!(regulator_command(799).is_err() && regulator_command(5001).is_err());
        assert_eq!(
            power_commands(1800).unwrap(),
            vec![vec![0x11, 2], vec![0x0d, 7, 8], vec![0x0c, 1]]
        );
        assert_eq!(START_CAPTURE, [0x06]);
    }

    const METADATA: &str = "Calibrated: 0\nR0: 1003.5\nR1: 101.2\nR2: 10.2\nR3: 0.95\nR4: 0\nGS0: 0.0001\nGI0: 0.98\nO0: 112\nS2: 0.00002\nI2: -0.000001\nUG2: 1.01\nHW: 9173\nIA: 56\nEND\n";

    #[test]
    fn metadata_gives_each_range_its_calibration() {
        let cal = parse_metadata(METADATA).unwrap();
        assert_eq!(
            cal.0[0],
            RangeCalibration {
                r: 1003.5,
                gs: 0.0001,
                gi: 0.98,
                o: 112.0,
                s: 0.0,
                i: 0.0,
                ug: 1.0
            }
        );
        assert_eq!(
            cal.0[2],
            RangeCalibration {
                r: 10.2,
                gs: 0.0,
                gi: 1.0,
                o: 0.0,
                s: 0.00002,
                i: -0.000001,
                ug: 1.01
            }
        );
        // A zero shunt is a known bad record: the nominal 0.043 ohm stays.
        assert_eq!(cal.0[4].r, 0.043);
        assert!(
            parse_metadata("R0: 1000\n").is_err(),
            "metadata without END is cut short"
        );
        assert!(parse_metadata("R0: x\nEND").is_err());
    }

    #[test]
    fn samples_decode_adc_range_and_logic_through_the_calibration() {
        // ADC 1000 (x4 = 4000), range 2, D0 high.
        let word = 1000 | (2 << 14) | (1 << 24);
        let nominal = decode(word, &Calibration::default(), 3.0);
        assert_eq!(nominal.logic, 1);
        let volts_at_adc = 4000.0 * 1.8 / 163_840.0; // 0.0439453125 V across the shunt
        assert!((nominal.amps - volts_at_adc / 10.15).abs() < 1e-15);
        // With range 2 calibrated: UG * (x * (GS x + GI) + S * V + I), x = (4000 - O) * 1.8 / 163840 / R.
        let cal = parse_metadata(METADATA).unwrap();
        let x = 4000.0 * 1.8 / 163_840.0 / 10.2;
        let expected = 1.01 * (x * (0.0 * x + 1.0) + (0.00002 * 3.0 - 0.000001));
        assert!((decode(word, &cal, 3.0).amps - expected).abs() < 1e-15);
        // Range bits beyond 4 are read as range 4; the logic byte is the top byte.
        assert_eq!(decode(7 << 14 | 0xa5 << 24, &cal, 3.0).logic, 0xa5);
        // A stream of 2.5 samples decodes 2.
        let bytes: Vec<u8> = [word, word]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .chain([1, 2])
            .collect();
        assert_eq!(decode_stream(&bytes, &cal, 3.0).len(), 2);
    }

    #[test]
    fn energy_is_integrated_over_the_marked_samples_only() {
        // 10 samples of 5 mA at 3.0 V; D2 high on 4 of them: 4 x 5e-3 A x 3 V x 10 us = 6e-7 J over 40 us.
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                amps: 0.005,
                logic: if (3..7).contains(&i) { 0b100 } else { 0b001 },
            })
            .collect();
        let (joules, seconds) = marked_energy(&samples, 2, 3.0, 1).unwrap();
        assert!((joules - 6e-7).abs() < 1e-18 && (seconds - 4e-5).abs() < 1e-15);
        let capture = Capture::from_window(Some((joules, seconds)), 2, "PPK2").unwrap();
        assert!((capture.joules_per_inference - 3e-7).abs() < 1e-18);
        assert_eq!(marked_energy(&samples, 5, 3.0, 1), None);
        let err = Capture::from_window(None, 2, "PPK2, D5 window")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "failed to measure energy: the capture holds no complete marked run (meter: PPK2, D5 window); does the firmware drive the marker line?");
    }

    #[test]
    fn the_first_runs_inferences_count_and_samples_without_logic_do_not_mark() {
        // Level mode: 0xFF (no logic data) before anything; the measured
        // run's three inferences (2, 1 and 2 high samples, a 0xFF inside the
        // first, lows between them while frames are sent); then a sweep
        // run's inference of 2 samples at ten times the current.
        let logic = [
            0xff, 0xff, 0b1, 0xff, 0b1, 0b0, 0b1, 0b0, 0b0, 0b1, 0b1, 0b0, 0b0, 0b1, 0b1, 0b0,
        ];
        let amps = [
            9.0, 9.0, 0.002, 0.002, 0.002, 9.0, 0.004, 9.0, 9.0, 0.001, 0.001, 9.0, 9.0, 0.02,
            0.02, 9.0,
        ];
        let samples: Vec<Sample> = logic
            .iter()
            .zip(amps)
            .map(|(&logic, amps)| Sample { amps, logic })
            .collect();
        // 3 x 2 mA (the 0xFF inside counts), 4 mA, 2 x 1 mA: 12 mA-samples x 3 V x 10 us.
        let (joules, seconds) = marked_energy(&samples, 0, 3.0, 3).unwrap();
        assert!((joules - 0.012 * 3.0 * 1e-5).abs() < 1e-15, "{joules}");
        assert!((seconds - 6e-5).abs() < 1e-15, "{seconds}");
        let capture = Capture::from_window(Some((joules, seconds)), 3, "PPK2").unwrap();
        assert!((capture.joules_per_inference - 0.004 * 3.0 * 1e-5).abs() < 1e-15);
        // The sweep's window is the fourth; a fifth was never marked.
        let (four, _) = marked_energy(&samples, 0, 3.0, 4).unwrap();
        assert!((four - (0.012 + 0.04) * 3.0 * 1e-5).abs() < 1e-15, "{four}");
        assert_eq!(marked_energy(&samples, 0, 3.0, 5), None);
        let unmarked: Vec<Sample> = [0xff; 5]
            .iter()
            .map(|&logic| Sample { amps: 1.0, logic })
            .collect();
        assert_eq!(marked_energy(&unmarked, 0, 3.0, 1), None);
    }
}
