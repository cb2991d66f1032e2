//! The int8 dot products under convolution and dense layers:
//! `sum(w * (x + offset))`, for one filter or four sharing the input; and
//! the lane-wise multiply-accumulate under depthwise convolution.
//! [`portable`] is plain Rust for every target and the oracle;
//! [`dsp`] uses the Armv7E-M DSP instructions (two 16-bit
//! multiply-accumulates per SMLAD), chosen at build time on cores that
//! have them. Both must give the same sums for every input (property
//! tests on the host, the imported models bit-exact on qemu-m4).

/// Portable dot products.
pub mod portable {
    /// `sum(w * (x + offset))` over two equally long slices.
    #[inline(always)]
    pub fn dot(x: &[i8], w: &[i8], offset: i32) -> i32 {
        x.iter().zip(w).fold(0i32, |acc, (&x, &w)| acc.wrapping_add((x as i32 + offset) * w as i32))
    }

    /// [`dot`] of one input with four filters, each `x.len()` long.
    #[inline(always)]
    pub fn dot4(x: &[i8], w: [&[i8]; 4], offset: i32) -> [i32; 4] {
        w.map(|w| dot(x, w, offset))
    }

    /// `acc[i] += w[i] * (x[i] + offset)` for every lane (three equally long slices).
    #[inline(always)]
    pub fn mac_lanes(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32) {
        for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
            *a = a.wrapping_add((x as i32 + offset) * w as i32);
        }
    }
}

/// Armv7E-M dot products: four int8 lanes per word become two pairs of
/// 16-bit lanes (SXTB16, with and without a byte rotation), the input
/// offset is added to both lanes at once (SADD16; x + offset stays inside
/// -255..=255), and SMLAD multiplies and adds both pairs into the 32-bit
/// accumulator. The lanes pair up the same way for input and weights, so
/// the sum is the same as the portable one; it wraps the same way too.
///
/// The instructions are inline assembly (the DSP intrinsics of
/// `core::arch::arm` are not stable): the one place this crate allows
/// `unsafe`, for register-only arithmetic.
#[cfg(arm_dsp)]
#[allow(unsafe_code)]
pub mod dsp {
    use core::arch::asm;

    /// Four bytes as one little-endian word (one unaligned LDR on Armv7-M).
    #[inline(always)]
    fn word(bytes: &[i8]) -> u32 {
        u32::from_le_bytes([bytes[0] as u8, bytes[1] as u8, bytes[2] as u8, bytes[3] as u8])
    }

    /// Bytes 0 and 2 of `w`, sign-extended into two 16-bit lanes.
    #[inline(always)]
    fn even(w: u32) -> u32 {
        let r: u32;
        // SAFETY: register-only arithmetic.
        unsafe { asm!("sxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags)) };
        r
    }

    /// Bytes 1 and 3 of `w`, sign-extended into two 16-bit lanes.
    #[inline(always)]
    fn odd(w: u32) -> u32 {
        let r: u32;
        // SAFETY: register-only arithmetic.
        unsafe { asm!("sxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags)) };
        r
    }

    /// Lane-wise 16-bit addition.
    #[inline(always)]
    fn add16(a: u32, b: u32) -> u32 {
        let r: u32;
        // SAFETY: register-only arithmetic; SADD16 sets only the GE flags.
        unsafe { asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack)) };
        r
    }

    /// `acc + a.lo * b.lo + a.hi * b.hi` (16-bit lanes).
    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register-only arithmetic; SMLAD sets only the Q flag.
        unsafe { asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack)) };
        r
    }

    /// `acc + a.lo * b.lo` (16-bit lanes).
    #[inline(always)]
    fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register-only arithmetic; SMLABB sets only the Q flag.
        unsafe { asm!("smlabb {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack)) };
        r
    }

    /// `acc + a.hi * b.hi` (16-bit lanes).
    #[inline(always)]
    fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register-only arithmetic; SMLATT sets only the Q flag.
        unsafe { asm!("smlatt {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack)) };
        r
    }

    /// The offset in both 16-bit lanes.
    #[inline(always)]
    fn pair(offset: i32) -> u32 {
        let o = offset as u16 as u32;
        o << 16 | o
    }

    /// `sum(w * (x + offset))` over two equally long slices.
    #[inline(always)]
    pub fn dot(x: &[i8], w: &[i8], offset: i32) -> i32 {
        let (n, off) = (x.len() & !3, pair(offset));
        let mut acc = 0i32;
        for (xa, wa) in x[..n].chunks_exact(4).zip(w[..n].chunks_exact(4)) {
            let (xw, ww) = (word(xa), word(wa));
            acc = smlad(add16(odd(xw), off), odd(ww), smlad(add16(even(xw), off), even(ww), acc));
        }
        acc.wrapping_add(super::portable::dot(&x[n..], &w[n..], offset))
    }

    /// [`dot`] of one input with four filters, each `x.len()` long: the
    /// input is widened once for all four.
    #[inline(always)]
    pub fn dot4(x: &[i8], w: [&[i8]; 4], offset: i32) -> [i32; 4] {
        let (n, off) = (x.len() & !3, pair(offset));
        let [mut a0, mut a1, mut a2, mut a3] = [0i32; 4];
        let [w0, w1, w2, w3] = w.map(|w| w[..n].chunks_exact(4));
        for ((((xa, b0), b1), b2), b3) in x[..n].chunks_exact(4).zip(w0).zip(w1).zip(w2).zip(w3) {
            let xw = word(xa);
            let (xe, xo) = (add16(even(xw), off), add16(odd(xw), off));
            let (b0, b1, b2, b3) = (word(b0), word(b1), word(b2), word(b3));
            a0 = smlad(xo, odd(b0), smlad(xe, even(b0), a0));
            a1 = smlad(xo, odd(b1), smlad(xe, even(b1), a1));
            a2 = smlad(xo, odd(b2), smlad(xe, even(b2), a2));
            a3 = smlad(xo, odd(b3), smlad(xe, even(b3), a3));
        }
        let tail = super::portable::dot4(&x[n..], w.map(|w| &w[n..]), offset);
        [a0.wrapping_add(tail[0]), a1.wrapping_add(tail[1]), a2.wrapping_add(tail[2]), a3.wrapping_add(tail[3])]
    }

    /// Widens `x` once for many [`dot2_widened`]: per four input values two
    /// words of 16-bit lanes, `(x0, x2)` and `(x1, x3)` with the offset
    /// added, the lane order SXTB16 gives the weights. `out` holds
    /// `x.len() / 4 * 2` words; the last `x.len() % 4` values are not widened.
    #[inline(always)]
    pub fn widen(x: &[i8], offset: i32, out: &mut [u32]) {
        let off = pair(offset);
        for (o, xa) in out.chunks_exact_mut(2).zip(x.chunks_exact(4)) {
            let xw = word(xa);
            o[0] = add16(even(xw), off);
            o[1] = add16(odd(xw), off);
        }
    }

    /// The dot products of a widened input with two filters (each at least
    /// `2 * xw.len()` long; the rest of a filter is not read). Two filters,
    /// not four: with the pointers, counters and accumulators of four the
    /// loop runs out of registers.
    #[inline(always)]
    pub fn dot2_widened(xw: &[u32], w0: &[i8], w1: &[i8]) -> [i32; 2] {
        #[inline(always)]
        fn step(xe: u32, xo: u32, b0: &[i8], b1: &[i8], a: [i32; 2]) -> [i32; 2] {
            let (b0, b1) = (word(b0), word(b1));
            [smlad(xo, odd(b0), smlad(xe, even(b0), a[0])), smlad(xo, odd(b1), smlad(xe, even(b1), a[1]))]
        }
        // Eight input values per iteration (the loop's own instructions
        // are then a fifth of the work), then at most four more.
        let (n8, n) = (xw.len() / 4 * 8, xw.len() * 2);
        let mut a = [0i32; 2];
        for ((xs, b0), b1) in xw.chunks_exact(4).zip(w0[..n8].chunks_exact(8)).zip(w1[..n8].chunks_exact(8)) {
            a = step(xs[0], xs[1], &b0[..4], &b1[..4], a);
            a = step(xs[2], xs[3], &b0[4..], &b1[4..], a);
        }
        if n > n8 {
            let xs = &xw[n8 / 2..];
            a = step(xs[0], xs[1], &w0[n8..n], &w1[n8..n], a);
        }
        a
    }

    /// `acc[i] += w[i] * (x[i] + offset)` for every lane: four lanes per
    /// word, each lane its own 16 x 16 multiply (SMLABB, SMLATT).
    #[inline(always)]
    pub fn mac_lanes(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32) {
        let (n, off) = (x.len() & !3, pair(offset));
        for ((a, xa), wa) in acc[..n].chunks_exact_mut(4).zip(x[..n].chunks_exact(4)).zip(w[..n].chunks_exact(4)) {
            let (xw, ww) = (word(xa), word(wa));
            let (xe, xo, we, wo) = (add16(even(xw), off), add16(odd(xw), off), even(ww), odd(ww));
            a[0] = smlabb(xe, we, a[0]);
            a[1] = smlabb(xo, wo, a[1]);
            a[2] = smlatt(xe, we, a[2]);
            a[3] = smlatt(xo, wo, a[3]);
        }
        super::portable::mac_lanes(&mut acc[n..], &x[n..], &w[n..], offset);
    }
}

#[cfg(arm_dsp)]
pub use dsp::{dot, dot4, mac_lanes};
#[cfg(not(arm_dsp))]
pub use portable::{dot, dot4, mac_lanes};
