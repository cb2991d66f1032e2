//! Datasets: labelled samples from `.npz`, `.npy` or `.csv` files, in a
//! fixed order (the file's, or a seeded shuffle) and up to a limit. They
//! give accuracy and exit statistics, and real calibration samples for
//! int8 post-training quantization.

use crate::input::npy;
use kernels::model::{DType, TensorDesc};
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// Where a dataset's samples and labels are, and which of them to use.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    /// Name, unique in the suite.
    pub name: String,
    /// Samples: `.npz` (arrays `x` and `y`), `.npy` (samples only) or `.csv` (one row per sample).
    pub path: PathBuf,
    /// Labels of a `.npy` sample file: another `.npy` of integers.
    pub labels: Option<PathBuf>,
    /// The label column of a `.csv` file.
    pub label_column: String,
    /// Use at most this many samples (after ordering).
    pub limit: Option<usize>,
    /// Shuffle with this seed instead of keeping the file's order.
    pub shuffle: Option<u64>,
}

/// The values of a dataset's samples.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Real values (any float or integer type but int8 and uint8), quantized to an int8 model's input as needed.
    Real(Vec<f32>),
    /// int8 values, taken as an int8 model input's bytes as they are.
    Int8(Vec<i8>),
    /// uint8 values: a uint8 model input's bytes as they are, real values
    /// (pixels, say) for any other model.
    UInt8(Vec<u8>),
}

/// Real values as the bytes of a model input of type `dtype`: float32 as
/// they are, int8 and uint8 quantized with `quant` by TFLite's QUANTIZE
/// arithmetic (the kernel the devices have), so the bytes are the ones a
/// QUANTIZE operator would make.
pub fn input_from_real(values: &[f32], dtype: DType, quant: (f32, i32)) -> Result<Vec<u8>, String> {
    let quantized = |zero_point: i32| {
        let mut q = vec![0i8; values.len()];
        kernels::float::quantize(quant.0, zero_point, values, &mut q)
            .map_err(|e| format!("failed to quantize the input: {e}"))
            .map(|()| q)
    };
    match dtype {
        DType::F32 => Ok(bytemuck::cast_slice(values).to_vec()),
        DType::I8 => Ok(bytemuck::cast_slice(&quantized(quant.1)?).to_vec()),
        // uint8 is int8 shifted by 128: the zero point shifted down, the bytes back up.
        DType::U8 => Ok(quantized(quant.1 - 128)?
            .iter()
            .map(|&q| q as u8 ^ 0x80)
            .collect()),
        DType::I16 => {
            let mut q = vec![0i16; values.len()];
            kernels::int16::quantize(quant.0, quant.1, values, &mut q)
                .map_err(|e| format!("failed to quantize the input: {e}"))?;
            Ok(bytemuck::cast_slice(&q).to_vec())
        }
        // Indices (GATHER's): whole numbers as they are.
        DType::I32 => {
            let ids: Vec<i32> = values.iter().map(|&v| v.round() as i32).collect();
            Ok(bytemuck::cast_slice(&ids).to_vec())
        }
        DType::Bits => Err("the model input is packed bits".into()),
    }
}

/// Samples and labels, in their fixed order.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Name.
    pub name: String,
    /// Values per sample.
    pub item: usize,
    /// All samples, `item` values each.
    pub values: Values,
    /// One class per sample, if the dataset has labels.
    pub labels: Option<Vec<i64>>,
}

impl Values {
    /// Number of values, all samples together.
    fn count(&self) -> usize {
        match self {
            Values::Real(v) => v.len(),
            Values::Int8(v) => v.len(),
            Values::UInt8(v) => v.len(),
        }
    }
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.count().checked_div(self.item).unwrap_or(0)
    }

    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i` as real values (int8 samples as they are).
    pub fn real(&self, i: usize) -> Vec<f32> {
        let range = i * self.item..(i + 1) * self.item;
        match &self.values {
            Values::Real(v) => v[range].to_vec(),
            Values::Int8(v) => v[range].iter().map(|&q| q as f32).collect(),
            Values::UInt8(v) => v[range].iter().map(|&q| q as f32).collect(),
        }
    }

    /// Sample `i` as the bytes of a model input described by `input`, quantized with `quant` for int8.
    pub fn input_bytes(
        &self,
        i: usize,
        input: &TensorDesc,
        quant: (f32, i32),
    ) -> Result<Vec<u8>, String> {
        let range = i * self.item..(i + 1) * self.item;
        match (&self.values, input.dtype) {
            (Values::Int8(v), DType::I8) => Ok(bytemuck::cast_slice(&v[range]).to_vec()),
            (Values::UInt8(v), DType::U8) => Ok(v[range].to_vec()),
            (Values::Int8(_), DType::F32 | DType::U8 | DType::I16) => Err(format!(
                "dataset `{}` holds int8 samples, but the model input is {}",
                self.name,
                match input.dtype {
                    DType::U8 => "uint8",
                    DType::I16 => "int16",
                    _ => "float32",
                }
            )),
            (Values::Real(v), dtype) => input_from_real(&v[range], dtype, quant),
            (_, dtype) => input_from_real(&self.real(i), dtype, quant),
        }
    }

    /// Checks that every sample has as many values as a model input of `elements`.
    pub fn check_item(&self, model: &str, elements: usize) -> Result<(), String> {
        if self.item != elements {
            return Err(format!(
                "dataset `{}` has {} values per sample; model `{model}` takes {elements}",
                self.name, self.item
            ));
        }
        Ok(())
    }

    /// The number of samples whose `predicted` class equals the label.
    pub fn correct(&self, predicted: &[usize]) -> Option<usize> {
        let labels = self.labels.as_ref()?;
        Some(
            predicted
                .iter()
                .zip(labels)
                .filter(|(&p, &l)| p as i64 == l)
                .count(),
        )
    }
}

/// Reads the dataset `spec` describes; `base` is the directory relative paths start from.
pub fn load(spec: &DatasetSpec, base: &Path) -> Result<Dataset, String> {
    let path = base.join(&spec.path);
    let fail = |why: String| {
        format!(
            "failed to read dataset `{}` from {}: {why}",
            spec.name,
            path.display()
        )
    };
    let (item, values, labels) = read_arrays(spec, base, &path, &fail)?;
    let count = values.count() / item.max(1);
    if let Some(labels) = &labels {
        if labels.len() != count {
            return Err(fail(format!("{count} samples but {} labels", labels.len())));
        }
    }
    if count == 0 {
        return Err(fail("it holds no samples".into()));
    }
    let mut order = sample_order(count, spec.shuffle);
    order.truncate(spec.limit.unwrap_or(count));
    let values = match values {
        Values::Real(v) => Values::Real(pick(&v, &order, item)),
        Values::Int8(v) => Values::Int8(pick(&v, &order, item)),
        Values::UInt8(v) => Values::UInt8(pick(&v, &order, item)),
    };
    let labels = labels.map(|l| order.iter().map(|&i| l[i]).collect());
    Ok(Dataset {
        name: spec.name.clone(),
        item,
        values,
        labels,
    })
}

/// A dataset file's contents: values per sample, every value, the labels.
type Arrays = (usize, Values, Option<Vec<i64>>);

/// The arrays of a dataset file, read by its extension.
fn read_arrays(
    spec: &DatasetSpec,
    base: &Path,
    path: &Path,
    fail: &dyn Fn(String) -> String,
) -> Result<Arrays, String> {
    Ok(match path.extension().and_then(|e| e.to_str()) {
        Some("npz") => {
            let archive = npy::read_file(path).map_err(fail)?;
            let x = npy::npz_member(&archive, "x")
                .map_err(fail)?
                .ok_or_else(|| fail("it has no array `x` (the samples)".into()))?;
            let (item, values) = npy::parse(&x)
                .and_then(read_samples)
                .map_err(|e| fail(format!("array `x`: {e}")))?;
            let labels = match npy::npz_member(&archive, "y").map_err(fail)? {
                Some(y) => Some(
                    npy::parse(&y)
                        .and_then(read_labels)
                        .map_err(|e| fail(format!("array `y`: {e}")))?,
                ),
                None => None,
            };
            (item, values, labels)
        }
        Some("npy") => {
            let (item, values) = npy::read_file(path)
                .and_then(|b| npy::parse(&b).and_then(read_samples))
                .map_err(fail)?;
            let labels = match &spec.labels {
                Some(l) => {
                    let lpath = base.join(l);
                    let labels =
                        npy::read_file(&lpath).and_then(|b| npy::parse(&b).and_then(read_labels));
                    Some(labels.map_err(|e| {
                        format!(
                            "failed to read the labels of dataset `{}` from {}: {e}",
                            spec.name,
                            lpath.display()
                        )
                    })?)
                }
                None => None,
            };
            (item, values, labels)
        }
        Some("csv") => {
            let bytes = crate::input::files::read(path).map_err(|e| fail(e.to_string()))?;
            crate::guard::catching("polars", || read_csv(&bytes, &spec.label_column))
                .and_then(|r| r)
                .map_err(fail)?
        }
        _ => {
            return Err(fail(
                "unknown format: datasets are .npz (arrays x and y), .npy or .csv files".into(),
            ))
        }
    })
}

/// `0..count`, shuffled by `seed` if given: Fisher-Yates with ChaCha8, the same order on every machine.
fn sample_order(count: usize, seed: Option<u64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if let Some(seed) = seed {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for i in (1..count).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
    }
    order
}

/// The samples at `order`, `item` values each.
fn pick<T: Copy>(values: &[T], order: &[usize], item: usize) -> Vec<T> {
    order
        .iter()
        .flat_map(|&i| values[i * item..(i + 1) * item].iter().copied())
        .collect()
}

/// `[N, ...]` samples: values per sample and the values.
fn read_samples<R: std::io::Read>(npy: npyz::NpyFile<R>) -> Result<(usize, Values), String> {
    let shape = npy.shape().to_vec();
    if shape.len() < 2 || shape[0] == 0 {
        return Err(format!(
            "the samples have shape {shape:?}; [N, ...] with N >= 1 is needed"
        ));
    }
    // The product fits: npy::parse checked that the data holds this many elements.
    let item = shape[1..].iter().product::<u64>() as usize;
    if npy.order() != npyz::Order::C {
        return Err("the samples are in Fortran order; save them in C order".into());
    }
    let npyz::DType::Plain(t) = npy.dtype() else {
        return Err("the samples are not a plain numeric array".into());
    };
    let values = match (t.type_char(), t.size_field()) {
        (npyz::TypeChar::Int, 1) => Values::Int8(npy.into_vec::<i8>().map_err(|e| e.to_string())?),
        (npyz::TypeChar::Uint, 1) => {
            Values::UInt8(npy.into_vec::<u8>().map_err(|e| e.to_string())?)
        }
        _ => Values::Real(numbers(npy)?.into_iter().map(|v| v as f32).collect()),
    };
    Ok((item, values))
}

/// One integer label per sample.
fn read_labels<R: std::io::Read>(npy: npyz::NpyFile<R>) -> Result<Vec<i64>, String> {
    if npy.shape().len() != 1 {
        return Err(format!(
            "labels have shape {:?}; one class index per sample, [N], is needed",
            npy.shape()
        ));
    }
    let values = numbers(npy)?;
    values
        .iter()
        .map(|&v| {
            if v.fract() == 0.0 && v >= 0.0 {
                Ok(v as i64)
            } else {
                Err(format!("label {v} is not a class index"))
            }
        })
        .collect()
}

/// The values of a numeric array, whatever its element type.
fn numbers<R: std::io::Read>(npy: npyz::NpyFile<R>) -> Result<Vec<f64>, String> {
    let npyz::DType::Plain(t) = npy.dtype() else {
        return Err("not a plain numeric array".into());
    };
    let e = |e: std::io::Error| e.to_string();
    Ok(match (t.type_char(), t.size_field()) {
        (npyz::TypeChar::Float, 4) => npy
            .into_vec::<f32>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(e)?,
        (npyz::TypeChar::Int, 1) => npy
            .into_vec::<i8>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Int, 2) => npy
            .into_vec::<i16>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Int, 4) => npy
            .into_vec::<i32>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Int, 8) => npy
            .into_vec::<i64>()
            .map_err(e)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        (npyz::TypeChar::Uint, 1) => npy
            .into_vec::<u8>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Uint, 2) => npy
            .into_vec::<u16>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Uint, 4) => npy
            .into_vec::<u32>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (npyz::TypeChar::Uint, 8) => npy
            .into_vec::<u64>()
            .map_err(e)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        (c, size) => {
            return Err(format!(
                "element type {c:?}{size} is not supported (integers or float32/float64)"
            ))
        }
    })
}

/// A CSV with a header: the label column, every other column a feature
/// (values per sample, the values, the labels).
pub fn read_csv(
    bytes: &[u8],
    label_column: &str,
) -> Result<(usize, Values, Option<Vec<i64>>), String> {
    use polars::prelude::*;
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    if !names.iter().any(|n| n == label_column) {
        return Err(format!(
            "it has no column `{label_column}` (the labels); its columns are {}",
            names.join(", ")
        ));
    }
    let features: Vec<&String> = names.iter().filter(|n| *n != label_column).collect();
    let rows = df.height();
    let mut values = vec![0f32; rows * features.len()];
    for (j, name) in features.iter().enumerate() {
        let column = df
            .column(name)
            .and_then(|c| c.cast(&DataType::Float64))
            .map_err(|e| e.to_string())?;
        let ca = column.f64().map_err(|e| e.to_string())?;
        for (i, v) in (0..ca.len()).map(|i| ca.get(i)).enumerate() {
            values[i * features.len() + j] =
                v.ok_or(format!("row {} has no value in column `{name}`", i + 2))? as f32;
        }
    }
    let label = df
        .column(label_column)
        .and_then(|c| c.cast(&DataType::Int64))
        .map_err(|e| e.to_string())?;
    let ca = label.i64().map_err(|e| e.to_string())?;
    let labels = (0..ca.len())
        .map(|i| ca.get(i))
        .enumerate()
        .map(|(i, v)| v.ok_or(format!("row {} has no label", i + 2)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((features.len(), Values::Real(values), Some(labels)))
}
