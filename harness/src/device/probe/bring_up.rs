//! The order a board is brought up in for a job, as data: [`plan`] turns
//! the target file and the firmware's symbols into the list of steps, and
//! `attached.rs` carries them out with probe-rs. Power comes before all of
//! them: a meter that supplies the board (a PPK2 in source mode) is opened
//! by the job before the probe attaches (`pipeline/job.rs`).
//!
//! Every run flashes and resets the chip, and the firmware's RTT control
//! block survives that reset in SRAM, so its ID is cleared while the core
//! is halted, before the firmware runs: otherwise RTT could attach to the
//! old copy that the starting firmware then zeroes.

use super::{ProbeError, Symbols};
use crate::input::target::{LinkKind, Probe};

/// One step of a board's bring-up, in the order [`plan`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Attach to the chip, with the reset line held if the target says so;
    /// with `erase_all`, probe-rs may erase a locked chip to unlock it.
    Attach {
        /// Hold reset while attaching.
        under_reset: bool,
        /// Leave to erase the whole chip when it is locked.
        erase_all: bool,
    },
    /// nRF52840 revision 3: have the flash also write UICR.APPROTECT =
    /// HwDisabled if it is erased, so the reset below leaves the debug port open.
    KeepDebugPortOpen,
    /// Flash the firmware (and any UICR word above), verified.
    Flash,
    /// Reset the core and halt it before it runs an instruction.
    ResetHalt,
    /// Zero the ID of the last run's RTT control block.
    ClearRttId {
        /// `_SEGGER_RTT`.
        at: u64,
    },
    /// Paint the stack, for the peak read after the run.
    PaintStack {
        /// The lowest word (`__sheap`).
        from: u64,
        /// The top (`_stack_start`).
        to: u64,
    },
    /// Let the core run.
    Run,
    /// Find the firmware's RTT control block (retried until it is written).
    AttachRtt {
        /// `_SEGGER_RTT`.
        at: u64,
    },
    /// Open the board's UART.
    OpenUart {
        /// The serial port.
        port: String,
    },
}

/// The steps for `target` (named `name`) running a firmware with `symbols`,
/// or why they cannot work, before any probe is touched.
pub fn plan(
    probe: &Probe,
    link: LinkKind,
    symbols: &Symbols,
    name: &str,
    elf: &str,
) -> Result<Vec<Step>, ProbeError> {
    let mut steps = vec![Step::Attach {
        under_reset: probe.connect_under_reset,
        erase_all: probe.allow_erase_all,
    }];
    if needs_approtect_word(&probe.chip) {
        steps.push(Step::KeepDebugPortOpen);
    }
    steps.extend([Step::Flash, Step::ResetHalt]);
    let last = match link {
        LinkKind::Serial => {
            let port = probe.port.clone().ok_or_else(|| ProbeError::Setting {
                target: name.into(),
                why: "link = \"serial\" needs [run.probe] port, the board's UART".into(),
            })?;
            Step::OpenUart { port }
        }
        LinkKind::Rtt | LinkKind::Stdio => {
            let at = symbols.rtt.ok_or_else(|| ProbeError::Symbol {
                symbol: "_SEGGER_RTT",
                elf: elf.into(),
                why: "the RTT control block of the link",
            })?;
            steps.push(Step::ClearRttId { at });
            Step::AttachRtt { at }
        }
    };
    if let Some(stack) = symbols.stack {
        steps.push(Step::PaintStack {
            from: stack.low,
            to: stack.top,
        });
    }
    steps.extend([Step::Run, last]);
    Ok(steps)
}

/// Chips whose revision 3 locks its debug port at reset unless UICR says
/// otherwise. (Other nRF52 parts changed at other build codes; only the
/// nRF52840 has a board target here.)
fn needs_approtect_word(chip: &str) -> bool {
    chip.to_ascii_lowercase().starts_with("nrf52840")
}

/// FICR.INFO.VARIANT of the nRF52840.
pub const FICR_INFO_VARIANT: u64 = 0x1000_0104;
/// UICR.APPROTECT of the nRF52840.
pub const UICR_APPROTECT: u64 = 0x1000_1208;
/// UICR.APPROTECT = HwDisabled.
pub const HW_DISABLED: u32 = 0x5A;

/// The UICR word to flash with the firmware, from what the chip holds: a
/// revision 3 chip (build code F and later, the third letter of the
/// variant) with an erased APPROTECT word gets HwDisabled. Earlier
/// revisions read any value but 0xFF as "protect", so they get nothing.
pub fn approtect_word(variant: u32, approtect: u32) -> Option<(u64, u32)> {
    let build_code = (variant >> 8) as u8;
    (build_code >= b'F' && approtect == u32::MAX).then_some((UICR_APPROTECT, HW_DISABLED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(chip: &str) -> Probe {
        Probe {
            chip: chip.into(),
            probe: None,
            port: None,
            speed_khz: None,
            connect_under_reset: false,
            allow_erase_all: false,
        }
    }

    const SYMBOLS: Symbols = Symbols {
        rtt: Some(0x2000_0100),
        stack: Some(super::super::Stack {
            low: 0x2000_4000,
            top: 0x2004_0000,
        }),
    };

    fn steps(probe: &Probe, link: LinkKind, symbols: &Symbols) -> Result<Vec<Step>, String> {
        plan(probe, link, symbols, "board", "fw.elf").map_err(|e| e.to_string())
    }

    #[test]
    fn an_rtt_board_is_attached_flashed_halted_cleared_painted_run_then_read() {
        let paint = Step::PaintStack {
            from: 0x2000_4000,
            to: 0x2004_0000,
        };
        let rtt = 0x2000_0100;
        assert_eq!(
            steps(&probe("STM32L4R5ZITx"), LinkKind::Rtt, &SYMBOLS).unwrap(),
            [
                Step::Attach {
                    under_reset: false,
                    erase_all: false
                },
                Step::Flash,
                Step::ResetHalt,
                Step::ClearRttId { at: rtt },
                paint.clone(),
                Step::Run,
                Step::AttachRtt { at: rtt },
            ]
        );
        // The nRF52840 writes its UICR word with the flash, and erases only when allowed.
        let mut nrf = probe("nRF52840_xxAA");
        nrf.allow_erase_all = true;
        nrf.connect_under_reset = true;
        let nrf_steps = steps(&nrf, LinkKind::Rtt, &SYMBOLS).unwrap();
        assert_eq!(
            nrf_steps[..3],
            [
                Step::Attach {
                    under_reset: true,
                    erase_all: true
                },
                Step::KeepDebugPortOpen,
                Step::Flash,
            ]
        );
        assert_eq!(nrf_steps.len(), 8);
    }

    #[test]
    fn a_uart_board_opens_its_port_after_the_run_and_leaves_rtt_alone() {
        let mut uart = probe("STM32F446RETx");
        uart.port = Some("/dev/ttyACM0".into());
        let got = steps(&uart, LinkKind::Serial, &SYMBOLS).unwrap();
        assert!(!got.iter().any(|s| matches!(s, Step::ClearRttId { .. })));
        assert_eq!(
            got[got.len() - 2..],
            [
                Step::Run,
                Step::OpenUart {
                    port: "/dev/ttyACM0".into()
                }
            ]
        );
    }

    #[test]
    fn a_users_dut_firmware_without_stack_symbols_is_flashed_run_and_spoken_to_over_uart() {
        let mut uart = probe("STM32L4R5ZITx");
        uart.port = Some("/dev/ttyACM0".into());
        let foreign = Symbols {
            rtt: None,
            stack: None,
        };
        assert_eq!(
            steps(&uart, LinkKind::Serial, &foreign).unwrap(),
            [
                Step::Attach {
                    under_reset: false,
                    erase_all: false
                },
                Step::Flash,
                Step::ResetHalt,
                Step::Run,
                Step::OpenUart {
                    port: "/dev/ttyACM0".into()
                }
            ]
        );
    }

    #[test]
    fn a_plan_that_cannot_work_is_refused_before_the_probe_is_touched() {
        let no_rtt = Symbols {
            rtt: None,
            ..SYMBOLS
        };
        assert_eq!(
            steps(&probe("STM32L4R5ZITx"), LinkKind::Rtt, &no_rtt).unwrap_err(),
            "failed to find `_SEGGER_RTT` in fw.elf: the RTT control block of the link"
        );
        assert_eq!(
            steps(&probe("STM32F446RETx"), LinkKind::Serial, &SYMBOLS).unwrap_err(),
            "failed to set up target board: link = \"serial\" needs [run.probe] port, the board's UART"
        );
    }

    #[test]
    fn only_an_erased_word_on_a_revision_3_nrf52840_gets_hw_disabled() {
        // Build codes: AAC0 (revision 1), AAD0 and AAE0 (2), AAF0 (3).
        let (rev1, rev2, rev3) = (0x4141_4330, 0x4141_4530, 0x4141_4630);
        assert_eq!(approtect_word(rev3, u32::MAX), Some((0x1000_1208, 0x5A)));
        assert_eq!(approtect_word(rev3, 0x5A), None);
        assert_eq!(approtect_word(rev2, u32::MAX), None);
        assert_eq!(approtect_word(rev1, u32::MAX), None);
        // A chip protected on purpose keeps its word (only an erase-all clears it).
        assert_eq!(approtect_word(rev3, 0), None);
    }
}
