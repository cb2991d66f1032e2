//! ST STM32L4R5 (NUCLEO-L4R5ZI, the MLPerf Tiny reference board;
//! Cortex-M4F): 120 MHz from HSI16 through the PLL in the regulator's
//! range 1 boost mode, set up with the `stm32l4` PAC (the `stm32l4xx-hal`
//! stops at the 80 MHz of the non-plus L4 parts). The sequence is RM0432's
//! (section 5.1.8 and 6.2) in the order of ST's HAL: boost mode, checked;
//! 5 flash wait states; the PLL; the AHB clock halved, then the switch,
//! then the AHB clock restored 1 us later. The reported clock is read back
//! from the registers, not assumed.

use super::dwt::Dwt;
use super::marker::{Line, Stm32};
use super::rtt::Rtt;
use stm32l4::stm32l4r5 as pac;

/// The link.
pub type Port = Rtt;
/// The core cycle counter.
pub type Clock = Dwt;
/// GPIO ports from 0x4800_0000, clocks in RCC_AHB2ENR.
pub type Marker = Line<Stm32<0x4002_104C, 0x4800_0000>>;

/// HSI16.
const HSI_HZ: u32 = 16_000_000;

/// Sets the clock tree up and starts the link, the counter and the marker.
pub fn init() -> (Port, Clock, Marker) {
    let p = pac::Peripherals::take().expect("peripherals taken once");
    let hz = clock_120_mhz(&p);
    (Rtt::init(), Dwt::init(hz), Marker::init(hz))
}

fn clock_120_mhz(p: &pac::Peripherals) -> u32 {
    let (rcc, flash) = (&p.RCC, &p.FLASH);
    range_1_boost(rcc, &p.PWR);
    flash.acr().modify(|_, w| {
        w.latency()
            .ws5()
            .prften()
            .set_bit()
            .icen()
            .set_bit()
            .dcen()
            .set_bit()
    });
    while flash.acr().read().latency().bits() != 5 {}
    rcc.cr().modify(|_, w| w.hsion().set_bit());
    while rcc.cr().read().hsirdy().bit_is_clear() {}
    // HSI16 / 2 = 8 MHz into the PLL, x 30 = 240 MHz VCO, / 2 = 120 MHz.
    // SAFETY: the field values are RM0432's encodings (PLLSRC 2 = HSI16,
    // PLLM 1 = /2, PLLN 30, PLLR 0 = /2).
    rcc.pllcfgr().write(|w| {
        unsafe {
            w.pllsrc()
                .bits(2)
                .pllm()
                .bits(1)
                .plln()
                .bits(30)
                .pllr()
                .bits(0)
        }
        .pllren()
        .set_bit()
    });
    rcc.cr().modify(|_, w| w.pllon().set_bit());
    while rcc.cr().read().pllrdy().bit_is_clear() {}
    // Above 80 MHz the AHB clock is halved before the switch, in its own
    // write, and restored at least 1 us after it (RM0432 5.1.8; ST's
    // HAL_RCC_ClockConfig does the same).
    // SAFETY: HPRE 8 = SYSCLK / 2.
    rcc.cfgr().modify(|_, w| unsafe { w.hpre().bits(8) });
    // SAFETY: SW 3 = PLL.
    rcc.cfgr().modify(|_, w| unsafe { w.sw().bits(3) });
    while rcc.cfgr().read().sws().bits() != 3 {}
    // At least 1 us at 60 MHz.
    cortex_m::asm::delay(120);
    // SAFETY: HPRE 0 = SYSCLK / 1.
    rcc.cfgr().modify(|_, w| unsafe { w.hpre().bits(0) });
    configured_hz(rcc)
}

/// The regulator's range 1 boost mode, which 120 MHz needs (range 1 normal
/// mode stops at 80 MHz): the PWR clock on and read back before PWR is
/// written (as `__HAL_RCC_PWR_CLK_ENABLE` does), range 1, R1MODE cleared,
/// and both checked. A lost write would run the core out of its range, so
/// it stops the firmware with the reason instead.
fn range_1_boost(rcc: &pac::RCC, pwr: &pac::PWR) {
    rcc.apb1enr1().modify(|_, w| w.pwren().set_bit());
    // The enable takes effect a few cycles later: read it back, and order
    // the PWR writes after it.
    let enabled = rcc.apb1enr1().read().pwren().bit_is_set();
    cortex_m::asm::dsb();
    pwr.cr1().modify(|_, w| w.vos().range1());
    while pwr.sr2().read().vosf().bit_is_set() {}
    pwr.cr5().modify(|_, w| w.r1mode().boost_mode());
    cortex_m::asm::dsb();
    let (range1, boost) = (
        pwr.cr1().read().vos().is_range1(),
        pwr.cr5().read().r1mode().is_boost_mode(),
    );
    if !(enabled && range1 && boost) {
        panic!(
            "the regulator is not in range 1 boost mode (PWREN {enabled}, range 1 {range1}, boost {boost}): 120 MHz needs it"
        );
    }
}

/// The core clock the RCC registers describe (PLL from HSI16 only, as set up above).
fn configured_hz(rcc: &pac::RCC) -> u32 {
    let cfgr = rcc.cfgr().read();
    let sysclk = match cfgr.sws().bits() {
        3 => {
            let pll = rcc.pllcfgr().read();
            let vco = HSI_HZ / (u32::from(pll.pllm().bits()) + 1) * u32::from(pll.plln().bits());
            vco / ((u32::from(pll.pllr().bits()) + 1) * 2)
        }
        1 => HSI_HZ,
        _ => 4_000_000, // MSI at its reset range
    };
    let hpre = cfgr.hpre().bits();
    if hpre < 8 {
        sysclk
    } else {
        // 8..=11: /2../16, 12..=15: /64../512.
        let shift = u32::from(hpre - 7) + u32::from(hpre >= 12);
        sysclk >> shift
    }
}
