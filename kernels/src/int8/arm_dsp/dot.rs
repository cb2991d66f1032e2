//! Armv7E-M dot products: four int8 lanes per word become two pairs of
//! 16-bit lanes (SXTB16, with and without a byte rotation), the input
//! offset is added to both lanes at once (SADD16; x + offset stays inside
//! -255..=255), and SMLAD multiplies and adds both pairs into the 32-bit
//! accumulator. The lanes pair up the same way for input and weights, so
//! the sum is the same as the portable one; it wraps the same way too.
//!
//! The instructions are inline assembly (the DSP intrinsics of
//! `core::arch::arm` are not stable), hence `unsafe` here: register-only
//! arithmetic, no memory access.

#![allow(unsafe_code)]
use core::arch::asm;

/// Four bytes as one little-endian word (one unaligned LDR on Armv7-M).
#[inline(always)]
fn word(bytes: &[i8]) -> u32 {
    u32::from_le_bytes([
        bytes[0] as u8,
        bytes[1] as u8,
        bytes[2] as u8,
        bytes[3] as u8,
    ])
}

/// Bytes 0 and 2 of `w`, sign-extended into two 16-bit lanes.
#[inline(always)]
fn even(w: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic.
    unsafe {
        asm!("sxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Bytes 1 and 3 of `w`, sign-extended into two 16-bit lanes.
#[inline(always)]
fn odd(w: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic.
    unsafe {
        asm!("sxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Lane-wise 16-bit addition.
#[inline(always)]
fn add16(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic; SADD16 sets only the GE flags.
    unsafe {
        asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.lo * b.lo + a.hi * b.hi` (16-bit lanes).
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only arithmetic; SMLAD sets only the Q flag.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.lo * b.lo` (16-bit lanes).
#[inline(always)]
pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only arithmetic; SMLABB sets only the Q flag.
    unsafe {
        asm!("smlabb {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.hi * b.hi` (16-bit lanes).
#[inline(always)]
fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only arithmetic; SMLATT sets only the Q flag.
    unsafe {
        asm!("smlatt {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
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
        acc = smlad(
            add16(odd(xw), off),
            odd(ww),
            smlad(add16(even(xw), off), even(ww), acc),
        );
    }
    acc.wrapping_add(crate::int8::dot::portable::dot(&x[n..], &w[n..], offset))
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
    let tail = crate::int8::dot::portable::dot4(&x[n..], w.map(|w| &w[n..]), offset);
    [
        a0.wrapping_add(tail[0]),
        a1.wrapping_add(tail[1]),
        a2.wrapping_add(tail[2]),
        a3.wrapping_add(tail[3]),
    ]
}

/// Words per group of four values in a [`widen_quad`] buffer: two for
/// each of the four pixels.
pub const QUAD_GROUP_WORDS: usize = 8;

/// One group of [`widen_quad`]: a word of four values, its two pairs,
/// the offset added to both, and one STRD into the group's words.
macro_rules! widen_group {
    () => {
        concat!(
            "ldr {w}, [{src}], #4\n",
            "sxtb16 {e}, {w}\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "sadd16 {e}, {e}, {off}\n",
            "sadd16 {w}, {w}, {off}\n",
            "strd {e}, {w}, [{dst}], #32\n",
        )
    };
}

/// Widens pixel `pixel` (0..4) of a quad: `x` (its receptive field)
/// becomes, per group of four values, the words `(x0, x2)` and
/// `(x1, x3)` with the offset added, at words `2 * pixel` and
/// `2 * pixel + 1` of the group's [`QUAD_GROUP_WORDS`]. A last group
/// of fewer than four values is filled with lanes that hold zero.
/// Assembly: six instructions a group, two groups a loop turn (the
/// compiled loop took about eleven, its slices checked per group).
#[inline(always)]
pub fn widen_quad(x: &[i8], offset: i32, pixel: usize, out: &mut [u32]) {
    let off = pair(offset);
    let whole = x.len() / 4;
    assert!(pixel < 4 && out.len() >= x.len().div_ceil(4) * QUAD_GROUP_WORDS);
    if whole > 0 {
        // SAFETY: `whole` words of `x` are read (unaligned LDR), and each
        // group's two words at `2 * pixel` are written inside `out`, which
        // the assertion sizes; STRD's address is word-aligned (`out` is
        // `u32`s).
        unsafe {
            asm!(
                "tst {n}, #1",
                "beq 3f",
                widen_group!(),
                "3:",
                "lsrs {n}, {n}, #1",
                "beq 4f",
                "2:",
                widen_group!(),
                widen_group!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                "4:",
                src = inout(reg) x.as_ptr() => _,
                dst = inout(reg) out.as_mut_ptr().add(2 * pixel) => _,
                n = inout(reg) whole => _,
                off = in(reg) off,
                w = out(reg) _,
                e = out(reg) _,
                options(nostack),
            );
        }
    }
    let rest = &x[whole * 4..];
    if !rest.is_empty() {
        // -offset + offset = 0 in the lanes past the end.
        let mut last = [(-offset) as i8; 4];
        last[..rest.len()].copy_from_slice(rest);
        let xw = word(&last);
        let g = &mut out[whole * QUAD_GROUP_WORDS..][..QUAD_GROUP_WORDS];
        g[2 * pixel] = add16(even(xw), off);
        g[2 * pixel + 1] = add16(odd(xw), off);
    }
}

/// Sets pixel `pixel`'s lanes of every group in `out` to zero (taps in
/// the padding, which add nothing).
#[inline(always)]
pub fn zero_quad(pixel: usize, out: &mut [u32]) {
    for g in out.chunks_exact_mut(QUAD_GROUP_WORDS) {
        g[2 * pixel] = 0;
        g[2 * pixel + 1] = 0;
    }
}

/// The dot products of consecutive filters (`filters` holds whole rows
/// of `depth` values) with the four pixels of a [`widen_quad`] buffer
/// `xw`, one `[i32; 4]` per filter into `sums`. Each weight word is
/// loaded and widened once for four pixels, each pixel's pair of words
/// is one LDRD: per four values and four pixels 15 instructions for 16
/// multiply-accumulates, and about 20 per filter around them (the four
/// sums leave in one STM). The values past the last whole group of
/// four (`depth % 4` per filter) are added by the caller.
///
/// The filter loop is assembly too: it needs twelve registers at once,
/// which the compiler's allocation of the same code did not find, so
/// the loop's own state lives in a five-word block in memory.
pub fn quad_sums(xw: &[u32], filters: &[i8], depth: usize, sums: &mut [[i32; 4]]) {
    let (groups, count) = (depth / 4, filters.len() / depth.max(1));
    assert!(
        depth > 0
            && xw.len() >= groups * QUAD_GROUP_WORDS
            && sums.len() >= count
            && filters.len() == count * depth
    );
    // SAFETY: each of the `count` filters is `groups` words and `depth %
    // 4` bytes of `filters`; `xw` and `sums` are sized above.
    unsafe { quad_sums_rows(xw, filters.as_ptr(), (groups, depth % 4), count, sums) }
}

/// [`quad_sums`] over part of each filter: the first `len` values (whole
/// groups of four) of `sums.len()` filter rows `stride` values apart
/// from the start of `filters`, against a quad widened from the same
/// part of the receptive field (a depth chunk of a field deeper than the
/// buffers hold).
#[cfg(op_deep_conv)]
pub fn quad_sums_part(
    xw: &[u32],
    filters: &[i8],
    len: usize,
    stride: usize,
    sums: &mut [[i32; 4]],
) {
    let count = sums.len();
    assert!(
        len.is_multiple_of(4)
            && len <= stride
            && xw.len() >= len / 4 * QUAD_GROUP_WORDS
            && (count == 0 || filters.len() >= (count - 1) * stride + len)
    );
    // SAFETY: each of the `count` rows is `len / 4` words from its start
    // inside `filters`, the next row `stride - len` bytes on; `xw` and
    // `sums` are sized above.
    unsafe { quad_sums_rows(xw, filters.as_ptr(), (len / 4, stride - len), count, sums) }
}

/// The loop of [`quad_sums`]: `count` filter rows from `filters`, each
/// `groups` words then `skip` bytes to the next.
///
/// # Safety
/// The rows lie inside one allocation; `xw` holds `groups` groups; `sums`
/// holds `count` entries.
unsafe fn quad_sums_rows(
    xw: &[u32],
    filters: *const i8,
    (groups, skip): (usize, usize),
    count: usize,
    sums: &mut [[i32; 4]],
) {
    if count == 0 {
        return;
    }
    // x at the start of the quad, groups per filter, where the next
    // sums go, filters left, bytes past the whole groups of a filter.
    let mut state = [
        xw.as_ptr() as usize,
        groups,
        sums.as_mut_ptr() as usize,
        count,
        skip,
    ];
    // SAFETY: per filter the loop reads `groups` words of its row
    // (unaligned LDR, allowed on Armv7-M) and skips `skip` bytes to the
    // next, so `count` filters stay inside their rows (the caller's
    // promise); it reads `8 * groups` aligned words of `xw` and writes
    // `count` four-word sums inside `sums` and the five words of `state`.
    unsafe {
        asm!(
            "6:",
            "ldr {x}, [{state}]",
            "ldr {n}, [{state}, #4]",
            "mov r8, #0",
            "mov r9, #0",
            "mov r10, #0",
            "mov r11, #0",
            // An odd group first, then two groups per pass.
            "tst {n}, #1",
            "beq 3f",
                "ldr {f}, [{w}], #4",
                "sxtb16 {fe}, {f}",
                "sxtb16 {f}, {f}, ror #8",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r8, {xe}, {fe}, r8",
                "smlad r8, {xo}, {f}, r8",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r9, {xe}, {fe}, r9",
                "smlad r9, {xo}, {f}, r9",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r10, {xe}, {fe}, r10",
                "smlad r10, {xo}, {f}, r10",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r11, {xe}, {fe}, r11",
                "smlad r11, {xo}, {f}, r11",
            "3:",
            "lsrs {n}, {n}, #1",
            "beq 5f",
            "4:",
                "ldr {f}, [{w}], #4",
                "sxtb16 {fe}, {f}",
                "sxtb16 {f}, {f}, ror #8",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r8, {xe}, {fe}, r8",
                "smlad r8, {xo}, {f}, r8",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r9, {xe}, {fe}, r9",
                "smlad r9, {xo}, {f}, r9",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r10, {xe}, {fe}, r10",
                "smlad r10, {xo}, {f}, r10",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r11, {xe}, {fe}, r11",
                "smlad r11, {xo}, {f}, r11",
                "ldr {f}, [{w}], #4",
                "sxtb16 {fe}, {f}",
                "sxtb16 {f}, {f}, ror #8",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r8, {xe}, {fe}, r8",
                "smlad r8, {xo}, {f}, r8",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r9, {xe}, {fe}, r9",
                "smlad r9, {xo}, {f}, r9",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r10, {xe}, {fe}, r10",
                "smlad r10, {xo}, {f}, r10",
                "ldrd {xe}, {xo}, [{x}], #8",
                "smlad r11, {xe}, {fe}, r11",
                "smlad r11, {xo}, {f}, r11",
            "subs {n}, {n}, #1",
            "bne 4b",
            "5:",
            "ldr {f}, [{state}, #16]",
            "add {w}, {w}, {f}",
            "ldr {f}, [{state}, #8]",
            "stmia {f}!, {{r8, r9, r10, r11}}",
            "str {f}, [{state}, #8]",
            "ldr {f}, [{state}, #12]",
            "subs {f}, {f}, #1",
            "str {f}, [{state}, #12]",
            "bne 6b",
            state = in(reg) state.as_mut_ptr(),
            w = inout(reg) filters => _,
            x = out(reg) _,
            n = out(reg) _,
            f = out(reg) _,
            fe = out(reg) _,
            xe = out(reg) _,
            xo = out(reg) _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(nostack),
        );
    }
}

/// Adds each filter's last `depth % 4` values (past its whole groups)
/// times the four pixels of the [`widen_quad`] buffer `xw` to `sums`:
/// the values as one word padded with zeros, widened once, and two
/// SMLADs a pixel, as a whole group (the first layers of image models,
/// three channels a tap, have one such group per filter).
pub fn quad_sums_rest(xw: &[u32], filters: &[i8], depth: usize, sums: &mut [[i32; 4]]) {
    let whole = depth / 4 * 4;
    if whole == depth {
        return;
    }
    // The partial group: lanes past the end hold zero.
    let g = &xw[depth / 4 * QUAD_GROUP_WORDS..][..QUAD_GROUP_WORDS];
    for (w, sums) in filters.chunks_exact(depth).zip(sums) {
        let mut last = [0i8; 4];
        last[..depth - whole].copy_from_slice(&w[whole..]);
        let w = word(&last);
        let (we, wo) = (even(w), odd(w));
        for (k, s) in sums.iter_mut().enumerate() {
            *s = smlad(g[2 * k + 1], wo, smlad(g[2 * k], we, *s));
        }
    }
}

/// The in-bounds taps of one depthwise window, as the addresses of the
/// input pixel and the filter tap each reads (each `channels` bytes,
/// checked inside their slices as they are added).
pub struct DepthwiseTaps<'a, const N: usize> {
    input: &'a [i8],
    filter: &'a [i8],
    channels: usize,
    pairs: [(usize, usize); N],
    len: usize,
}

impl<'a, const N: usize> DepthwiseTaps<'a, N> {
    /// An empty list over `input` and `filter` pixels of `channels` values.
    pub fn new(input: &'a [i8], filter: &'a [i8], channels: usize) -> Self {
        Self {
            input,
            filter,
            channels,
            pairs: [(0, 0); N],
            len: 0,
        }
    }

    /// Empties the list for the next window.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds input pixel `at` with filter tap `tap` (at most `N` taps).
    #[inline(always)]
    pub fn push(&mut self, at: usize, tap: usize) {
        let c = self.channels;
        let (x, w) = (&self.input[at * c..][..c], &self.filter[tap * c..][..c]);
        self.pairs[self.len] = (x.as_ptr() as usize, w.as_ptr() as usize);
        self.len += 1;
    }

    /// `start` plus, for the four channels from `lane`, the sum over
    /// the taps of `w * (x + offset)`: per tap the four input and four
    /// weight bytes are one word each, multiplied lane by lane (SMLABB,
    /// SMLATT). 15 instructions per tap for four multiply-accumulates;
    /// assembly, because the loop needs twelve registers at once.
    #[inline(always)]
    pub fn mac4(&self, lane: usize, offset: i32, start: [i32; 4]) -> [i32; 4] {
        assert!(lane + 4 <= self.channels);
        let [mut a0, mut a1, mut a2, mut a3] = start;
        if self.len > 0 {
            // SAFETY: every address was taken from a slice of
            // `channels` bytes that `self` borrows, and lane + 4 <=
            // channels; the list is read within its length; the rest
            // is registers.
            unsafe {
                asm!(
                    "2:",
                    "ldrd {x}, {w}, [{list}], #8",
                    "ldr {x}, [{x}, {lane}]",
                    "ldr {w}, [{w}, {lane}]",
                    "sxtb16 {t}, {x}",
                    "sadd16 {t}, {t}, {off}",
                    "sxtb16 {u}, {w}",
                    "smlabb {a0}, {t}, {u}, {a0}",
                    "smlatt {a2}, {t}, {u}, {a2}",
                    "sxtb16 {x}, {x}, ror #8",
                    "sadd16 {x}, {x}, {off}",
                    "sxtb16 {w}, {w}, ror #8",
                    "smlabb {a1}, {x}, {w}, {a1}",
                    "smlatt {a3}, {x}, {w}, {a3}",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    list = inout(reg) self.pairs.as_ptr() => _,
                    n = inout(reg) self.len => _,
                    lane = in(reg) lane,
                    off = in(reg) pair(offset),
                    a0 = inout(reg) a0,
                    a1 = inout(reg) a1,
                    a2 = inout(reg) a2,
                    a3 = inout(reg) a3,
                    x = out(reg) _,
                    w = out(reg) _,
                    t = out(reg) _,
                    u = out(reg) _,
                    options(nostack, readonly),
                );
            }
        }
        [a0, a1, a2, a3]
    }
}

/// `acc[i] += w[i] * (x[i] + offset)` for every lane: four lanes per
/// word, each lane its own 16 x 16 multiply (SMLABB, SMLATT).
#[inline(always)]
pub fn mac_lanes(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32) {
    let (n, off) = (x.len() & !3, pair(offset));
    for ((a, xa), wa) in acc[..n]
        .chunks_exact_mut(4)
        .zip(x[..n].chunks_exact(4))
        .zip(w[..n].chunks_exact(4))
    {
        let (xw, ww) = (word(xa), word(wa));
        let (xe, xo, we, wo) = (add16(even(xw), off), add16(odd(xw), off), even(ww), odd(ww));
        a[0] = smlabb(xe, we, a[0]);
        a[1] = smlabb(xo, wo, a[1]);
        a[2] = smlatt(xe, we, a[2]);
        a[3] = smlatt(xo, wo, a[3]);
    }
    crate::int8::dot::portable::mac_lanes(&mut acc[n..], &x[n..], &w[n..], offset);
}
