//! SVDF, integer (TFLite's `EvalIntegerSVDF`): int8 input and output, int8
//! feature weights, int16 time weights, an int16 activation state of
//! `memory` steps per filter, int32 bias. The keyword-spotting models of
//! TFLite Micro's examples use it.
//!
//! Each inference starts from a zero state (as bench's LSTM does; LiteRT
//! keeps the state between invocations until it is reset): the state is
//! shifted one step, the feature dot products fill its newest step, the
//! time weights reduce it, `rank` filters sum into each unit, and the
//! bias is added before the rescale. LiteRT runs an int8 SVDF only with a
//! fused RELU but does not apply it: its output is clamped to int8 alone,
//! and so is this one.

use crate::error::{ensure, expect_len, KernelError};
use crate::quant::{multiply_by_quantized_multiplier, Requant};
use serde::{Deserialize, Serialize};

/// The sizes and integer parameters of an SVDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvdfParams {
    /// Filters per unit.
    pub rank: u32,
    /// Steps of state per filter.
    pub memory: u32,
    /// The input's zero point.
    pub input_zero_point: i32,
    /// The output's zero point.
    pub output_zero_point: i32,
    /// `s_in * s_feature / s_state`.
    pub feature_scale: Requant,
    /// `s_state * s_time / s_out`.
    pub output_scale: Requant,
}

/// The weights of an SVDF.
#[derive(Clone, Copy, Debug)]
pub struct SvdfWeights<'a> {
    /// `[filters, input]` int8.
    pub feature: &'a [i8],
    /// `[filters, memory]` int16.
    pub time: &'a [i16],
    /// `[units]` int32.
    pub bias: Option<&'a [i32]>,
}

/// Scratch bytes an SVDF of `batch` rows and `filters` filters needs: the
/// int16 state, then the int32 filter and unit sums (4-byte aligned).
pub fn scratch_len(batch: usize, filters: usize, memory: usize) -> usize {
    (batch * filters * memory * 2).next_multiple_of(4) + batch * filters * 4 * 2
}

impl SvdfParams {
    /// Checks the weights and lengths: `x` is `[batch, input]`, `out` is
    /// `[batch, units]`.
    pub fn check(
        &self,
        w: &SvdfWeights,
        (batch, input): (usize, usize),
        output: usize,
        scratch: usize,
    ) -> Result<(), KernelError> {
        let (rank, memory) = (self.rank as usize, self.memory as usize);
        ensure(
            rank > 0 && memory > 0 && batch > 0,
            "svdf: rank, memory and batch must be positive",
        )?;
        let filters = w.time.len() / memory;
        ensure(
            filters > 0 && filters.is_multiple_of(rank) && w.time.len() == filters * memory,
            "svdf: time weights must be [filters, memory] with filters a multiple of rank",
        )?;
        expect_len("feature weights", w.feature.len(), filters * input)?;
        if let Some(b) = w.bias {
            expect_len("bias", b.len(), filters / rank)?;
        }
        expect_len("output", output, batch * (filters / rank))?;
        ensure(
            scratch >= scratch_len(batch, filters, memory),
            "svdf: scratch too small",
        )?;
        ensure(
            self.feature_scale.is_valid() && self.output_scale.is_valid(),
            "svdf: multiplier shifts must be in -31..=31",
        )?;
        ensure(
            (-128..=127).contains(&self.input_zero_point)
                && (-128..=127).contains(&self.output_zero_point),
            "svdf: zero points must be int8 values",
        )
    }

    /// One inference of `x` (`[batch, input]`) into `out`, from a zero state.
    pub fn run(
        &self,
        w: &SvdfWeights,
        (batch, input): (usize, usize),
        x: &[i8],
        out: &mut [i8],
        scratch: &mut [u8],
    ) -> Result<(), KernelError> {
        self.check(w, (batch, input), out.len(), scratch.len())?;
        expect_len("input", x.len(), batch * input)?;
        let (rank, memory) = (self.rank as usize, self.memory as usize);
        let filters = w.time.len() / memory;
        let units = filters / rank;
        let state_bytes = (batch * filters * memory * 2).next_multiple_of(4);
        let (state, sums) = scratch.split_at_mut(state_bytes);
        let state: &mut [i16] =
            bytemuck::try_cast_slice_mut(&mut state[..batch * filters * memory * 2])
                .map_err(|_| MISALIGNED)?;
        let sums: &mut [i32] = bytemuck::try_cast_slice_mut(&mut sums[..batch * filters * 8])
            .map_err(|_| MISALIGNED)?;
        let (filter_sums, unit_sums) = sums.split_at_mut(batch * filters);
        // A zero state shifted by one step is still zero: only the newest step is written.
        state.fill(0);
        for (b, row) in x.chunks_exact(input).enumerate() {
            for (f, weights) in w.feature.chunks_exact(input).enumerate() {
                let dot: i32 = weights
                    .iter()
                    .zip(row)
                    .map(|(&wt, &v)| i32::from(wt) * (i32::from(v) - self.input_zero_point))
                    .sum();
                let (m, s) = (self.feature_scale.multiplier, self.feature_scale.shift);
                let v = multiply_by_quantized_multiplier(dot, m, s).clamp(-32768, 32767);
                state[(b * filters + f) * memory + memory - 1] = v as i16;
            }
        }
        for (b, sums) in filter_sums.chunks_exact_mut(filters).enumerate() {
            let steps = &state[b * filters * memory..(b + 1) * filters * memory];
            for ((sum, time), s) in sums
                .iter_mut()
                .zip(w.time.chunks_exact(memory))
                .zip(steps.chunks_exact(memory))
            {
                *sum = time
                    .iter()
                    .zip(s)
                    .map(|(&t, &v)| i32::from(t) * i32::from(v))
                    .fold(0i32, i32::wrapping_add);
            }
        }
        for (u, sum) in unit_sums[..batch * units].iter_mut().enumerate() {
            let reduced = filter_sums[u * rank..(u + 1) * rank]
                .iter()
                .fold(0i32, |a, &v| a.wrapping_add(v));
            *sum = reduced.wrapping_add(w.bias.map_or(0, |b| b[u % units]));
        }
        let (m, s) = (self.output_scale.multiplier, self.output_scale.shift);
        for (y, &sum) in out.iter_mut().zip(unit_sums.iter()) {
            let v =
                multiply_by_quantized_multiplier(sum, m, s).wrapping_add(self.output_zero_point);
            *y = v.clamp(-128, 127) as i8;
        }
        Ok(())
    }
}

const MISALIGNED: KernelError = KernelError::Param {
    what: "svdf: scratch is not 4-byte aligned",
};
