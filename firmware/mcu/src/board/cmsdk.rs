//! Arm MPS2/MPS3 boards (CMSDK APB UART0 and APB timer): mps2-an385 (M3),
//! mps2-an386 (M4), mps2-an500 (M7), mps2-an505 (M33), mps3-an547 (M55).
//! The addresses and the clock are the board's; the target file gives them
//! as `BENCH_UART_BASE`, `BENCH_TIMER_BASE` and `BENCH_CORE_HZ` at build time.
//!
//! The clock is the 32-bit APB timer, read without interrupts: SysTick is
//! only 24 bits, and the exception that counts its wraps adds instructions
//! that depend on the phase, which would break exact counts under QEMU.

use super::config::{parse_dec, parse_hex};

/// UART0 base address.
const UART: usize = parse_hex(env!("BENCH_UART_BASE"));
/// TIMER0 base address.
const TIMER: usize = parse_hex(env!("BENCH_TIMER_BASE"));
/// Core clock in Hz.
const CORE_HZ: u64 = parse_dec(env!("BENCH_CORE_HZ"));

const DATA: usize = UART;
const STATE: usize = UART + 0x4;
const CTRL: usize = UART + 0x8;
const BAUDDIV: usize = UART + 0x10;
const TX_FULL: u32 = 1;
const RX_FULL: u32 = 2;

/// CMSDK APB UART.
pub struct Uart;

impl Uart {
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

/// CMSDK APB timer 0, free-running down from `u32::MAX` at the APB clock.
pub struct Timer {
    start: u32,
}

const TIMER_CTRL: usize = TIMER;
const TIMER_VALUE: usize = TIMER + 0x4;
const TIMER_RELOAD: usize = TIMER + 0x8;

impl Timer {
    pub fn init() -> Self {
        // SAFETY: the timer's registers, at the board's documented address.
        unsafe {
            core::ptr::write_volatile(TIMER_CTRL as *mut u32, 0);
            core::ptr::write_volatile(TIMER_RELOAD as *mut u32, u32::MAX);
            core::ptr::write_volatile(TIMER_VALUE as *mut u32, u32::MAX);
            core::ptr::write_volatile(TIMER_CTRL as *mut u32, 1); // enabled, no interrupt
        }
        Timer { start: 0 }
    }

    fn value() -> u32 {
        // SAFETY: as in `init`.
        unsafe { core::ptr::read_volatile(TIMER_VALUE as *const u32) }
    }
}

impl device::Clock for Timer {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        CORE_HZ
    }

    fn start(&mut self) {
        self.start = Self::value();
    }

    fn elapsed(&mut self) -> u64 {
        // Counting down; one wrap (2^32 ticks, minutes of board time) at most.
        self.start.wrapping_sub(Self::value()) as u64
    }
}
