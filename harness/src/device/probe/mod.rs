//! Real boards through a debug probe, with probe-rs as a library: list the
//! probes, attach by the chip name of the target file, flash the firmware
//! ELF with verification, paint the stack, reset, and speak the protocol
//! over the firmware's RTT channels (or its UART, when the target file
//! says `link = "serial"`). The probe reads the stack peak back after the
//! run; dropping the link detaches.
//!
//! Without the `probe-rs` cargo feature the runner reports that it is not
//! in this build; everything else (errors, symbol lookup) is always built.

use std::path::Path;

/// The word the stack is painted with (the firmware paints with the same).
pub const PAINT: u32 = 0xC0DE_C0DE;

/// Why a board could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No probe is attached.
    #[error("failed to find a debug probe for {chip} (target {target}): none is attached; plug the board's probe in, and run `bench probes` to list what this machine sees")]
    NoProbe {
        /// probe-rs chip name.
        chip: String,
        /// Target name.
        target: String,
    },
    /// Several probes, none chosen.
    #[error("failed to choose a debug probe for {chip} (target {target}): {count} are attached ({list}); name one in the target file with [run.probe] probe = \"VID:PID:SERIAL\"")]
    Ambiguous {
        /// probe-rs chip name.
        chip: String,
        /// Target name.
        target: String,
        /// How many.
        count: usize,
        /// Their identities.
        list: String,
    },
    /// probe-rs has no such chip.
    #[error("failed to find the chip `{chip}` in probe-rs's chip list (target file {target}){}", suggestion(.candidates))]
    UnknownChip {
        /// What the target file says.
        chip: String,
        /// Target name.
        target: String,
        /// Close names probe-rs knows.
        candidates: Vec<String>,
    },
    /// The firmware ELF could not be read.
    #[error("failed to read the firmware {elf}: {why}")]
    Elf {
        /// The firmware.
        elf: String,
        /// The reason.
        why: String,
    },
    /// The ELF lacks a symbol the runner needs.
    #[error("failed to find `{symbol}` in {elf}: {why}")]
    Symbol {
        /// Symbol name.
        symbol: &'static str,
        /// The firmware.
        elf: String,
        /// What it is for.
        why: &'static str,
    },
    /// The target file's probe settings cannot work.
    #[error("failed to set up target {target}: {why}")]
    Setting {
        /// Target name.
        target: String,
        /// What is missing.
        why: String,
    },
    /// The chip is locked and unlocking it would erase it.
    #[error("failed to attach ({chip} through {probe}): the chip is locked (its debug access port is protected), and unlocking it erases the whole chip; set allow-erase-all = true under [run.probe] in target file {target} to let bench do that")]
    Locked {
        /// probe-rs chip name.
        chip: String,
        /// Probe identity.
        probe: String,
        /// Target name.
        target: String,
    },
    /// A probe operation failed.
    #[error("failed to {action} ({chip} through {probe}): {why}")]
    Operation {
        /// What was being done ("attach", "flash", ...).
        action: &'static str,
        /// probe-rs chip name.
        chip: String,
        /// Probe identity.
        probe: String,
        /// probe-rs's reason.
        why: String,
    },
}

fn suggestion(candidates: &[String]) -> String {
    match candidates {
        [] => String::new(),
        some => format!("; close names: {}", some.join(", ")),
    }
}

/// Addresses in a firmware ELF the probe runner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbols {
    /// The RTT control block (`_SEGGER_RTT`), if the firmware has one.
    pub rtt: Option<u64>,
    /// The stack's extent, where the firmware names it (cortex-m-rt's
    /// `__sheap`, the end of static data, and `_stack_start`, the top):
    /// bench's firmware does; a user's `[[dut]]` firmware may not, and then
    /// its stack is not painted.
    pub stack: Option<Stack>,
}

/// A firmware's stack region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// The lowest address the stack may reach.
    pub low: u64,
    /// The top of the stack.
    pub top: u64,
}

/// The ID string at the start of an RTT control block (`SEGGER RTT` and padding).
pub const RTT_ID_BYTES: usize = 16;

/// Reads the runner's symbols from a firmware ELF.
pub fn symbols(elf: &Path) -> Result<Symbols, ProbeError> {
    use object::{Object, ObjectSymbol};
    let name = elf.display().to_string();
    let bytes = std::fs::read(elf).map_err(|e| ProbeError::Elf {
        elf: name.clone(),
        why: e.to_string(),
    })?;
    let file = object::File::parse(&*bytes).map_err(|e| ProbeError::Elf {
        elf: name.clone(),
        why: format!("not an ELF ({e})"),
    })?;
    let find = |wanted: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(wanted))
            .map(|s| s.address())
    };
    let stack = find("__sheap")
        .zip(find("_stack_start"))
        .map(|(low, top)| Stack { low, top });
    Ok(Symbols {
        rtt: find("_SEGGER_RTT"),
        stack,
    })
}

/// Bytes of stack used: from the top down to the lowest word that no
/// longer holds [`PAINT`]. `words` are the stack region's words from
/// `stack_low` up to `stack_top`.
pub fn stack_peak(words: &[u32]) -> u32 {
    let untouched = words.iter().take_while(|&&w| w == PAINT).count();
    ((words.len() - untouched) * 4) as u32
}

/// The probes attached to this machine, one line each (`bench probes`).
#[cfg(feature = "probe-rs")]
pub fn list() -> Vec<String> {
    probe_rs::probe::list::Lister::new()
        .list_all()
        .iter()
        .map(|p| {
            format!(
                "{p} ({})",
                p.serial_number.as_deref().unwrap_or("no serial")
            )
        })
        .collect()
}

/// The chip names probe-rs knows that contain `part` (case-insensitive), at most `limit`.
#[cfg(feature = "probe-rs")]
pub fn chips_like(part: &str, limit: usize) -> Vec<String> {
    let registry = probe_rs::config::Registry::from_builtin_families();
    let part = part.to_ascii_lowercase();
    let mut names: Vec<String> = registry
        .families()
        .iter()
        .flat_map(|f| f.variants.iter().map(|v| v.name.clone()))
        .filter(|n| n.to_ascii_lowercase().contains(&part))
        .collect();
    names.sort();
    names.truncate(limit);
    names
}

/// The memory map probe-rs has for `chip`: `(is_ram, start, end)` per region.
#[cfg(feature = "probe-rs")]
pub fn chip_memory(chip: &str, target: &str) -> Result<Vec<(bool, u64, u64)>, ProbeError> {
    use probe_rs::config::MemoryRegion;
    let registry = probe_rs::config::Registry::from_builtin_families();
    let found = registry
        .get_target_by_name(chip)
        .map_err(|_| unknown_chip(chip, target))?;
    Ok(found
        .memory_map
        .iter()
        .filter_map(|r| match r {
            MemoryRegion::Ram(ram) => Some((true, ram.range.start, ram.range.end)),
            MemoryRegion::Nvm(nvm) => Some((false, nvm.range.start, nvm.range.end)),
            MemoryRegion::Generic(_) => None,
        })
        .collect())
}

#[cfg(feature = "probe-rs")]
fn unknown_chip(chip: &str, target: &str) -> ProbeError {
    // Suggest by the first characters: "STM32L4R5" finds "STM32L4R5ZI".
    let stem: String = chip.chars().take(9).collect();
    ProbeError::UnknownChip {
        chip: chip.into(),
        target: target.into(),
        candidates: chips_like(&stem, 8),
    }
}

pub mod bring_up;
pub use bring_up::{plan, Step};

#[cfg(feature = "probe-rs")]
mod attached;
#[cfg(feature = "probe-rs")]
pub use attached::ProbeLink;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_peak_is_the_painted_words_overwritten_from_the_top() {
        let mut words = vec![PAINT; 64];
        assert_eq!(stack_peak(&words), 0);
        for w in &mut words[40..] {
            *w = 0x1234;
        }
        // A frame may hold the pattern by chance above its lowest word: only the lowest counts.
        words[50] = PAINT;
        assert_eq!(stack_peak(&words), 24 * 4);
        words[0] = 7;
        assert_eq!(stack_peak(&words), 256);
    }

    #[test]
    fn a_firmware_that_is_not_an_elf_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw.elf");
        std::fs::write(&path, b"not an elf").unwrap();
        let e = symbols(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "failed to read the firmware {}: not an ELF (",
                path.display()
            )),
            "{e}"
        );
        let e = symbols(&dir.path().join("missing.elf"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("failed to read the firmware ")
                && e.contains("missing.elf: No such file"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_chip_the_target_and_what_to_do() {
        let e = ProbeError::NoProbe {
            chip: "STM32L4R5ZI".into(),
            target: "nucleo-l4r5zi".into(),
        };
        assert_eq!(
            e.to_string(),
            "failed to find a debug probe for STM32L4R5ZI (target nucleo-l4r5zi): none is attached; plug the board's probe in, and run `bench probes` to list what this machine sees"
        );
        let e = ProbeError::UnknownChip {
            chip: "STM32L4R5".into(),
            target: "t".into(),
            candidates: vec!["STM32L4R5AG".into(), "STM32L4R5ZI".into()],
        };
        assert_eq!(e.to_string(), "failed to find the chip `STM32L4R5` in probe-rs's chip list (target file t); close names: STM32L4R5AG, STM32L4R5ZI");
        let e = ProbeError::Locked {
            chip: "nRF52840_xxAA".into(),
            probe: "J-Link".into(),
            target: "nrf52840-dk".into(),
        };
        assert_eq!(e.to_string(), "failed to attach (nRF52840_xxAA through J-Link): the chip is locked (its debug access port is protected), and unlocking it erases the whole chip; set allow-erase-all = true under [run.probe] in target file nrf52840-dk to let bench do that");
    }
}
