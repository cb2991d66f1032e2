//! Nordic nRF51 (BBC micro:bit, QEMU `microbit`, Cortex-M0 at 16 MHz):
//! UART0 and TIMER0 in 32-bit timer mode at the 16 MHz high-frequency
//! clock, read by the CAPTURE task. SysTick would do on a real core but is
//! 24 bits wide, so it wraps every second of board time.
//!
//! Registers are the nRF51 Reference Manual's; the base addresses and the
//! clock come from the target file as `BENCH_UART_BASE`, `BENCH_TIMER_BASE`
//! and `BENCH_CORE_HZ`.

use super::config::{parse_dec, parse_hex};
use super::mmio::{read, write};

/// UART0 base address.
const UART: usize = parse_hex(env!("BENCH_UART_BASE"));
/// TIMER0 base address.
const TIMER: usize = parse_hex(env!("BENCH_TIMER_BASE"));
/// TIMER0 clock in Hz (prescaler 0: the 16 MHz clock).
const TIMER_HZ: u64 = parse_dec(env!("BENCH_CORE_HZ"));

/// A task is triggered and an event cleared by writing these.
const TRIGGER: u32 = 1;
const CLEAR: u32 = 0;

/// UART0 registers.
mod uart {
    pub const STARTRX: usize = super::UART;
    pub const STARTTX: usize = super::UART + 0x008;
    pub const EVENTS_RXDRDY: usize = super::UART + 0x108;
    pub const EVENTS_TXDRDY: usize = super::UART + 0x11C;
    pub const ENABLE: usize = super::UART + 0x500;
    pub const RXD: usize = super::UART + 0x518;
    pub const TXD: usize = super::UART + 0x51C;
    pub const BAUDRATE: usize = super::UART + 0x524;
    /// ENABLE value that turns the UART on.
    pub const ENABLED: u32 = 4;
    /// BAUDRATE value for 115 200 baud.
    pub const BAUD_115200: u32 = 0x01D7_E000;
}

/// TIMER0 registers.
mod timer {
    pub const START: usize = super::TIMER;
    pub const CLEAR: usize = super::TIMER + 0x00C;
    pub const CAPTURE0: usize = super::TIMER + 0x040;
    pub const MODE: usize = super::TIMER + 0x504;
    pub const BITMODE: usize = super::TIMER + 0x508;
    pub const PRESCALER: usize = super::TIMER + 0x510;
    pub const CC0: usize = super::TIMER + 0x540;
    /// BITMODE value for a 32-bit counter.
    pub const BITS_32: u32 = 3;
}

/// UART0, polled.
pub struct Uart;

impl Uart {
    /// Enables the UART at 115 200 baud and starts both directions.
    pub fn init() -> Self {
        write(uart::BAUDRATE, uart::BAUD_115200);
        write(uart::ENABLE, uart::ENABLED);
        write(uart::STARTTX, TRIGGER);
        write(uart::STARTRX, TRIGGER);
        Uart
    }
}

impl device::Port for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        while read(uart::EVENTS_RXDRDY) == 0 {}
        let mut n = 0;
        while n < buf.len() && read(uart::EVENTS_RXDRDY) != 0 {
            // Clear the event before reading: the read raises it again while
            // more bytes wait.
            write(uart::EVENTS_RXDRDY, CLEAR);
            buf[n] = read(uart::RXD) as u8;
            n += 1;
        }
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            write(uart::TXD, b as u32);
            while read(uart::EVENTS_TXDRDY) == 0 {}
            write(uart::EVENTS_TXDRDY, CLEAR);
        }
    }
}

/// TIMER0, free-running up in 32-bit timer mode.
pub struct Timer {
    start: u32,
}

impl Timer {
    /// Starts TIMER0 from zero at the undivided clock.
    pub fn init() -> Self {
        write(timer::MODE, 0); // timer, not counter
        write(timer::BITMODE, timer::BITS_32);
        write(timer::PRESCALER, 0);
        write(timer::CLEAR, TRIGGER);
        write(timer::START, TRIGGER);
        Timer { start: 0 }
    }

    fn value() -> u32 {
        write(timer::CAPTURE0, TRIGGER);
        read(timer::CC0)
    }
}

impl device::Clock for Timer {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        TIMER_HZ
    }

    fn start(&mut self) {
        self.start = Self::value();
    }

    fn elapsed(&mut self) -> u64 {
        // Counting up; one wrap (2^32 ticks, 268 s of board time) at most.
        Self::value().wrapping_sub(self.start) as u64
    }
}
