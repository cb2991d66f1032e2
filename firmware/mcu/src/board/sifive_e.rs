//! SiFive FE310 (HiFive1, QEMU `sifive_e`, RV32IMAC): UART0, and the
//! `minstret` counter for time. Under QEMU with `-icount`, `minstret`
//! counts exactly the instructions the core retired; on the real chip it
//! counts retired instructions as well, so the clock reports instructions.
//!
//! Registers are the FE310-G000 manual's; the base address comes from the
//! target file as `BENCH_UART_BASE`.

use super::config::parse_hex;
use super::mmio::{read, write};

/// UART0 base address.
const UART: usize = parse_hex(env!("BENCH_UART_BASE"));

const TXDATA: usize = UART;
const RXDATA: usize = UART + 0x04;
const TXCTRL: usize = UART + 0x08;
const RXCTRL: usize = UART + 0x0C;
/// TXDATA: the FIFO is full. RXDATA: no byte was received.
const FLAG: u32 = 1 << 31;

/// UART0, polled.
pub struct Uart;

impl Uart {
    /// Enables the transmitter and the receiver.
    pub fn init() -> Self {
        write(TXCTRL, 1);
        write(RXCTRL, 1);
        Uart
    }
}

impl device::Port for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        // Reading RXDATA takes the byte, so the first one is kept from the wait.
        let mut word = read(RXDATA);
        while word & FLAG != 0 {
            word = read(RXDATA);
        }
        let mut n = 0;
        loop {
            buf[n] = word as u8;
            n += 1;
            if n == buf.len() {
                break;
            }
            word = read(RXDATA);
            if word & FLAG != 0 {
                break;
            }
        }
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while read(TXDATA) & FLAG != 0 {}
            write(TXDATA, b as u32);
        }
    }
}

/// Retired instructions, from `minstret`/`minstreth`.
pub struct Timer {
    start: u64,
}

impl Timer {
    /// The counter runs from reset; nothing to set up.
    pub fn init() -> Self {
        Timer { start: 0 }
    }
}

impl device::Clock for Timer {
    const KIND: protocol::Clock = protocol::Clock::Instructions;

    fn ticks_per_second(&self) -> u64 {
        // Instructions are not time; the harness does not convert them.
        0
    }

    fn start(&mut self) {
        self.start = riscv::register::minstret::read64();
    }

    fn elapsed(&mut self) -> u64 {
        riscv::register::minstret::read64() - self.start
    }
}
