//! Helium int8 ADD, four elements per vector, equal to TFLite's
//! (`crate::int8::add`): each input is offset, shifted left by the
//! headroom, and rescaled by its multiplier below one (VQRDMULH, then the
//! rounding divide by a power of two with gemmlowp's correction for
//! negative values, as in [`super::requant`]); the sum is rescaled the
//! same way, offset and clamped. Tail predication (DLSTP.32) keeps every
//! load and store inside the tensors.

#![allow(unsafe_code)]
use crate::int8::add::AddParams;
use core::arch::asm;

/// `out[i] = a[i] + b[i]`, if the output multiplier is below one (as
/// TFLite's int8 ADD always makes it); `false`, with nothing written,
/// otherwise. The caller checked the parameters and lengths.
pub(crate) fn add(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) -> bool {
    if p.output.shift > 0 || a.is_empty() {
        return false;
    }
    assert!(a.len() == b.len() && a.len() == out.len());
    // Set-up values, read once: minus each right shift (VRSHL's amount,
    // and what the correction tests), the clamp, the headroom and the
    // length; the pointer register ends up holding the headroom.
    let setup: [i32; 7] = [
        p.input1.shift,
        p.input2.shift,
        p.output.shift,
        p.act_min,
        p.act_max,
        a.len() as i32,
        p.left_shift,
    ];
    // SAFETY: DLSTP.32 predicates the loads and stores to the tensors'
    // `a.len()` elements; q0-q7 are declared clobbered (the compiler
    // saves q4-q7, callee-saved); LR is the loop counter. The widening
    // loads and the narrowing store take low registers only (r1, r3, r5).
    unsafe {
        asm!(
            "ldr lr, [{t}]",
            "vdup.32 q3, lr",
            "ldr lr, [{t}, #4]",
            "vdup.32 q4, lr",
            "ldr lr, [{t}, #8]",
            "vdup.32 q5, lr",
            "ldr lr, [{t}, #12]",
            "vdup.32 q6, lr",
            "ldr lr, [{t}, #16]",
            "vdup.32 q7, lr",
            "ldr lr, [{t}, #20]",
            "ldr {t}, [{t}, #24]",
            "dlstp.32 lr, lr",
            "2:",
            "vldrb.s32 q0, [r1], #4",
            "vadd.i32 q0, q0, {off1}",
            "vshl.s32 q0, {t}",
            "vqrdmulh.s32 q0, q0, {m1}",
            "vand q2, q0, q3",
            "vshr.s32 q2, q2, #31",
            "vqadd.s32 q0, q0, q2",
            "vrshl.s32 q0, q0, q3",
            "vldrb.s32 q1, [r3], #4",
            "vadd.i32 q1, q1, {off2}",
            "vshl.s32 q1, {t}",
            "vqrdmulh.s32 q1, q1, {m2}",
            "vand q2, q1, q4",
            "vshr.s32 q2, q2, #31",
            "vqadd.s32 q1, q1, q2",
            "vrshl.s32 q1, q1, q4",
            "vadd.i32 q0, q0, q1",
            "vqrdmulh.s32 q0, q0, {mo}",
            "vand q2, q0, q5",
            "vshr.s32 q2, q2, #31",
            "vqadd.s32 q0, q0, q2",
            "vrshl.s32 q0, q0, q5",
            "vadd.i32 q0, q0, {ooff}",
            "vmax.s32 q0, q0, q6",
            "vmin.s32 q0, q0, q7",
            "vstrb.32 q0, [r5], #4",
            "letp lr, 2b",
            t = inout(reg) setup.as_ptr() => _,
            inout("r1") a.as_ptr() => _,
            inout("r3") b.as_ptr() => _,
            inout("r5") out.as_mut_ptr() => _,
            off1 = in(reg) p.input1_offset,
            off2 = in(reg) p.input2_offset,
            m1 = in(reg) p.input1.multiplier,
            m2 = in(reg) p.input2.multiplier,
            mo = in(reg) p.output.multiplier,
            ooff = in(reg) p.output_offset,
            out("lr") _,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _,
            out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _,
            out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            options(nostack, preserves_flags),
        );
    }
    true
}
