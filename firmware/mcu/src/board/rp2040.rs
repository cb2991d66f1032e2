//! Raspberry Pi RP2040 (Pico, dual Cortex-M0+; the firmware uses core 0):
//! 125 MHz from the 12 MHz crystal through the system PLL, set up by
//! `rp2040-hal`, which reports the clock it configured. The boot stage 2
//! for the Pico's W25Q080 flash sits in the first 256 bytes (the BOOT2
//! region of the target file). Cycles come from SysTick (no DWT counter
//! on the M0+).

use super::marker::{Line, Sio};
use super::rtt::Rtt;
use super::systick::Systick;
use rp2040_hal::{clocks::init_clocks_and_plls, pac, Clock as _, Watchdog};

/// Boot stage 2: copied to SRAM by the boot ROM, sets up the flash's XIP.
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The link.
pub type Port = Rtt;
/// SysTick, extended.
pub type Clock = Systick;
/// Single-cycle IO.
pub type Marker = Line<Sio>;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

/// Sets the clocks up, hands the marker pin to SIO, and starts the link, the counter and the marker.
pub fn init() -> (Port, Clock, Marker) {
    let mut p = pac::Peripherals::take().expect("peripherals taken once");
    let mut watchdog = Watchdog::new(p.WATCHDOG);
    let clocks = init_clocks_and_plls(
        XOSC_HZ,
        p.XOSC,
        p.CLOCKS,
        p.PLL_SYS,
        p.PLL_USB,
        &mut p.RESETS,
        &mut watchdog,
    )
    .unwrap_or_else(|_| panic!("the crystal or a PLL did not start"));
    let hz = clocks.system_clock.freq().to_Hz();
    // GPIO pins to SIO (function 5), out of reset.
    let sio = rp2040_hal::Sio::new(p.SIO);
    // Taking the pins brings IO_BANK0 and PADS_BANK0 out of reset.
    let _pins =
        rp2040_hal::gpio::Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
    if let Some(pin) = option_env!("BENCH_MARKER_PIN") {
        let pin = super::config::parse_dec(pin) as usize;
        // IO_BANK0 GPIOn_CTRL (0x4001_4004 + 8n): FUNCSEL 5 = SIO.
        super::mmio::write(0x4001_4004 + 8 * pin, 5);
    }
    (Rtt::init(), Systick::init(hz), Marker::init(hz))
}
