//! Helium byte copies and fills for gathering receptive fields: 16 bytes
//! per load and store, the last ones predicated (WLSTP.8/LETP, which also
//! skips an empty range).

#![allow(unsafe_code)]
use core::arch::asm;

/// `dst.copy_from_slice(src)`.
#[inline(always)]
pub(crate) fn copy(src: &[i8], dst: &mut [i8]) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: the loop's predication keeps both pointers inside their
    // `len` bytes; q0 is declared clobbered; LR is the loop counter.
    unsafe {
        asm!(
            "wlstp.8 lr, {n}, 3f",
            "2:",
            "vldrb.8 q0, [{src}], #16",
            "vstrb.8 q0, [{dst}], #16",
            "letp lr, 2b",
            "3:",
            n = in(reg) src.len(),
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            out("lr") _, out("d0") _, out("d1") _,
            options(nostack, preserves_flags),
        );
    }
}

/// `dst.fill(value)`.
#[inline(always)]
pub(crate) fn fill(dst: &mut [i8], value: i8) {
    // SAFETY: the loop's predication keeps the pointer inside `len`
    // bytes; q0 is declared clobbered; LR is the loop counter.
    unsafe {
        asm!(
            "vdup.8 q0, {v}",
            "wlstp.8 lr, {n}, 3f",
            "2:",
            "vstrb.8 q0, [{dst}], #16",
            "letp lr, 2b",
            "3:",
            v = in(reg) value as i32,
            n = in(reg) dst.len(),
            dst = inout(reg) dst.as_mut_ptr() => _,
            out("lr") _, out("d0") _, out("d1") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copies `dst.len() / row` rows of `row` bytes, `stride` apart from the
/// start of `src`, one after another into `dst`.
#[inline(always)]
pub(crate) fn copy_rows(src: &[i8], stride: usize, row: usize, dst: &mut [i8]) {
    let rows = dst.len() / row;
    assert!(row > 0 && dst.len() == rows * row && rows > 0);
    assert!(src.len() >= (rows - 1) * stride + row);
    // SAFETY: row `k` reads `src[k * stride..][..row]` and writes
    // `dst[k * row..][..row]`, inside both (asserted above); the loop's
    // predication keeps each copy to its row. q0 is declared clobbered;
    // LR is the loop counter.
    unsafe {
        asm!(
            "2:",
            "mov {s}, {src}",
            "mov {d}, {dst}",
            "wlstp.8 lr, {row}, 4f",
            "3:",
            "vldrb.8 q0, [{s}], #16",
            "vstrb.8 q0, [{d}], #16",
            "letp lr, 3b",
            "4:",
            "add {src}, {stride}",
            "add {dst}, {row}",
            "subs {rows}, #1",
            "bne 2b",
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            s = out(reg) _,
            d = out(reg) _,
            row = in(reg) row,
            stride = in(reg) stride,
            rows = inout(reg) rows => _,
            out("lr") _, out("d0") _, out("d1") _,
            options(nostack),
        );
    }
}
