//! Helium dot products of int8 rows: VMLADAVA.S8 multiplies 16 pairs and
//! adds them to a 32-bit scalar, in tail-predicated loops (DLSTP.8/LETP:
//! the last iteration's lanes past the row's end are neither loaded nor
//! added). The input offset is not added lane by lane: the sum of
//! `(x + offset) * w` is that of `x * w` plus `offset` times that of `w`,
//! and [`filter_bases`] folds the second term, with the bias, into each
//! filter's starting value once per layer call. Sums wrap as the portable
//! kernels' do.

#![allow(unsafe_code)]
use core::arch::asm;

/// Filters whose sums one [`dots`] call keeps in registers.
const FILTERS: usize = 4;

/// `base[f] = bias[f] + offset * sum(filters[f])` for each of
/// `base.len()` filters of `depth` values (`filters` holds them back to
/// back), the value each output of filter `f` starts from.
pub(crate) fn filter_bases(
    filters: &[i8],
    depth: usize,
    bias: Option<&[i32]>,
    offset: i32,
    base: &mut [i32],
) {
    assert!(depth > 0 && filters.len() >= base.len() * depth);
    for (f, b) in base.iter_mut().enumerate() {
        let row = &filters[f * depth..][..depth];
        let bias = bias.map_or(0, |bias| bias[f]);
        *b = bias.wrapping_add(offset.wrapping_mul(row_sum(row)));
    }
}

/// The sum of a row of int8 values.
fn row_sum(row: &[i8]) -> i32 {
    let mut sum = 0i32;
    // SAFETY: DLSTP.8 with the row's length predicates the loads to its
    // bytes; q0 is declared clobbered; LR is the loop counter; VADDVA's
    // accumulator must be an even register.
    unsafe {
        asm!(
            "dlstp.8 lr, {n}",
            "2:",
            "vldrb.8 q0, [{p}], #16",
            "vaddva.s8 r0, q0",
            "letp lr, 2b",
            p = inout(reg) row.as_ptr() => _,
            n = in(reg) row.len(),
            inout("r0") sum,
            out("lr") _, out("d0") _, out("d1") _,
            options(nostack, readonly, preserves_flags),
        );
    }
    sum
}

/// The sums of a run of up to [`RUN`] filters for one receptive field,
/// and the values they start from ([`filter_bases`]), side by side so that
/// one register addresses both (`base` is `sums` + 256 bytes).
#[repr(C)]
pub(crate) struct RunSums {
    /// The sums, once [`dots`] has run.
    pub sums: [i32; RUN],
    /// Each filter's starting value.
    pub base: [i32; RUN],
}

/// Filters per run.
pub(crate) const RUN: usize = 64;

impl RunSums {
    pub(crate) const fn new() -> Self {
        Self {
            sums: [0; RUN],
            base: [0; RUN],
        }
    }
}

/// What the quad loop of [`dots`] reads from memory, for want of
/// registers: the field, its length, and where the sums end.
#[repr(C)]
struct Pass {
    x: *const i8,
    depth: usize,
    end: *mut i32,
    /// How far the loop's pointers run past a row (to a multiple of 16).
    overrun: usize,
}

/// `run.sums[f] = run.base[f] + sum(x * filters[f])` for the first
/// `count` filters of `x.len()` values (`filters` holds them back to
/// back): four filters per pass over `x`, each 16 input values loaded once
/// for the four, the whole loop over quads in one block of assembly.
#[inline(never)]
pub(crate) fn dots(x: &[i8], filters: &[i8], run: &mut RunSums, count: usize) {
    let depth = x.len();
    assert!(depth > 0 && count <= RUN && filters.len() >= count * depth);
    let quads = count / FILTERS;
    if quads > 0 {
        let sums = run.sums.as_mut_ptr();
        let pass = Pass {
            x: x.as_ptr(),
            depth,
            // SAFETY: `quads * 4 <= RUN`: at most one past the end.
            end: unsafe { sums.add(quads * FILTERS) },
            overrun: depth.next_multiple_of(16) - depth,
        };
        // SAFETY: per quad, the field and each of the four filters' rows
        // are read for `depth` bytes inside their slices (DLSTP.8
        // predicates the last iteration's lanes to the row's end; the
        // next quad's first row starts `depth` after the last one's),
        // and four sums are read 256 bytes on (`base`) and written, up to
        // `pass.end`. VMLADAVA's accumulator must be an even register,
        // hence r0, r2, r4 and r8; q0-q3 are declared clobbered; LR is the
        // loop counter and a scratch register.
        unsafe {
            asm!(
                "2:",
                "ldrd r0, r2, [{sums}, #256]",
                "ldrd r4, r8, [{sums}, #264]",
                "ldr {x}, [{pass}]",
                "ldr lr, [{pass}, #4]",
                "add {w1}, {w0}, lr",
                "add {w2}, {w1}, lr",
                "add {w3}, {w2}, lr",
                "dlstp.8 lr, lr",
                "3:",
                "vldrb.8 q0, [{x}], #16",
                "vldrb.8 q1, [{w0}], #16",
                "vmladava.s8 r0, q0, q1",
                "vldrb.8 q2, [{w1}], #16",
                "vmladava.s8 r2, q0, q2",
                "vldrb.8 q3, [{w2}], #16",
                "vmladava.s8 r4, q0, q3",
                "vldrb.8 q1, [{w3}], #16",
                "vmladava.s8 r8, q0, q1",
                "letp lr, 3b",
                "strd r0, r2, [{sums}], #8",
                "strd r4, r8, [{sums}], #8",
                // Every pointer ran the row rounded up to 16 bytes: the
                // next quad starts where the last filter's row ends.
                "ldr lr, [{pass}, #12]",
                "sub {w0}, {w3}, lr",
                "ldr lr, [{pass}, #8]",
                "cmp {sums}, lr",
                "bne 2b",
                sums = inout(reg) sums => _,
                pass = in(reg) &pass,
                w0 = inout(reg) filters.as_ptr() => _,
                w1 = out(reg) _,
                w2 = out(reg) _,
                w3 = out(reg) _,
                x = out(reg) _,
                out("r0") _, out("r2") _, out("r4") _, out("r8") _,
                out("lr") _,
                out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                out("d4") _, out("d5") _, out("d6") _, out("d7") _,
                options(nostack),
            );
        }
    }
    for f in quads * FILTERS..count {
        let sum = dot(x, &filters[f * depth..][..depth]);
        run.sums[f] = run.base[f].wrapping_add(sum);
    }
}

/// `sum(x * w)` over two rows of the same length.
fn dot(x: &[i8], w: &[i8]) -> i32 {
    let mut sum = 0i32;
    // SAFETY: as in `dots`, for two pointers; q0 and q1 are clobbered.
    unsafe {
        asm!(
            "dlstp.8 lr, {n}",
            "2:",
            "vldrb.8 q0, [{x}], #16",
            "vldrb.8 q1, [{w}], #16",
            "vmladava.s8 r0, q0, q1",
            "letp lr, 2b",
            x = inout(reg) x.as_ptr() => _,
            w = inout(reg) w.as_ptr() => _,
            n = in(reg) x.len().min(w.len()),
            inout("r0") sum,
            out("lr") _,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _,
            options(nostack, readonly, preserves_flags),
        );
    }
    sum
}
