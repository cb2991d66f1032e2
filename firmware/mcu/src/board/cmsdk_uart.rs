//! The CMSDK APB UART of Arm's MPS2 and MPS3 boards (mps2-an385, -an386,
//! -an500, -an505, mps3-an547); its address comes from the target file as
//! `BENCH_UART_BASE`.

use super::config::parse_hex;
use super::mmio::{read, write};

/// UART0 base address.
const UART: usize = parse_hex(env!("BENCH_UART_BASE"));

const DATA: usize = UART;
const STATE: usize = UART + 0x4;
const CTRL: usize = UART + 0x8;
const BAUDDIV: usize = UART + 0x10;
const TX_FULL: u32 = 1;
const RX_FULL: u32 = 2;

/// CMSDK APB UART.
pub struct Uart;

impl Uart {
    /// Enables the transmitter and the receiver.
    pub fn init() -> Self {
        write(BAUDDIV, 16);
        write(CTRL, 0b11); // TX and RX enabled
        Uart
    }

    fn put(&mut self, byte: u8) {
        while read(STATE) & TX_FULL != 0 {}
        write(DATA, byte as u32);
    }
}

impl device::Port for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        while read(STATE) & RX_FULL == 0 {}
        while n < buf.len() && read(STATE) & RX_FULL != 0 {
            buf[n] = read(DATA) as u8;
            n += 1;
        }
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}
