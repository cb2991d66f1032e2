//! The system counter of Arm's SSE-300 subsystem (MPS3 AN547, Cortex-M55):
//! a 64-bit up-counter at the main clock, enabled through its control
//! frame at `BENCH_TIMER_BASE` and read there too. The SSE-300 has no
//! CMSDK APB timer; its system timers are driven by this counter.

use super::config::{parse_dec, parse_hex};
use super::mmio::{read, write};

/// Control frame of the system counter (Secure).
const COUNTER: usize = parse_hex(env!("BENCH_TIMER_BASE"));
/// Counter frequency in Hz (the main clock).
const COUNTER_HZ: u64 = parse_dec(env!("BENCH_CORE_HZ"));

const CNTCR: usize = COUNTER;
const CNTCV_LO: usize = COUNTER + 0x8;
const CNTCV_HI: usize = COUNTER + 0xC;
/// CNTCR.EN.
const ENABLE: u32 = 1;

/// The system counter, as a clock.
pub struct Timer {
    start: u64,
}

impl Timer {
    /// Enables the counter (it keeps its count across enables).
    pub fn init() -> Self {
        write(CNTCR, ENABLE);
        Timer { start: 0 }
    }

    fn value() -> u64 {
        // The high half is read around the low one, so a carry between the
        // two reads is seen and the pair read again.
        loop {
            let hi = read(CNTCV_HI);
            let lo = read(CNTCV_LO);
            if read(CNTCV_HI) == hi {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }
}

impl device::Clock for Timer {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        COUNTER_HZ
    }

    fn start(&mut self) {
        self.start = Self::value();
    }

    fn elapsed(&mut self) -> u64 {
        Self::value() - self.start
    }
}
