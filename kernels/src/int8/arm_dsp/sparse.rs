//! The inner loop of the sparse convolution on DSP cores: four output
//! pixels' dot products over one output channel's entries.

use core::arch::asm;

/// One entry of the loop below: its word, its input's address, and a byte
/// load and SMLABB for each of the four pixels (`step` and `3 * step`
/// apart in registers, `2 * step` as the first shifted).
macro_rules! entry_step {
    () => {
        concat!(
            "ldr {e}, [{p}], #4\n",
            "add {a}, {x}, {e}, lsr #16\n",
            "ldrsb {t}, [{a}]\n",
            "smlabb {a0}, {e}, {t}, {a0}\n",
            "ldrsb {t}, [{a}, {s1}]\n",
            "smlabb {a1}, {e}, {t}, {a1}\n",
            "ldrsb {t}, [{a}, {s1}, lsl #1]\n",
            "smlabb {a2}, {e}, {t}, {a2}\n",
            "ldrsb {t}, [{a}, {s3}]\n",
            "smlabb {a3}, {e}, {t}, {a3}\n",
        )
    };
}

/// `sum(weight(e) * x[j * step + offset(e)])` for the four windows `j` of
/// `x`, over `entries` (see `crate::sparse`): per entry one word load, one
/// address, and a byte load and SMLABB per pixel (the weight is the entry's
/// low half as it is), two entries per loop turn.
///
/// # Safety
/// `x + 3 * step + offset(e)` must lie inside one allocation for every entry.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn gather_dots4(entries: &[u32], x: *const i8, step: usize) -> [i32; 4] {
    let mut acc = [0i32; 4];
    let (odd, pairs) = entries.split_at(entries.len() % 2);
    if let [e] = odd {
        let at = x.add((e >> 16) as usize);
        for (j, a) in acc.iter_mut().enumerate() {
            *a = super::dot::smlabb(*e, *at.add(j * step) as i32 as u32, *a);
        }
    }
    if pairs.is_empty() {
        return acc;
    }
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let end = pairs.as_ptr().add(pairs.len());
    // SAFETY: the caller keeps every load inside `x`'s allocation; the loop
    // reads `pairs` from its start to `end`, which is at least two words on.
    asm!(
        "2:",
        entry_step!(),
        entry_step!(),
        "cmp {p}, {end}",
        "bne 2b",
        p = inout(reg) pairs.as_ptr() => _,
        end = in(reg) end,
        x = in(reg) x,
        s1 = in(reg) step,
        s3 = in(reg) 3 * step,
        e = out(reg) _,
        a = out(reg) _,
        t = out(reg) _,
        a0 = inout(reg) a0,
        a1 = inout(reg) a1,
        a2 = inout(reg) a2,
        a3 = inout(reg) a3,
        options(nostack, readonly),
    );
    [a0, a1, a2, a3]
}
