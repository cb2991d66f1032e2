//! `bench infer`: runs one model, as it is, on a target over inputs from a
//! `.npy` file and writes the outputs to another, the way vendor tools
//! validate a deployed model against its original. Each device output is
//! also checked against the host reference.

use crate::device::runner::{self, RunError};
use crate::input::target::Target;
use crate::model::host::HostModel;
use crate::model::layout::ModelLayout;
use crate::model::prepare::{self, Calibration, Prepared, Recipe, Scheme};
use crate::model::{import, zoo, Graph};
use kernels::model::{DType, TensorDesc};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why an inference run failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model, the input file or the target is not usable (nothing ran).
    #[error("{0}")]
    Invalid(String),
    /// The device program could not be built.
    #[error(transparent)]
    Build(#[from] crate::build::firmware::BuildError),
    /// The device failed on input `index`.
    #[error("failed on input {index}: {error}")]
    Run {
        /// Index of the input in the file.
        index: usize,
        /// What went wrong.
        error: RunError,
    },
    /// The outputs could not be written.
    #[error("failed to write {}: {error}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// What an inference run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferSummary {
    /// Inputs run.
    pub inputs: usize,
    /// Outputs equal, byte for byte, to the host reference's.
    pub matching_reference: usize,
    /// Shape of the written array.
    pub output_shape: Vec<u64>,
}

/// A model named on the command line: a `.tflite` file, or a zoo architecture.
pub fn resolve_model(spec: &str) -> Result<Graph, String> {
    let path = Path::new(spec);
    if path
        .extension()
        .is_some_and(|e| e == "tflite" || e == "onnx")
        || path.is_file()
    {
        return import::load(path).map_err(|e| e.to_string());
    }
    zoo::build(spec).ok_or_else(|| {
        let hint = crate::input::diag::did_you_mean(spec, zoo::NAMES)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        format!(
            "no model file `{spec}` and no zoo model of that name{hint}; the zoo has {}",
            zoo::NAMES.join(", ")
        )
    })
}

/// The model as it is: float32 for zoo graphs, its own int8 for imported int8 models.
pub fn as_is(graph: &Graph) -> Result<Prepared, String> {
    let scheme = if prepare::is_imported_int8(graph) {
        Scheme::Int8 { per_channel: true }
    } else {
        Scheme::Float32
    };
    let recipe = Recipe {
        scheme,
        overrides: Vec::new(),
        pruning: None,
        exits: None,
        weight_seed: 1,
        calibration: Calibration::Synthetic(8, 1),
        input_seed: 1,
        memory: Default::default(),
    };
    prepare::prepare(graph, &recipe).map_err(|e| e.to_string())
}

/// The element type of a tensor, as numpy names it.
fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::I8 => "int8",
        DType::U8 => "uint8",
        DType::I16 => "int16",
        DType::F32 => "float32",
        DType::I32 => "int32",
        DType::Bits => "packed bits",
    }
}

/// The numpy dtype name of an array's type string (`<f4` is float32).
fn npy_dtype_name(dtype: &npyz::DType) -> String {
    match dtype {
        npyz::DType::Plain(t) => {
            let bits = t.size_field() * 8;
            match t.type_char() {
                npyz::TypeChar::Int => format!("int{bits}"),
                npyz::TypeChar::Uint => format!("uint{bits}"),
                npyz::TypeChar::Float => format!("float{bits}"),
                _ => t.to_string(),
            }
        }
        other => format!("{other:?}"),
    }
}

/// Inputs read from a `.npy` or `.npz` file: one byte string per inference.
#[derive(Debug)]
pub struct Inputs {
    /// Each input's bytes, in the model input's type (several model inputs
    /// packed one after another, in the model's order).
    pub items: Vec<Vec<u8>>,
    /// Whether the file held a single input without a batch dimension.
    pub unbatched: bool,
}

/// One model input or output: its name in the model, its tensor and the
/// layout the user's arrays have.
pub type Part = (String, TensorDesc, ModelLayout);

/// Reads the inputs: for one model input, `[N, *item]` (a batch axis of 1
/// after N may be given too) or exactly `item` from a `.npy` (or the `.npz`
/// member named as the input); for several, a `.npz` with one such array per
/// input, named as in the model.
pub fn read_inputs(path: &Path, parts: &[Part]) -> Result<Inputs, String> {
    let failed = |e: String| format!("failed to read {}: {e}", path.display());
    let bytes = crate::input::npy::read_file(path).map_err(failed)?;
    let npz = path.extension().is_some_and(|e| e == "npz");
    if parts.len() > 1 && !npz {
        let names: Vec<&str> = parts.iter().map(|(n, _, _)| n.as_str()).collect();
        return Err(format!(
            "{}: the model has {} inputs ({}); give a .npz with one array per input, named as in the model",
            path.display(),
            parts.len(),
            names.join(", ")
        ));
    }
    let mut arrays = Vec::new();
    for (name, desc, layout) in parts {
        let member = if npz {
            crate::input::npy::npz_member(&bytes, name)
                .map_err(failed)?
                .ok_or_else(|| {
                    format!(
                        "{} has no array named '{name}' (the model's input)",
                        path.display()
                    )
                })?
        } else {
            bytes.clone()
        };
        arrays.push(read_array(path, name, &member, *desc, *layout)?);
    }
    let (count, unbatched) = (arrays[0].0, arrays[0].1);
    if arrays.iter().any(|a| a.0 != count) {
        return Err(format!(
            "{}: its arrays hold different numbers of inputs",
            path.display()
        ));
    }
    let items = (0..count)
        .map(|i| {
            arrays
                .iter()
                .flat_map(|(_, _, items)| items[i].iter().copied())
                .collect()
        })
        .collect();
    Ok(Inputs { items, unbatched })
}

/// One array: `(count, unbatched, each input's bytes)`.
fn read_array(
    path: &Path,
    name: &str,
    bytes: &[u8],
    input: TensorDesc,
    layout: ModelLayout,
) -> Result<(usize, bool, Vec<Vec<u8>>), String> {
    let item = layout.item_dims(input.shape);
    let want = dtype_name(input.dtype);
    let npy = crate::input::npy::parse(bytes)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let (shape, dtype) = (npy.shape().to_vec(), npy_dtype_name(&npy.dtype()));
    let mismatch = || {
        format!(
            "{} holds {dtype} {shape:?}; the model input '{name}' is {want} {item:?}: give {want} [N, {}] (or exactly {item:?} for one input)",
            path.display(),
            item.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )
    };
    // Extents of 1 carry no layout: [N, 1, 49, 10, 1] (the model's own
    // batch of 1 kept) is [N, 49, 10], and a rank-3 [2, 3, 1] input is
    // bench's NHWC [2, 1, 3, 1]. What remains must be the item's.
    let squeezed = |dims: &[u64]| dims.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    let (count, unbatched) = if shape == item {
        (1, true)
    } else if !shape.is_empty() && squeezed(&shape[1..]) == squeezed(&item) {
        (shape[0] as usize, false)
    } else if squeezed(&shape) == squeezed(&item) {
        (1, true)
    } else {
        return Err(mismatch());
    };
    if dtype != want || npy.order() != npyz::Order::C {
        return Err(mismatch());
    }
    let bytes: Vec<u8> = match input.dtype {
        DType::I8 => npy
            .into_vec::<i8>()
            .map(|v| bytemuck::cast_slice(&v).to_vec()),
        DType::U8 => npy.into_vec::<u8>(),
        DType::I16 => npy
            .into_vec::<i16>()
            .map(|v| bytemuck::cast_slice(&v).to_vec()),
        DType::I32 => npy
            .into_vec::<i32>()
            .map(|v| bytemuck::cast_slice(&v).to_vec()),
        _ => npy
            .into_vec::<f32>()
            .map(|v| bytemuck::cast_slice(&v).to_vec()),
    }
    .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let size = bytes.len().checked_div(count).unwrap_or(0);
    let items = bytes
        .chunks_exact(size.max(1))
        .take(count)
        .map(|item| layout.bench_bytes(&input, item))
        .collect();
    Ok((count, unbatched, items))
}

/// Writes `outputs` (raw tensor bytes of type `dtype`) as an array of `shape`.
pub fn write_outputs(
    path: &Path,
    shape: &[u64],
    dtype: DType,
    outputs: &[Vec<u8>],
) -> std::io::Result<()> {
    std::fs::write(path, npy_bytes(shape, dtype, &outputs.concat())?)
}

/// A `.npy` of `shape` holding `bytes`, raw tensor bytes of type `dtype`.
fn npy_bytes(shape: &[u64], dtype: DType, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use npyz::WriterBuilder;
    let mut out = Vec::new();
    // One element type per writer: the options are made in each arm.
    match dtype {
        DType::F32 => {
            let options = npyz::WriteOptions::<f32>::new()
                .default_dtype()
                .shape(shape);
            let mut w = options.writer(&mut out).begin_nd()?;
            w.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            )?;
            w.finish()?;
        }
        DType::I16 => {
            let options = npyz::WriteOptions::<i16>::new()
                .default_dtype()
                .shape(shape);
            let mut w = options.writer(&mut out).begin_nd()?;
            w.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            )?;
            w.finish()?;
        }
        DType::U8 => {
            let options = npyz::WriteOptions::<u8>::new().default_dtype().shape(shape);
            let mut w = options.writer(&mut out).begin_nd()?;
            w.extend(bytes.iter().copied())?;
            w.finish()?;
        }
        _ => {
            let options = npyz::WriteOptions::<i8>::new().default_dtype().shape(shape);
            let mut w = options.writer(&mut out).begin_nd()?;
            w.extend(bytes.iter().map(|&b| b as i8))?;
            w.finish()?;
        }
    }
    Ok(out)
}

/// Writes several model outputs (each inference's packed bytes in
/// `outputs`) as a `.npz` with one array per output, named as in the model.
fn write_npz(
    path: &Path,
    parts: &[Part],
    outputs: &[Vec<u8>],
    shape_of: &dyn Fn(&Part) -> Vec<u64>,
) -> std::io::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let mut offset = 0;
    for part @ (name, desc, _) in parts {
        let len = desc.byte_len().unwrap_or(0);
        let bytes: Vec<u8> = outputs
            .iter()
            .flat_map(|o| o[offset..offset + len].iter().copied())
            .collect();
        offset += len;
        zip.start_file(
            npyz::npz::file_name_from_array_name(name),
            zip::write::FileOptions::default(),
        )?;
        std::io::Write::write_all(&mut zip, &npy_bytes(&shape_of(part), desc.dtype, &bytes)?)?;
    }
    zip.finish()?;
    Ok(())
}

/// One inference's packed output bytes, each part reordered into the
/// model's layout.
fn in_model_layout(parts: &[Part], output: &[u8]) -> Vec<u8> {
    let mut offset = 0;
    let mut out = Vec::with_capacity(output.len());
    for (_, desc, layout) in parts {
        let len = desc.byte_len().unwrap_or(0).min(output.len() - offset);
        out.extend(layout.model_bytes(desc, &output[offset..offset + len]));
        offset += len;
    }
    out
}

/// Runs `prepared` on `target` over every input of `input_path` and writes
/// the outputs to `output_path`; `work` holds the model blob.
pub fn infer(
    prepared: &Prepared,
    target: &Target,
    input_path: &Path,
    output_path: &Path,
    work: &Path,
    timeout: Duration,
) -> Result<InferSummary, InferError> {
    let parts = |list: Vec<(String, usize)>| -> Vec<Part> {
        list.into_iter()
            .map(|(name, t)| (name, prepared.lowered.tensors[t], prepared.graph.layout))
            .collect()
    };
    let (in_parts, out_parts) = (
        parts(prepared.graph.input_parts()),
        parts(prepared.graph.output_parts()),
    );
    let inputs = read_inputs(input_path, &in_parts).map_err(InferError::Invalid)?;
    let blob = work.join(format!("{}.blob", prepared.graph.name));
    std::fs::write(&blob, prepared.lowered.blob.as_bytes()).map_err(|error| InferError::Write {
        path: blob.clone(),
        error,
    })?;
    let program = if target.builds_per_model() {
        crate::build::firmware::build_firmware(target, &blob)?
    } else {
        crate::build::firmware::build(target)?
    };
    let mut host = HostModel::new(prepared.lowered.blob.as_bytes()).map_err(InferError::Invalid)?;
    let references = inputs
        .items
        .iter()
        .map(|item| host.run(item, &[]).map(|o| host.tensor(&o.output).to_vec()))
        .collect::<Result<Vec<_>, _>>();
    let references = references.map_err(InferError::Invalid)?;
    let mut session = runner::connect(target, &program, &blob, timeout, None)
        .map_err(|error| InferError::Run { index: 0, error })?;
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(inputs.items.len());
    let result = (|| {
        session.identify()?;
        for item in &inputs.items {
            session.restart_deadline();
            session.set_input(item)?;
            outputs.push(session.run_inferences(0, 1)?.output);
        }
        Ok(())
    })();
    session.close(result).map_err(|error| InferError::Run {
        index: outputs.len(),
        error,
    })?;
    let matching = outputs
        .iter()
        .zip(&references)
        .filter(|(a, b)| a == b)
        .count();
    let outputs: Vec<Vec<u8>> = outputs
        .iter()
        .map(|o| in_model_layout(&out_parts, o))
        .collect();
    let shape_of = |(_, desc, layout): &Part| {
        let item = layout.item_dims(desc.shape);
        if inputs.unbatched {
            item
        } else {
            [vec![outputs.len() as u64], item].concat()
        }
    };
    let written = if let [only] = &out_parts[..] {
        write_outputs(output_path, &shape_of(only), only.1.dtype, &outputs)
    } else {
        write_npz(output_path, &out_parts, &outputs, &shape_of)
    };
    written.map_err(|error| InferError::Write {
        path: output_path.into(),
        error,
    })?;
    Ok(InferSummary {
        inputs: outputs.len(),
        matching_reference: matching,
        output_shape: shape_of(&out_parts[0]),
    })
}
