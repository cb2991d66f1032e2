//! Loading (validation) and execution of a model blob.

use super::desc::*;
#[cfg(op_fused)]
use super::fused;
use super::in_place::{RowSchedule, Step, SCRATCH_BYTES};
use super::{CONST_ALIGN, FORMAT_VERSION, HEADER_BYTES, MAGIC};
use crate::binary;
#[cfg(op_binary)]
use crate::binary::BinaryOutput;
use crate::broadcast::{Binary, Int8Binary};
use crate::clock::{NoProfile, Profiler};
use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::{ConvGeometry, Shape, Window};
#[cfg(op_int4)]
use crate::int4;
use crate::int8::{self, AddParams, DenseGeometry, OutputStage};
use crate::quant::Requant;
#[cfg(op_sparse)]
use crate::sparse;
use crate::{float, hybrid, layout, lstm, resize};
use core::ops::Range;

/// Why a blob was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The blob is shorter than its header or its sections say.
    #[error("failed to load model: blob is truncated ({have} bytes, {need} needed)")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Wrong magic number: not a model blob.
    #[error("failed to load model: not a bench model blob (bad magic)")]
    BadMagic,
    /// Written by another format version.
    #[error(
        "failed to load model: format version {0} is not supported (expected {FORMAT_VERSION})"
    )]
    Version(u16),
    /// The blob or its constant section is not 4-byte aligned in memory.
    #[error("failed to load model: blob must be 4-byte aligned in memory with a 16-byte aligned constant section")]
    Misaligned,
    /// The graph header or an operator does not decode.
    #[error("failed to load model: operator {op} does not decode")]
    Decode {
        /// Index of the operator (`u32::MAX` for the graph header).
        op: u32,
    },
    /// The graph section has bytes after the last operator.
    #[error("failed to load model: {0} unexpected bytes after the last operator")]
    TrailingBytes(usize),
    /// An operator's shapes, constants or parameters do not fit its kernel.
    #[error("failed to load model: operator {op} ({name}): {error}")]
    Shape {
        /// Index of the operator.
        op: u32,
        /// Operator name.
        name: &'static str,
        /// The kernel's reason.
        error: KernelError,
    },
    /// An operator refers to memory outside the arena or the constants, or misaligned.
    #[error("failed to load model: operator {op} ({name}): {what}")]
    Invalid {
        /// Index of the operator (`u32::MAX` for the graph header).
        op: u32,
        /// Operator name.
        name: &'static str,
        /// What is wrong.
        what: &'static str,
    },
}

/// Why a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The arena is smaller than the model needs, or misaligned.
    #[error("failed to run model: arena must be 4-byte aligned and hold {need} bytes, got {have}")]
    Arena {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// A kernel refused its arguments.
    #[error("failed to run operator {op} ({name}): {error}")]
    Kernel {
        /// Index of the operator.
        op: u32,
        /// Operator name.
        name: &'static str,
        /// The kernel's reason.
        error: KernelError,
    },
}

/// The result of one inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exit head that fired, or `None` when the final output was reached.
    pub exit: Option<u8>,
    /// Where the returned output lives in the arena.
    pub output: TensorDesc,
    /// Number of operators executed.
    pub ops_run: u32,
}

/// A validated model blob, borrowed in place.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    header: GraphHeader,
    ops: &'a [u8],
    consts: &'a [u8],
    /// The operators decoded once ([`Model::with_decoded_ops`]) on a
    /// host; otherwise each run decodes them from `ops`. Boards have no
    /// such field: the extra branch cost them instructions on every
    /// operator (KWS on qemu-m4: 15 K more).
    #[cfg(feature = "std")]
    decoded: Option<&'a [Op]>,
}

fn read_u32(blob: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([blob[at], blob[at + 1], blob[at + 2], blob[at + 3]])
}

fn region(t: &TensorDesc) -> Option<Range<usize>> {
    let start = t.offset as usize;
    Some(start..start.checked_add(t.byte_len()?)?)
}

fn disjoint(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.end <= b.start || b.end <= a.start
}

/// A convolution or dense layer as [`Model::weighted_layers`] lists it.
struct WeightedLayer {
    geometry: ConvGeometry,
    weights: Weights,
    stage: Stage,
    /// A dense layer (as a 1x1 convolution).
    dense: bool,
}

impl<'a> Model<'a> {
    /// Validates a blob: header, every operator's encoding, every tensor
    /// inside the arena and aligned, every constant inside the constant
    /// section and aligned, no operator writing over its own inputs, and
    /// supported combinations of types, and every operator's shapes,
    /// constants and parameters by its kernel's own length checks.
    pub fn parse(blob: &'a [u8]) -> Result<Self, LoadError> {
        if blob.len() < HEADER_BYTES {
            return Err(LoadError::Truncated {
                need: HEADER_BYTES,
                have: blob.len(),
            });
        }
        if blob[..8] != MAGIC {
            return Err(LoadError::BadMagic);
        }
        let version = u16::from_le_bytes([blob[8], blob[9]]);
        if version != FORMAT_VERSION {
            return Err(LoadError::Version(version));
        }
        let graph_len = read_u32(blob, 12) as usize;
        let const_offset = read_u32(blob, 16) as usize;
        let const_len = read_u32(blob, 20) as usize;
        let graph_end = HEADER_BYTES.saturating_add(graph_len);
        let const_end = const_offset.saturating_add(const_len);
        if graph_end > blob.len() || const_end > blob.len() {
            return Err(LoadError::Truncated {
                need: graph_end.max(const_end),
                have: blob.len(),
            });
        }
        if !(blob.as_ptr() as usize).is_multiple_of(4)
            || !const_offset.is_multiple_of(CONST_ALIGN)
            || const_offset < graph_end
        {
            return Err(LoadError::Misaligned);
        }
        let (header, mut ops) =
            postcard::take_from_bytes::<GraphHeader>(&blob[HEADER_BYTES..graph_end])
                .map_err(|_| LoadError::Decode { op: u32::MAX })?;
        let model = Model {
            header,
            ops,
            consts: &blob[const_offset..const_end],
            #[cfg(feature = "std")]
            decoded: None,
        };
        let arena = header.arena_bytes as usize;
        for t in [header.input, header.output] {
            let r = region(&t).filter(|r| r.end <= arena && t.offset % 4 == 0);
            r.ok_or(LoadError::Invalid {
                op: u32::MAX,
                name: "graph",
                what: "input or output tensor lies outside the arena",
            })?;
        }
        // Operators inside a fused segment are checked with it, as it runs them.
        let mut in_segment = 0u32;
        for i in 0..header.op_count {
            let (op, rest) =
                postcard::take_from_bytes::<Op>(ops).map_err(|_| LoadError::Decode { op: i })?;
            if let Op::Fused { layers, band } = op {
                // Refused here unless the fused family is built.
                model.validate(i, &op)?;
                #[cfg(op_fused)]
                model.validate_fused(i, layers, band, rest)?;
                #[cfg(not(op_fused))]
                let _ = band;
                in_segment = layers;
            } else if in_segment > 0 {
                in_segment -= 1;
            } else {
                model.validate(i, &op)?;
            }
            ops = rest;
        }
        if !ops.is_empty() {
            return Err(LoadError::TrailingBytes(ops.len()));
        }
        Ok(model)
    }

    /// The graph header: arena size, op count, input and output.
    pub fn header(&self) -> &GraphHeader {
        &self.header
    }

    /// Bytes of the constant section (weights, biases, requantization).
    pub fn const_bytes(&self) -> usize {
        self.consts.len()
    }

    /// Bytes of arena a run needs.
    pub fn arena_bytes(&self) -> usize {
        self.header.arena_bytes as usize
    }

    /// The model whose runs read its operators from `decoded` (this
    /// model's [`ops`](Self::ops), collected once) instead of decoding
    /// them at every run: a host, whose memory is plentiful, saves a
    /// decode per operator per inference (on a model of small layers,
    /// several percent of its time). Boards decode as they go, keeping
    /// RAM for the arena.
    #[cfg(feature = "std")]
    pub fn with_decoded_ops(self, decoded: &'a [Op]) -> Self {
        Model {
            decoded: Some(decoded),
            ..self
        }
    }

    /// The operators in execution order.
    pub fn ops(&self) -> impl Iterator<Item = Op> + Clone + 'a {
        #[cfg(feature = "std")]
        let decoded = self.decoded;
        let mut rest = self.ops;
        (0..self.header.op_count).map_while(move |_i| {
            #[cfg(feature = "std")]
            if let Some(decoded) = decoded {
                return decoded.get(_i as usize).copied();
            }
            let (op, tail) = postcard::take_from_bytes::<Op>(rest).ok()?;
            rest = tail;
            Some(op)
        })
    }

    /// Every convolution and dense layer: its geometry (a dense layer as a
    /// 1x1 convolution over its batch), weights and output stage.
    fn weighted_layers(&self) -> impl Iterator<Item = WeightedLayer> + 'a {
        self.ops().filter_map(|op| match op {
            Op::Conv2d {
                input,
                output,
                window,
                weights,
                stage,
            } => Some(WeightedLayer {
                geometry: ConvGeometry {
                    input: input.shape,
                    output: output.shape,
                    window,
                },
                weights,
                stage,
                dense: false,
            }),
            Op::FullyConnected {
                input,
                output,
                weights,
                stage,
            } => Some(WeightedLayer {
                geometry: dense_geometry(&input, &output).as_conv(),
                weights,
                stage,
                dense: true,
            }),
            _ => None,
        })
    }

    /// The int8 filters of the convolutions and dense layers, each with
    /// its geometry (a dense layer as a 1x1 convolution over its batch)
    /// and its `filter_offset` (0 but in legacy uint8 models), for kernels
    /// that reorder weights once, ahead of the runs.
    pub fn int8_filters(&self) -> impl Iterator<Item = (ConvGeometry, &'a [i8], i32)> + 'a {
        let model = *self;
        self.weighted_layers().filter_map(move |layer| match layer {
            WeightedLayer {
                weights: Weights::Int8 { filter, .. },
                stage: Stage::Int8 { filter_offset, .. },
                ..
            } => Some((layer.geometry, model.typed::<i8>(filter), filter_offset)),
            _ => None,
        })
    }

    /// The float32 filters of the convolutions and dense layers, each with
    /// its geometry as [`int8_filters`](Self::int8_filters) gives it.
    pub fn f32_filters(&self) -> impl Iterator<Item = (ConvGeometry, &'a [f32])> + 'a {
        let model = *self;
        self.weighted_layers()
            .filter_map(move |layer| match layer.weights {
                Weights::F32 { filter, .. } => Some((layer.geometry, model.typed::<f32>(filter))),
                _ => None,
            })
    }

    /// The int4 filters of the convolutions and dense layers (weights
    /// without a zero point), each with its geometry as
    /// [`int8_filters`](Self::int8_filters) gives it.
    pub fn int4_filters(&self) -> impl Iterator<Item = (ConvGeometry, &'a [u8])> + 'a {
        let model = *self;
        self.weighted_layers().filter_map(move |layer| match layer {
            WeightedLayer {
                weights: Weights::Int4 { filter, .. },
                stage: Stage::Int8 {
                    filter_offset: 0, ..
                },
                ..
            } => Some((layer.geometry, model.typed::<u8>(filter))),
            _ => None,
        })
    }

    /// The block-sparse filters of the convolutions and dense layers, each
    /// with its geometry as [`int8_filters`](Self::int8_filters) gives it.
    pub fn block_filters(
        &self,
    ) -> impl Iterator<Item = (ConvGeometry, crate::sparse::blocks::Blocks<'a>)> + 'a {
        let model = *self;
        self.weighted_layers()
            .filter_map(move |layer| match layer.weights {
                Weights::Blocks {
                    row_ptr, entries, ..
                } => Some((
                    layer.geometry,
                    crate::sparse::blocks::Blocks {
                        row_ptr: model.typed::<u32>(row_ptr),
                        entries: model.typed::<u32>(entries),
                    },
                )),
                _ => None,
            })
    }

    /// The sparse filters of the depthwise layers (`sparse::depthwise`'s
    /// form), each with its geometry, for kernels that lay them out again
    /// once, ahead of the runs.
    pub fn sparse_depthwise_filters(
        &self,
    ) -> impl Iterator<Item = (ConvGeometry, crate::sparse::Csr<'a>)> + 'a {
        let model = *self;
        self.ops().filter_map(move |op| match op {
            Op::DepthwiseConv2d {
                input,
                output,
                window,
                weights:
                    Weights::Sparse {
                        row_ptr, entries, ..
                    },
                ..
            } => Some((
                ConvGeometry {
                    input: input.shape,
                    output: output.shape,
                    window,
                },
                crate::sparse::Csr {
                    row_ptr: model.typed::<u32>(row_ptr),
                    entries: model.typed::<u32>(entries),
                },
            )),
            _ => None,
        })
    }

    /// The sparse filters of the convolutions and dense layers, each with
    /// its geometry as [`int8_filters`](Self::int8_filters) gives it and
    /// whether it is a dense layer's, for kernels that lay them out again
    /// once, ahead of the runs.
    pub fn sparse_filters(
        &self,
    ) -> impl Iterator<Item = (ConvGeometry, crate::sparse::Csr<'a>, bool)> + 'a {
        let model = *self;
        self.weighted_layers()
            .filter_map(move |layer| match layer.weights {
                Weights::Sparse {
                    row_ptr, entries, ..
                } => Some((
                    layer.geometry,
                    crate::sparse::Csr {
                        row_ptr: model.typed::<u32>(row_ptr),
                        entries: model.typed::<u32>(entries),
                    },
                    layer.dense,
                )),
                _ => None,
            })
    }

    /// The input tensor's bytes in `arena`, to be filled before [`Model::run`].
    pub fn input_mut<'x>(&self, arena: &'x mut [u8]) -> Option<&'x mut [u8]> {
        arena.get_mut(region(&self.header.input)?)
    }

    /// The bytes of tensor `t` in `arena`.
    pub fn tensor<'x>(&self, arena: &'x [u8], t: &TensorDesc) -> Option<&'x [u8]> {
        arena.get(region(t)?)
    }

    fn validate(&self, i: u32, op: &Op) -> Result<(), LoadError> {
        let name = op.name();
        let fail = |what| LoadError::Invalid { op: i, name, what };
        if !built_in(op) {
            return Err(fail(
                "this operator's kernels are not built into this program (a firmware links the families its model uses)",
            ));
        }
        let arena = self.arena_bytes();
        let (inputs, output) = op.io();
        let placed = |t: TensorDesc| {
            let aligned = matches!(t.dtype, DType::I8 | DType::U8) || t.offset.is_multiple_of(4);
            region(&t)
                .filter(|r| r.end <= arena && aligned)
                .ok_or(fail("tensor lies outside the arena or is misaligned"))
        };
        let input_regions = [
            inputs[0].map(placed).transpose()?,
            inputs[1].map(placed).transpose()?,
        ];
        if let Some(out) = output.map(placed).transpose()? {
            // A reshape may write in place (exactly its input's bytes), and
            // a convolution whose rows can be written back behind it.
            let same_start = input_regions[0].as_ref().map(|r| r.start) == Some(out.start);
            let in_place = (matches!(op, Op::Reshape { .. })
                && input_regions[0].as_ref() == Some(&out))
                || (same_start && input_regions[1].is_none() && in_place_schedule(op).is_some())
                || add_in_place(op).is_some();
            if !in_place && input_regions.iter().flatten().any(|r| !disjoint(r, &out)) {
                return Err(fail("output overlaps an input"));
            }
        }
        let dtypes = (inputs[0].map(|t| t.dtype), output.map(|t| t.dtype));
        let consts_ok = |refs: ConstRefs| {
            refs.iter()
                .all(|&(r, elem)| r.is_none_or(|r| self.slice(r, elem).is_some()))
        };
        let ok = match *op {
            Op::Conv2d { weights, stage, .. } | Op::FullyConnected { weights, stage, .. } => {
                self.weights_ok(weights, stage, dtypes)
            }
            Op::DepthwiseConv2d { weights, stage, .. } => {
                matches!(
                    weights,
                    Weights::Int8 { .. } | Weights::F32 { .. } | Weights::Sparse { .. }
                ) && self.weights_ok(weights, stage, dtypes)
            }
            // Packed signs pool unclamped: a clamp has no meaning for signs.
            Op::MaxPool { act, .. } if dtypes == (Some(DType::Bits), Some(DType::Bits)) => {
                act == Act::UNCLAMPED
            }
            Op::AvgPool { act, .. } | Op::MaxPool { act, .. } => match act {
                Act::I8(_) => matches!(
                    dtypes,
                    (Some(DType::I8), Some(DType::I8)) | (Some(DType::I16), Some(DType::I16))
                ),
                Act::F32 { .. } => dtypes == (Some(DType::F32), Some(DType::F32)),
            },
            Op::Add { a, b, int8, .. } => {
                let want = if int8.is_some() {
                    DType::I8
                } else {
                    DType::F32
                };
                a.dtype == want && b.dtype == want && dtypes.1 == Some(want)
            }
            Op::Softmax { int8, .. } => {
                let want = Some(if int8.is_some() {
                    DType::I8
                } else {
                    DType::F32
                });
                dtypes == (want, want)
            }
            Op::Reshape { input, output } => {
                input.dtype == output.dtype && input.byte_len() == output.byte_len()
            }
            Op::Quantize { .. } => {
                matches!(dtypes, (Some(DType::F32), Some(DType::I8 | DType::I16)))
            }
            Op::Dequantize { .. } => {
                matches!(dtypes, (Some(DType::I8 | DType::I16), Some(DType::F32)))
            }
            Op::Requantize { .. } => matches!(
                dtypes,
                (Some(DType::I8 | DType::I16), Some(DType::I8 | DType::I16))
            ),
            Op::Curve { .. } | Op::Softmax16 { .. } => {
                dtypes == (Some(DType::I16), Some(DType::I16))
            }
            Op::PackBits { .. } => {
                matches!(dtypes, (Some(DType::I8 | DType::F32), Some(DType::Bits)))
            }
            Op::ExitHead { .. } => matches!(dtypes.0, Some(DType::I8 | DType::F32)),
            Op::Pad { input, output, .. }
            | Op::Transpose { input, output, .. }
            | Op::Slice { input, output, .. }
            | Op::Insert { input, output, .. }
            | Op::Remap { input, output, .. } => {
                input.dtype == output.dtype && input.dtype != DType::Bits
            }
            Op::Lookup { .. } => matches!(
                dtypes,
                (Some(DType::I8 | DType::U8), Some(DType::I8 | DType::U8))
            ),
            Op::Gather { output, .. } => {
                dtypes.0 == Some(DType::I32) && !matches!(output.dtype, DType::Bits | DType::I32)
            }
            Op::Binary {
                a, b, int8, op: o, ..
            } => {
                // int16 has ADD, SUB (TFLite's general int16 scaling) and MUL.
                let int16 = a.dtype == DType::I16
                    && matches!(
                        (o, int8),
                        (Binary::Add | Binary::Sub, Some(Int8Binary::Add(_)))
                            | (Binary::Mul, Some(Int8Binary::Mul(_)))
                    );
                let want = match int8 {
                    _ if int16 => DType::I16,
                    Some(_) => DType::I8,
                    None => DType::F32,
                };
                a.dtype == want && b.dtype == want && dtypes.1 == Some(want)
            }
            Op::Activation { .. } => dtypes == (Some(DType::F32), Some(DType::F32)),
            Op::BatchMatMul { a, b, int8, .. } => {
                let want = if int8.is_some() {
                    DType::I8
                } else {
                    DType::F32
                };
                a.dtype == want && b.dtype == want && dtypes.1 == Some(want)
            }
            Op::LogSoftmax { int8, .. } => {
                let dtype = if int8.is_some() {
                    DType::I8
                } else {
                    DType::F32
                };
                dtypes == (Some(dtype), Some(dtype))
            }
            Op::Lstm { input, scratch, .. } | Op::Svdf { input, scratch, .. } => {
                let disjoint_scratch = match (region(&input), region(&scratch)) {
                    (Some(a), Some(b)) => disjoint(&a, &b),
                    _ => false,
                };
                let lstm16 = matches!(op, Op::Lstm { params, .. }
                    if self.slice(*params, 4).is_some_and(lstm::is_16x8));
                let activations = if lstm16 { DType::I16 } else { DType::I8 };
                dtypes == (Some(activations), Some(activations))
                    && scratch.dtype == DType::I8
                    && disjoint_scratch
            }
            Op::ResizeBilinear { .. } => matches!(
                dtypes,
                (Some(DType::I8), Some(DType::I8)) | (Some(DType::F32), Some(DType::F32))
            ),
            Op::Mean { int8, input, .. } => {
                let want = Some(match int8 {
                    Some(_) if input.dtype == DType::I16 => DType::I16,
                    Some(_) => DType::I8,
                    None => DType::F32,
                });
                dtypes == (want, want)
            }
            // Its layers are checked with the segment (`validate_fused`).
            Op::Fused { .. } => true,
        };
        if !ok {
            return Err(fail(
                "unsupported combination of tensor types, weights and output stage",
            ));
        }
        let refs_ok = match *op {
            Op::Lookup { table, .. } => self.slice(table, 1).is_some(),
            Op::Softmax16 { luts, .. } => self
                .slice(luts, 2)
                .is_some_and(|t| t.len() == 4 * crate::int16::LUT_LEN),
            Op::Lstm { params, .. } => self.slice(params, 4).is_some(),
            Op::Svdf {
                feature,
                time,
                bias,
                ..
            } => consts_ok([(Some(feature), 1), (Some(time), 2), (bias, 4), (None, 1)]),
            Op::Binary {
                b_const: Some(r),
                b,
                ..
            }
            | Op::BatchMatMul {
                b_const: Some(r),
                b,
                ..
            } => self.slice(r, elem_bytes(b.dtype)).is_some(),
            Op::Remap { maps, .. } => maps.iter().flatten().all(|&m| self.slice(m, 4).is_some()),
            Op::Gather { table, .. } => self.slice(table, 1).is_some(),
            Op::Conv2d { weights, stage, .. }
            | Op::DepthwiseConv2d { weights, stage, .. }
            | Op::FullyConnected { weights, stage, .. } => {
                consts_ok(weight_refs(weights)) && consts_ok(stage_refs(stage))
            }
            _ => true,
        };
        if !refs_ok {
            return Err(fail(
                "constant lies outside the constant section or is misaligned",
            ));
        }
        self.check_shapes(op)
            .map_err(|error| LoadError::Shape { op: i, name, error })
    }

    /// Runs the kernel's own argument checks with the lengths the operator
    /// describes, so that a run can only fail on what the data holds.
    fn check_shapes(&self, op: &Op) -> Result<(), KernelError> {
        let n = |t: &TensorDesc| t.shape.elements().unwrap_or(usize::MAX);
        let words = |t: &TensorDesc| t.byte_len().unwrap_or(usize::MAX) / 4;
        let conv = |input: TensorDesc, output: TensorDesc, window| ConvGeometry {
            input: input.shape,
            output: output.shape,
            window,
        };
        let len = |r: ConstRef| r.len as usize;
        if let Some(checked) = self.check_int16_weighted(op) {
            return checked;
        }
        match *op {
            Op::Conv2d {
                input,
                output,
                window,
                weights,
                stage,
            } => {
                let g = conv(input, output, window);
                let (x, y) = (n(&input), n(&output));
                match weights {
                    Weights::Int8 { filter, bias } => int8::check_conv2d(
                        &g,
                        &self.int8_stage(stage).ok_or(MISMATCH)?,
                        x,
                        len(filter),
                        self.typed_opt(bias),
                        y,
                    ),
                    #[cfg(op_int4)]
                    Weights::Int4 { filter, bias } => int4::check_conv2d(
                        &g,
                        &self.int8_stage(stage).ok_or(MISMATCH)?,
                        x,
                        len(filter),
                        self.typed_opt(bias),
                        y,
                    ),
                    #[cfg(not(op_int4))]
                    Weights::Int4 { .. } => Err(NOT_BUILT),
                    #[cfg(op_sparse)]
                    Weights::Sparse {
                        row_ptr,
                        entries,
                        bias,
                    } => {
                        let csr = sparse::Csr {
                            row_ptr: self.typed(row_ptr),
                            entries: self.typed(entries),
                        };
                        sparse::check_conv2d(
                            &g,
                            &self.int8_stage(stage).ok_or(MISMATCH)?,
                            x,
                            &csr,
                            self.typed_opt(bias),
                            y,
                        )
                    }
                    #[cfg(not(op_sparse))]
                    Weights::Sparse { .. } => Err(NOT_BUILT),
                    #[cfg(op_sparse)]
                    Weights::Blocks {
                        row_ptr,
                        entries,
                        bias,
                    } => {
                        let blocks = sparse::blocks::Blocks {
                            row_ptr: self.typed(row_ptr),
                            entries: self.typed(entries),
                        };
                        sparse::blocks::check_conv2d(
                            &g,
                            &self.int8_stage(stage).ok_or(MISMATCH)?,
                            x,
                            &blocks,
                            self.typed_opt(bias),
                            y,
                        )
                    }
                    #[cfg(not(op_sparse))]
                    Weights::Blocks { .. } => Err(NOT_BUILT),
                    Weights::F32 { filter, bias } => float::check_conv2d(
                        &g,
                        x,
                        self.typed::<f32>(filter).len(),
                        self.typed_opt(bias),
                        y,
                    ),
                    Weights::Binary { filter, .. } => {
                        binary::check_conv2d(&g, words(&input), self.typed::<u32>(filter).len())?;
                        self.check_binary_stage(stage, output.shape.c as usize)
                    }
                }
            }
            Op::DepthwiseConv2d {
                input,
                output,
                window,
                depth_multiplier: m,
                weights,
                stage,
            } => {
                let g = conv(input, output, window);
                match weights {
                    Weights::Int8 { filter, bias } => int8::check_depthwise_conv2d(
                        &g,
                        m,
                        &self.int8_stage(stage).ok_or(MISMATCH)?,
                        n(&input),
                        len(filter),
                        self.typed_opt(bias),
                        n(&output),
                    ),
                    Weights::F32 { filter, bias } => float::check_depthwise_conv2d(
                        &g,
                        m,
                        n(&input),
                        self.typed::<f32>(filter).len(),
                        self.typed_opt(bias),
                        n(&output),
                    ),
                    #[cfg(op_sparse)]
                    Weights::Sparse {
                        row_ptr,
                        entries,
                        bias,
                    } => sparse::check_depthwise_conv2d(
                        &g,
                        m,
                        &self.int8_stage(stage).ok_or(MISMATCH)?,
                        n(&input),
                        &sparse::Csr {
                            row_ptr: self.typed(row_ptr),
                            entries: self.typed(entries),
                        },
                        self.typed_opt(bias),
                        n(&output),
                    ),
                    #[cfg(not(op_sparse))]
                    Weights::Sparse { .. } => Err(NOT_BUILT),
                    _ => Err(DEPTHWISE_WEIGHTS),
                }
            }
            Op::FullyConnected {
                input,
                output,
                weights,
                stage,
            } => {
                let g = dense_geometry(&input, &output);
                let (x, y) = (n(&input), n(&output));
                match weights {
                    Weights::Int8 { filter, .. } if matches!(stage, Stage::HybridF32 { .. }) => {
                        let Stage::HybridF32 { bias, .. } = stage else {
                            return Err(MISMATCH);
                        };
                        hybrid::check_fully_connected(&g, x, len(filter), self.typed_opt(bias), y)
                    }
                    Weights::Int8 { filter, bias } => int8::check_fully_connected(
                        &g,
                        &self.int8_stage(stage).ok_or(MISMATCH)?,
                        x,
                        len(filter),
                        self.typed_opt(bias),
                        y,
                    ),
                    #[cfg(op_int4)]
                    Weights::Int4 { filter, bias } => int4::check_fully_connected(
                        &g,
                        &self.int8_stage(stage).ok_or(MISMATCH)?,
                        x,
                        len(filter),
                        self.typed_opt(bias),
                        y,
                    ),
                    #[cfg(not(op_int4))]
                    Weights::Int4 { .. } => Err(NOT_BUILT),
                    #[cfg(op_sparse)]
                    Weights::Sparse {
                        row_ptr,
                        entries,
                        bias,
                    } => {
                        let csr = sparse::Csr {
                            row_ptr: self.typed(row_ptr),
                            entries: self.typed(entries),
                        };
                        sparse::check_fully_connected(
                            &g,
                            &self.int8_stage(stage).ok_or(MISMATCH)?,
                            x,
                            &csr,
                            self.typed_opt(bias),
                            y,
                        )
                    }
                    #[cfg(not(op_sparse))]
                    Weights::Sparse { .. } => Err(NOT_BUILT),
                    #[cfg(op_sparse)]
                    Weights::Blocks {
                        row_ptr,
                        entries,
                        bias,
                    } => {
                        let blocks = sparse::blocks::Blocks {
                            row_ptr: self.typed(row_ptr),
                            entries: self.typed(entries),
                        };
                        sparse::blocks::check_fully_connected(
                            &g,
                            &self.int8_stage(stage).ok_or(MISMATCH)?,
                            x,
                            &blocks,
                            self.typed_opt(bias),
                            y,
                        )
                    }
                    #[cfg(not(op_sparse))]
                    Weights::Blocks { .. } => Err(NOT_BUILT),
                    Weights::F32 { filter, bias } => float::check_fully_connected(
                        &g,
                        x,
                        self.typed::<f32>(filter).len(),
                        self.typed_opt(bias),
                        y,
                    ),
                    Weights::Binary { filter, .. } => {
                        binary::check_fully_connected(
                            &g,
                            words(&input),
                            self.typed::<u32>(filter).len(),
                        )?;
                        self.check_binary_stage(stage, g.out_features as usize)
                    }
                }
            }
            Op::MaxPool {
                input,
                output,
                window,
                ..
            } if input.dtype == DType::Bits => {
                binary::check_max_pool(&conv(input, output, window), words(&input), words(&output))
            }
            Op::AvgPool {
                input,
                output,
                window,
                act,
                ..
            }
            | Op::MaxPool {
                input,
                output,
                window,
                act,
            } => match act {
                Act::I8(clamp) if input.dtype == DType::I16 => crate::int16::check_pool(
                    &conv(input, output, window),
                    clamp,
                    n(&input),
                    n(&output),
                ),
                Act::I8(clamp) => {
                    int8::check_pool(&conv(input, output, window), clamp, n(&input), n(&output))
                }
                Act::F32 { .. } => {
                    float::check_pool(&conv(input, output, window), n(&input), n(&output))
                }
            },
            Op::Add {
                a,
                b,
                output,
                int8: Some(p),
                ..
            } => int8::check_add(&p, n(&a), n(&b), n(&output)),
            Op::Add {
                a,
                b,
                output,
                int8: None,
                ..
            } => {
                expect_len("second input", n(&b), n(&a))?;
                expect_len("output", n(&output), n(&a))
            }
            Op::Softmax {
                input,
                output,
                int8: Some(p),
                ..
            } => int8::check_softmax(&p, input.shape.c as usize, n(&input), n(&output)),
            Op::Quantize {
                input,
                output,
                scale,
                zero_point,
            } => {
                let range = int_range(output.dtype);
                ensure(
                    scale > 0.0 && (range.0..=range.1).contains(&zero_point),
                    "quantize: scale must be positive and the zero point in the output type",
                )?;
                expect_len("output", n(&output), n(&input))
            }
            Op::Requantize { input, output, .. }
            | Op::Curve { input, output, .. }
            | Op::Softmax16 { input, output, .. } => expect_len("output", n(&output), n(&input)),
            Op::Softmax { input, output, .. } | Op::Dequantize { input, output, .. } => {
                expect_len("output", n(&output), n(&input))
            }
            Op::PackBits { input, output, .. } => ensure(
                input.shape.c == output.shape.c && input.shape.pixels() == output.shape.pixels(),
                "pack bits: output must have the input's pixels and channels",
            ),
            Op::Reshape { .. } | Op::ExitHead { .. } | Op::Fused { .. } => Ok(()),
            Op::Lookup {
                input,
                output,
                table,
            } => int8::check_lookup(self.typed::<i8>(table).len(), n(&input), n(&output)),
            Op::Activation { input, output, .. } => expect_len("output", n(&output), n(&input)),
            Op::Binary {
                a,
                b,
                output,
                a_view,
                b_view,
                ..
            } => {
                ensure(
                    a_view.elements() == a.shape.elements()
                        && b_view.elements() == b.shape.elements(),
                    "binary: an operand's view does not hold its elements",
                )?;
                crate::broadcast::check(a_view, b_view, output.shape, [n(&a), n(&b), n(&output)])
            }
            #[cfg(op_matmul)]
            Op::BatchMatMul {
                a, b, output, adj, ..
            } => crate::matmul::check(
                (a.shape, b.shape, output.shape),
                adj,
                [n(&a), n(&b), n(&output)],
            ),
            Op::Pad {
                input,
                output,
                before,
                value,
            } => {
                let elem = elem_bytes(input.dtype);
                let (i, o) = (input.shape, output.shape);
                layout::check_pad(
                    i,
                    o,
                    before,
                    elem,
                    &value[..elem],
                    bytes(&input),
                    bytes(&output),
                )
            }
            Op::Transpose {
                input,
                output,
                perm,
            } => {
                let elem = elem_bytes(input.dtype);
                let (i, o) = (input.shape, output.shape);
                layout::check_transpose(i, o, perm, elem, bytes(&input), bytes(&output))
            }
            Op::Slice {
                input,
                output,
                begin,
                stride,
            } => {
                let elem = elem_bytes(input.dtype);
                let (i, o) = (input.shape, output.shape);
                layout::check_slice(i, o, begin, stride, elem, bytes(&input), bytes(&output))
            }
            Op::Insert {
                input,
                output,
                before,
            } => {
                let elem = elem_bytes(input.dtype);
                let (i, o) = (input.shape, output.shape);
                layout::check_insert(i, o, before, elem, bytes(&input), bytes(&output))
            }
            Op::Remap {
                input,
                output,
                maps,
            } => {
                let elem = elem_bytes(input.dtype);
                let maps = maps.map(|m| self.typed_opt::<u32>(m));
                let (i, o) = (input.shape, output.shape);
                layout::check_remap(i, o, maps, elem, bytes(&input), bytes(&output))
            }
            Op::ResizeBilinear { input, output, .. } => {
                resize::check(input.shape, output.shape, n(&input), n(&output))
            }
            #[cfg(op_gather)]
            Op::Gather {
                indices,
                table,
                output,
                outer,
                extent,
                inner_bytes,
            } => {
                let (outer, extent, inner) =
                    (outer as usize, extent as usize, inner_bytes as usize);
                expect_len("gather table", len(table), outer * extent * inner)?;
                expect_len("output", bytes(&output), outer * n(&indices) * inner)
            }
            Op::LogSoftmax {
                input,
                output,
                int8: Some(params),
            } => {
                params.check()?;
                int8::check_softmax(
                    &params.softmax,
                    output.shape.c as usize,
                    n(&input),
                    n(&output),
                )
            }
            Op::LogSoftmax {
                input,
                output,
                int8: None,
            } => {
                ensure(output.shape.c >= 1, "log_softmax: depth must be at least 1")?;
                expect_len("output", n(&output), n(&input))
            }
            #[cfg(op_lstm)]
            Op::Lstm {
                input,
                output,
                scratch,
                params,
            } => {
                let block = self.typed::<u8>(params);
                let (n_input, n_cell, time_major, scratch_len): (_, _, _, fn(_, _) -> _) =
                    if lstm::is_16x8(block) {
                        let l = crate::lstm16::Lstm16::parse(block)?;
                        let len = crate::lstm16::scratch_len;
                        (l.n_input, l.n_cell, l.time_major, len)
                    } else {
                        let l = lstm::Lstm::parse(block)?;
                        (l.n_input, l.n_cell, l.time_major, lstm::scratch_len)
                    };
                let (batch, time) = sequence(&input, time_major);
                ensure(
                    input.shape.c as usize == n_input
                        && output.shape.c as usize == n_cell
                        && sequence(&output, time_major) == (batch, time),
                    "lstm: tensor shapes do not match the parameters",
                )?;
                expect_len("lstm scratch", bytes(&scratch), scratch_len(batch, n_cell))
            }
            #[cfg(op_svdf)]
            Op::Svdf {
                input,
                output,
                scratch,
                params,
                ..
            } => params.check(
                &self.svdf_weights(op).ok_or(MISMATCH)?,
                svdf_rows(&input),
                n(&output),
                bytes(&scratch),
            ),
            Op::Mean {
                input,
                output,
                axes,
                int8,
            } => match int8 {
                Some(p) => {
                    int8::check_mean(&p, input.shape, output.shape, axes, n(&input), n(&output))
                }
                None => ensure(
                    layout::reduced(input.shape, axes).elements() == output.shape.elements(),
                    "mean: the output must have the elements of the input reduced over the axes",
                ),
            },
            // A family this build lacks: validate refused it before this.
            #[allow(unreachable_patterns)]
            Op::Lstm { .. } | Op::Svdf { .. } | Op::BatchMatMul { .. } | Op::Gather { .. } => {
                Err(NOT_BUILT)
            }
        }
    }

    /// Checks a binary output stage's per-channel constants.
    fn check_binary_stage(&self, stage: Stage, channels: usize) -> Result<(), KernelError> {
        match stage {
            Stage::BinaryToF32 {
                multiplier, bias, ..
            }
            | Stage::BinaryToI8 {
                multiplier, bias, ..
            } => {
                expect_len("multiplier", self.typed::<f32>(multiplier).len(), channels)?;
                expect_len("bias", self.typed::<f32>(bias).len(), channels)?;
                if let Stage::BinaryToI8 {
                    zero_point, clamp, ..
                } = stage
                {
                    clamp.check()?;
                    ensure(
                        (-128..=127).contains(&zero_point),
                        "output zero point: must be an int8 value",
                    )?;
                }
                Ok(())
            }
            Stage::BinaryToBits { thresholds } => {
                expect_len("thresholds", self.typed::<i32>(thresholds).len(), channels)
            }
            _ => Err(MISMATCH),
        }
    }

    fn weights_ok(
        &self,
        weights: Weights,
        stage: Stage,
        dtypes: (Option<DType>, Option<DType>),
    ) -> bool {
        use DType::*;
        match (weights, stage) {
            (
                Weights::Int8 { .. }
                | Weights::Int4 { .. }
                | Weights::Sparse { .. }
                | Weights::Blocks { .. },
                Stage::Int8 { .. },
            ) => dtypes == (Some(I8), Some(I8)),
            (Weights::Int8 { bias: None, .. }, Stage::Int16 { .. }) => {
                dtypes == (Some(I16), Some(I16))
            }
            (Weights::F32 { .. }, Stage::F32 { .. })
            | (Weights::Int8 { bias: None, .. }, Stage::HybridF32 { .. }) => {
                dtypes == (Some(F32), Some(F32))
            }
            (Weights::Binary { .. }, Stage::BinaryToF32 { .. }) => {
                dtypes == (Some(Bits), Some(F32))
            }
            (Weights::Binary { .. }, Stage::BinaryToI8 { .. }) => dtypes == (Some(Bits), Some(I8)),
            (Weights::Binary { .. }, Stage::BinaryToBits { .. }) => {
                dtypes == (Some(Bits), Some(Bits))
            }
            _ => false,
        }
    }

    /// The constant `r` as bytes, if it is inside the section, aligned to
    /// `elem` and a whole number of elements.
    fn slice(&self, r: ConstRef, elem: usize) -> Option<&'a [u8]> {
        let start = r.offset as usize;
        let bytes = self.consts.get(start..start.checked_add(r.len as usize)?)?;
        (start.is_multiple_of(elem) && bytes.len() % elem == 0).then_some(bytes)
    }

    fn typed<T: bytemuck::Pod>(&self, r: ConstRef) -> &'a [T] {
        // Validated at load: in range, aligned, whole elements.
        self.slice(r, core::mem::size_of::<T>())
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .unwrap_or(&[])
    }

    fn typed_opt<T: bytemuck::Pod>(&self, r: Option<ConstRef>) -> Option<&'a [T]> {
        r.map(|r| self.typed(r))
    }

    /// Runs one inference on the input already in `arena`. Heads exit when
    /// their confidence passes `thresholds[head]`; heads without a threshold
    /// never exit.
    pub fn run(&self, arena: &mut [u8], thresholds: &[f32]) -> Result<Outcome, RunError> {
        self.run_profiled(arena, thresholds, &mut NoProfile)
    }

    /// [`Model::run`], calling `profiler` before the first operator and after each.
    // A fused segment takes its layers from the iterator inside the loop.
    #[cfg_attr(not(op_fused), allow(clippy::while_let_on_iterator))]
    pub fn run_profiled<P: Profiler>(
        &self,
        arena: &mut [u8],
        thresholds: &[f32],
        profiler: &mut P,
    ) -> Result<Outcome, RunError> {
        if arena.len() < self.arena_bytes() || !(arena.as_ptr() as usize).is_multiple_of(4) {
            return Err(RunError::Arena {
                need: self.arena_bytes(),
                have: arena.len(),
            });
        }
        profiler.stamp(None);
        let mut ops = self.ops().enumerate();
        while let Some((i, op)) = ops.next() {
            let i = i as u32;
            let fail = |error| RunError::Kernel {
                op: i,
                name: op.name(),
                error,
            };
            if let Op::ExitHead {
                head,
                logits,
                measure,
                scale,
                zero_point,
            } = op
            {
                let bytes = self.tensor(arena, &logits).unwrap_or(&[]);
                let score = match logits.dtype {
                    DType::F32 => {
                        measure.score(bytemuck::cast_slice::<u8, f32>(bytes).iter().copied())
                    }
                    _ => measure.score_i8(bytemuck::cast_slice(bytes), scale, zero_point),
                };
                profiler.stamp(Some(i as usize));
                if thresholds
                    .get(head as usize)
                    .is_some_and(|&t| measure.exits(score, t))
                {
                    return Ok(Outcome {
                        exit: Some(head),
                        output: logits,
                        ops_run: i + 1,
                    });
                }
                continue;
            }
            #[cfg(op_fused)]
            if let Op::Fused { layers, band } = op {
                // The segment's time is the marker's; its layers take none.
                let layers = ops.clone().map(|(_, op)| op).take(layers as usize);
                self.run_fused(layers.clone(), band, arena).map_err(fail)?;
                profiler.stamp(Some(i as usize));
                for (j, _) in ops.by_ref().take(layers.count()) {
                    profiler.stamp(Some(j));
                }
                continue;
            }
            self.execute(&op, arena).map_err(fail)?;
            profiler.stamp(Some(i as usize));
        }
        Ok(Outcome {
            exit: None,
            output: self.header.output,
            ops_run: self.header.op_count,
        })
    }

    fn execute(&self, op: &Op, arena: &mut [u8]) -> Result<(), KernelError> {
        #[cfg(op_lstm)]
        if let Op::Lstm {
            input,
            output,
            scratch,
            params,
        } = *op
        {
            return self.lstm(arena, (input, output, scratch), params);
        }
        #[cfg(op_svdf)]
        if let Op::Svdf {
            input,
            output,
            scratch,
            params,
            ..
        } = *op
        {
            let weights = self.svdf_weights(op).ok_or(MISMATCH)?;
            let (x, out, work) = split3(arena, [region(&input), region(&output), region(&scratch)])
                .ok_or(KernelError::Param {
                    what: "tensor regions overlap",
                })?;
            return params.run(&weights, svdf_rows(&input), i8s(x), i8s_mut(out), work);
        }
        let (inputs, output) = op.io();
        let Some(output) = output else { return Ok(()) };
        if matches!(op, Op::Reshape { .. }) && inputs[0].and_then(|t| region(&t)) == region(&output)
        {
            // In place: the bytes are already there.
            return Ok(());
        }
        if inputs[0].is_some_and(|t| t.offset == output.offset) {
            if let Some(schedule) = in_place_schedule(op) {
                return self.conv_in_place(op, &schedule, arena);
            }
        }
        if add_in_place(op).is_some() {
            return self.add_in_place(op, arena);
        }
        let io = split(
            arena,
            inputs.map(|t| t.and_then(|t| region(&t))),
            region(&output),
        );
        let ([Some(x), y], out) = io.ok_or(KernelError::Param {
            what: "tensor regions overlap",
        })?
        else {
            return Err(KernelError::Param {
                what: "missing input",
            });
        };
        match *op {
            Op::Conv2d {
                input,
                output,
                window,
                weights,
                stage,
            } => {
                let g = ConvGeometry {
                    input: input.shape,
                    output: output.shape,
                    window,
                };
                self.conv(&g, None, weights, stage, x, out)
            }
            Op::DepthwiseConv2d {
                input,
                output,
                window,
                depth_multiplier,
                weights,
                stage,
            } => {
                let g = ConvGeometry {
                    input: input.shape,
                    output: output.shape,
                    window,
                };
                self.conv(&g, Some(depth_multiplier), weights, stage, x, out)
            }
            Op::FullyConnected {
                input,
                output,
                weights,
                stage,
            } => self.dense(&dense_geometry(&input, &output), weights, stage, x, out),
            Op::AvgPool {
                input,
                output,
                window,
                act,
                ..
            }
            | Op::MaxPool {
                input,
                output,
                window,
                act,
            } => {
                let g = ConvGeometry {
                    input: input.shape,
                    output: output.shape,
                    window,
                };
                let max = matches!(op, Op::MaxPool { .. });
                if input.dtype == DType::Bits {
                    #[cfg(op_binary)]
                    return binary::max_pool(&g, u32s(x)?, u32s_mut(out)?);
                    #[cfg(not(op_binary))]
                    return Err(NOT_BUILT);
                }
                let rounding = match *op {
                    Op::AvgPool { rounding, .. } => rounding,
                    _ => int8::PoolRounding::AwayFromZero,
                };
                match act {
                    #[cfg(op_int16)]
                    Act::I8(c) if input.dtype == DType::I16 => {
                        crate::int16::pool(&g, max, c, i16s(x)?, i16s_mut(out)?)
                    }
                    Act::I8(c) if max => int8::max_pool(&g, c, i8s(x), i8s_mut(out)),
                    Act::I8(c) => int8::avg_pool(&g, c, rounding, i8s(x), i8s_mut(out)),
                    #[cfg(op_float)]
                    Act::F32 { min, max: hi } if max => {
                        float::max_pool(&g, (min, hi), f32s(x)?, f32s_mut(out)?)
                    }
                    #[cfg(op_float)]
                    Act::F32 { min, max: hi } => {
                        float::avg_pool(&g, (min, hi), f32s(x)?, f32s_mut(out)?)
                    }
                    #[cfg(not(op_float))]
                    Act::F32 { .. } => Err(NOT_BUILT),
                }
            }
            Op::Add { int8, act, .. } => {
                let y = y.ok_or(KernelError::Param {
                    what: "missing second input",
                })?;
                add(int8, act, x, y, out)
            }
            Op::Softmax {
                input, int8, beta, ..
            } => match int8 {
                Some(p) => int8::softmax(&p, input.shape.c as usize, i8s(x), i8s_mut(out)),
                #[cfg(op_float_math)]
                None => float::softmax(beta, input.shape.c as usize, f32s(x)?, f32s_mut(out)?),
                #[cfg(not(op_float_math))]
                None => {
                    let _ = beta;
                    Err(NOT_BUILT)
                }
            },
            Op::Reshape { .. } => {
                crate::error::expect_len("reshape output", out.len(), x.len())?;
                out.copy_from_slice(x);
                Ok(())
            }
            #[cfg(op_int16)]
            Op::Quantize {
                scale,
                zero_point,
                output,
                ..
            } if output.dtype == DType::I16 => {
                crate::int16::quantize(scale, zero_point, f32s(x)?, i16s_mut(out)?)
            }
            Op::Quantize {
                scale, zero_point, ..
            } => float::quantize(scale, zero_point, f32s(x)?, i8s_mut(out)),
            #[cfg(op_int16)]
            Op::Dequantize {
                scale,
                zero_point,
                input,
                ..
            } if input.dtype == DType::I16 => {
                crate::int16::dequantize(scale, zero_point, i16s(x)?, f32s_mut(out)?)
            }
            Op::Dequantize {
                scale, zero_point, ..
            } => float::dequantize(scale, zero_point, i8s(x), f32s_mut(out)?),
            #[cfg(op_int16)]
            Op::Curve { curve, .. } => curve.run(i16s(x)?, i16s_mut(out)?),
            #[cfg(op_int16)]
            Op::Softmax16 {
                input,
                params,
                luts,
                ..
            } => params.run(
                input.shape.c as usize,
                self.typed(luts),
                i16s(x)?,
                i16s_mut(out)?,
            ),
            #[cfg(op_int16)]
            Op::Requantize {
                input,
                output,
                params,
            } => {
                let range = int_range(output.dtype);
                match (input.dtype, output.dtype) {
                    (DType::I16, DType::I16) => params.run(range, i16s(x)?, i16s_mut(out)?),
                    (DType::I16, _) => params.run(range, i16s(x)?, i8s_mut(out)),
                    (_, DType::I16) => params.run(range, i8s(x), i16s_mut(out)?),
                    _ => params.run(range, i8s(x), i8s_mut(out)),
                }
            }
            Op::PackBits {
                input, zero_point, ..
            } => {
                let c = input.shape.c as usize;
                #[cfg(not(op_binary))]
                let _ = (c, zero_point);
                match input.dtype {
                    #[cfg(op_binary)]
                    DType::F32 => binary::pack_f32(f32s(x)?, c, u32s_mut(out)?),
                    #[cfg(op_binary)]
                    _ => binary::pack_i8(i8s(x), c, zero_point, u32s_mut(out)?),
                    #[cfg(not(op_binary))]
                    _ => Err(NOT_BUILT),
                }
            }
            Op::ExitHead { .. } | Op::Fused { .. } => Ok(()),
            Op::Lookup { table, .. } => int8::lookup(self.typed(table), i8s(x), i8s_mut(out)),
            Op::Activation { act, .. } => float::activation(act, f32s(x)?, f32s_mut(out)?),
            Op::Binary {
                output,
                a_view,
                b_view,
                op,
                int8,
                act,
                b_const,
                swapped,
                ..
            } => {
                let y = match b_const {
                    Some(r) => self.slice(r, 1),
                    None => y,
                }
                .ok_or(KernelError::Param {
                    what: "missing second input",
                })?;
                let (x, y, views) = match swapped {
                    false => (x, y, (a_view, b_view, output.shape)),
                    true => (y, x, (b_view, a_view, output.shape)),
                };
                #[cfg(op_int16)]
                if let (DType::I16, Some(p)) = (output.dtype, int8) {
                    return crate::int16::binary(op, &p, views, i16s(x)?, i16s(y)?, i16s_mut(out)?);
                }
                match int8 {
                    Some(p) => {
                        crate::broadcast::binary_i8(op, &p, views, i8s(x), i8s(y), i8s_mut(out))
                    }
                    None => crate::broadcast::binary_f32(
                        op,
                        act,
                        views,
                        f32s(x)?,
                        f32s(y)?,
                        f32s_mut(out)?,
                    ),
                }
            }
            #[cfg(op_matmul)]
            Op::BatchMatMul {
                a,
                b,
                b_const,
                output,
                adj,
                int8,
            } => {
                let y = match b_const {
                    Some(r) => self.slice(r, elem_bytes(b.dtype)),
                    None => y,
                }
                .ok_or(KernelError::Param {
                    what: "missing second input",
                })?;
                let views = (a.shape, b.shape, output.shape);
                match int8 {
                    Some(p) => {
                        crate::matmul::batch_matmul_i8(&p, views, adj, i8s(x), i8s(y), i8s_mut(out))
                    }
                    None => crate::matmul::batch_matmul_f32(
                        views,
                        adj,
                        f32s(x)?,
                        f32s(y)?,
                        f32s_mut(out)?,
                    ),
                }
            }
            Op::Pad {
                input,
                output,
                before,
                value,
            } => {
                let elem = elem_bytes(input.dtype);
                layout::pad(
                    input.shape,
                    output.shape,
                    before,
                    elem,
                    &value[..elem],
                    x,
                    out,
                )
            }
            Op::Transpose {
                input,
                output,
                perm,
            } => {
                let elem = elem_bytes(input.dtype);
                layout::transpose(input.shape, output.shape, perm, elem, x, out)
            }
            Op::Slice {
                input,
                output,
                begin,
                stride,
            } => {
                let elem = elem_bytes(input.dtype);
                layout::slice(input.shape, output.shape, begin, stride, elem, x, out)
            }
            Op::Insert {
                input,
                output,
                before,
            } => {
                let elem = elem_bytes(input.dtype);
                layout::insert(input.shape, output.shape, before, elem, x, out)
            }
            Op::Remap {
                input,
                output,
                maps,
            } => {
                let elem = elem_bytes(input.dtype);
                let maps = maps.map(|m| self.typed_opt::<u32>(m));
                layout::remap(input.shape, output.shape, maps, elem, x, out)
            }
            #[cfg(op_gather)]
            Op::Gather {
                table,
                outer,
                extent,
                inner_bytes,
                ..
            } => {
                let rows = (outer as usize, extent as usize, inner_bytes as usize);
                layout::gather(self.typed::<u8>(table), rows, i32s(x)?, out)
            }
            #[cfg(op_resize)]
            Op::ResizeBilinear {
                input,
                output,
                mode,
            } => match input.dtype {
                DType::F32 => {
                    resize::bilinear_f32(input.shape, output.shape, mode, f32s(x)?, f32s_mut(out)?)
                }
                _ => resize::bilinear_i8(input.shape, output.shape, mode, i8s(x), i8s_mut(out)),
            },
            #[cfg(op_log_softmax)]
            Op::LogSoftmax { output, int8, .. } => match int8 {
                Some(params) => {
                    int8::log_softmax(&params, output.shape.c as usize, i8s(x), i8s_mut(out))
                }
                None => float::log_softmax(output.shape.c as usize, f32s(x)?, f32s_mut(out)?),
            },
            // execute runs the LSTM (three regions) before it gets here;
            // families this build lacks were refused at load.
            #[allow(unreachable_patterns)]
            Op::Lstm { .. }
            | Op::Gather { .. }
            | Op::Svdf { .. }
            | Op::BatchMatMul { .. }
            | Op::ResizeBilinear { .. }
            | Op::LogSoftmax { .. }
            | Op::Requantize { .. }
            | Op::Curve { .. }
            | Op::Softmax16 { .. } => Err(NOT_BUILT),
            Op::Mean {
                input,
                output,
                axes,
                int8,
            } => match int8 {
                #[cfg(op_int16)]
                Some(p) if input.dtype == DType::I16 => int8::mean_of(
                    &p,
                    (input.shape, output.shape, axes),
                    i16s(x)?,
                    i16s_mut(out)?,
                    int_range(DType::I16),
                    |v| v as i16,
                ),
                Some(p) => int8::mean(&p, input.shape, output.shape, axes, i8s(x), i8s_mut(out)),
                None => float::mean(input.shape, output.shape, axes, f32s(x)?, f32s_mut(out)?),
            },
        }
    }

    /// The LSTM, which also writes its scratch: three disjoint regions.
    #[cfg(op_lstm)]
    fn lstm(
        &self,
        arena: &mut [u8],
        (input, output, scratch): (TensorDesc, TensorDesc, TensorDesc),
        params: ConstRef,
    ) -> Result<(), KernelError> {
        let block = self.typed::<u8>(params);
        let overlap = KernelError::Param {
            what: "tensor regions overlap",
        };
        let (x, out, work) =
            split3(arena, [region(&input), region(&output), region(&scratch)]).ok_or(overlap)?;
        if lstm::is_16x8(block) {
            let l = crate::lstm16::Lstm16::parse(block)?;
            let rows = sequence(&input, l.time_major);
            return crate::lstm16::run(&l, rows, i16s(x)?, i16s_mut(out)?, work);
        }
        let l = lstm::Lstm::parse(block)?;
        lstm::run(
            &l,
            sequence(&input, l.time_major),
            i8s(x),
            i8s_mut(out),
            work,
        )
    }

    /// An SVDF's weights (`None` for any other operator).
    #[cfg(op_svdf)]
    fn svdf_weights(&self, op: &Op) -> Option<crate::svdf::SvdfWeights<'a>> {
        match *op {
            Op::Svdf {
                feature,
                time,
                bias,
                ..
            } => Some(crate::svdf::SvdfWeights {
                feature: self.typed(feature),
                time: self.typed(time),
                bias: self.typed_opt(bias),
            }),
            _ => None,
        }
    }

    fn int8_stage(&self, stage: Stage) -> Option<OutputStage<'a>> {
        match stage {
            Stage::Int8 {
                input_offset,
                filter_offset,
                output_offset,
                requant,
                clamp,
                rounding,
            } => Some(OutputStage {
                input_offset,
                filter_offset,
                output_offset,
                requant: self.typed::<Requant>(requant),
                act_min: clamp.min,
                act_max: clamp.max,
                rounding,
            }),
            _ => None,
        }
    }

    fn stage16(&self, stage: Stage) -> Option<crate::int16::Stage16<'a>> {
        use crate::int16::Rescale;
        match stage {
            Stage::Int16 {
                bias,
                rescale,
                double,
                clamp,
            } => Some(crate::int16::Stage16 {
                bias: self.typed_opt(bias),
                rescale: if double {
                    Rescale::Double(self.typed(rescale))
                } else {
                    Rescale::Multiplier(self.typed(rescale))
                },
                clamp,
            }),
            _ => None,
        }
    }

    /// The load-time checks of an int16 convolution or dense layer (`None`
    /// for any other operator).
    fn check_int16_weighted(&self, op: &Op) -> Option<Result<(), KernelError>> {
        let (g, m, weights, stage, input, output) = match *op {
            Op::Conv2d {
                input,
                output,
                window,
                weights,
                stage,
            } => (Some(window), None, weights, stage, input, output),
            Op::DepthwiseConv2d {
                input,
                output,
                window,
                depth_multiplier,
                weights,
                stage,
            } => (
                Some(window),
                Some(depth_multiplier),
                weights,
                stage,
                input,
                output,
            ),
            Op::FullyConnected {
                input,
                output,
                weights,
                stage,
            } => (None, None, weights, stage, input, output),
            _ => return None,
        };
        let (stage, Weights::Int8 { filter, .. }) = (self.stage16(stage)?, weights) else {
            return Some(Err(MISMATCH));
        };
        let n = |t: &TensorDesc| t.shape.elements().unwrap_or(usize::MAX);
        let filter = filter.len as usize;
        Some(match g {
            Some(window) => {
                let g = ConvGeometry {
                    input: input.shape,
                    output: output.shape,
                    window,
                };
                crate::int16::check_conv2d(&g, m, &stage, n(&input), filter, n(&output))
            }
            None => crate::int16::check_fully_connected(
                &dense_geometry(&input, &output),
                &stage,
                n(&input),
                filter,
                n(&output),
            ),
        })
    }

    #[cfg(op_binary)]
    fn binary_output<'o>(
        &self,
        stage: Stage,
        out: &'o mut [u8],
    ) -> Result<BinaryOutput<'a, 'o>, KernelError> {
        Ok(match stage {
            Stage::BinaryToF32 {
                multiplier,
                bias,
                min,
                max,
            } => BinaryOutput::Float {
                multiplier: self.typed(multiplier),
                bias: self.typed(bias),
                range: (min, max),
                out: f32s_mut(out)?,
            },
            Stage::BinaryToI8 {
                multiplier,
                bias,
                zero_point,
                clamp,
            } => BinaryOutput::Int8 {
                multiplier: self.typed(multiplier),
                bias: self.typed(bias),
                zero_point,
                clamp,
                out: i8s_mut(out),
            },
            Stage::BinaryToBits { thresholds } => BinaryOutput::Bits {
                thresholds: self.typed(thresholds),
                out: u32s_mut(out)?,
            },
            _ => {
                return Err(KernelError::Param {
                    what: "binary weights need a binary output stage",
                })
            }
        })
    }

    /// Runs an ADD whose output is one of its inputs: a scratch-full of
    /// elements at a time, each written back over the input it came from.
    /// Out of line, so that the scratch is on the stack only while it runs.
    #[inline(never)]
    fn add_in_place(&self, op: &Op, arena: &mut [u8]) -> Result<(), KernelError> {
        let Op::Add {
            a, b, int8, act, ..
        } = *op
        else {
            return Err(MISMATCH);
        };
        let (a, b) = (region(&a).ok_or(MISMATCH)?, region(&b).ok_or(MISMATCH)?);
        let out = match add_in_place(op) {
            Some(0) => a.clone(),
            _ => b.clone(),
        };
        let mut scratch = InPlaceScratch([0; SCRATCH_BYTES]);
        let mut at = 0;
        while at < out.len() {
            let n = SCRATCH_BYTES.min(out.len() - at);
            let x = arena.get(a.start + at..a.start + at + n).ok_or(MISMATCH)?;
            let y = arena.get(b.start + at..b.start + at + n).ok_or(MISMATCH)?;
            add(int8, act, x, y, &mut scratch.0[..n])?;
            arena[out.start + at..out.start + at + n].copy_from_slice(&scratch.0[..n]);
            at += n;
        }
        Ok(())
    }

    /// Runs a convolution whose output starts where its input does: bands
    /// of output rows into a scratch buffer, each row written back once no
    /// row still to compute reads the input under it. Out of line, so that
    /// the scratch is on the stack only while it runs.
    #[inline(never)]
    fn conv_in_place(
        &self,
        op: &Op,
        schedule: &RowSchedule,
        arena: &mut [u8],
    ) -> Result<(), KernelError> {
        let (Op::Conv2d {
            input,
            output,
            window,
            weights,
            stage,
        }
        | Op::DepthwiseConv2d {
            input,
            output,
            window,
            weights,
            stage,
            ..
        }) = *op
        else {
            return Err(MISMATCH);
        };
        let depthwise = match *op {
            Op::DepthwiseConv2d {
                depth_multiplier, ..
            } => Some(depth_multiplier),
            _ => None,
        };
        let base = input.offset as usize;
        let (in_row, out_row) = (schedule.in_row_bytes, schedule.out_row_bytes);
        let mut scratch = InPlaceScratch([0; SCRATCH_BYTES]);
        let mut pending = 0..0u32;
        for step in schedule.steps() {
            match step.ok_or(MISMATCH)? {
                Step::Compute { rows } => {
                    let band = schedule.input_band(rows.clone());
                    // A band of image rows, or of pixels as one row.
                    let band_shape = |n: u32, s: Shape| {
                        if schedule.pixels {
                            Shape { h: 1, w: n, ..s }
                        } else {
                            Shape { h: n, ..s }
                        }
                    };
                    let g = ConvGeometry {
                        input: band_shape(band.len() as u32, input.shape),
                        output: band_shape(rows.len() as u32, output.shape),
                        window: Window {
                            pad_top: schedule.band_pad_top(rows.start),
                            ..window
                        },
                    };
                    let x = arena
                        .get(base + band.start as usize * in_row..base + band.end as usize * in_row)
                        .ok_or(MISMATCH)?;
                    let at = pending.len() * out_row;
                    let out = &mut scratch.0[at..at + rows.len() * out_row];
                    self.conv(&g, depthwise, weights, stage, x, out)?;
                    pending.end = rows.end;
                }
                Step::WriteBack { rows } => {
                    let bytes = rows.len() * out_row;
                    let to = base + rows.start as usize * out_row;
                    arena
                        .get_mut(to..to + bytes)
                        .ok_or(MISMATCH)?
                        .copy_from_slice(&scratch.0[..bytes]);
                    scratch.0.copy_within(bytes..pending.len() * out_row, 0);
                    pending.start = rows.end;
                }
            }
        }
        Ok(())
    }

    /// Checks a fused segment (the `layers` operators encoded in `ops`):
    /// each layer runs by rows, the bands read only rows their line
    /// buffers hold, every buffer lies in the arena, and what the segment
    /// writes (line buffers, its output) overlaps nothing else it touches.
    /// Each layer is then checked as the single operator it is in a band.
    // Out of line, like `run_fused`: its state is on the stack only while it runs.
    #[cfg(op_fused)]
    #[inline(never)]
    fn validate_fused(
        &self,
        i: u32,
        layers: u32,
        band: u32,
        ops: &'a [u8],
    ) -> Result<(), LoadError> {
        let fail = |what| LoadError::Invalid {
            op: i,
            name: "fused",
            what,
        };
        if layers as usize > fused::MAX_LAYERS || band == 0 {
            return Err(fail(
                "a fused segment holds 1 to 12 layers and bands of at least a row",
            ));
        }
        // Decoded as they are read rather than kept (their 180 bytes each
        // would crowd a 16 KiB board's stack).
        let mut rest = ops;
        for j in 0..layers {
            let (_, tail) = postcard::take_from_bytes::<Op>(rest)
                .map_err(|_| LoadError::Decode { op: i + 1 + j })?;
            rest = tail;
        }
        let layer_ops = decoded(ops, layers);
        let segment = segment_of(layer_ops.clone(), band).map_err(fail)?;
        let line_rows = segment
            .line_rows()
            .map_err(|_| fail("a fused segment's bands read rows its buffers do not hold"))?;
        // Every tensor's buffer: its rows held, at its offset.
        let buffer = |t: usize| {
            let rows = segment.tensors()[t];
            let start = rows.key as usize;
            let bytes = (line_rows[t] as usize).saturating_mul(rows.row_bytes as usize);
            start..start.saturating_add(bytes)
        };
        let count = segment.tensors().len();
        // The output may lie over an input whose rows die before it writes there.
        let sink = segment.sink();
        let over_dying_input = |u: usize| {
            let offset =
                i64::from(segment.tensors()[sink].key) - i64::from(segment.tensors()[u].key);
            segment.overlap_allowed(u, offset)
        };
        for t in 0..count {
            let writes = segment.is_internal(t) || t == sink;
            let clash = writes
                && (0..count).any(|u| {
                    u != t
                        && !disjoint(&buffer(t), &buffer(u))
                        && !(t == sink && over_dying_input(u))
                });
            if buffer(t).end > self.arena_bytes() || clash {
                return Err(fail(
                    "a fused segment's buffers overlap or lie outside the arena",
                ));
            }
        }
        let held = fused::Held {
            lo: [0; fused::MAX_TENSORS],
            hi: line_rows,
        };
        // The first row of every layer: its tensors' types, weights and stage.
        let first_rows = [(0, 1); fused::MAX_LAYERS];
        for (j, op) in layer_ops.enumerate() {
            let op = band_op(&segment, &held, &first_rows, j, op)
                .ok_or(fail("a fused layer does not run by rows"))?;
            self.validate(i + 1 + j as u32, &op)?;
        }
        Ok(())
    }

    /// Runs a fused segment ([`fused`]): band after band, each layer
    /// computes the rows of its output the band needs into its line buffer
    /// (the segment's output: its own tensor), then each line buffer drops
    /// the rows no later band reads, moving the rest to its start.
    /// Out of line, so that its state (about a kilobyte) is on the stack
    /// only while it runs, not beside every other operator's.
    #[cfg(op_fused)]
    #[inline(never)]
    fn run_fused(
        &self,
        layers: impl Iterator<Item = Op> + Clone,
        band: u32,
        arena: &mut [u8],
    ) -> Result<(), KernelError> {
        let segment =
            segment_of(layers.clone(), band).map_err(|what| KernelError::Param { what })?;
        let mut held = segment.start();
        while let Some(rows) = segment.next_band(&held) {
            for (j, op) in layers.clone().enumerate() {
                if rows[j].1 > rows[j].0 {
                    let op = band_op(&segment, &held, &rows, j, op).ok_or(MISMATCH)?;
                    self.execute(&op, arena)?;
                    segment.computed(&mut held, &rows, j);
                }
            }
            let dropped = segment.release(&mut held);
            for (t, tensor) in segment.tensors().iter().enumerate() {
                if dropped[t] > 0 {
                    let (base, row) = (tensor.key as usize, tensor.row_bytes as usize);
                    let from = base + dropped[t] as usize * row;
                    let to = from + (held.hi[t] - held.lo[t]) as usize * row;
                    arena.get(from..to).ok_or(MISMATCH)?;
                    arena.copy_within(from..to, base);
                }
            }
        }
        Ok(())
    }

    fn conv(
        &self,
        g: &ConvGeometry,
        depthwise: Option<u32>,
        weights: Weights,
        stage: Stage,
        x: &[u8],
        out: &mut [u8],
    ) -> Result<(), KernelError> {
        match (weights, depthwise) {
            #[cfg(op_int16)]
            (Weights::Int8 { filter, .. }, m) if matches!(stage, Stage::Int16 { .. }) => {
                let stage = self.stage16(stage).ok_or(MISMATCH)?;
                crate::int16::conv2d(g, m, &stage, i16s(x)?, self.typed(filter), i16s_mut(out)?)
            }
            (Weights::Int8 { filter, bias }, None) => int8::conv2d(
                g,
                &self.int8_stage(stage).ok_or(MISMATCH)?,
                i8s(x),
                self.typed(filter),
                self.typed_opt(bias),
                i8s_mut(out),
            ),
            (Weights::Int8 { filter, bias }, Some(m)) => int8::depthwise_conv2d(
                g,
                m,
                &self.int8_stage(stage).ok_or(MISMATCH)?,
                i8s(x),
                self.typed(filter),
                self.typed_opt(bias),
                i8s_mut(out),
            ),
            #[cfg(op_int4)]
            (Weights::Int4 { filter, bias }, None) => int4::conv2d(
                g,
                &self.int8_stage(stage).ok_or(MISMATCH)?,
                i8s(x),
                self.typed(filter),
                self.typed_opt(bias),
                i8s_mut(out),
            ),
            #[cfg(not(op_int4))]
            (Weights::Int4 { .. }, None) => Err(NOT_BUILT),
            #[cfg(op_sparse)]
            (
                Weights::Sparse {
                    row_ptr,
                    entries,
                    bias,
                },
                Some(m),
            ) => sparse::depthwise_conv2d(
                g,
                m,
                &self.int8_stage(stage).ok_or(MISMATCH)?,
                i8s(x),
                &sparse::Csr {
                    row_ptr: self.typed(row_ptr),
                    entries: self.typed(entries),
                },
                self.typed_opt(bias),
                i8s_mut(out),
            ),
            #[cfg(op_sparse)]
            (
                Weights::Sparse {
                    row_ptr,
                    entries,
                    bias,
                },
                None,
            ) => {
                let csr = sparse::Csr {
                    row_ptr: self.typed(row_ptr),
                    entries: self.typed(entries),
                };
                sparse::conv2d(
                    g,
                    &self.int8_stage(stage).ok_or(MISMATCH)?,
                    i8s(x),
                    &csr,
                    self.typed_opt(bias),
                    i8s_mut(out),
                )
            }
            #[cfg(not(op_sparse))]
            (Weights::Sparse { .. }, _) => Err(NOT_BUILT),
            #[cfg(op_sparse)]
            (
                Weights::Blocks {
                    row_ptr,
                    entries,
                    bias,
                },
                None,
            ) => {
                let blocks = sparse::blocks::Blocks {
                    row_ptr: self.typed(row_ptr),
                    entries: self.typed(entries),
                };
                sparse::blocks::conv2d(
                    g,
                    &self.int8_stage(stage).ok_or(MISMATCH)?,
                    i8s(x),
                    &blocks,
                    self.typed_opt(bias),
                    i8s_mut(out),
                )
            }
            #[cfg(not(op_sparse))]
            (Weights::Blocks { .. }, None) => Err(NOT_BUILT),
            #[cfg(not(op_float))]
            (Weights::F32 { .. }, _) => Err(NOT_BUILT),
            #[cfg(op_float)]
            (Weights::F32 { filter, bias }, m) => {
                let Stage::F32 { min, max } = stage else {
                    return Err(MISMATCH);
                };
                match m {
                    None => float::conv2d(
                        g,
                        f32s(x)?,
                        self.typed(filter),
                        self.typed_opt(bias),
                        (min, max),
                        f32s_mut(out)?,
                    ),
                    Some(m) => float::depthwise_conv2d(
                        g,
                        m,
                        f32s(x)?,
                        self.typed(filter),
                        self.typed_opt(bias),
                        (min, max),
                        f32s_mut(out)?,
                    ),
                }
            }
            #[cfg(op_binary)]
            (Weights::Binary { filter, padding }, None) => binary::conv2d(
                g,
                padding,
                u32s(x)?,
                self.typed(filter),
                self.binary_output(stage, out)?,
            ),
            #[cfg(not(op_binary))]
            (Weights::Binary { .. }, None) => Err(NOT_BUILT),
            _ => Err(DEPTHWISE_WEIGHTS),
        }
    }

    fn dense(
        &self,
        g: &DenseGeometry,
        weights: Weights,
        stage: Stage,
        x: &[u8],
        out: &mut [u8],
    ) -> Result<(), KernelError> {
        match weights {
            #[cfg(op_int16)]
            Weights::Int8 { filter, .. } if matches!(stage, Stage::Int16 { .. }) => {
                let stage = self.stage16(stage).ok_or(MISMATCH)?;
                crate::int16::fully_connected(
                    g,
                    &stage,
                    i16s(x)?,
                    self.typed(filter),
                    i16s_mut(out)?,
                )
            }
            #[cfg(not(op_float))]
            Weights::Int8 { .. } if matches!(stage, Stage::HybridF32 { .. }) => Err(NOT_BUILT),
            #[cfg(op_float)]
            Weights::Int8 { filter, .. } if matches!(stage, Stage::HybridF32 { .. }) => {
                let Stage::HybridF32 {
                    filter_scale,
                    bias,
                    min,
                    max,
                } = stage
                else {
                    return Err(MISMATCH);
                };
                hybrid::fully_connected(
                    g,
                    filter_scale,
                    f32s(x)?,
                    self.typed(filter),
                    self.typed_opt(bias),
                    (min, max),
                    f32s_mut(out)?,
                )
            }
            Weights::Int8 { filter, bias } => int8::fully_connected(
                g,
                &self.int8_stage(stage).ok_or(MISMATCH)?,
                i8s(x),
                self.typed(filter),
                self.typed_opt(bias),
                i8s_mut(out),
            ),
            #[cfg(op_int4)]
            Weights::Int4 { filter, bias } => int4::fully_connected(
                g,
                &self.int8_stage(stage).ok_or(MISMATCH)?,
                i8s(x),
                self.typed(filter),
                self.typed_opt(bias),
                i8s_mut(out),
            ),
            #[cfg(not(op_int4))]
            Weights::Int4 { .. } => Err(NOT_BUILT),
            #[cfg(op_sparse)]
            Weights::Sparse {
                row_ptr,
                entries,
                bias,
            } => {
                let csr = sparse::Csr {
                    row_ptr: self.typed(row_ptr),
                    entries: self.typed(entries),
                };
                sparse::fully_connected(
                    g,
                    &self.int8_stage(stage).ok_or(MISMATCH)?,
                    i8s(x),
                    &csr,
                    self.typed_opt(bias),
                    i8s_mut(out),
                )
            }
            #[cfg(not(op_sparse))]
            Weights::Sparse { .. } => Err(NOT_BUILT),
            #[cfg(op_sparse)]
            Weights::Blocks {
                row_ptr,
                entries,
                bias,
            } => {
                let blocks = sparse::blocks::Blocks {
                    row_ptr: self.typed(row_ptr),
                    entries: self.typed(entries),
                };
                sparse::blocks::fully_connected(
                    g,
                    &self.int8_stage(stage).ok_or(MISMATCH)?,
                    i8s(x),
                    &blocks,
                    self.typed_opt(bias),
                    i8s_mut(out),
                )
            }
            #[cfg(not(op_sparse))]
            Weights::Blocks { .. } => Err(NOT_BUILT),
            #[cfg(not(op_float))]
            Weights::F32 { .. } => Err(NOT_BUILT),
            #[cfg(op_float)]
            Weights::F32 { filter, bias } => {
                let Stage::F32 { min, max } = stage else {
                    return Err(MISMATCH);
                };
                float::fully_connected(
                    g,
                    f32s(x)?,
                    self.typed(filter),
                    self.typed_opt(bias),
                    (min, max),
                    f32s_mut(out)?,
                )
            }
            #[cfg(op_binary)]
            Weights::Binary { filter, .. } => binary::fully_connected(
                g,
                u32s(x)?,
                self.typed(filter),
                self.binary_output(stage, out)?,
            ),
            #[cfg(not(op_binary))]
            Weights::Binary { .. } => Err(NOT_BUILT),
        }
    }
}

/// Constants an operator reads, each with its element size (for alignment).
type ConstRefs = [(Option<ConstRef>, usize); 4];

fn weight_refs(w: Weights) -> ConstRefs {
    match w {
        Weights::Int8 { filter, bias } | Weights::Int4 { filter, bias } => {
            [(Some(filter), 1), (bias, 4), (None, 1), (None, 1)]
        }
        Weights::Sparse {
            row_ptr,
            entries,
            bias,
        }
        | Weights::Blocks {
            row_ptr,
            entries,
            bias,
        } => [(Some(row_ptr), 4), (Some(entries), 4), (bias, 4), (None, 1)],
        Weights::F32 { filter, bias } => [(Some(filter), 4), (bias, 4), (None, 1), (None, 1)],
        Weights::Binary { filter, .. } => [(Some(filter), 4), (None, 1), (None, 1), (None, 1)],
    }
}

fn stage_refs(s: Stage) -> ConstRefs {
    match s {
        Stage::Int8 { requant, .. } => [(Some(requant), 8), (None, 1), (None, 1), (None, 1)],
        Stage::F32 { .. } => [(None, 1); 4],
        Stage::Int16 { bias, rescale, .. } => [(bias, 8), (Some(rescale), 8), (None, 1), (None, 1)],
        Stage::HybridF32 { bias, .. } => [(bias, 4), (None, 1), (None, 1), (None, 1)],
        Stage::BinaryToF32 {
            multiplier, bias, ..
        }
        | Stage::BinaryToI8 {
            multiplier, bias, ..
        } => [(Some(multiplier), 4), (Some(bias), 4), (None, 1), (None, 1)],
        Stage::BinaryToBits { thresholds } => {
            [(Some(thresholds), 4), (None, 1), (None, 1), (None, 1)]
        }
    }
}

/// The schedule of a convolution that can run over its own input
/// ([`in_place`](super::in_place)).
fn in_place_schedule(op: &Op) -> Option<RowSchedule> {
    if !matches!(op, Op::Conv2d { .. } | Op::DepthwiseConv2d { .. }) {
        return None;
    }
    let (input, output, window) = op.windowed()?;
    // Packed bits are not rows of whole elements.
    let elem = |t: &TensorDesc| t.dtype.element_bytes().map(|b| b as usize);
    let g = ConvGeometry {
        input: input.shape,
        output: output.shape,
        window,
    };
    RowSchedule::of(&g, elem(&input)?, elem(&output)?)
}

/// The `count` operators encoded at the start of `bytes`, decoded as
/// they are read (the caller checked that they decode).
#[cfg(op_fused)]
fn decoded(bytes: &[u8], count: u32) -> impl Iterator<Item = Op> + Clone + '_ {
    let mut rest = bytes;
    (0..count).map_while(move |_| {
        let (op, tail) = postcard::take_from_bytes::<Op>(rest).ok()?;
        rest = tail;
        Some(op)
    })
}

/// The segment of fused `layers` (run `band` rows at a time), its tensors
/// named by arena offset (an output may lie over an input: the segment
/// takes an output for a tensor of its own).
#[cfg(op_fused)]
fn segment_of(layers: impl Iterator<Item = Op>, band: u32) -> Result<fused::Segment, &'static str> {
    let unfit = "a fused layer's tensors are not single images of whole-element rows";
    let rows = |t: TensorDesc| {
        let row_bytes = t
            .shape
            .w
            .checked_mul(t.shape.c)
            .zip(t.dtype.element_bytes())
            .and_then(|(b, elem)| b.checked_mul(elem));
        match row_bytes {
            // Extents in range also keep the bands few.
            Some(row_bytes) if t.shape.n == 1 && t.shape.check().is_ok() => Ok(fused::TensorRows {
                key: t.offset,
                rows: t.shape.h,
                row_bytes,
            }),
            _ => Err(unfit),
        }
    };
    let mut segment = fused::Segment::new(band);
    for op in layers {
        let windowed = op.windowed();
        let (inputs, map, output) = match op {
            _ if let Some((input, output, window)) = windowed => {
                ([Some(input), None], fused::RowMap::window(&window), output)
            }
            Op::Add { a, b, output, .. } => ([Some(a), Some(b)], fused::RowMap::ADD, output),
            Op::Quantize { input, output, .. } | Op::Lookup { input, output, .. } => {
                ([Some(input), None], fused::RowMap::ELEMENTWISE, output)
            }
            _ => return Err("a fused segment holds a layer that does not run by rows"),
        };
        let mut ins = [None; 2];
        for (slot, t) in ins.iter_mut().zip(inputs) {
            *slot = t.map(rows).transpose()?;
        }
        segment.push(ins, rows(output)?, map).map_err(|_| {
            "a fused segment's layers do not chain (too many, or a tensor written twice)"
        })?;
    }
    segment.check().map_err(|_| {
        "a fused segment's inner tensors must be read inside it, its output outside"
    })?;
    Ok(segment)
}

/// Operator `op` (layer `j` of `segment`) on its rows of `band`: each
/// tensor cut to the rows it reads or writes, where they are held.
#[cfg(op_fused)]
fn band_op(
    segment: &fused::Segment,
    held: &fused::Held,
    band: &fused::Band,
    j: usize,
    op: Op,
) -> Option<Op> {
    let (inputs, out) = segment.layer_tensors(j);
    let rows = band[j];
    let cut = |t: usize, desc: TensorDesc, (start, end): (u32, u32)| {
        let row_bytes = segment.tensors()[t].row_bytes;
        let skipped = start.checked_sub(held.lo[t])?.checked_mul(row_bytes)?;
        Some(TensorDesc {
            offset: desc.offset.checked_add(skipped)?,
            shape: Shape {
                h: end - start,
                ..desc.shape
            },
            ..desc
        })
    };
    let read = |k: usize, desc: TensorDesc| {
        let t = inputs[k]?;
        cut(t, desc, segment.input_rows(j, t, rows))
    };
    let output = |desc: TensorDesc| cut(out, desc, rows);
    let pad_top = segment.band_pad_top(j, rows.0);
    let mut op = op;
    match &mut op {
        Op::Conv2d {
            input,
            output: o,
            window,
            ..
        }
        | Op::DepthwiseConv2d {
            input,
            output: o,
            window,
            ..
        }
        | Op::AvgPool {
            input,
            output: o,
            window,
            ..
        }
        | Op::MaxPool {
            input,
            output: o,
            window,
            ..
        } => {
            (*input, *o) = (read(0, *input)?, output(*o)?);
            window.pad_top = pad_top;
        }
        Op::Add {
            a, b, output: o, ..
        } => {
            (*a, *b, *o) = (read(0, *a)?, read(1, *b)?, output(*o)?);
        }
        Op::Quantize {
            input, output: o, ..
        }
        | Op::Lookup {
            input, output: o, ..
        } => (*input, *o) = (read(0, *input)?, output(*o)?),
        _ => return None,
    }
    Some(op)
}

/// An ADD whose output takes one input's bytes exactly (the other apart):
/// which input, 0 or 1. It runs a scratch-full of elements at a time.
fn add_in_place(op: &Op) -> Option<usize> {
    let Op::Add { a, b, output, .. } = *op else {
        return None;
    };
    let (a, b, out) = (region(&a)?, region(&b)?, region(&output)?);
    if a == out && disjoint(&b, &out) {
        Some(0)
    } else if b == out && disjoint(&a, &out) {
        Some(1)
    } else {
        None
    }
}

/// Element-wise ADD of `x` and `y` (int8 with its parameters, or float
/// with its clamp) into `out`.
fn add(
    int8: Option<AddParams>,
    act: Act,
    x: &[u8],
    y: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    match (int8, act) {
        (Some(p), _) => int8::add(&p, i8s(x), i8s(y), i8s_mut(out)),
        #[cfg(op_float)]
        (None, Act::F32 { min, max }) => float::add(f32s(x)?, f32s(y)?, (min, max), f32s_mut(out)?),
        #[cfg(not(op_float))]
        (None, Act::F32 { .. }) => Err(NOT_BUILT),
        (None, Act::I8(_)) => Err(KernelError::Param {
            what: "float add with an int8 clamp",
        }),
    }
}

/// The scratch a convolution in place computes its rows into; aligned for
/// the widest element.
#[repr(align(16))]
struct InPlaceScratch([u8; SCRATCH_BYTES]);

/// An operator's view of the arena: up to two inputs and its output.
type OpMemory<'x> = ([Option<&'x [u8]>; 2], &'x mut [u8]);

/// Splits the arena into the (shared) input regions and the (exclusive)
/// output region, which load-time validation guarantees are disjoint.
fn split(
    arena: &mut [u8],
    inputs: [Option<Range<usize>>; 2],
    out: Option<Range<usize>>,
) -> Option<OpMemory<'_>> {
    let out = out?;
    let (head, rest) = arena.split_at_mut_checked(out.start)?;
    let (out_bytes, tail) = rest.split_at_mut_checked(out.end - out.start)?;
    let (head, tail) = (&*head, &*tail);
    let pick = |r: Option<Range<usize>>| -> Option<Option<&[u8]>> {
        let Some(r) = r else { return Some(None) };
        if r.end <= out.start {
            head.get(r).map(Some)
        } else if r.start >= out.end {
            tail.get(r.start - out.end..r.end - out.end).map(Some)
        } else {
            None
        }
    };
    let [a, b] = inputs;
    Some(([pick(a)?, pick(b)?], out_bytes))
}

/// An operator of a family this build leaves out (refused at load).
const NOT_BUILT: KernelError = KernelError::Param {
    what: "operator not built into this program",
};

/// Whether this build runs `op`: the `op-*` families are in the host and
/// in a firmware whose model uses them.
fn built_in(op: &Op) -> bool {
    match op.family() {
        None => true,
        Some("op-lstm") => cfg!(op_lstm),
        Some("op-gather") => cfg!(op_gather),
        Some("op-svdf") => cfg!(op_svdf),
        Some("op-matmul") => cfg!(op_matmul),
        Some("op-resize") => cfg!(op_resize),
        Some("op-log-softmax") => cfg!(op_log_softmax),
        Some("op-weight-offset") => cfg!(op_weight_offset),
        Some("op-int16") => cfg!(op_int16),
        Some("op-float-math") => cfg!(op_float_math),
        Some("op-int4") => cfg!(op_int4),
        Some("op-sparse") => cfg!(op_sparse),
        Some("op-binary") => cfg!(op_binary),
        Some("op-float") => cfg!(op_float),
        Some("op-fused") => cfg!(op_fused),
        // Without it these run on the portable loops.
        Some("op-deep-conv") => true,
        Some(_) => false,
    }
}

/// A sequence tensor's `(batch, time)`: `[n, 1, w, c]` is `[batch, time,
/// c]`, or `[time, batch, c]` when time comes first.
#[cfg(op_lstm)]
fn sequence(t: &TensorDesc, time_major: bool) -> (usize, usize) {
    let (first, second) = (t.shape.n as usize, (t.shape.h * t.shape.w) as usize);
    if time_major {
        (second, first)
    } else {
        (first, second)
    }
}

/// An SVDF input's `(batch, features)`: `[batch, features]` is flat.
#[cfg(op_svdf)]
fn svdf_rows(t: &TensorDesc) -> (usize, usize) {
    (t.shape.n as usize, t.shape.features())
}

/// One region to read and two to write, pairwise disjoint.
#[cfg(any(op_lstm, op_svdf))]
fn split3(
    arena: &mut [u8],
    [read, write_a, write_b]: [Option<Range<usize>>; 3],
) -> Option<(&[u8], &mut [u8], &mut [u8])> {
    let mut parts = [(read?, 0), (write_a?, 1), (write_b?, 2)];
    parts.sort_unstable_by_key(|(r, _)| r.start);
    let mut rest = arena;
    let mut at = 0;
    let mut slices: [Option<&mut [u8]>; 3] = [None, None, None];
    for (r, k) in parts {
        let skip = r.start.checked_sub(at)?;
        let (_, tail) = rest.split_at_mut_checked(skip)?;
        let (piece, tail) = tail.split_at_mut_checked(r.end - r.start)?;
        slices[k] = Some(piece);
        rest = tail;
        at = r.end;
    }
    let [x, a, b] = slices;
    Some((x?, a?, b?))
}

/// Bytes per element of an int8, int16 or float32 tensor.
fn elem_bytes(d: DType) -> usize {
    match d {
        DType::F32 => 4,
        DType::I16 => 2,
        _ => 1,
    }
}

/// The value range of an integer tensor type.
fn int_range(d: DType) -> (i32, i32) {
    match d {
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::U8 => (0, 255),
        _ => (-128, 127),
    }
}

/// Bytes a tensor occupies (`usize::MAX` when that overflows, which no check passes).
fn bytes(t: &TensorDesc) -> usize {
    t.byte_len().unwrap_or(usize::MAX)
}

fn i8s(b: &[u8]) -> &[i8] {
    bytemuck::cast_slice(b)
}

fn i8s_mut(b: &mut [u8]) -> &mut [i8] {
    bytemuck::cast_slice_mut(b)
}

const MISMATCH: KernelError = KernelError::Param {
    what: "weights and output stage do not match",
};
const DEPTHWISE_WEIGHTS: KernelError = KernelError::Param {
    what: "depthwise convolution supports int8, sparse int8 and float weights only",
};

/// A dense layer over the flattened input: `[batch, h * w * c]`.
fn dense_geometry(input: &TensorDesc, output: &TensorDesc) -> DenseGeometry {
    DenseGeometry {
        batch: input.shape.n,
        in_features: input.shape.features() as u32,
        out_features: output.shape.features() as u32,
    }
}

const MISALIGNED: KernelError = KernelError::Param {
    what: "tensor is not 4-byte aligned",
};

#[cfg(op_gather)]
fn i32s(b: &[u8]) -> Result<&[i32], KernelError> {
    bytemuck::try_cast_slice(b).map_err(|_| MISALIGNED)
}

#[cfg(any(op_int16, op_lstm))]
fn i16s(b: &[u8]) -> Result<&[i16], KernelError> {
    bytemuck::try_cast_slice(b).map_err(|_| MISALIGNED)
}

#[cfg(any(op_int16, op_lstm))]
fn i16s_mut(b: &mut [u8]) -> Result<&mut [i16], KernelError> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| MISALIGNED)
}

fn f32s(b: &[u8]) -> Result<&[f32], KernelError> {
    bytemuck::try_cast_slice(b).map_err(|_| MISALIGNED)
}

fn f32s_mut(b: &mut [u8]) -> Result<&mut [f32], KernelError> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| MISALIGNED)
}

#[cfg(op_binary)]
fn u32s(b: &[u8]) -> Result<&[u32], KernelError> {
    bytemuck::try_cast_slice(b).map_err(|_| MISALIGNED)
}

#[cfg(op_binary)]
fn u32s_mut(b: &mut [u8]) -> Result<&mut [u32], KernelError> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| MISALIGNED)
}
