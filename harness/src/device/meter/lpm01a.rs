//! ST X-NUCLEO-LPM01A (PowerShield) over its serial port, driven the way
//! the MLPerf Tiny energy runner drives it: host control, energy output in
//! ASCII decimal at 1 kHz (each value the energy of one millisecond),
//! software trigger, and the DUT's D7 line as the event source, so the
//! stream carries an event line at each edge the firmware makes around its
//! timed inferences. Commands are text lines answered by `ack <command>` or
//! `error <command>` and an `Error detail:` line.

use super::{Capture, MeterError, Recorder};
use std::io::Write;
use std::time::Duration;

/// Baud rate of the PowerShield's virtual COM port.
pub const BAUD: u32 = 3_686_400;

/// Energy values per second (`freq 1k`).
pub const SAMPLES_PER_SECOND: f64 = 1000.0;

/// Lowest and highest supply voltage, in mV.
pub const VOLTAGE_RANGE_MV: (u32, u32) = (1800, 3300);

/// The set-up commands, in order, for a supply of `millivolts`.
pub fn setup_commands(millivolts: u32) -> Result<Vec<String>, MeterError> {
    let (lo, hi) = VOLTAGE_RANGE_MV;
    if !(lo..=hi).contains(&millivolts) {
        return Err(MeterError::Config(format!(
            "LPM01A supply voltage {millivolts} mV is outside {lo}..={hi} mV"
        )));
    }
    Ok([
        "htc",
        "pwr off",
        "acqtime inf",
        "trigdelay 0",
        "trigsrc sw",
        "eventsrc d7 fal",
        "output energy",
        "format ascii_dec",
        "freq 1k",
    ]
    .iter()
    .map(|c| c.to_string())
    .chain([format!("volt {millivolts}m"), "pwr on nostatus".into()])
    .collect())
}

/// The answer to a command line, if `line` is one: `Ok` for `ack`, the
/// rest of the line for `error`.
pub fn answer(line: &str, command: &str) -> Option<Result<(), String>> {
    let line = line.trim_start_matches("PowerShield > ").trim();
    let rest = line
        .strip_prefix("ack")
        .or_else(|| line.strip_prefix("error").map(|_| ""))?;
    if !line.contains(command) {
        return None;
    }
    Some(if line.starts_with("ack") {
        Ok(())
    } else {
        Err(rest.trim().to_string())
    })
}

/// The first answer to `command` among the lines of `text`: the board may
/// send prompts, status lines or other commands' acknowledgements first
/// (MLPerf Tiny's driver reads on until the matching one too).
pub fn first_answer(text: &str, command: &str) -> Option<Result<(), String>> {
    text.lines().find_map(|line| answer(line, command))
}

/// The line that ends an acquisition after `stop`.
const ACQUISITION_COMPLETED: &[u8] = b"Acquisition completed";

/// One item of the acquisition stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Energy of one sample period, joules (`6409-07` is 6409e-7).
    Energy(f64),
    /// An edge on D7 (the firmware's marker).
    Event,
    /// Anything else (a prompt, a status line).
    Other(String),
}

/// Parses one value `DDDD[+-]EE`.
pub fn parse_value(text: &str) -> Option<f64> {
    let (mantissa, exponent) = text.split_at(text.len().checked_sub(3)?);
    let (sign, digits) = exponent.split_at(1);
    if mantissa.len() != 4
        || !mantissa.bytes().all(|b| b.is_ascii_digit())
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let e: i32 = digits.parse().ok()?;
    let e = match sign {
        "+" => e,
        "-" => -e,
        _ => return None,
    };
    Some(mantissa.parse::<f64>().ok()? * 10f64.powi(e))
}

/// Parses the acquisition stream, line by line (values may share a line).
pub fn parse_stream(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("event") {
            items.push(Item::Event);
            continue;
        }
        let values: Vec<Option<f64>> = line.split_whitespace().map(parse_value).collect();
        if !values.is_empty() && values.iter().all(Option::is_some) {
            items.extend(values.into_iter().flatten().map(Item::Energy));
        } else {
            items.push(Item::Other(line.to_string()));
        }
    }
    items
}

/// The highest current of the dynamic (energy) mode: "100 nA to 50 mA"
/// (UM2243 section 10; its over-current protection acts from 59 mA).
pub const MAX_DYNAMIC_AMPS: f64 = 0.050;

/// The energy samples between the first two events (the marked window).
fn window_samples(items: &[Item]) -> Option<Vec<f64>> {
    let mut events = items
        .iter()
        .enumerate()
        .filter(|(_, i)| **i == Item::Event)
        .map(|(k, _)| k);
    let (start, end) = (events.next()?, events.next()?);
    Some(
        items[start..end]
            .iter()
            .filter_map(|i| match i {
                Item::Energy(e) => Some(*e),
                _ => None,
            })
            .collect(),
    )
}

/// The energy between the first two events (the marked window), joules, and its length in seconds.
pub fn marked_energy(items: &[Item]) -> Option<(f64, f64)> {
    let samples = window_samples(items)?;
    Some((
        samples.iter().sum(),
        samples.len() as f64 / SAMPLES_PER_SECOND,
    ))
}

/// Refuses a window in which the board drew more than the dynamic range
/// (a millisecond's energy over `volts` is that millisecond's mean
/// current): the figure would be clipped, or cut short by the protection.
pub fn check_range(items: &[Item], volts: f64) -> Result<(), MeterError> {
    let peak = window_samples(items)
        .unwrap_or_default()
        .into_iter()
        .fold(0.0, f64::max);
    let amps = peak * SAMPLES_PER_SECOND / volts;
    if amps > MAX_DYNAMIC_AMPS {
        return Err(MeterError::Range(format!(
            "the board drew {:.1} mA in the marked window, above the LPM01A's dynamic range of 100 nA to 50 mA (UM2243, section 10), so its energy would be clipped; measure this board with a PPK2 (up to 1 A), or at a lower clock",
            amps * 1e3
        )));
    }
    Ok(())
}

/// An LPM01A on a serial port, under host control.
pub struct Lpm01a {
    port: Box<dyn serialport::SerialPort>,
    millivolts: u32,
    recorder: Option<Recorder>,
}

impl Lpm01a {
    /// Opens the board on `path`, takes control and configures an energy acquisition.
    pub fn open(path: &str, millivolts: u32) -> Result<Self, MeterError> {
        let commands = setup_commands(millivolts)?;
        let port = super::open_port("LPM01A", path, BAUD)?;
        let mut meter = Self {
            port,
            millivolts,
            recorder: None,
        };
        for command in commands {
            meter.command(&command)?;
        }
        Ok(meter)
    }

    fn command(&mut self, command: &str) -> Result<(), MeterError> {
        super::send(
            &mut *self.port,
            format!("{command}\r\n").as_bytes(),
            "LPM01A",
        )?;
        let answered = |out: &[u8]| first_answer(&String::from_utf8_lossy(out), command).is_some();
        let reply = super::read_while(&mut *self.port, Duration::from_secs(2), "LPM01A", answered)
            .map_err(|_| {
                MeterError::Protocol(format!("the LPM01A did not acknowledge `{command}`"))
            })?;
        match first_answer(&String::from_utf8_lossy(&reply), command) {
            Some(Err(why)) => Err(MeterError::Protocol(format!(
                "the LPM01A refused `{command}`: {why}"
            ))),
            _ => Ok(()),
        }
    }

    /// Starts the acquisition into a background recorder.
    pub fn start(&mut self) -> Result<(), MeterError> {
        self.command("start")?;
        self.recorder = Some(Recorder::start(&*self.port, "LPM01A")?);
        Ok(())
    }

    /// Stops the acquisition and integrates the window between the first two D7 events.
    pub fn stop(&mut self, inferences: u32) -> Result<Capture, MeterError> {
        let bytes = self
            .recorder
            .take()
            .ok_or_else(|| {
                MeterError::Protocol("the LPM01A was stopped before it was started".into())
            })?
            .finish()?;
        // `stop` is not acknowledged; the board ends the stream with "Acquisition
        // completed", which must arrive before the next command (`pwr off`).
        super::send(&mut *self.port, b"stop\r\n", "LPM01A")?;
        let rest = super::read_until(
            &mut *self.port,
            ACQUISITION_COMPLETED,
            Duration::from_secs(2),
            "LPM01A",
        )?;
        let mut bytes = bytes;
        bytes.extend_from_slice(&rest);
        let items = parse_stream(&String::from_utf8_lossy(&bytes));
        check_range(&items, f64::from(self.millivolts) / 1e3)?;
        let source = format!(
            "LPM01A energy at 1 kHz, {} mV, window between D7 events",
            self.millivolts
        );
        Capture::from_window(marked_energy(&items), inferences, &source)
    }
}

impl Drop for Lpm01a {
    fn drop(&mut self) {
        // Hand the board back to its own front panel.
        let _ = self.port.write_all(b"pwr off\r\nhrc\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_is_the_mlperf_tiny_sequence_with_the_voltage() {
        assert_eq!(
            setup_commands(3000).unwrap(),
            [
                "htc",
                "pwr off",
                "acqtime inf",
                "trigdelay 0",
                "trigsrc sw",
                "eventsrc d7 fal",
                "output energy",
                "format ascii_dec",
                "freq 1k",
                "volt 3000m",
                "pwr on nostatus"
            ]
        );
        assert!(setup_commands(1700).is_err() && setup_commands(3400).is_err());
    }

    #[test]
    fn answers_are_matched_to_their_command() {
        assert_eq!(answer("PowerShield > ack htc", "htc"), Some(Ok(())));
        assert_eq!(answer("ack volt 3000m", "volt 3000m"), Some(Ok(())));
        assert_eq!(
            answer("error volt 5000m", "volt 5000m"),
            Some(Err(String::new()))
        );
        assert_eq!(
            answer("ack htc", "freq 1k"),
            None,
            "another command's acknowledgement"
        );
        assert_eq!(answer("PowerShield present", "htc"), None);
    }

    #[test]
    fn values_decode_as_mantissa_and_power_of_ten() {
        assert_eq!(parse_value("6409-07"), Some(6409e-7));
        assert_eq!(parse_value("1221+02"), Some(122_100.0));
        for bad in ["640-07", "12a4-07", "6409*07", "6409-0x", ""] {
            assert_eq!(parse_value(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_window_between_two_d7_events_is_integrated() {
        let stream =
            "PowerShield > ack start\r\n1000-09 2000-09\r\nevent 1 ris\r\n5000-09\r\n5000-09 5000-09\r\nevent 2 ris\r\n7000-09\r\nAcquisition completed\r\n";
        let items = parse_stream(stream);
        assert_eq!(items.iter().filter(|i| **i == Item::Event).count(), 2);
        assert_eq!(
            items
                .iter()
                .filter(|i| matches!(i, Item::Energy(_)))
                .count(),
            6
        );
        // 3 x 5000e-9 J = 15 uJ in 3 ms; over 3 inferences, 5 uJ each.
        let (joules, seconds) = marked_energy(&items).unwrap();
        assert!((joules - 1.5e-5).abs() < 1e-18 && (seconds - 0.003).abs() < 1e-15);
        let capture = Capture::from_window(Some((joules, seconds)), 3, "LPM01A").unwrap();
        assert!((capture.joules_per_inference - 5e-6).abs() < 1e-18);
        assert_eq!(
            marked_energy(&parse_stream("1000-09\r\nevent 1 ris\r\n2000-09\r\n")),
            None,
            "one event is no window"
        );
    }

    #[test]
    fn a_board_drawing_more_than_50_ma_in_the_window_is_refused() {
        // At 3.3 V, 50 mA for 1 ms is 165 uJ: 1650-07. Outside the window it does not count.
        let at = |inside: &str| {
            let stream = format!("9999-04\r\nevent 1 ris\r\n1000-07 {inside}\r\nevent 2 ris\r\n");
            check_range(&parse_stream(&stream), 3.3).map_err(|e| e.to_string())
        };
        assert_eq!(at("1650-07"), Ok(()));
        assert_eq!(
            at("2046-07"),
            Err("failed to measure energy: the board drew 62.0 mA in the marked window, above the LPM01A's dynamic range of 100 nA to 50 mA (UM2243, section 10), so its energy would be clipped; measure this board with a PPK2 (up to 1 A), or at a lower clock".into())
        );
    }

    #[test]
    fn a_reply_is_read_on_to_the_matching_answer() {
        let reply = "PowerShield > \r\nstatus: ready\r\nack htc\r\nack freq 1k\r\n";
        assert_eq!(first_answer(reply, "freq 1k"), Some(Ok(())));
        assert_eq!(
            first_answer("PowerShield > \r\nerror freq 9k\r\n", "freq 9k"),
            Some(Err(String::new()))
        );
        assert_eq!(
            first_answer("PowerShield > \r\nstatus: ready\r\n", "freq 1k"),
            None
        );
    }
}
