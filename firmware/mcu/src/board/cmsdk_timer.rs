//! The CMSDK APB timer 0 of Arm's MPS2 boards (SSE-200 and earlier), at
//! `BENCH_TIMER_BASE`, counting at the APB clock `BENCH_CORE_HZ`.
//!
//! It is read without interrupts: SysTick is only 24 bits, and the
//! exception that counts its wraps adds instructions that depend on the
//! phase, which would break exact counts under QEMU.

use super::config::{parse_dec, parse_hex};
use super::mmio::{read, write};

/// TIMER0 base address.
const TIMER: usize = parse_hex(env!("BENCH_TIMER_BASE"));
/// Core clock in Hz.
const CORE_HZ: u64 = parse_dec(env!("BENCH_CORE_HZ"));

/// CMSDK APB timer 0, free-running down from `u32::MAX` at the APB clock.
pub struct Timer {
    start: u32,
}

const TIMER_CTRL: usize = TIMER;
const TIMER_VALUE: usize = TIMER + 0x4;
const TIMER_RELOAD: usize = TIMER + 0x8;

impl Timer {
    /// Starts the timer free-running from `u32::MAX`, no interrupt.
    pub fn init() -> Self {
        write(TIMER_CTRL, 0);
        write(TIMER_RELOAD, u32::MAX);
        write(TIMER_VALUE, u32::MAX);
        write(TIMER_CTRL, 1); // enabled, no interrupt
        Timer { start: 0 }
    }

    fn value() -> u32 {
        read(TIMER_VALUE)
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
