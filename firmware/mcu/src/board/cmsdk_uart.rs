//! The CMSDK APB UART of Arm's MPS2 and MPS3 boards (mps2-an385, -an386,
//! -an500, -an505, mps3-an547); its address comes from the target file as
//! `BENCH_UART_BASE`.

use super::config::parse_hex;

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
        // SAFETY: the UART's registers, at the board's documented address.
        unsafe {
            core::ptr::write_volatile(BAUDDIV as *mut u32, 16);
            core::ptr::write_volatile(CTRL as *mut u32, 0b11); // TX and RX enabled
        }
        Uart
    }

    fn put(&mut self, byte: u8) {
        // SAFETY: as in `init`.
        unsafe {
            while core::ptr::read_volatile(STATE as *const u32) & TX_FULL != 0 {}
            core::ptr::write_volatile(DATA as *mut u32, byte as u32);
        }
    }
}

impl device::Port for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        // SAFETY: as in `init`.
        unsafe {
            while core::ptr::read_volatile(STATE as *const u32) & RX_FULL == 0 {}
            while n < buf.len() && core::ptr::read_volatile(STATE as *const u32) & RX_FULL != 0 {
                buf[n] = core::ptr::read_volatile(DATA as *const u32) as u8;
                n += 1;
            }
        }
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}
