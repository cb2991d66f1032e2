//! The binary kernels' inner loops on Arm cores with the DSP extension
//! (`cfg(arm_dsp)`), beside `x86.rs`: no population-count instruction
//! there, so a count is a SWAR reduction, written out in assembly where
//! the compiler ran out of registers and spilled (KWS's binary pointwise
//! layer on qemu-m4: 35 instructions per output in Rust, 26 here).

use core::arch::asm;

/// [`super::popcount::count_lookup`] for fields of two words (33 to 64
/// bits): per row one LDRD, the SWAR count of `field XOR row` and a byte
/// lookup in the row's `stride` table entries.
pub fn lookup2(field: &[u32; 2], rows: &[u32], table: &[i8], stride: usize, out: &mut [i8]) {
    let n = out.len();
    // Counts are at most 64, so `stride >= 65` keeps every lookup inside
    // its row of the table.
    if n == 0 || stride < 65 || rows.len() < 2 * n || table.len() < n * stride {
        return;
    }
    let end = out.as_mut_ptr().wrapping_add(n);
    // SAFETY: the loop reads 2n words of `rows` and, for row r, byte
    // r * stride + count (count <= 64 < stride) of `table`, and writes the n
    // bytes of `out`: all checked above.
    #[allow(unsafe_code)]
    unsafe {
        asm!(
            "2:",
            "ldrd {t0}, {t1}, [{rows}], #8",
            "eor {t0}, {t0}, {f0}",
            "eor {t1}, {t1}, {f1}",
            // 2-bit counts.
            "and {t2}, {m1}, {t0}, lsr #1",
            "sub {t0}, {t0}, {t2}",
            "and {t2}, {m1}, {t1}, lsr #1",
            "sub {t1}, {t1}, {t2}",
            // 4-bit counts (at most 4).
            "and {t2}, {m2}, {t0}, lsr #2",
            "and {t0}, {t0}, {m2}",
            "add {t0}, {t0}, {t2}",
            "and {t2}, {m2}, {t1}, lsr #2",
            "and {t1}, {t1}, {m2}",
            "add {t1}, {t1}, {t2}",
            // Byte counts of each word (at most 8), then of both (16).
            "add {t0}, {t0}, {t0}, lsr #4",
            "and {t0}, {t0}, #0x0f0f0f0f",
            "add {t1}, {t1}, {t1}, lsr #4",
            "and {t1}, {t1}, #0x0f0f0f0f",
            "add {t0}, {t0}, {t1}",
            // The four bytes summed into the low one (at most 64).
            "add {t0}, {t0}, {t0}, lsr #8",
            "add {t0}, {t0}, {t0}, lsr #16",
            "and {t0}, {t0}, #0x7f",
            "ldrb {t0}, [{table}, {t0}]",
            "add {table}, {table}, {stride}",
            "strb {t0}, [{out}], #1",
            "cmp {out}, {end}",
            "bne 2b",
            rows = inout(reg) rows.as_ptr() => _,
            table = inout(reg) table.as_ptr() => _,
            out = inout(reg) out.as_mut_ptr() => _,
            end = in(reg) end,
            stride = in(reg) stride,
            f0 = in(reg) field[0],
            f1 = in(reg) field[1],
            m1 = in(reg) 0x5555_5555u32,
            m2 = in(reg) 0x3333_3333u32,
            t0 = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            options(nostack),
        );
    }
}

/// Four values' GE flags (bits 16-19 of the APSR after SSUB8) ORed into
/// `{w}` at their place, `$place` the shift that takes them there.
macro_rules! signs_of_four {
    ($offset:literal, $place:literal) => {
        concat!(
            "ldr {v}, [{p}, #",
            $offset,
            "]\n",
            "ssub8 {v}, {v}, {z}\n",
            "mrs {v}, apsr\n",
            "and {v}, {v}, #0xf0000\n",
            "orr {w}, {w}, {v}",
            $place,
            "\n",
        )
    };
}

/// The sign bits of 32 int8 values (bit set where `value < zero_point`),
/// four at a time: SSUB8 sets a GE flag for each byte at or above the zero
/// point, which MRS reads out (5 instructions per four values instead of
/// a compare and a conditional OR per value).
pub fn pack_word_i8(values: &[i8; 32], zero_point: i32) -> u32 {
    let zero_points = (zero_point as u8 as u32) * 0x0101_0101;
    let at_or_above: u32;
    // SAFETY: reads the 32 bytes of `values` (unaligned word loads, which
    // Armv7-M and Armv7-A allow for LDR).
    #[allow(unsafe_code)]
    unsafe {
        asm!(
            "ldr {v}, [{p}]",
            "ssub8 {v}, {v}, {z}",
            "mrs {v}, apsr",
            "ubfx {w}, {v}, #16, #4",
            signs_of_four!("4", ", lsr #12"),
            signs_of_four!("8", ", lsr #8"),
            signs_of_four!("12", ", lsr #4"),
            signs_of_four!("16", ""),
            signs_of_four!("20", ", lsl #4"),
            signs_of_four!("24", ", lsl #8"),
            signs_of_four!("28", ", lsl #12"),
            p = in(reg) values.as_ptr(),
            z = in(reg) zero_points,
            v = out(reg) _,
            w = out(reg) at_or_above,
            options(nostack, readonly),
        );
    }
    !at_or_above
}
