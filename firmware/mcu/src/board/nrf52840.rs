//! Nordic nRF52840 (nRF52840-DK, Cortex-M4F): the CPU runs at the fixed
//! 64 MHz of HFCLK; `nrf52840-hal` switches HFCLK to the external 32 MHz
//! crystal for an accurate clock.
//!
//! Revision 3 chips (build code F and later) close their debug port at
//! every reset unless UICR.APPROTECT holds HwDisabled and the firmware
//! writes SwDisable to APPROTECT.DISABLE (Nordic IN-141; nrf-hal#420): the
//! firmware does both first thing, as embassy-nrf does. The harness writes
//! the UICR word with the flash when the chip needs it (`device/probe`), so
//! the reset before the first run already leaves the port open.
//!
//! The chip runs as its energy figure assumes (52 uA/MHz: CoreMark from
//! flash, DC/DC on, cache on): the firmware enables the REG1 DC/DC
//! converter (the DK carries its inductor) and the flash instruction cache,
//! both off at reset.

use super::dwt::Dwt;
use super::marker::{Line, Nrf};
use super::mmio::{read, write};
use super::rtt::Rtt;
use nrf52840_hal::{clocks::Clocks, pac};

/// The link.
pub type Port = Rtt;
/// The core cycle counter.
pub type Clock = Dwt;
/// nRF GPIO.
pub type Marker = Line<Nrf>;

/// The CPU clock (product specification, section "CPU": 64 MHz).
const CPU_HZ: u32 = 64_000_000;

/// FICR.INFO.VARIANT: the build code in ASCII ("AAF0"), its third letter the revision.
const FICR_INFO_VARIANT: usize = 0x1000_0104;
/// UICR.APPROTECT, read at reset.
const UICR_APPROTECT: usize = 0x1000_1208;
/// APPROTECT.DISABLE, reset to "enabled" at every reset (revision 3 only).
const APPROTECT_DISABLE: usize = 0x4000_0558;
/// HwDisabled (UICR) and SwDisable (APPROTECT.DISABLE) alike.
const DISABLED: u32 = 0x5A;
/// NVMC.READY and NVMC.CONFIG (1: writes enabled, 0: read only).
const NVMC_READY: usize = 0x4001_E400;
const NVMC_CONFIG: usize = 0x4001_E504;
/// POWER.DCDCEN: 1 enables REG1's DC/DC converter (product specification, POWER).
const POWER_DCDCEN: usize = 0x4000_0578;
/// NVMC.ICACHECNF: bit 0, CACHEEN, enables the flash instruction cache.
const NVMC_ICACHECNF: usize = 0x4001_E540;

/// Runs the chip as its 52 uA/MHz figure was measured: DC/DC and cache on.
fn power_as_measured() {
    write(POWER_DCDCEN, 1);
    write(NVMC_ICACHECNF, read(NVMC_ICACHECNF) | 1);
}

/// Keeps the debug port of a revision 3 chip open across resets (earlier
/// revisions leave it open unless UICR says otherwise, and have no
/// APPROTECT.DISABLE). An erased UICR word is programmed, which takes
/// effect at the next reset, so the chip resets once; a word that locks
/// the chip can only be cleared by an erase-all, which is the probe's.
fn keep_debug_port_open() {
    let build_code = (read(FICR_INFO_VARIANT) >> 8) as u8;
    if build_code < b'F' {
        return;
    }
    if read(UICR_APPROTECT) == u32::MAX {
        let wait = || while read(NVMC_READY) == 0 {};
        write(NVMC_CONFIG, 1);
        wait();
        write(UICR_APPROTECT, DISABLED);
        wait();
        write(NVMC_CONFIG, 0);
        wait();
        cortex_m::peripheral::SCB::sys_reset();
    }
    write(APPROTECT_DISABLE, DISABLED);
}

/// Keeps the debug port open, powers the chip as its energy figure
/// assumes, starts the crystal and the link, the counter and the marker.
pub fn init() -> (Port, Clock, Marker) {
    keep_debug_port_open();
    power_as_measured();
    let p = pac::Peripherals::take().expect("peripherals taken once");
    // The crystal keeps running after the handle is gone (it has no Drop).
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    (Rtt::init(), Dwt::init(CPU_HZ), Marker::init(CPU_HZ))
}
