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
    /// The lowest address the stack may reach (`__sheap`: end of static data).
    pub stack_low: u64,
    /// The top of the stack (`_stack_start`).
    pub stack_top: u64,
}

/// The ID string at the start of an RTT control block (`SEGGER RTT` and padding).
pub const RTT_ID_BYTES: usize = 16;

/// Reads the runner's symbols from a firmware ELF.
pub fn symbols(elf: &Path) -> Result<Symbols, ProbeError> {
    use object::{Object, ObjectSymbol};
    let name = elf.display().to_string();
    let missing = |symbol, why| ProbeError::Symbol {
        symbol,
        elf: name.clone(),
        why,
    };
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
    Ok(Symbols {
        rtt: find("_SEGGER_RTT"),
        stack_low: find("__sheap").ok_or_else(|| {
            missing(
                "__sheap",
                "the end of static data, where stack painting starts",
            )
        })?,
        stack_top: find("_stack_start")
            .ok_or_else(|| missing("_stack_start", "the top of the stack"))?,
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

#[cfg(feature = "probe-rs")]
pub use attached::ProbeLink;

#[cfg(feature = "probe-rs")]
mod attached {
    use super::{ProbeError, Symbols, PAINT, RTT_ID_BYTES};
    use crate::device::link::Link;
    use crate::input::target::{LinkKind, Target};
    use probe_rs::flashing::{DownloadOptions, ElfLoader, ElfOptions};
    use probe_rs::probe::list::Lister;
    use probe_rs::probe::DebugProbeInfo;
    use probe_rs::rtt::Rtt;
    use probe_rs::{CoreStatus, MemoryInterface, Permissions, Session};
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// The chip and probe an operation is on, for its error.
    struct On {
        chip: String,
        probe: String,
    }

    impl On {
        fn fail(&self, action: &'static str, why: impl std::fmt::Display) -> ProbeError {
            let (chip, probe) = (self.chip.clone(), self.probe.clone());
            ProbeError::Operation {
                action,
                chip,
                probe,
                why: why.to_string(),
            }
        }
    }

    /// The probe `[run.probe] probe` selects (`VID:PID:SERIAL`), or the only one attached.
    fn choose_probe(
        spec: &crate::input::target::Probe,
        chip: &str,
        name: &str,
    ) -> Result<DebugProbeInfo, ProbeError> {
        let probes = Lister::new().list_all();
        let (chip, target) = (chip.to_string(), name.to_string());
        match (&spec.probe, probes.as_slice()) {
            (_, []) => Err(ProbeError::NoProbe { chip, target }),
            (Some(selector), _) => probes
                .iter()
                .find(|p| {
                    let id = format!(
                        "{:04x}:{:04x}:{}",
                        p.vendor_id,
                        p.product_id,
                        p.serial_number.as_deref().unwrap_or("")
                    );
                    selector.eq_ignore_ascii_case(&id)
                })
                .cloned()
                .ok_or_else(|| ProbeError::NoProbe {
                    chip,
                    target: format!("{name}, probe {selector}"),
                }),
            (None, [one]) => Ok(one.clone()),
            (None, many) => {
                let list: Vec<String> = many.iter().map(ToString::to_string).collect();
                Err(ProbeError::Ambiguous {
                    chip,
                    target,
                    count: many.len(),
                    list: list.join("; "),
                })
            }
        }
    }

    /// Flashes `elf` (verified), paints the stack between its symbols and starts core 0.
    fn flash_and_start(
        session: &mut Session,
        elf: &Path,
        symbols: &Symbols,
        on: &On,
    ) -> Result<(), ProbeError> {
        let mut options = DownloadOptions::default();
        options.verify = true;
        let loader = ElfLoader(ElfOptions::default());
        probe_rs::flashing::download_file_with_options(session, elf, loader, options)
            .map_err(|e| on.fail("flash the firmware", e))?;
        let mut core = session.core(0).map_err(|e| on.fail("reach core 0", e))?;
        core.reset_and_halt(Duration::from_millis(500))
            .map_err(|e| on.fail("reset and halt", e))?;
        if let Some(rtt) = symbols.rtt {
            // SRAM keeps the last run's control block across a reset: with its
            // ID cleared, RTT cannot attach to that copy before the firmware
            // writes its own (as probe-rs's own tools do).
            core.write_8(rtt, &[0; RTT_ID_BYTES])
                .map_err(|e| on.fail("clear the old RTT control block", e))?;
        }
        let words = ((symbols.stack_top - symbols.stack_low) / 4) as usize;
        core.write_32(symbols.stack_low, &vec![PAINT; words])
            .map_err(|e| on.fail("paint the stack", e))?;
        core.run().map_err(|e| on.fail("start the firmware", e))
    }

    /// The firmware's RTT channels: it fills the control block in at start,
    /// so attaching is retried until it is there (at most 5 s).
    fn attach_rtt(
        session: &mut Session,
        elf: &Path,
        symbols: &Symbols,
        timeout: Duration,
        on: &On,
    ) -> Result<Channel, ProbeError> {
        let address = symbols.rtt.ok_or_else(|| ProbeError::Symbol {
            symbol: "_SEGGER_RTT",
            elf: elf.display().to_string(),
            why: "the RTT control block of the link",
        })?;
        let deadline = Instant::now() + timeout.min(Duration::from_secs(5));
        let mut core = session.core(0).map_err(|e| on.fail("reach core 0", e))?;
        loop {
            match Rtt::attach_at(&mut core, address) {
                Ok(rtt) => return Ok(Channel::Rtt(rtt)),
                Err(e) if Instant::now() >= deadline => {
                    return Err(on.fail(
                        "find the RTT control block",
                        format!("at {address:#x}: {e}"),
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Where the firmware's bytes come and go.
    enum Channel {
        /// RTT up and down channel 0.
        Rtt(Rtt),
        /// A UART on a serial port.
        Serial(Box<dyn serialport::SerialPort>),
    }

    /// A flashed, running board.
    pub struct ProbeLink {
        session: Session,
        channel: Channel,
        symbols: Symbols,
        chip: String,
        probe: String,
    }

    impl ProbeLink {
        /// Attaches to the target's chip, flashes `elf` (verified), paints
        /// the stack, starts the firmware and opens its link.
        pub fn attach(target: &Target, elf: &Path, timeout: Duration) -> Result<Self, ProbeError> {
            let spec = target
                .run
                .probe
                .as_ref()
                .expect("a probe-rs target has [run.probe]");
            let (chip, name) = (spec.chip.clone(), target.target.name.clone());
            let registry = probe_rs::config::Registry::from_builtin_families();
            registry
                .get_target_by_name(&chip)
                .map_err(|_| super::unknown_chip(&chip, &name))?;
            let symbols = super::symbols(elf)?;
            let info = choose_probe(spec, &chip, &name)?;
            let on = On {
                chip: chip.clone(),
                probe: info.to_string(),
            };
            let mut probe = info.open().map_err(|e| on.fail("open the probe", e))?;
            if let Some(khz) = spec.speed_khz {
                probe
                    .set_speed(khz)
                    .map_err(|e| on.fail("set the probe's speed", e))?;
            }
            let mut session = if spec.connect_under_reset {
                probe.attach_under_reset(chip.as_str(), Permissions::default())
            } else {
                probe.attach(chip.as_str(), Permissions::default())
            }
            .map_err(|e| on.fail("attach", e))?;
            flash_and_start(&mut session, elf, &symbols, &on)?;
            let channel = match target.telemetry.link {
                LinkKind::Serial => {
                    let port = spec.port.as_deref().ok_or_else(|| {
                        on.fail("open the UART", "link = \"serial\" needs [run.probe] port")
                    })?;
                    let uart = serialport::new(port, 115_200).timeout(Duration::from_millis(20));
                    let uart = uart
                        .open()
                        .map_err(|e| on.fail("open the UART", format!("{port}: {e}")))?;
                    Channel::Serial(uart)
                }
                _ => attach_rtt(&mut session, elf, &symbols, timeout, &on)?,
            };
            Ok(Self {
                session,
                channel,
                symbols,
                chip,
                probe: on.probe,
            })
        }

        fn io_error(&self, what: &str, e: impl std::fmt::Display) -> std::io::Error {
            std::io::Error::other(format!(
                "{what} ({} through {}): {e}",
                self.chip, self.probe
            ))
        }

        /// Fails when the core stopped running (a fault, a breakpoint).
        fn check_running(&mut self) -> std::io::Result<()> {
            let status = self
                .session
                .core(0)
                .and_then(|mut c| c.status())
                .map_err(|e| self.io_error("failed to read the core's status", e))?;
            match status {
                CoreStatus::LockedUp => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the core locked up (a fault inside the fault handler)",
                )),
                CoreStatus::Halted(reason) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the core halted ({reason:?})"),
                )),
                _ => Ok(()),
            }
        }
    }

    impl Link for ProbeLink {
        fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            match &mut self.channel {
                Channel::Serial(port) => port.write_all(bytes),
                Channel::Rtt(rtt) => {
                    let mut core = self.session.core(0).map_err(std::io::Error::other)?;
                    let down = rtt.down_channel(0).ok_or_else(|| {
                        std::io::Error::other("the firmware has no RTT down channel")
                    })?;
                    let mut rest = bytes;
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while !rest.is_empty() {
                        let n = down.write(&mut core, rest).map_err(std::io::Error::other)?;
                        rest = &rest[n..];
                        if n == 0 && Instant::now() >= deadline {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "the firmware stopped reading its RTT down channel",
                            ));
                        }
                    }
                    Ok(())
                }
            }
        }

        fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
            let deadline = Instant::now() + timeout;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match &mut self.channel {
                    Channel::Serial(port) => match port.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
                        Err(e) => return Err(e),
                    },
                    Channel::Rtt(rtt) => {
                        let mut core = self.session.core(0).map_err(std::io::Error::other)?;
                        let up = rtt.up_channel(0).ok_or_else(|| {
                            std::io::Error::other("the firmware has no RTT up channel")
                        })?;
                        up.read(&mut core, &mut buf)
                            .map_err(std::io::Error::other)?
                    }
                };
                if n > 0 {
                    return Ok(Some(buf[..n].to_vec()));
                }
                self.check_running()?;
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        fn stop(&mut self) -> String {
            // Halting leaves the board quiet until the next job flashes it.
            match self
                .session
                .core(0)
                .and_then(|mut c| c.halt(Duration::from_millis(200)))
            {
                Ok(info) => format!("core halted at pc {:#x}", info.pc),
                Err(e) => format!("the core did not halt: {e}"),
            }
        }

        fn stack_peak(&mut self) -> Option<u32> {
            let words = ((self.symbols.stack_top - self.symbols.stack_low) / 4) as usize;
            let mut stack = vec![0u32; words];
            let mut core = self.session.core(0).ok()?;
            core.read_32(self.symbols.stack_low, &mut stack).ok()?;
            Some(super::stack_peak(&stack))
        }
    }
}

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
    }
}
