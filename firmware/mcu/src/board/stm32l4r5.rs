//! ST STM32L4R5 (NUCLEO-L4R5ZI, the MLPerf Tiny reference board;
//! Cortex-M4F): 120 MHz from HSI16 through the PLL in the regulator's
//! range 1 boost mode, set up with the `stm32l4` PAC (the `stm32l4xx-hal`
//! stops at the 80 MHz of the non-plus L4 parts). The sequence is RM0432's
//! (section 5.1.8 and 6.2): boost mode, 5 flash wait states, the PLL, then
//! the switch with the AHB clock halved for 1 us. The reported clock is
//! read back from the registers, not assumed.

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
    let (rcc, pwr, flash) = (&p.RCC, &p.PWR, &p.FLASH);
    rcc.apb1enr1().modify(|_, w| w.pwren().set_bit());
    pwr.cr5().modify(|_, w| w.r1mode().boost_mode());
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
    // SAFETY: HPRE 8 = SYSCLK / 2; SW 3 = PLL.
    rcc.cfgr()
        .modify(|_, w| unsafe { w.hpre().bits(8).sw().bits(3) });
    while rcc.cfgr().read().sws().bits() != 3 {}
    cortex_m::asm::delay(120); // at least 1 us at 60 MHz
                               // SAFETY: HPRE 0 = SYSCLK / 1.
    rcc.cfgr().modify(|_, w| unsafe { w.hpre().bits(0) });
    configured_hz(rcc)
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
