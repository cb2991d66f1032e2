//! Requantization of four accumulators by one multiplier in the
//! [`RoundingDown`] form (double rounding, a right shift): seven
//! instructions a value, the multiplier, `2^down` and `down` kept in
//! registers for the four (the compiler's form of [`RoundingDown::apply`]
//! works `2^down` out again and reloads its operands for each value).

#![allow(unsafe_code)]
use crate::quant::RoundingDown;
use core::arch::asm;

/// One value of [`round_down4`]: `P = x * M + 2^30`, `c = 2^down - [P <
/// 0]`, then the high word of `P + c * 2^31` shifted right by `down`.
macro_rules! round_down {
    ($a:literal) => {
        concat!(
            "mov {lo}, #0x40000000\n",
            "mov {hi}, #0\n",
            "smlal {lo}, {hi}, {",
            $a,
            "}, {m}\n",
            "sub {c}, {d}, {hi}, lsr #31\n",
            "adds {lo}, {lo}, {c}, lsl #31\n",
            "adc {hi}, {hi}, {c}, lsr #1\n",
            "asr {",
            $a,
            "}, {hi}, {s}\n",
        )
    };
}

/// [`RoundingDown::apply`] of each of `sums`.
#[inline(always)]
pub(crate) fn round_down4(
    down: &RoundingDown,
    [mut a0, mut a1, mut a2, mut a3]: [i32; 4],
) -> [i32; 4] {
    let (multiplier, shift) = down.parts();
    // SAFETY: register-only arithmetic (the flags are clobbered).
    unsafe {
        asm!(
            round_down!("a0"),
            round_down!("a1"),
            round_down!("a2"),
            round_down!("a3"),
            m = in(reg) multiplier,
            d = in(reg) 1u32 << shift,
            s = in(reg) shift,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            lo = out(reg) _,
            hi = out(reg) _,
            c = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    [a0, a1, a2, a3]
}
