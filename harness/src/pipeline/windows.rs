//! How a peer job's inferences are grouped into MLPerf Tiny DUT windows
//! (`infer N W`: W warm-up inferences, then N timed between two of the
//! device's microsecond timestamps), and what a window's timestamps mean
//! on each clock.
//!
//! - Under QEMU every window is one inference: the timestamps come from the
//!   emulated instruction count, so one inference is exact to within a
//!   microsecond's worth of instructions.
//! - On a clock (LiteRT on the host) a window holds as many inferences as
//!   fill [`MIN_WINDOW_US`], found from a first timing, so that the
//!   microsecond timestamps do not round the figure; each window gives the
//!   mean inference in it.
//! - With `--mlperf`, clock-timed jobs follow MLPerf Tiny's performance run
//!   rules: five windows of at least 10 s each, the inferences per window
//!   from a first timing, the median window reported; a window shorter
//!   than 10 s by the device's own clock fails the job.

use crate::device::dut::{Dut, DutError};
use crate::device::link::Link;
use crate::device::runner::{JobInput, Measurement, RunError};
use crate::device::session::Session;
use crate::input::suite::Suite;
use protocol::Clock;

/// A clock-timed window lasts at least this long (10 ms), so that the
/// timestamps' microsecond steps are at most 0.01% of it.
pub const MIN_WINDOW_US: u64 = 10_000;

/// MLPerf Tiny's run rules: windows of at least 10 s ...
pub const MLPERF_WINDOW_US: u64 = 10_000_000;

/// ... five of them, the median reported.
pub const MLPERF_WINDOWS: u32 = 5;

/// Inferences of the run that sizes the windows (the first one a meter sees).
pub const MLPERF_PROBE_INFERENCES: u32 = 1;

/// The clock behind a device's `m-lap-us-` timestamps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeviceClock {
    /// QEMU with `-icount shift=N`: a microsecond is 1000 / 2^N instructions.
    Emulated {
        /// QEMU's `-icount shift`.
        icount_shift: u32,
    },
    /// The host's monotonic clock (a process on this machine).
    Host,
    /// A real board's own timer, stored as cycles of its core clock.
    #[cfg_attr(not(feature = "probe-rs"), allow(dead_code))]
    Board {
        /// The core clock (the target file's `clock_hz`).
        clock_hz: u64,
    },
}

impl DeviceClock {
    /// The unit figures are stored in.
    pub fn unit(self) -> Clock {
        match self {
            DeviceClock::Emulated { .. } => Clock::Instructions,
            DeviceClock::Host => Clock::HostNanos,
            DeviceClock::Board { .. } => Clock::Cycles,
        }
    }

    /// Ticks of [`DeviceClock::unit`] per second (0: not time).
    pub fn ticks_per_second(self) -> u64 {
        match self {
            DeviceClock::Emulated { .. } => 0,
            DeviceClock::Host => 1_000_000_000,
            DeviceClock::Board { clock_hz } => clock_hz,
        }
    }

    /// One inference of a window of `inferences` that lasted `micros`, in
    /// the stored unit.
    pub fn per_inference(self, micros: u64, inferences: u32) -> u64 {
        let per_micro = match self {
            DeviceClock::Emulated { icount_shift } => 1000.0 / f64::from(1u32 << icount_shift),
            DeviceClock::Host => 1000.0,
            DeviceClock::Board { clock_hz } => clock_hz as f64 / 1e6,
        };
        (micros as f64 * per_micro / f64::from(inferences.max(1))).round() as u64
    }
}

/// How a job's timed inferences are grouped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowPlan {
    clock: DeviceClock,
    warmup: u32,
    windows: u32,
    /// The shortest window, in microseconds of the device's clock (0: one
    /// inference per window).
    min_window_us: u64,
    /// Whether a window shorter than `min_window_us` fails the job (the
    /// MLPerf rule) rather than being planned around.
    rule: bool,
    /// `--mlperf` was asked for (it applies to clock-timed jobs only).
    mlperf: bool,
}

/// The windows a job measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// One figure per window: its mean inference, in the clock's unit.
    pub ticks: Vec<u64>,
    /// Inferences timed in all.
    pub inferences: usize,
    /// The last window's output bytes, one vector per output.
    pub output: Option<Vec<Vec<u8>>>,
    /// The stack's peak, where the device reports it.
    pub stack_bytes: Option<u32>,
    /// How the figures were taken, for the latency source.
    pub source: String,
}

impl WindowPlan {
    /// The plan for a job of `suite` on `clock`, under MLPerf's rules or not.
    pub fn of(suite: &Suite, clock: DeviceClock, mlperf: bool) -> Self {
        Self::new(clock, mlperf, suite.warmup, suite.repetitions)
    }

    /// The plan for `warmup` untimed and `repetitions` timed windows on
    /// `clock` (MLPerf's rules fix five).
    fn new(clock: DeviceClock, mlperf: bool, warmup: u32, repetitions: u32) -> Self {
        let (windows, min_window_us, rule) = match (clock, mlperf) {
            (DeviceClock::Emulated { .. }, _) => (repetitions, 0, false),
            (_, false) => (repetitions, MIN_WINDOW_US, false),
            (_, true) => (MLPERF_WINDOWS, MLPERF_WINDOW_US, true),
        };
        WindowPlan {
            clock,
            warmup,
            windows,
            min_window_us,
            rule,
            mlperf,
        }
    }

    /// Warms up, finds the inferences per window, and runs the windows.
    /// The outer error is the link's or the protocol's; the inner one a
    /// window that broke the run rules.
    pub fn run<L: Link>(&self, dut: &mut Dut<L>) -> Result<Result<Measured, String>, DutError> {
        if self.warmup > 0 {
            dut.infer(1, self.warmup)?;
        }
        let per_window = if self.min_window_us == 0 {
            1
        } else {
            self.inferences_per_window(dut)?
        };
        let mut ticks = Vec::new();
        let mut output = None;
        let mut stack_bytes = None;
        for w in 0..self.windows {
            let window = dut.infer(per_window, 0)?;
            if self.rule && window.micros < self.min_window_us {
                return Ok(Err(too_short(w, self.windows, window.micros, per_window)));
            }
            ticks.push(self.clock.per_inference(window.micros, per_window));
            output = window.result_bytes;
            stack_bytes = stack_bytes.max(window.stack_bytes);
        }
        Ok(Ok(Measured {
            inferences: (per_window * self.windows) as usize,
            ticks,
            output,
            stack_bytes,
            source: self.describe(per_window),
        }))
    }

    /// Inferences that fill a window: ten times more until one timing lasts
    /// a millisecond (or the window), then scaled up with 5% to spare, so
    /// that a window does not fall short by noise.
    fn inferences_per_window<L: Link>(&self, dut: &mut Dut<L>) -> Result<u32, DutError> {
        let mut n: u32 = 1;
        loop {
            let first = dut.infer(n, 0)?;
            let enough = first.micros >= 1000.min(self.min_window_us);
            if enough || n >= 1_000_000 {
                return Ok(filling(self.min_window_us, n, first.micros.max(1) as f64));
            }
            n *= 10;
        }
    }

    fn describe(&self, per_window: u32) -> String {
        match (self.clock, self.rule) {
            (DeviceClock::Emulated { icount_shift }, _) => format!(
                "QEMU icount, MLPerf Tiny DUT timestamps, one inference per window (1 us = {} instructions){}",
                1000.0 / f64::from(1u32 << icount_shift),
                if self.mlperf {
                    "; --mlperf's 10 s windows apply to clock-timed targets, an emulated count is exact"
                } else {
                    ""
                }
            ),
            (_, false) => format!(
                "MLPerf Tiny DUT windows of {per_window} inferences (at least {} ms each), the mean inference of each",
                self.min_window_us / 1000
            ),
            (_, true) => format!(
                "MLPerf Tiny run rules: {} windows of {per_window} inferences, at least {} s each, the median window",
                self.windows,
                self.min_window_us / 1_000_000
            ),
        }
    }
}

/// Inferences that fill a window of `window_us` with 5% to spare, so that
/// a window does not fall short by noise, when `inferences` took `micros`.
fn filling(window_us: u64, inferences: u32, micros: f64) -> u32 {
    let needed = window_us as f64 * 1.05 * f64::from(inferences) / micros;
    (needed.ceil() as u32).max(1)
}

/// Why a window broke MLPerf Tiny's rule.
fn too_short(window: u32, windows: u32, micros: u64, per_window: u32) -> String {
    format!(
        "window {} of {windows} lasted {:.3} s by the device's clock ({per_window} inferences): MLPerf Tiny's run rules need at least {} s; the device's clock or its inference time changed since the first timing",
        window + 1,
        micros as f64 / 1e6,
        MLPERF_WINDOW_US / 1_000_000
    )
}

/// MLPerf Tiny's run rules for bench's own device program on a clock,
/// which times each inference itself: a first timing after the warm-up,
/// then five windows of as many inferences as fill 10 s (5% to spare), each
/// window the sum of its inferences' device-timed ticks (the frames sent
/// between them are not in it), and one figure per window, its mean
/// inference. Returns the measurement and the inferences per window.
pub fn mlperf_on_session<L: Link>(
    session: &mut Session<L>,
    input: &JobInput,
) -> Result<(Measurement, u32), RunError> {
    let first = session.measure(&JobInput {
        repetitions: MLPERF_PROBE_INFERENCES,
        profile: false,
        ..*input
    })?;
    let per_second = first.ticks_per_second.max(1) as f64;
    let seconds = first.ticks.first().copied().unwrap_or(0).max(1) as f64 / per_second;
    let per_window = filling(MLPERF_WINDOW_US, 1, seconds * 1e6);
    let mut means = Vec::new();
    let mut last = first;
    for w in 0..MLPERF_WINDOWS {
        let m = session.measure(&JobInput {
            warmup: 0,
            repetitions: per_window,
            ..*input
        })?;
        let total: u64 = m.ticks.iter().sum();
        let micros = (total as f64 / per_second * 1e6) as u64;
        if micros < MLPERF_WINDOW_US {
            return Err(RunError::Device(too_short(
                w,
                MLPERF_WINDOWS,
                micros,
                per_window,
            )));
        }
        means.push(total / u64::from(per_window));
        last = m;
    }
    last.ticks = means;
    last.exits = vec![None; MLPERF_WINDOWS as usize];
    Ok((last, per_window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::dut::scripted::{Scripted, START};
    use std::time::Duration;

    /// The reference API's answer to a window that ran from `start` to `end` us.
    fn window(start: u64, end: u64) -> String {
        format!("m-infer-start-1\r\nm-lap-us-{start}\r\nm-lap-us-{end}\r\nm-infer-done\r\nm-results-[0.500]\r\nm-results-bytes-[7f]\r\nm-ready\r\n")
    }

    fn plan(clock: DeviceClock, mlperf: bool, windows: u32) -> WindowPlan {
        WindowPlan::new(clock, mlperf, 0, windows)
    }

    fn commands(dut: &mut Dut<Scripted>) -> Vec<String> {
        dut.link().sent.clone()
    }

    #[test]
    fn a_host_window_holds_the_inferences_that_fill_ten_milliseconds() {
        // 1 inference: 300 us (under a millisecond), 10: 3,000 us, so a
        // 10 ms window with 5% to spare holds 35.
        let answers = [
            window(0, 300),
            window(0, 3_000),
            window(5, 10_505),
            window(0, 10_850),
        ];
        let mut dut = Dut::new(Scripted::new(START, &answers), Duration::from_secs(1));
        dut.start().unwrap();
        let measured = plan(DeviceClock::Host, false, 2)
            .run(&mut dut)
            .unwrap()
            .unwrap();
        assert_eq!(
            commands(&mut dut),
            ["infer 1 0%", "infer 10 0%", "infer 35 0%", "infer 35 0%"]
        );
        assert_eq!(measured.ticks, [300_000, 310_000]);
        assert_eq!(measured.inferences, 70);
        assert_eq!(measured.output, Some(vec![vec![0x7f]]));
    }

    #[test]
    fn an_emulated_window_is_one_inference_in_instructions() {
        let answers = [window(100, 1_100), window(2_000, 2_128)];
        let mut dut = Dut::new(Scripted::new(START, &answers), Duration::from_secs(1));
        dut.start().unwrap();
        let clock = DeviceClock::Emulated { icount_shift: 7 };
        let measured = plan(clock, true, 2).run(&mut dut).unwrap().unwrap();
        assert_eq!(commands(&mut dut), ["infer 1 0%", "infer 1 0%"]);
        // 1000 us at 7.8125 instructions per us, and 128 us.
        assert_eq!(measured.ticks, [7_813, 1_000]);
        assert!(measured
            .source
            .contains("--mlperf's 10 s windows apply to clock-timed targets"));
    }

    #[test]
    fn mlperf_runs_five_ten_second_windows_and_reports_their_median() {
        // A first inference of 2 s: 6 per window (10.5 s / 2 s, rounded up).
        let mut answers = vec![window(0, 2_000_000)];
        let lengths = [12_000_000, 12_600_000, 11_400_000, 13_200_000, 12_000_000];
        answers.extend(lengths.iter().map(|&l| window(0, l)));
        let mut dut = Dut::new(Scripted::new(START, &answers), Duration::from_secs(1));
        dut.start().unwrap();
        let measured = plan(DeviceClock::Host, true, MLPERF_WINDOWS)
            .run(&mut dut)
            .unwrap()
            .unwrap();
        assert_eq!(commands(&mut dut)[1..], ["infer 6 0%"; 5]);
        assert_eq!(
            measured.ticks,
            [
                2_000_000_000,
                2_100_000_000,
                1_900_000_000,
                2_200_000_000,
                2_000_000_000
            ]
        );
        assert_eq!(
            measured.source,
            "MLPerf Tiny run rules: 5 windows of 6 inferences, at least 10 s each, the median window"
        );
    }

    #[test]
    fn a_window_shorter_than_ten_seconds_fails_an_mlperf_job() {
        let answers = [
            window(0, 2_000_000),
            window(0, 12_000_000),
            window(0, 9_000_000),
        ];
        let mut dut = Dut::new(Scripted::new(START, &answers), Duration::from_secs(1));
        dut.start().unwrap();
        let err = plan(DeviceClock::Host, true, MLPERF_WINDOWS)
            .run(&mut dut)
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            "window 2 of 5 lasted 9.000 s by the device's clock (6 inferences): MLPerf Tiny's run rules need at least 10 s; the device's clock or its inference time changed since the first timing"
        );
    }

    #[test]
    fn a_board_window_is_stored_in_cycles_of_its_core_clock() {
        // 80 MHz: 12,500 us over 100 inferences is 10,000 cycles each.
        let board = DeviceClock::Board {
            clock_hz: 80_000_000,
        };
        assert_eq!(board.per_inference(12_500, 100), 10_000);
        assert_eq!(
            (board.unit(), board.ticks_per_second()),
            (Clock::Cycles, 80_000_000)
        );
    }

    #[test]
    fn a_device_that_resets_mid_window_fails_with_its_clock_gone_back() {
        // The second timestamp is before the first: the device restarted
        // and its clock began again.
        let answers = [window(0, 300), window(0, 3_000), window(9_000_000, 1_200)];
        let mut dut = Dut::new(Scripted::new(START, &answers), Duration::from_secs(1));
        dut.start().unwrap();
        let err = plan(DeviceClock::Host, false, 3).run(&mut dut).unwrap_err();
        assert!(
            err.to_string()
                .contains("the device's clock wrapped or reset"),
            "{err}"
        );
    }
}
