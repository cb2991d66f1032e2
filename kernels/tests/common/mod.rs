//! Helpers shared by the kernel tests: a seeded generator and random
//! quantization parameters.
#![allow(dead_code)]

use kernels::geometry::{ConvGeometry, Padding, Shape};
use kernels::int8::OutputStage;
use kernels::quant::{quantize_multiplier, Requant};

/// SplitMix64: small, seeded, good enough to fill test tensors.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next_u64() as i8).collect()
    }

    pub fn i8s_in(&mut self, n: usize, lo: i8, hi: i8) -> Vec<i8> {
        (0..n)
            .map(|_| self.range(lo as i64, hi as i64) as i8)
            .collect()
    }

    pub fn i32s(&mut self, n: usize, bound: i32) -> Vec<i32> {
        (0..n)
            .map(|_| self.range(-bound as i64, bound as i64) as i32)
            .collect()
    }

    pub fn signs(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| if self.next_u64() & 1 == 1 { -1.0 } else { 1.0 })
            .collect()
    }
}

/// Random per-channel requantization, offsets and clamp, as a real model
/// would have them (multipliers between 1e-5 and 4, so left shifts occur
/// too), rounding twice (TFLite's default) or, one time in four, once.
pub struct Quant {
    pub requant: Vec<Requant>,
    pub rounding: kernels::quant::Rounding,
    pub input_offset: i32,
    pub output_offset: i32,
    pub act: (i32, i32),
    pub filter_offset: i32,
}

impl Quant {
    pub fn random(rng: &mut Rng, channels: usize) -> Self {
        let requant = (0..channels)
            .map(|_| quantize_multiplier(10f64.powf(-5.0 + 5.6 * rng.unit())))
            .collect();
        let a = rng.range(-128, 127) as i32;
        let b = rng.range(-128, 127) as i32;
        let rounding = if rng.next_u64().is_multiple_of(4) {
            kernels::quant::Rounding::Single
        } else {
            kernels::quant::Rounding::Double
        };
        Quant {
            requant,
            rounding,
            input_offset: -(rng.range(-128, 127) as i32),
            filter_offset: 0,
            output_offset: rng.range(-128, 127) as i32,
            act: if rng.next_u64().is_multiple_of(3) {
                (-128, 127)
            } else {
                (a.min(b), a.max(b))
            },
        }
    }

    /// The same, but one time in three with weights that have a zero
    /// point (legacy uint8 models), for the kernels that take one.
    pub fn random_with_filter_offset(rng: &mut Rng, channels: usize) -> Self {
        let q = Quant::random(rng, channels);
        let filter_offset = match rng.next_u64().is_multiple_of(3) {
            true => -(rng.range(-128, 127) as i32),
            false => 0,
        };
        Quant { filter_offset, ..q }
    }

    pub fn stage(&self) -> OutputStage<'_> {
        OutputStage {
            input_offset: self.input_offset,
            filter_offset: self.filter_offset,
            output_offset: self.output_offset,
            requant: &self.requant,
            act_min: self.act.0,
            act_max: self.act.1,
            rounding: self.rounding,
        }
    }
}

/// A random convolution geometry from the proptest parameters; `None` when
/// the window leaves no output.
#[allow(clippy::too_many_arguments)]
pub fn geometry(
    n: u32,
    h: u32,
    w: u32,
    ic: u32,
    oc: u32,
    k: (u32, u32),
    stride: (u32, u32),
    dilation: (u32, u32),
    padding: Padding,
) -> Option<ConvGeometry> {
    let g = ConvGeometry::new(Shape::new(n, h, w, ic), oc, k, stride, dilation, padding);
    (g.output.h > 0 && g.output.w > 0).then_some(g)
}

/// SAME, VALID, or explicit amounts of 0-3 on each side: PyTorch's
/// `padding=1` on a stride-2 convolution, one-sided pads, and pads wider
/// than the kernel (outputs that see padding only).
pub fn paddings() -> impl proptest::strategy::Strategy<Value = Padding> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Padding::Same),
        Just(Padding::Valid),
        (0u32..=3, 0u32..=3, 0u32..=3, 0u32..=3).prop_map(|(top, bottom, left, right)| {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

/// Every instruction-set level this CPU runs, each selected while the
/// caller's loop body runs, the portable one last (and left selected).
#[cfg(target_arch = "x86_64")]
#[allow(dead_code)]
pub fn isas() -> impl Iterator<Item = kernels::x86::Isa> {
    use kernels::x86::{select, Isa};
    Isa::ALL
        .into_iter()
        .rev()
        .filter(|isa| isa.is_available())
        .map(select)
}

/// The compiled kernels: other targets choose nothing at run time.
#[cfg(not(target_arch = "x86_64"))]
#[allow(dead_code)]
pub fn isas() -> impl Iterator<Item = &'static str> {
    std::iter::once("compiled")
}
