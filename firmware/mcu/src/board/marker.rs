//! The marker line for energy meters: a GPIO output the firmware drives
//! around the timed inferences. Which pin is board data from the target
//! file (`BENCH_MARKER_PORT`, `BENCH_MARKER_PIN`: a GPIO port's base
//! address and a pin number, e.g. Arduino D7); `BENCH_MARKER_MODE` says how
//! the meter reads it:
//!
//! * `level` (PPK2): high during each timed inference, low between them,
//!   so the meter integrates exactly the inferences;
//! * `pulse` (LPM01A, as MLPerf Tiny's EnergyRunner): idle high, a short low
//!   pulse before the first timed inference and after the last, whose two
//!   falling edges bound the window.
//!
//! Without `BENCH_MARKER_PORT` the firmware drives no pin.

use super::config::{parse_dec, parse_hex};

/// How a family's GPIO sets and clears an output.
pub trait Gpio {
    /// Makes `pin` of the port at `port` an output (clocks, mode).
    fn output(port: usize, pin: u32);
    /// Drives it high.
    fn high(port: usize, pin: u32);
    /// Drives it low.
    fn low(port: usize, pin: u32);
}

/// The port's base address, if the target file names a marker pin.
const PORT: Option<usize> = match option_env!("BENCH_MARKER_PORT") {
    Some(s) => Some(parse_hex(s)),
    None => None,
};
/// The pin within the port.
const PIN: u32 = match option_env!("BENCH_MARKER_PIN") {
    Some(s) => parse_dec(s) as u32,
    None => 0,
};
/// Pulses instead of a level.
const PULSE: bool = matches!(option_env!("BENCH_MARKER_MODE"), Some(m) if m.as_bytes()[0] == b'p');

/// The marker line on a board of GPIO family `G`.
pub struct Line<G: Gpio> {
    pulse_cycles: u32,
    family: core::marker::PhantomData<G>,
}

impl<G: Gpio> Line<G> {
    /// Sets the pin up, idle (low for a level, high for pulses); `core_hz`
    /// sizes the pulse (about 10 us).
    pub fn init(core_hz: u32) -> Self {
        if let Some(port) = PORT {
            G::output(port, PIN);
            if PULSE {
                G::high(port, PIN)
            } else {
                G::low(port, PIN)
            }
        }
        Line {
            pulse_cycles: core_hz / 100_000,
            family: core::marker::PhantomData,
        }
    }

    fn pulse(&self, port: usize) {
        G::low(port, PIN);
        cortex_m::asm::delay(self.pulse_cycles);
        G::high(port, PIN);
    }
}

impl<G: Gpio> device::Marker for Line<G> {
    fn begin(&mut self, first: bool) {
        match PORT {
            Some(port) if PULSE && first => self.pulse(port),
            Some(port) if !PULSE => G::high(port, PIN),
            _ => {}
        }
    }

    fn end(&mut self, last: bool) {
        match PORT {
            Some(port) if PULSE && last => self.pulse(port),
            Some(port) if !PULSE => G::low(port, PIN),
            _ => {}
        }
    }
}

/// STM32 GPIO (F4, L4, H7: the same registers); the port's clock is
/// enabled in the RCC register at `RCC_ENR`, where port A is bit 0.
#[cfg(any(
    feature = "board-stm32l4r5",
    feature = "board-stm32f446",
    feature = "board-stm32h743"
))]
pub struct Stm32<const RCC_ENR: usize, const FIRST_PORT: usize>;

#[cfg(any(
    feature = "board-stm32l4r5",
    feature = "board-stm32f446",
    feature = "board-stm32h743"
))]
impl<const RCC_ENR: usize, const FIRST_PORT: usize> Gpio for Stm32<RCC_ENR, FIRST_PORT> {
    fn output(port: usize, pin: u32) {
        use super::mmio::{read, write};
        // Ports are 0x400 apart from port A.
        let index = (port - FIRST_PORT) / 0x400;
        write(RCC_ENR, read(RCC_ENR) | 1 << index);
        let _ = read(RCC_ENR); // the clock takes a cycle to start
        let moder = read(port) & !(0b11 << (2 * pin));
        write(port, moder | 0b01 << (2 * pin));
    }

    fn high(port: usize, pin: u32) {
        super::mmio::write(port + 0x18, 1 << pin); // BSRR set
    }

    fn low(port: usize, pin: u32) {
        super::mmio::write(port + 0x18, 1 << (pin + 16)); // BSRR reset
    }
}

/// Nordic nRF52 GPIO (P0 at 0x5000_0000, P1 at 0x5000_0300).
#[cfg(feature = "board-nrf52840")]
pub struct Nrf;

#[cfg(feature = "board-nrf52840")]
impl Gpio for Nrf {
    fn output(port: usize, pin: u32) {
        super::mmio::write(port + 0x518, 1 << pin); // DIRSET
    }

    fn high(port: usize, pin: u32) {
        super::mmio::write(port + 0x508, 1 << pin); // OUTSET
    }

    fn low(port: usize, pin: u32) {
        super::mmio::write(port + 0x50C, 1 << pin); // OUTCLR
    }
}

/// RP2040 single-cycle IO (SIO at 0xd000_0000); the pin's function must
/// be SIO already (the chip module selects it).
#[cfg(feature = "board-rp2040")]
pub struct Sio;

#[cfg(feature = "board-rp2040")]
impl Gpio for Sio {
    fn output(port: usize, pin: u32) {
        super::mmio::write(port + 0x24, 1 << pin); // GPIO_OE_SET
    }

    fn high(port: usize, pin: u32) {
        super::mmio::write(port + 0x14, 1 << pin); // GPIO_OUT_SET
    }

    fn low(port: usize, pin: u32) {
        super::mmio::write(port + 0x18, 1 << pin); // GPIO_OUT_CLR
    }
}
