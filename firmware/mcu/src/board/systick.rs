//! SysTick as the cycle counter of Armv6-M boards (Cortex-M0/M0+ have no
//! DWT counter): 24 bits at the core clock, extended by counting its wraps
//! in its exception.
//!
//! A read must not mix a counter that has already reloaded with a wrap
//! count its exception has not raised yet (the exception is pending for a
//! few cycles after every wrap, longer with interrupts masked): that read
//! is 2^24 cycles low, and an `elapsed` across it underflows. So the read
//! also looks at the pending bit. The `check-systick` feature runs
//! [`check_a_pending_wrap`] at boot (under QEMU, `harness/tests/qemu.rs`).

use cortex_m::peripheral::{SCB, SYST};

/// SysTick wraps counted by its exception.
static mut WRAPS: u32 = 0;

#[cortex_m_rt::exception]
fn SysTick() {
    // SAFETY: single core; the only writer, read by `Systick::now` with a retry.
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!(WRAPS),
            core::ptr::read_volatile(core::ptr::addr_of!(WRAPS)) + 1,
        )
    };
}

/// SysTick at the core clock, counting down from 2^24 - 1, extended by its wraps.
/// The exception costs a few dozen cycles every 2^24 cycles (under 3 ppm).
pub struct Systick {
    hz: u64,
    start: u64,
}

const RELOAD: u32 = 0x00FF_FFFF;

fn wraps() -> u32 {
    // SAFETY: a word read of a counter only the exception writes.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(WRAPS)) }
}

impl Systick {
    /// Starts SysTick at the core clock with its wrap exception; `hz` is the core clock.
    pub fn init(hz: u32) -> Self {
        // SAFETY: the firmware is the only user of the core peripherals.
        let mut core = unsafe { cortex_m::Peripherals::steal() };
        core.SYST
            .set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
        core.SYST.set_reload(RELOAD);
        core.SYST.clear_current();
        core.SYST.enable_interrupt();
        core.SYST.enable_counter();
        Systick {
            hz: u64::from(hz),
            start: 0,
        }
    }

    /// Cycles since `init`.
    fn now() -> u64 {
        loop {
            let before = wraps();
            let value = SYST::get_current();
            let pending = SCB::is_pendst_pending();
            // An exception taken between the reads: read again.
            if wraps() != before {
                continue;
            }
            // A wrap whose exception has not run yet: the counter has reloaded,
            // so a value in its upper half belongs to the next period. (A wrap
            // after the counter read leaves a value near 0; a wrap held pending
            // for more than 2^23 cycles would be miscounted, and interrupts are
            // never masked that long.)
            let unseen = pending && value > RELOAD / 2;
            let wraps = u64::from(before) + u64::from(unseen);
            return wraps * u64::from(RELOAD + 1) + u64::from(RELOAD - value);
        }
    }
}

impl device::Clock for Systick {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        self.hz
    }

    fn start(&mut self) {
        self.start = Self::now();
    }

    fn elapsed(&mut self) -> u64 {
        Self::now() - self.start
    }
}

/// Forces the worst moment for a read: with interrupts masked, waits until
/// the counter wraps (its exception now pending, not taken), reads, then
/// lets the exception run and reads again. Panics with both readings if
/// the first is not just before the second, or if SysTick does not count.
#[cfg(feature = "check-systick")]
pub fn check_a_pending_wrap(hz: u32) {
    let _clock = Systick::init(hz);
    let during = cortex_m::interrupt::free(|_| {
        let mut last = SYST::get_current();
        // A wrap is 2^24 cycles away at most; each pass takes more than 4.
        for _ in 0..(1u32 << 23) {
            let value = SYST::get_current();
            if value > last {
                return Some(Systick::now());
            }
            last = value;
        }
        None
    });
    let Some(during) = during else {
        panic!("SysTick check: the counter did not wrap within 2^23 reads");
    };
    let after = Systick::now();
    if after < during || after - during > u64::from(RELOAD / 2) {
        panic!(
            "SysTick check: read {during} with a wrap pending, then {after} once it was counted"
        );
    }
}
