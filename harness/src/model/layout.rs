//! The layout a model's inputs and outputs have outside bench. bench holds
//! every activation NHWC; a model imported from ONNX is NCHW, and its user
//! gives and gets data in that layout, so values cross the boundary
//! through one transposition (in `bench infer`, dataset samples and
//! calibration samples), never inside the device.

use kernels::geometry::Shape;
use kernels::model::TensorDesc;

/// The order of a 4-D tensor's axes in the model's own file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelLayout {
    /// Channels last, as bench holds it (TFLite, the zoo).
    #[default]
    Nhwc,
    /// Channels first (ONNX): `[N, C, H, W]`.
    Nchw,
}

impl ModelLayout {
    /// Whether a tensor of `shape` is ordered differently in the model's
    /// layout: with one position or one channel, CHW order is HWC order.
    pub fn differs(self, shape: Shape) -> bool {
        self == ModelLayout::Nchw && shape.h * shape.w > 1 && shape.c > 1
    }

    /// One inference's array shape in the model's layout, without a batch
    /// of 1: `[h, w, c]` (`[c, h, w]` for NCHW), `[c]` for a flat tensor; a
    /// larger batch stays in front.
    pub fn item_dims(self, shape: Shape) -> Vec<u64> {
        let (n, h, w, c) = (
            shape.n as u64,
            shape.h as u64,
            shape.w as u64,
            shape.c as u64,
        );
        let mut item = if h == 1 && w == 1 {
            vec![c]
        } else if self == ModelLayout::Nchw {
            vec![c, h, w]
        } else {
            vec![h, w, c]
        };
        if n > 1 {
            item.insert(0, n);
        }
        item
    }

    /// For a tensor of `shape`, the index in the model's layout of each
    /// element in bench's (NHWC) order; `None` where the orders agree.
    fn permutation(self, shape: Shape) -> Option<Vec<usize>> {
        if !self.differs(shape) {
            return None;
        }
        let [n, h, w, c] = [shape.n, shape.h, shape.w, shape.c].map(|d| d as usize);
        let mut from = Vec::with_capacity(n * h * w * c);
        for b in 0..n {
            for y in 0..h {
                for x in 0..w {
                    from.extend((0..c).map(|ch| ((b * c + ch) * h + y) * w + x));
                }
            }
        }
        Some(from)
    }

    /// Values of a tensor of `shape` (elements of `size` bytes), in the
    /// model's layout, reordered into bench's.
    pub fn to_bench<T: Copy>(self, shape: Shape, values: &[T], size: usize) -> Vec<T> {
        match self.permutation(shape) {
            Some(from) if values.len() == from.len() * size => from
                .iter()
                .flat_map(|&i| values[i * size..(i + 1) * size].iter().copied())
                .collect(),
            _ => values.to_vec(),
        }
    }

    /// Values of a tensor of `shape` (elements of `size` bytes), in bench's
    /// layout, reordered into the model's.
    pub fn to_model<T: Copy>(self, shape: Shape, values: &[T], size: usize) -> Vec<T> {
        match self.permutation(shape) {
            Some(from) if values.len() == from.len() * size => {
                let mut out = values.to_vec();
                for (j, &i) in from.iter().enumerate() {
                    out[i * size..(i + 1) * size]
                        .copy_from_slice(&values[j * size..(j + 1) * size]);
                }
                out
            }
            _ => values.to_vec(),
        }
    }
}

impl ModelLayout {
    /// One inference's bytes of tensor `desc`, in the model's layout,
    /// reordered into bench's.
    pub fn bench_bytes(self, desc: &TensorDesc, bytes: &[u8]) -> Vec<u8> {
        self.to_bench(desc.shape, bytes, element_size(desc))
    }

    /// One inference's bytes of tensor `desc`, in bench's layout,
    /// reordered into the model's.
    pub fn model_bytes(self, desc: &TensorDesc, bytes: &[u8]) -> Vec<u8> {
        self.to_model(desc.shape, bytes, element_size(desc))
    }
}

/// Bytes per element of a tensor (packed bits, which no layout reorders, count as 1).
fn element_size(desc: &TensorDesc) -> usize {
    let bytes = desc.byte_len().unwrap_or(0);
    (bytes / desc.shape.elements().unwrap_or(1).max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nchw_values_reach_nhwc_and_come_back() {
        // [1, C=2, H=2, W=3] numbered in NCHW order.
        let shape = Shape::new(1, 2, 3, 2);
        let nchw: Vec<u16> = (0..12).collect();
        let nhwc = ModelLayout::Nchw.to_bench(shape, &nchw, 1);
        assert_eq!(nhwc, [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]);
        assert_eq!(ModelLayout::Nchw.to_model(shape, &nhwc, 1), nchw);
        // Bytes of 2-byte elements move as whole elements.
        let bytes: Vec<u8> = nchw.iter().flat_map(|v| v.to_le_bytes()).collect();
        let moved = ModelLayout::Nchw.to_bench(shape, &bytes, 2);
        let back: Vec<u16> = moved
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(back, nhwc);
    }

    #[test]
    fn one_channel_one_position_and_nhwc_models_keep_their_order() {
        let values: Vec<u8> = (0..6).collect();
        for (layout, shape) in [
            (ModelLayout::Nchw, Shape::new(1, 2, 3, 1)),
            (ModelLayout::Nchw, Shape::flat(1, 6)),
            (ModelLayout::Nhwc, Shape::new(1, 1, 3, 2)),
        ] {
            assert_eq!(layout.to_bench(shape, &values, 1), values);
        }
        assert_eq!(
            ModelLayout::Nchw.item_dims(Shape::new(1, 4, 5, 3)),
            [3, 4, 5]
        );
        assert_eq!(
            ModelLayout::Nhwc.item_dims(Shape::new(1, 4, 5, 3)),
            [4, 5, 3]
        );
        assert_eq!(
            ModelLayout::Nchw.item_dims(Shape::new(2, 4, 5, 3)),
            [2, 3, 4, 5]
        );
    }
}
