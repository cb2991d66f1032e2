use super::bring_up::{self, plan, Step};
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

/// A board part-way through its bring-up: the probe until it is attached,
/// then the session; the channel once the firmware runs.
struct Bringing<'a> {
    on: On,
    target: &'a str,
    elf: &'a Path,
    timeout: Duration,
    probe: Option<probe_rs::probe::Probe>,
    session: Option<Session>,
    /// A UICR word to flash with the firmware ([`Step::KeepDebugPortOpen`]).
    uicr: Option<(u64, u32)>,
    channel: Option<Channel>,
}

impl Bringing<'_> {
    /// Does `act` on core 0; a failure is "failed to `action`".
    fn on_core<T>(
        &mut self,
        action: &'static str,
        act: impl FnOnce(&mut probe_rs::Core) -> Result<T, probe_rs::Error>,
    ) -> Result<T, ProbeError> {
        let (session, on) = (
            self.session.as_mut().expect("the plan attaches first"),
            &self.on,
        );
        let mut core = session.core(0).map_err(|e| on.fail("reach core 0", e))?;
        act(&mut core).map_err(|e| on.fail(action, e))
    }

    /// Carries out one step of the plan.
    fn step(&mut self, step: &Step) -> Result<(), ProbeError> {
        match step {
            Step::Attach {
                under_reset,
                erase_all,
            } => self.attach(*under_reset, *erase_all),
            Step::KeepDebugPortOpen => self.keep_debug_port_open(),
            Step::Flash => self.flash(),
            Step::ResetHalt => self.on_core("reset and halt", |core| {
                core.reset_and_halt(Duration::from_millis(500)).map(drop)
            }),
            Step::ClearRttId { at } => self.on_core("clear the old RTT control block", |core| {
                core.write_8(*at, &[0; RTT_ID_BYTES])
            }),
            Step::PaintStack { from, to } => self.on_core("paint the stack", |core| {
                let words = ((to - from) / 4) as usize;
                core.write_32(*from, &vec![PAINT; words])
            }),
            Step::Run => self.on_core("start the firmware", |core| core.run()),
            Step::AttachRtt { at } => {
                let rtt = self.attach_rtt(*at)?;
                self.channel = Some(Channel::Rtt(rtt));
                Ok(())
            }
            Step::OpenUart { port } => {
                let uart = serialport::new(port, 115_200).timeout(Duration::from_millis(20));
                let uart = uart
                    .open()
                    .map_err(|e| self.on.fail("open the UART", format!("{port}: {e}")))?;
                self.channel = Some(Channel::Serial(uart));
                Ok(())
            }
        }
    }

    /// Attaches with the permissions the plan gives; a locked chip without
    /// leave to erase it is named as such, with the setting that allows it.
    fn attach(&mut self, under_reset: bool, erase_all: bool) -> Result<(), ProbeError> {
        let probe = self.probe.take().expect("attached once");
        let permissions = if erase_all {
            Permissions::new().allow_erase_all()
        } else {
            Permissions::new()
        };
        let chip = self.on.chip.as_str();
        let session = if under_reset {
            probe.attach_under_reset(chip, permissions)
        } else {
            probe.attach(chip, permissions)
        };
        match session {
            Ok(session) => {
                self.session = Some(session);
                Ok(())
            }
            Err(e) if lacks_erase_permission(&e) => Err(ProbeError::Locked {
                chip: self.on.chip.clone(),
                probe: self.on.probe.clone(),
                target: self.target.into(),
            }),
            Err(e) => Err(self.on.fail("attach", e)),
        }
    }

    /// Reads the nRF52840's variant and UICR.APPROTECT, and keeps the word
    /// the flash must add so the coming reset leaves the debug port open.
    fn keep_debug_port_open(&mut self) -> Result<(), ProbeError> {
        let action = "read the chip's revision and UICR.APPROTECT";
        let (variant, approtect) = self.on_core(action, |core| {
            let variant = core.read_word_32(bring_up::FICR_INFO_VARIANT)?;
            Ok((variant, core.read_word_32(bring_up::UICR_APPROTECT)?))
        })?;
        self.uicr = bring_up::approtect_word(variant, approtect);
        Ok(())
    }

    /// Flashes the firmware and any UICR word, verified; the rest of a
    /// partly written sector (the UICR's other settings) is kept.
    fn flash(&mut self) -> Result<(), ProbeError> {
        let (elf, uicr, on) = (self.elf, self.uicr, &self.on);
        let session = self.session.as_mut().expect("the plan attaches first");
        let mut loader =
            probe_rs::flashing::build_loader(session, elf, ElfLoader(ElfOptions::default()), None)
                .map_err(|e| on.fail("flash the firmware", e))?;
        if let Some((at, word)) = uicr {
            loader
                .add_data(at, &word.to_le_bytes())
                .map_err(|e| on.fail("add UICR.APPROTECT to the flash", e))?;
        }
        let mut options = DownloadOptions::default();
        options.verify = true;
        options.keep_unwritten_bytes = true;
        loader
            .commit(session, options)
            .map_err(|e| on.fail("flash the firmware", e))
    }

    /// The firmware's RTT channels: it fills the control block in at start,
    /// so attaching is retried until it is there (at most 5 s).
    fn attach_rtt(&mut self, address: u64) -> Result<Rtt, ProbeError> {
        let deadline = Instant::now() + self.timeout.min(Duration::from_secs(5));
        let (session, on) = (self.session.as_mut().expect("attached"), &self.on);
        let mut core = session.core(0).map_err(|e| on.fail("reach core 0", e))?;
        loop {
            match Rtt::attach_at(&mut core, address) {
                Ok(rtt) => return Ok(rtt),
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
}

/// probe-rs refused to unlock a locked chip because erasing was not allowed.
fn lacks_erase_permission(e: &probe_rs::Error) -> bool {
    matches!(
        e,
        probe_rs::Error::MissingPermissions(_)
            | probe_rs::Error::Arm(probe_rs::architecture::arm::ArmError::MissingPermissions(_))
    )
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
    /// Brings the target's board up by [`plan`]'s steps: attach, flash
    /// (verified), halt after reset, clear the old RTT block, paint the
    /// stack, run, open the link: `link`, the target's own for bench's
    /// firmware, its UART for a firmware that speaks the MLPerf Tiny protocol.
    pub fn attach(
        target: &Target,
        elf: &Path,
        timeout: Duration,
        link: LinkKind,
    ) -> Result<Self, ProbeError> {
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
        let elf_name = elf.display().to_string();
        let steps = plan(spec, link, &symbols, &name, &elf_name)?;
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
        let mut board = Bringing {
            on,
            target: &name,
            elf,
            timeout,
            probe: Some(probe),
            session: None,
            uicr: None,
            channel: None,
        };
        for step in &steps {
            board.step(step)?;
        }
        Ok(Self {
            session: board.session.expect("the plan attaches"),
            channel: board.channel.expect("the plan opens the link last"),
            symbols,
            chip,
            probe: board.on.probe,
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
                let down = rtt
                    .down_channel(0)
                    .ok_or_else(|| std::io::Error::other("the firmware has no RTT down channel"))?;
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
        let painted = self.symbols.stack?;
        let words = ((painted.top - painted.low) / 4) as usize;
        let mut stack = vec![0u32; words];
        let mut core = self.session.core(0).ok()?;
        core.read_32(painted.low, &mut stack).ok()?;
        Some(super::stack_peak(&stack))
    }
}
