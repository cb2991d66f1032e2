//! Energy per inference from a target's energy model, for targets with no
//! meter: current per MHz times supply voltage gives energy per cycle, so
//! the energy of `c` core cycles is `I/MHz x V x c`, whatever the clock.
//! The current is calibrated on published measurements of the chip where
//! the target file names them (`calibration`), else it is the datasheet's;
//! the cycles are counted (a board's cycle counter), estimated from what
//! QEMU executed (the target's `[cycle-model]`), or, failing both, emulated
//! instructions at an assumed rate. The figure is always labelled "model",
//! with its inputs and, where calibrated, its error on the calibration.

use crate::input::target::Energy;
use crate::results::figures::EnergyOrigin;

/// An energy figure and the words that say where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Microjoules per inference.
    pub microjoules: f64,
    /// e.g. `model: 188.2 uA/MHz x 1.8 V, calibrated on ...; cycles estimated by ...`.
    pub source: String,
}

/// The cycles an energy model multiplies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cycles<'a> {
    /// Counted by the core (a board's DWT).
    Counted(f64),
    /// Estimated from what QEMU executed.
    Estimated {
        /// Cycles per inference.
        cycles: f64,
        /// The timings they come from.
        how: &'a str,
    },
    /// Emulated instructions, with no cycle model.
    Instructions(f64),
}

/// `ua_per_mhz` at `volts` for `cycles`: uA/MHz x V = pJ per cycle.
pub fn microjoules(ua_per_mhz: f64, volts: f64, cycles: f64) -> f64 {
    ua_per_mhz * volts * cycles * 1e-6
}

/// The model's estimate, if the target file has a model.
pub fn model_estimate(energy: &Energy, cycles: Cycles) -> Option<Estimate> {
    let volts = energy.model_volts?;
    let from = energy
        .model_source
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let (ua_per_mhz, current) = match &energy.calibrated {
        Some(c) => {
            let ua = c.ua_per_mhz();
            (ua, format!("{ua:.1} uA/MHz x {volts} V, {}", c.describe()))
        }
        None => {
            let ua = energy.model_ua_per_mhz?;
            (ua, format!("{ua} uA/MHz x {volts} V{from}, datasheet figure, not calibrated: error unknown"))
        }
    };
    let (count, rate) = match cycles {
        Cycles::Counted(c) => (c, String::new()),
        Cycles::Estimated { cycles, how } => (
            cycles,
            format!("; cycles estimated from QEMU's blocks by {how}"),
        ),
        Cycles::Instructions(n) => {
            let per = energy.model_cycles_per_instruction.unwrap_or(1.0);
            (n * per, format!("; {per} cycle per instruction"))
        }
    };
    Some(Estimate {
        microjoules: microjoules(ua_per_mhz, volts, count),
        source: EnergyOrigin::Model.source(&format!("{current}{rate}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(ua_per_mhz: f64, volts: f64, cpi: Option<f64>) -> Energy {
        Energy {
            model_ua_per_mhz: Some(ua_per_mhz),
            model_volts: Some(volts),
            model_source: Some("a datasheet".into()),
            model_cycles_per_instruction: cpi,
            calibration: None,
            calibrated: None,
        }
    }

    #[test]
    fn microjoules_are_current_per_mhz_times_volts_times_cycles() {
        // 100 uA/MHz at 3 V is 300 pJ per cycle: 1e6 cycles take 300 uJ.
        let e = model_estimate(&energy(100.0, 3.0, None), Cycles::Counted(1e6)).unwrap();
        assert!((e.microjoules - 300.0).abs() < 1e-9, "{e:?}");
        assert_eq!(
            e.source,
            "model: 100 uA/MHz x 3 V (a datasheet), datasheet figure, not calibrated: error unknown"
        );
        // 2 cycles per instruction double it, and the label says so.
        let e = model_estimate(&energy(100.0, 3.0, Some(2.0)), Cycles::Instructions(1e6)).unwrap();
        assert!((e.microjoules - 600.0).abs() < 1e-9, "{e:?}");
        assert!(
            e.source.ends_with("error unknown; 2 cycle per instruction"),
            "{}",
            e.source
        );
        // Estimated cycles replace the rate, and name their timings.
        let cycles = Cycles::Estimated {
            cycles: 1.5e6,
            how: "cortex-m4 timings",
        };
        let e = model_estimate(&energy(100.0, 3.0, Some(2.0)), cycles).unwrap();
        assert!((e.microjoules - 450.0).abs() < 1e-9, "{e:?}");
        assert!(
            e.source
                .ends_with("; cycles estimated from QEMU's blocks by cortex-m4 timings"),
            "{}",
            e.source
        );
    }

    #[test]
    fn a_calibrated_model_uses_the_calibrations_current_and_states_its_error() {
        let calibration = crate::telemetry::calibration::Calibration::load(
            &crate::workspace_root().join("targets/calibration"),
            "mlperf-tiny-v0.5-nucleo-l4r5zi",
        )
        .unwrap();
        let mut e = energy(110.0, 1.8, None);
        e.calibrated = Some(calibration);
        // MLPerf Tiny's KWS: 181.9 ms at 120 MHz, 21.83 M cycles: 7,395.4 uJ (published 7,373.7).
        let kws = model_estimate(&e, Cycles::Counted(0.1819 * 120e6)).unwrap();
        assert!((kws.microjoules - 7395.4).abs() < 0.1, "{kws:?}");
        assert!(
            kws.source
                .starts_with("model: 188.2 uA/MHz x 1.8 V, calibrated on MLPerf Tiny v0.5"),
            "{}",
            kws.source
        );
        assert!(kws.source.ends_with("each within 2.0%)"), "{}", kws.source);
    }

    #[test]
    fn no_model_no_figure() {
        let none = Energy {
            model_ua_per_mhz: None,
            model_volts: Some(3.0),
            model_source: None,
            model_cycles_per_instruction: None,
            calibration: None,
            calibrated: None,
        };
        assert_eq!(model_estimate(&none, Cycles::Instructions(1e6)), None);
    }
}
