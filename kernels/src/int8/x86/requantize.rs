//! A chunk of output channels' requantization, unpacked into lane arrays
//! that the vector kernels load a vector at a time.

use crate::int8::OutputStage;
use crate::quant::Rounding;

/// Output channels per chunk: the widest chunk the kernels work on at once.
pub(super) const CHUNK: usize = 256;

/// Per-channel terms of one chunk of output channels (indexed from the
/// chunk's first channel), and the stage's offsets and clamp.
pub(super) struct Requantize<'s, 'a> {
    /// Bias plus the kernel's correction of its sums.
    pub bias: [i32; CHUNK],
    /// Q31 multipliers.
    pub multiplier: [i32; CHUNK],
    /// Lane `i` holds multiplier `i | 1` (what the odd lanes' 64-bit
    /// products read from even positions).
    pub odd_multiplier: [i32; CHUNK],
    /// Left shifts (multipliers of one half or more).
    pub left: [i32; CHUNK],
    /// Whether any channel of the chunk shifts left.
    pub shifts_left: bool,
    /// Rounding right shifts.
    pub right: [i32; CHUNK],
    /// `2^right - 1`: the bits the right shift drops.
    pub mask: [i32; CHUNK],
    /// `mask / 2`: the dropped bits' rounding threshold for positive values.
    pub half: [i32; CHUNK],
    /// Output zero point.
    pub output_offset: i32,
    /// Lower clamp.
    pub min: i32,
    /// Upper clamp.
    pub max: i32,
    /// Whether the vector form applies (double rounding); single rounding
    /// goes value by value through the stage.
    pub vector: bool,
    stage: &'s OutputStage<'a>,
    first_channel: usize,
}

impl<'s, 'a> Requantize<'s, 'a> {
    /// Zero terms for the chunk starting at channel `first`, to [`fill`]
    /// where they stay: built in one function and returned, the 7 KiB
    /// struct was copied, two microseconds a call where the copy's source
    /// and destination alias in the cache (a 4 KiB multiple apart).
    ///
    /// [`fill`]: Self::fill
    #[inline(always)]
    pub fn blank(stage: &'s OutputStage<'a>, first: usize) -> Self {
        Requantize {
            bias: [0; CHUNK],
            multiplier: [0; CHUNK],
            odd_multiplier: [0; CHUNK],
            left: [0; CHUNK],
            shifts_left: false,
            right: [0; CHUNK],
            mask: [0; CHUNK],
            half: [0; CHUNK],
            output_offset: stage.output_offset,
            min: stage.act_min,
            max: stage.act_max,
            vector: stage.rounding == Rounding::Double,
            stage,
            first_channel: first,
        }
    }

    /// The terms of the chunk's channels `first..first + n` (`n <=
    /// CHUNK`, the rest left zero, whole vectors): `extra(c)` is added to
    /// channel `c`'s bias.
    #[inline(always)]
    pub fn fill(&mut self, bias: Option<&[i32]>, n: usize, mut extra: impl FnMut(usize) -> i32) {
        let (stage, first) = (self.stage, self.first_channel);
        for i in 0..n {
            let c = first + i;
            let q = stage.requant[c];
            self.bias[i] = bias.map_or(0, |b| b[c]).wrapping_add(extra(i));
            self.multiplier[i] = q.multiplier;
            self.left[i] = q.shift.max(0);
            self.right[i] = (-q.shift).max(0);
            self.mask[i] = ((1u64 << self.right[i]) - 1) as i32;
            self.half[i] = self.mask[i] >> 1;
        }
        for i in 0..n {
            self.odd_multiplier[i] = self.multiplier[(i | 1).min(CHUNK - 1)];
        }
        self.shifts_left = self.left.iter().any(|&l| l > 0);
    }

    /// Requantizes `sums` (bias included) of chunk channels `first..` one
    /// value at a time, into `out`.
    ///
    /// # Safety
    /// `out` must be valid for `sums.len()` bytes.
    #[allow(unsafe_code)]
    pub unsafe fn finish_scalar(&self, sums: &[i32], first: usize, out: *mut i8) {
        for (i, &s) in sums.iter().enumerate() {
            out.add(i)
                .write(self.stage.finish(s, self.first_channel + first + i));
        }
    }
}
