//! Energy models calibrated on published measurements of the same chip.
//!
//! A datasheet's "uA/MHz" is measured on CoreMark or a while(1) loop with
//! caches and converters set as its footnotes say; an inference loads
//! weights from flash and draws more. Where a measurement of an inference on
//! the chip has been published (MLPerf Tiny's energy results), its mean power
//! over its supply voltage and clock is the current per MHz that chip drew
//! running a network: bench uses the mean of those, and states how far that
//! one figure is from each published energy.
//!
//! The figure is a current, so a target supplied at another voltage keeps it
//! (the core runs from an internal regulator; the current it draws does not
//! follow the supply), and the energy scales with the supply.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A calibration file: `targets/calibration/<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    calibration: Calibration,
}

/// Published energy measurements of one board.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Calibration {
    /// The file's stem.
    pub name: String,
    /// The board and chip measured.
    pub board: String,
    /// The core clock during the measurements.
    pub clock_mhz: f64,
    /// The supply voltage during the measurements.
    pub volts: f64,
    /// What ran (runtime, kernels).
    pub software: String,
    /// Where the figures were published.
    pub source: String,
    /// One per benchmark.
    #[serde(rename = "measurement")]
    pub measurements: Vec<Published>,
}

/// One published measurement: an inference's latency and energy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Published {
    /// The benchmark's short name (kws, vww, ic, ad).
    pub benchmark: String,
    /// Median latency per inference.
    pub latency_ms: f64,
    /// Energy per inference.
    pub energy_uj: f64,
    /// Mean power over the energy window, where published.
    pub power_mw: Option<f64>,
}

/// How a current-per-MHz figure reproduces one published energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The benchmark.
    pub benchmark: String,
    /// Published energy per inference (uJ).
    pub published_uj: f64,
    /// The model's energy for the published latency (uJ).
    pub modelled_uj: f64,
}

impl Check {
    /// (model - published) / published.
    pub fn error(&self) -> f64 {
        self.modelled_uj / self.published_uj - 1.0
    }
}

impl Published {
    /// Mean power in mW: the published one, else energy over latency.
    fn power_mw(&self) -> f64 {
        self.power_mw.unwrap_or(self.energy_uj / self.latency_ms)
    }
}

impl Calibration {
    /// Reads `dir/<name>.toml`; errors name the file.
    pub fn load(dir: &Path, name: &str) -> Result<Calibration, String> {
        let path: PathBuf = dir.join(format!("{name}.toml"));
        let text = crate::input::files::read_to_string(&path)
            .map_err(|e| format!("failed to read energy calibration {}: {e}", path.display()))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| format!("failed to parse energy calibration {}: {e}", path.display()))?;
        let c = file.calibration;
        c.check()
            .map_err(|e| format!("energy calibration {}: {e}", path.display()))?;
        if c.name != name {
            return Err(format!(
                "energy calibration {} says name = \"{}\"",
                path.display(),
                c.name
            ));
        }
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let positive = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} = {v} is not a positive finite number"))
            }
        };
        positive("clock-mhz", self.clock_mhz)?;
        positive("volts", self.volts)?;
        if self.measurements.is_empty() {
            return Err("it has no [[calibration.measurement]]".into());
        }
        for m in &self.measurements {
            positive(&format!("{}'s latency-ms", m.benchmark), m.latency_ms)?;
            positive(&format!("{}'s energy-uj", m.benchmark), m.energy_uj)?;
            if let Some(p) = m.power_mw {
                positive(&format!("{}'s power-mw", m.benchmark), p)?;
            }
        }
        Ok(())
    }

    /// The current per MHz one measurement implies: mean power / supply / clock.
    pub fn ua_per_mhz_of(&self, m: &Published) -> f64 {
        // mW / V = mA; mA / MHz x 1000 = uA/MHz.
        m.power_mw() / self.volts / self.clock_mhz * 1000.0
    }

    /// The calibrated current per MHz: the mean over the measurements.
    pub fn ua_per_mhz(&self) -> f64 {
        let sum: f64 = self
            .measurements
            .iter()
            .map(|m| self.ua_per_mhz_of(m))
            .sum();
        sum / self.measurements.len() as f64
    }

    /// Each published energy beside what `ua_per_mhz` at `volts` predicts
    /// from the published latency (cycles = latency x clock).
    pub fn reproduce(&self, ua_per_mhz: f64, volts: f64) -> Vec<Check> {
        self.measurements
            .iter()
            .map(|m| {
                let cycles = m.latency_ms * 1e-3 * self.clock_mhz * 1e6;
                Check {
                    benchmark: m.benchmark.clone(),
                    published_uj: m.energy_uj,
                    modelled_uj: super::energy::microjoules(ua_per_mhz, volts, cycles),
                }
            })
            .collect()
    }

    /// The largest |error| of the calibrated figure over its own measurements.
    pub fn worst_error(&self) -> f64 {
        self.reproduce(self.ua_per_mhz(), self.volts)
            .iter()
            .map(|c| c.error().abs())
            .fold(0.0, f64::max)
    }

    /// What an energy source says of it, e.g. `188.2 uA/MHz, calibrated on
    /// MLPerf Tiny ... (kws, vww, ic, ad; each within 2.0%)`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self
            .measurements
            .iter()
            .map(|m| m.benchmark.as_str())
            .collect();
        format!(
            "calibrated on {}, {} at {} MHz and {} V ({}: each within {:.1}%)",
            self.source,
            self.board,
            self.clock_mhz,
            self.volts,
            names.join(", "),
            self.worst_error() * 100.0
        )
    }
}

impl Calibration {
    /// A Markdown table: each published energy beside the calibrated
    /// model's and, given a datasheet's current per MHz, that one's.
    pub fn table(&self, datasheet_ua_per_mhz: Option<f64>) -> String {
        let ua = self.ua_per_mhz();
        let mut text = format!(
            "| benchmark | latency (ms) | published (uJ) | model, {ua:.1} uA/MHz (uJ) | error |"
        );
        let datasheet = datasheet_ua_per_mhz.map(|d| self.reproduce(d, self.volts));
        if let Some(d) = datasheet_ua_per_mhz {
            text += &format!(" datasheet only, {d} uA/MHz (uJ) | error |");
        }
        text += "\n|---|---:|---:|---:|---:|";
        if datasheet.is_some() {
            text += "---:|---:|";
        }
        for (i, (m, k)) in self
            .measurements
            .iter()
            .zip(self.reproduce(ua, self.volts))
            .enumerate()
        {
            text += &format!(
                "\n| {} | {} | {:.1} | {:.1} | {:+.1}% |",
                m.benchmark,
                m.latency_ms,
                k.published_uj,
                k.modelled_uj,
                k.error() * 100.0
            );
            if let Some(d) = &datasheet {
                text += &format!(" {:.1} | {:+.1}% |", d[i].modelled_uj, d[i].error() * 100.0);
            }
        }
        text + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l4r5() -> Calibration {
        let dir = crate::workspace_root().join("targets/calibration");
        Calibration::load(&dir, "mlperf-tiny-v0.5-nucleo-l4r5zi").unwrap()
    }

    #[test]
    fn the_calibrated_model_reproduces_mlperf_tinys_four_published_energies_within_ten_percent() {
        let c = l4r5();
        let ua = c.ua_per_mhz();
        // KWS alone: 40.84 mW / 1.8 V / 120 MHz = 189.07 uA/MHz (the 189).
        assert!((c.ua_per_mhz_of(&c.measurements[0]) - 189.07).abs() < 0.01);
        // The mean of KWS 189.07, VWW 186.63, IC 191.99 and AD 185.19.
        assert!((ua - 188.22).abs() < 0.01, "{ua}");
        let checks = c.reproduce(ua, c.volts);
        let errors: Vec<(String, f64)> = checks
            .iter()
            .map(|k| (k.benchmark.clone(), k.error()))
            .collect();
        assert_eq!(checks.len(), 4);
        for (name, e) in &errors {
            assert!(e.abs() < 0.10, "{name}: {e}");
        }
        // IC drew the most and AD the least: -2.0% and +1.6%.
        assert!((c.worst_error() - 0.0197).abs() < 0.0005, "{errors:?}");
        assert!(
            c.describe()
                .ends_with("(kws, vww, ic, ad: each within 2.0%)"),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn the_datasheet_figure_alone_reads_low_and_at_three_volts_three_only_cancels_by_accident() {
        let c = l4r5();
        // 110 uA/MHz (STM32L4R5 datasheet, Run mode) at the real 1.8 V: 41-42% low everywhere.
        for k in c.reproduce(110.0, 1.8) {
            assert!((-0.43..-0.40).contains(&k.error()), "{k:?}: {}", k.error());
        }
        // The same at 3.3 V: KWS 7.5% high, by two errors cancelling.
        let kws = &c.reproduce(110.0, 3.3)[0];
        assert!((kws.error() - 0.0746).abs() < 0.001, "{}", kws.error());
    }

    #[test]
    fn the_table_sets_each_published_energy_beside_both_models() {
        let table = l4r5().table(Some(110.0));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert_eq!(
            lines[0],
            "| benchmark | latency (ms) | published (uJ) | model, 188.2 uA/MHz (uJ) | error | datasheet only, 110 uA/MHz (uJ) | error |"
        );
        // KWS: 7,395.4 uJ modelled (+0.3%); 110 uA/MHz x 1.8 V x 21.83 M cycles = 4,321.9 uJ (-41.4%).
        assert_eq!(
            lines[2],
            "| kws | 181.9 | 7373.7 | 7395.4 | +0.3% | 4321.9 | -41.4% |"
        );
        assert!(
            lines[4].starts_with("| ic | 704.2 | 29207.0 |") && lines[4].contains("| -2.0% |"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn a_bad_calibration_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.toml"),
            "[calibration]\nname = \"x\"\nboard = \"b\"\nclock-mhz = 0.0\nvolts = 1.8\nsoftware = \"s\"\nsource = \"s\"\n[[calibration.measurement]]\nbenchmark = \"kws\"\nlatency-ms = 1.0\nenergy-uj = 1.0\n",
        )
        .unwrap();
        let e = Calibration::load(dir.path(), "x").unwrap_err();
        assert!(e.contains("x.toml") && e.contains("clock-mhz = 0"), "{e}");
        let e = Calibration::load(dir.path(), "missing").unwrap_err();
        assert!(
            e.starts_with("failed to read energy calibration") && e.contains("missing.toml"),
            "{e}"
        );
    }
}
