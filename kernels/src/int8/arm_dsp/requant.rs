//! Requantization of four accumulators by one multiplier in the
//! [`RoundingDown`] form (double rounding, a right shift): six
//! instructions a value, the multiplier, `2^(down+1) + 1` and `down` kept
//! in registers for the four (the compiler's form of
//! [`RoundingDown::apply`] works its constants out again and reloads its
//! operands for each value).

#![allow(unsafe_code)]
use crate::quant::RoundingDown;
use core::arch::asm;

/// One value of [`round_down4`]. [`RoundingDown::apply`] takes the high
/// word of `P + c * 2^31`, `P = x * M + 2^30` and `c = 2^down - [P < 0]`,
/// shifted right by `down`. Here `Q = x * M` (SMULL) and `c` from `[Q <
/// 0]`: the two signs differ only for `Q` in `[-2^30, 0)`, where `P` is
/// in `[0, 2^30)` and either `c` gives 0. Then `P + c * 2^31 = Q + u *
/// 2^30` with `u = 2^(down+1) + 1 - 2 [Q < 0]`, added as a 64-bit sum
/// (ADDS/ADC of `u`'s low two bits and the rest), one instruction a value
/// fewer than seeding `P` with two moves before SMLAL.
macro_rules! round_down {
    ($a:literal) => {
        round_down!($a, "lo", "hi", "c", "m", "d", "s")
    };
    // The same with the temporaries, the multiplier, `2^(down+1) + 1`
    // and `down` in the named registers given.
    ($a:literal, $lo:literal, $hi:literal, $c:literal, $m:literal, $d:literal, $s:literal) => {
        concat!(
            "smull {",
            $lo,
            "}, {",
            $hi,
            "}, {",
            $a,
            "}, {",
            $m,
            "}\n",
            "sub {",
            $c,
            "}, {",
            $d,
            "}, {",
            $hi,
            "}, lsr #31\n",
            "sub {",
            $c,
            "}, {",
            $c,
            "}, {",
            $hi,
            "}, lsr #31\n",
            "adds {",
            $lo,
            "}, {",
            $lo,
            "}, {",
            $c,
            "}, lsl #30\n",
            "adc {",
            $hi,
            "}, {",
            $hi,
            "}, {",
            $c,
            "}, lsr #2\n",
            "asr {",
            $a,
            "}, {",
            $hi,
            "}, {",
            $s,
            "}\n",
        )
    };
}
pub(crate) use round_down;

/// The constant [`round_down`] keeps for a multiplier of `down`.
#[inline(always)]
pub(crate) const fn rounding_constant(down: u32) -> u32 {
    (2u32 << down) + 1
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
            d = in(reg) rounding_constant(shift),
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
