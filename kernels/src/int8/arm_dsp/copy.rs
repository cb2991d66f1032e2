//! Word copies by four-register LDM/STM: a quarter of an instruction per
//! byte, where `compiler_builtins`' `memcpy` (a word loop) takes about one
//! and a half; the gathers of windows copy a receptive field's rows per
//! output pixel.

use core::arch::asm;

/// Copies `src` into `dst` (equal lengths) sixteen bytes per LDM/STM pair,
/// the words past the last sixteen one by one.
#[inline(always)]
pub fn copy_words(dst: &mut [u32], src: &[u32]) {
    let n = dst.len().min(src.len());
    let quads = n / 4;
    if quads > 0 {
        // SAFETY: the loop reads `4 * quads` words from `src` and writes as
        // many to `dst`, both at least that long; the LDM/STM register list
        // is named in ascending order, as the encoding requires.
        #[allow(unsafe_code)]
        unsafe {
            asm!(
                "2:",
                "ldm {s}!, {{r2, r3, r4, r5}}",
                "stm {d}!, {{r2, r3, r4, r5}}",
                "subs {q}, {q}, #1",
                "bne 2b",
                s = inout(reg) src.as_ptr() => _,
                d = inout(reg) dst.as_mut_ptr() => _,
                q = inout(reg) quads => _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(nostack),
            );
        }
    }
    // Up to three words, usually none: not worth a `memcpy` call.
    for (d, s) in dst[4 * quads..n].iter_mut().zip(&src[4 * quads..n]) {
        *d = *s;
    }
}

/// Sets every word of `dst` to `value`, sixteen bytes per STM, the words
/// past the last sixteen one by one (`compiler_builtins`' `memset`, which
/// a filling loop becomes, costs a call and more per word; the gathers
/// of windows fill each tap in the padding).
#[inline(always)]
pub fn fill_words(dst: &mut [u32], value: u32) {
    let quads = dst.len() / 4;
    if quads > 0 {
        // SAFETY: the loop writes `4 * quads` words to `dst`, at least that
        // long; the STM register list is in ascending order.
        #[allow(unsafe_code)]
        unsafe {
            asm!(
                "mov r3, r2",
                "mov r4, r2",
                "mov r5, r2",
                "2:",
                "stm {d}!, {{r2, r3, r4, r5}}",
                "subs {q}, {q}, #1",
                "bne 2b",
                d = inout(reg) dst.as_mut_ptr() => _,
                q = inout(reg) quads => _,
                inout("r2") value => _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(nostack),
            );
        }
    }
    for w in &mut dst[4 * quads..] {
        *w = value;
    }
}
