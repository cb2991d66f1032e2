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
    dst[4 * quads..n].copy_from_slice(&src[4 * quads..n]);
}
