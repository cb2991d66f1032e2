//! Emulated instruction counts from a board's timer under QEMU `-icount`.
//!
//! With `-icount shift=N` every guest instruction advances virtual time by
//! exactly `2^N` ns, so a timer ticking at `f` Hz counts
//! `instructions * 2^N * f / 1e9` ticks, give or take the one tick that the
//! start and end phases can add or drop. When one tick is shorter than half
//! an instruction (`2^N * f / 1e9 >= 2`, e.g. shift 7 with a 25 MHz SysTick:
//! 3.2 ticks per instruction), rounding recovers the exact count.

/// Ticks of a timer at `ticks_per_second` per emulated instruction at `shift`.
pub fn ticks_per_instruction(ticks_per_second: u64, shift: u32) -> f64 {
    ticks_per_second as f64 * (1u64 << shift) as f64 / 1e9
}

/// Whether counts at this rate are exact (a tick is at most half an instruction).
pub fn is_exact(ticks_per_second: u64, shift: u32) -> bool {
    ticks_per_instruction(ticks_per_second, shift) >= 2.0
}

/// The instructions `ticks` timer ticks stand for.
pub fn instructions(ticks: u64, ticks_per_second: u64, shift: u32) -> u64 {
    (ticks as f64 / ticks_per_instruction(ticks_per_second, shift)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_7_at_25_mhz_recovers_every_count_whatever_the_phase() {
        assert!(is_exact(25_000_000, 7) && !is_exact(25_000_000, 0));
        // An inference of n instructions starting at any phase of the tick.
        for n in [1u64, 39, 40, 1_000, 48_415_637] {
            for phase_ns in (0..40).step_by(3) {
                let (start, end) = (phase_ns, phase_ns + n * 128);
                let ticks = end / 40 - start / 40;
                assert_eq!(
                    instructions(ticks, 25_000_000, 7),
                    n,
                    "n {n} phase {phase_ns}"
                );
            }
        }
    }
}
