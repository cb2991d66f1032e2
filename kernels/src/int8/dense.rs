//! int8 fully connected layer (TFLite `FULLY_CONNECTED`).

use super::OutputStage;
use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::MAX_DEPTH;
use serde::{Deserialize, Serialize};

/// Batch size and the two feature counts of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseGeometry {
    /// Rows of the input.
    pub batch: u32,
    /// Input features (the dot-product length).
    pub in_features: u32,
    /// Output features.
    pub out_features: u32,
}

impl DenseGeometry {
    /// Checks extents and the dot-product length.
    pub fn check(&self) -> Result<(), KernelError> {
        ensure(
            self.batch >= 1 && self.in_features >= 1 && self.out_features >= 1,
            "dense geometry: extents must be positive",
        )?;
        ensure(
            self.in_features as usize <= MAX_DEPTH && self.out_features as usize <= MAX_DEPTH,
            "dense geometry: features must be at most 65535",
        )
    }

    /// The same layer as a 1x1 convolution over `batch` pixels.
    pub fn as_conv(&self) -> crate::geometry::ConvGeometry {
        use crate::geometry::{ConvGeometry, Padding, Shape};
        ConvGeometry::new(
            Shape::new(1, 1, self.batch, self.in_features),
            self.out_features,
            (1, 1),
            (1, 1),
            (1, 1),
            Padding::Valid,
        )
    }

    /// Checks the geometry and the element counts of the input and output.
    pub fn check_io(&self, input: usize, output: usize) -> Result<(), KernelError> {
        self.check()?;
        expect_len(
            "input",
            input,
            self.batch as usize * self.in_features as usize,
        )?;
        expect_len(
            "output",
            output,
            self.batch as usize * self.out_features as usize,
        )
    }
}

/// Checks a dense layer's arguments by their lengths.
pub fn check(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: usize,
    weights: usize,
    bias: Option<&[i32]>,
    output: usize,
) -> Result<(), KernelError> {
    g.check_io(input, output)?;
    expect_len(
        "weights",
        weights,
        g.out_features as usize * g.in_features as usize,
    )?;
    stage.check(g.out_features as usize, bias)
}

/// int8 dense layer; weights `[out, in]` row-major.
pub fn fully_connected(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    check(g, stage, input.len(), weights.len(), bias, output.len())?;
    // The x86 kernels take weights with a zero point too.
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::fully_connected(g, stage, input, weights, bias, output) {
        return Ok(());
    }
    if stage.filter_offset != 0 {
        #[cfg(op_weight_offset)]
        {
            super::offset::conv2d(&g.as_conv(), stage, input, weights, bias, output);
            return Ok(());
        }
        #[cfg(not(op_weight_offset))]
        return Err(super::WEIGHT_OFFSET_NOT_BUILT);
    }
    #[cfg(arm_mve)]
    super::arm_mve::conv::fully_connected(g, stage, input, weights, bias, output);
    #[cfg(not(arm_mve))]
    rows(g, stage, input, weights, bias, output);
    Ok(())
}

/// [`fully_connected`] row by row, four output features at a time.
#[cfg(not(arm_mve))]
fn rows(
    g: &DenseGeometry,
    stage: &OutputStage,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    use super::dot::{dot, dot4};
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let offset = stage.input_offset;
    for (x, out) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        // Four output features at a time share the input row.
        let mut o = 0;
        while o + 4 <= n {
            let sums = dot4(
                x,
                [0, 1, 2, 3].map(|j| &weights[(o + j) * k..][..k]),
                offset,
            );
            for j in 0..4 {
                out[o + j] = stage.finish_biased(sums[j], bias, o + j);
            }
            o += 4;
        }
        for (o, y) in out.iter_mut().enumerate().skip(o) {
            *y = stage.finish_biased(dot(x, &weights[o * k..][..k], offset), bias, o);
        }
    }
}
