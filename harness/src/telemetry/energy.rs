//! Energy per inference from a target's datasheet model, for targets with
//! no meter: active current per MHz times supply voltage gives power per
//! MHz, so the energy of `c` core cycles is `I/MHz x V x c`, whatever the
//! clock. Under QEMU the count is of instructions, turned into cycles at an
//! assumed rate. The figure is always labelled "model", with its inputs.

use crate::input::target::Energy;
use crate::results::figures::EnergyOrigin;

/// An energy figure and the words that say where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Microjoules per inference.
    pub microjoules: f64,
    /// e.g. `model: 110 uA/MHz x 3.3 V (STM32L4R5 datasheet), 1 cycle per instruction`.
    pub source: String,
}

/// The model's estimate for `count` cycles (`instructions` false) or
/// emulated instructions, if the target file has a model.
pub fn model_estimate(energy: &Energy, count: f64, instructions: bool) -> Option<Estimate> {
    let (ua_per_mhz, volts) = (energy.model_ua_per_mhz?, energy.model_volts?);
    let per_instruction = energy.model_cycles_per_instruction.unwrap_or(1.0);
    let cycles = if instructions {
        count * per_instruction
    } else {
        count
    };
    // uA/MHz x V = pW per Hz = pJ per cycle.
    let microjoules = ua_per_mhz * volts * cycles * 1e-6;
    let from = energy
        .model_source
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let rate = if instructions {
        format!(", {per_instruction} cycle per instruction")
    } else {
        String::new()
    };
    Some(Estimate {
        microjoules,
        source: EnergyOrigin::Model.source(&format!("{ua_per_mhz} uA/MHz x {volts} V{from}{rate}")),
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
        }
    }

    #[test]
    fn microjoules_are_current_per_mhz_times_volts_times_cycles() {
        // 100 uA/MHz at 3 V is 300 pJ per cycle: 1e6 cycles take 300 uJ.
        let e = model_estimate(&energy(100.0, 3.0, None), 1e6, false).unwrap();
        assert!((e.microjoules - 300.0).abs() < 1e-9, "{e:?}");
        assert_eq!(e.source, "model: 100 uA/MHz x 3 V (a datasheet)");
        // 2 cycles per instruction double it, and the label says so.
        let e = model_estimate(&energy(100.0, 3.0, Some(2.0)), 1e6, true).unwrap();
        assert!((e.microjoules - 600.0).abs() < 1e-9, "{e:?}");
        assert_eq!(
            e.source,
            "model: 100 uA/MHz x 3 V (a datasheet), 2 cycle per instruction"
        );
    }

    #[test]
    fn no_model_no_figure() {
        let none = Energy {
            model_ua_per_mhz: None,
            model_volts: Some(3.0),
            model_source: None,
            model_cycles_per_instruction: None,
        };
        assert_eq!(model_estimate(&none, 1e6, true), None);
    }
}
