//! int8 operators, bit-exact with the TFLite int8 reference kernels.
//!
//! Activations are asymmetric int8 (`real = scale * (q - zero_point)`),
//! weights symmetric int8 (per output channel for conv and depthwise), bias
//! int32 with scale `s_in * s_w`. Legacy uint8 models, run as int8 shifted
//! by 128, have per-tensor weights with a zero point: [`OutputStage::filter_offset`]
//! routes them to the reference loops of [`offset`]. These are the portable kernels: plain Rust
//! that every target compiles. Architecture-specific kernels live beside
//! them and must pass the same property tests against [`crate::naive`].

mod add;
#[cfg(arm_dsp)]
pub mod arm_dsp;
#[cfg(arm_mve)]
pub mod arm_mve;
pub(crate) mod conv;
mod dense;
mod depthwise;
pub mod dot;
pub mod lookup;
mod mean;
pub mod offset;
mod pool;
mod softmax;
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub mod x86;

/// Receptive-field values the DSP cores' convolution by quads holds (its
/// buffers live on the stack); 1x1 layers deeper than this take the
/// `op-deep-conv` family's path.
pub const DSP_COLUMN: usize = 576;

pub use add::{add, check as check_add, AddParams};
pub use conv::{check as check_conv2d, conv2d};
pub use dense::{check as check_fully_connected, fully_connected, DenseGeometry};
pub use depthwise::{check as check_depthwise_conv2d, depthwise_conv2d};
pub use lookup::{check as check_lookup, lookup};
pub use mean::{check as check_mean, mean, mean_of, MeanParams};
pub(crate) use pool::for_each_window;
pub use pool::{avg_pool, check as check_pool, max_pool, PoolRounding};
pub use softmax::{check as check_softmax, log_softmax, softmax, LogSoftmaxParams, SoftmaxParams};

use crate::error::{ensure, expect_len, KernelError};
use crate::quant::{ChannelRequant, Requant, Rounding};
use serde::{Deserialize, Serialize};

/// Weights with a zero point in a build without the `op-weight-offset`
/// family (a firmware whose model has none).
#[cfg(not(op_weight_offset))]
pub(crate) const WEIGHT_OFFSET_NOT_BUILT: KernelError = KernelError::Param {
    what: "weights with a zero point: this build has no op-weight-offset kernels",
};

/// The output stage of a convolution or dense layer: offsets, the
/// per-output-channel requantization and the fused activation clamp.
#[derive(Clone, Copy, Debug)]
pub struct OutputStage<'a> {
    /// `-input_zero_point`, added to every input value.
    pub input_offset: i32,
    /// `-filter_zero_point`, added to every weight: 0 for int8 models
    /// (symmetric weights); a legacy uint8 model's weights have a zero point.
    pub filter_offset: i32,
    /// `output_zero_point`, added after requantization.
    pub output_offset: i32,
    /// One multiplier per output channel (repeat it for per-tensor scales).
    pub requant: &'a [Requant],
    /// Lower clamp, in output units.
    pub act_min: i32,
    /// Upper clamp, in output units.
    pub act_max: i32,
    /// How the requantization rounds.
    pub rounding: Rounding,
}

impl OutputStage<'_> {
    /// Checks offsets, clamp range, multipliers and the optional bias for
    /// `channels` output channels.
    pub fn check(&self, channels: usize, bias: Option<&[i32]>) -> Result<(), KernelError> {
        bias.map_or(Ok(()), |b| expect_len("bias", b.len(), channels))?;
        expect_len("requantization multipliers", self.requant.len(), channels)?;
        ensure(
            (-128..=127).contains(&self.output_offset),
            "output zero point: must be an int8 value",
        )?;
        ensure(
            (-127..=128).contains(&self.input_offset),
            "input offset: must be minus an int8 zero point",
        )?;
        ensure(
            (-127..=128).contains(&self.filter_offset),
            "filter offset: must be minus an int8 zero point",
        )?;
        Clamp {
            min: self.act_min,
            max: self.act_max,
        }
        .check()?;
        ensure(
            self.requant.iter().all(Requant::is_valid),
            "requantization shift: must be in -31..=31",
        )
    }

    /// Adds the channel's bias, if any, then requantizes.
    #[inline(always)]
    pub fn finish_biased(&self, acc: i32, bias: Option<&[i32]>, channel: usize) -> i8 {
        self.finish(bias.map_or(acc, |b| acc.wrapping_add(b[channel])), channel)
    }

    /// Requantizes one accumulator of output channel `channel`.
    #[inline(always)]
    pub fn finish(&self, acc: i32, channel: usize) -> i8 {
        self.saturate(ChannelRequant::new(self.requant[channel], self.rounding).apply(acc))
    }

    /// Adds the output zero point to a requantized value and clamps it.
    #[inline(always)]
    pub fn saturate(&self, scaled: i32) -> i8 {
        // max then min: `clamp` would test min <= max on every value; `check` did once.
        scaled
            .wrapping_add(self.output_offset)
            .max(self.act_min)
            .min(self.act_max) as i8
    }

    /// Whether the clamp is all of int8 (no activation, or a ReLU whose
    /// zero is the lowest value).
    pub fn full_range(&self) -> bool {
        self.act_min == i8::MIN as i32 && self.act_max == i8::MAX as i32
    }

    /// Requantizes one accumulator (bias included) with its channel's
    /// unpacked multiplier. `DOUBLE` must say whether the stage rounds
    /// twice ([`Rounding::Double`]) and `FULL` whether its clamp is
    /// [`full_range`](Self::full_range) (one saturating instruction on
    /// Arm): kernels choose both once per layer, not per value.
    #[inline(always)]
    pub fn finish_with<const DOUBLE: bool, const FULL: bool>(
        &self,
        acc: i32,
        requant: &ChannelRequant,
    ) -> i8 {
        self.saturate_with::<FULL>(if DOUBLE {
            requant.apply_double(acc)
        } else {
            requant.apply(acc)
        })
    }

    /// [`saturate`](Self::saturate) with `FULL` as for
    /// [`finish_with`](Self::finish_with).
    #[inline(always)]
    pub fn saturate_with<const FULL: bool>(&self, scaled: i32) -> i8 {
        OutputClamp::of(self).apply::<FULL>(scaled)
    }
}

/// A stage's output offset and clamp as values of their own, for loops
/// that store through pointers the compiler cannot tell from the stage's
/// (it would reload them after every store).
#[derive(Clone, Copy, Debug)]
pub struct OutputClamp {
    offset: i32,
    clamp: Clamp,
}

impl OutputClamp {
    /// The offset and clamp of `stage`.
    #[inline(always)]
    pub fn of(stage: &OutputStage) -> Self {
        Self {
            offset: stage.output_offset,
            clamp: Clamp {
                min: stage.act_min,
                max: stage.act_max,
            },
        }
    }

    /// [`OutputStage::saturate_with`].
    #[inline(always)]
    pub fn apply<const FULL: bool>(&self, scaled: i32) -> i8 {
        let scaled = scaled.wrapping_add(self.offset);
        let Clamp { min, max } = if FULL { Clamp::FULL } else { self.clamp };
        scaled.max(min).min(max) as i8
    }
}

/// An int8 clamp range, for ops with no requantization (pools).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clamp {
    /// Lower bound.
    pub min: i32,
    /// Upper bound.
    pub max: i32,
}

impl Clamp {
    /// The full int8 range.
    pub const FULL: Clamp = Clamp {
        min: -128,
        max: 127,
    };

    /// Checks the range lies inside int8.
    pub fn check(&self) -> Result<(), KernelError> {
        ensure(
            -128 <= self.min && self.min <= self.max && self.max <= 127,
            "activation range: must be inside int8",
        )
    }
}
