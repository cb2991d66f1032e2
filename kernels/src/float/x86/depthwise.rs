//! The float depthwise convolution with multiplier 1: channels in the
//! lanes, each summed over all its window's taps in order from a padded
//! copy of the input (see [`Padded`]).

use super::conv::{padded, Padded};
use super::vector::{Clamp, F32s};
use super::Range;
use crate::geometry::ConvGeometry;

/// Vectors of channels summed together (four accumulator chains hide the
/// add's latency).
const VECTORS: usize = 4;

/// The depthwise convolution over `V` vectors (lengths checked by the
/// caller); the portable kernel where [`Padded::new`] declines.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn depthwise_conv2d<V: F32s>(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    let Some(source) = Padded::new(g, input, filter.iter().all(|w| w.is_finite())) else {
        return crate::float::portable::depthwise_conv2d(g, 1, input, filter, bias, act, output);
    };
    let c = g.output.c as usize;
    let bias = padded(bias, c);
    let depthwise = Depthwise::<V> {
        input: &source.data,
        filter,
        bias: &bias,
        clamp: Clamp::new(act),
        offsets: &source.tap_offsets(g),
        channels: c,
    };
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let origin = source.origin_at(g, (b, oy, ox));
        let out = &mut output[pixel * c..][..c];
        let mut first = 0;
        while first + VECTORS * V::LANES <= c {
            depthwise.channels::<VECTORS>(origin, first, V::LANES, out);
            first += VECTORS * V::LANES;
        }
        while first < c {
            depthwise.channels::<1>(origin, first, (c - first).min(V::LANES), out);
            first += V::LANES;
        }
    });
}

/// One depthwise convolution's operands.
struct Depthwise<'a, V> {
    input: &'a [f32],
    filter: &'a [f32],
    bias: &'a [f32],
    clamp: Clamp<V>,
    offsets: &'a [usize],
    channels: usize,
}

impl<V: F32s> Depthwise<'_, V> {
    /// `N` vectors of channels from `first` of the pixel whose window
    /// starts at `origin`, the last one `last` channels wide (fewer than
    /// `LANES` only when `N` is 1).
    #[inline(always)]
    unsafe fn channels<const N: usize>(
        &self,
        origin: usize,
        first: usize,
        last: usize,
        out: &mut [f32],
    ) {
        let load = |values: *const f32| {
            if last == V::LANES {
                V::load(values)
            } else {
                V::load_first(values, last)
            }
        };
        let (input, filter) = (self.input.as_ptr(), self.filter.as_ptr());
        let mut acc = [V::zero(); N];
        for (tap, &offset) in self.offsets.iter().enumerate() {
            let x = input.add(origin + offset + first);
            let w = filter.add(tap * self.channels + first);
            for (v, sum) in acc.iter_mut().enumerate() {
                let lane = v * V::LANES;
                *sum = sum.mul_add(load(x.add(lane)), load(w.add(lane)));
            }
        }
        for (v, &sum) in acc.iter().enumerate() {
            let lane = first + v * V::LANES;
            let bias = V::load(self.bias.as_ptr().add(lane));
            self.clamp
                .finish(sum, bias)
                .store_first(out.as_mut_ptr().add(lane), last);
        }
    }
}
