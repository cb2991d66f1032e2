//! UNIDIRECTIONAL_SEQUENCE_LSTM, integer (int8 activations and weights,
//! int16 cell state): the parameters TFLite derives at preparation
//! (`PopulateQuantizedLstmParams8x8_16` and the zero-point-folded biases of
//! `PopulatePrecomputedZPTimesWeightsWithBias`), computed here the same way
//! and written as the block `kernels::lstm` runs.

use super::{fb, OpContext, Result, TensorInfo};
use kernels::lstm::{Gate, Lstm};
use kernels::lstm16::{Gate16, Lstm16};
use kernels::quant::quantize_multiplier;

/// TFLite's input positions.
const INPUT_WEIGHTS: usize = 1;
const RECURRENT_WEIGHTS: usize = 5;
const PEEPHOLES: [usize; 3] = [9, 10, 11];
const BIASES: usize = 12;
const PROJECTION: [usize; 2] = [16, 17];
const OUTPUT_STATE: usize = 18;
const CELL_STATE: usize = 19;
const LAYER_NORMS: [usize; 4] = [20, 21, 22, 23];
/// The index of the cell state among an LSTM's inputs (int16, allowed there only).
pub const CELL_STATE_INPUT: usize = CELL_STATE;

/// The LSTM block, and whether time comes first.
pub fn block(
    ctx: &OpContext,
    op: &fb::Operator,
    input_quant: (f32, i32),
) -> Result<(Vec<u8>, bool)> {
    let o = op
        .builtin_options_as_unidirectional_sequence_lstmoptions()
        .ok_or("it has no UnidirectionalSequenceLSTMOptions")?;
    refuse_variants(ctx)?;
    let input = ctx.reader.tensor(ctx.input(0)?)?;
    let n_input = *input.dims.last().ok_or("its input has no dimensions")? as usize;
    let state = ctx.reader.tensor(ctx.input(OUTPUT_STATE)?)?;
    let (state_scale, state_zp) = state.activation_quant()?;
    let cell = ctx.reader.tensor(ctx.input(CELL_STATE)?)?;
    let cell_scale_power = cell_scale_power(&cell)?;
    let hidden = hidden_quant(ctx, op)?;
    // Q3.12: the gates' products land in int16 with 12 fractional bits.
    let gate_scale = (2f64).powi(-12) as f32;
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    let mut scales = Vec::new();
    for g in 0..kernels::lstm::GATES {
        let (w_in, s_in) = int8_matrix(ctx, INPUT_WEIGHTS + g, n_input)?;
        let n_cell = w_in.len() / n_input;
        let (w_rec, s_rec) = int8_matrix(ctx, RECURRENT_WEIGHTS + g, n_cell)?;
        let bias = int32_vector(ctx, BIASES + g, n_cell)?;
        // TFLite's float arithmetic, then QuantizeMultiplier of the double.
        scales.push((
            quantize_multiplier(f64::from(s_in * input_quant.0 / gate_scale)),
            quantize_multiplier(f64::from(s_rec * state_scale / gate_scale)),
        ));
        biases.push((
            folded_bias(&bias, &w_in, -input_quant.1),
            folded_bias(&vec![0; n_cell], &w_rec, -state_zp),
        ));
        weights.push((w_in, w_rec));
    }
    let n_cell = biases[0].0.len();
    if biases.iter().any(|(b, _)| b.len() != n_cell) {
        return Err("its gates have different cell counts".into());
    }
    let hidden_scale = (2f64.powi(-15) / f64::from(hidden.0) * 2f64.powi(-15)) as f32;
    let cell_clip = match o.cell_clip() {
        c if c > 0.0 => (c / cell.quant_scale()?).clamp(-32768.0, 32767.0) as i16,
        _ => 0,
    };
    let gates = core::array::from_fn(|g| Gate {
        input_weights: &weights[g].0,
        input_bias: &biases[g].0,
        input_scale: scales[g].0,
        recurrent_weights: &weights[g].1,
        recurrent_bias: &biases[g].1,
        recurrent_scale: scales[g].1,
    });
    let lstm = Lstm {
        n_input,
        n_cell,
        time_major: o.time_major(),
        cell_scale_power,
        cell_clip,
        hidden_scale: quantize_multiplier(f64::from(hidden_scale)),
        hidden_zero_point: hidden.1,
        state_zero_point: state_zp,
        gates,
    };
    // The kernel's own checks, here where the file can be named.
    let block = lstm.encode();
    Lstm::parse(&block).map_err(|e| e.to_string())?;
    Ok((block, o.time_major()))
}

/// The 16x8 LSTM block (int16 activations), with the parameters TFLM's
/// `PrepareGateParametersInteger` derives: each product's multiplier in
/// double precision from the float scales to Q3.12, the inter-gate
/// multipliers from Q0.15 gate outputs to the cell and hidden states.
pub fn block16(ctx: &OpContext, op: &fb::Operator, input_scale: f32) -> Result<(Vec<u8>, bool)> {
    let o = op
        .builtin_options_as_unidirectional_sequence_lstmoptions()
        .ok_or("it has no UnidirectionalSequenceLSTMOptions")?;
    refuse_variants(ctx)?;
    if o.fused_activation_function() != fb::ActivationFunctionType::TANH {
        return Err("its cell gate activation is not TANH, the one TFLM's 16x8 LSTM runs".into());
    }
    let input = ctx.reader.tensor(ctx.input(0)?)?;
    let n_input = *input.dims.last().ok_or("its input has no dimensions")? as usize;
    let (hidden_scale, hidden_zp) = ctx
        .reader
        .tensor(ctx.input(OUTPUT_STATE)?)?
        .activation_quant()?;
    let cell = ctx.reader.tensor(ctx.input(CELL_STATE)?)?;
    let cell_scale_power = cell_scale_power(&cell)?;
    let cell_scale = f64::from(cell.quant_scale()?);
    let to_gate =
        |a: f32, b: f32| quantize_multiplier(f64::from(a) * f64::from(b) / 2f64.powi(-12));
    let mut parts = Vec::new();
    for g in 0..kernels::lstm::GATES {
        let (w_in, s_in) = int8_matrix(ctx, INPUT_WEIGHTS + g, n_input)?;
        let n_cell = w_in.len() / n_input;
        let (w_rec, s_rec) = int8_matrix(ctx, RECURRENT_WEIGHTS + g, n_cell)?;
        let bias = int64_vector(ctx, BIASES + g, n_cell)?;
        let scales = (to_gate(input_scale, s_in), to_gate(hidden_scale, s_rec));
        parts.push((w_in, w_rec, bias, scales));
    }
    let n_cell = parts[0].2.len();
    if parts.iter().any(|p| p.2.len() != n_cell) {
        return Err("its gates have different cell counts".into());
    }
    let q15 = 2f64.powi(-15);
    let cell_clip = match o.cell_clip() {
        c if c > 0.0 => (f64::from(c) / cell_scale).clamp(-32768.0, 32767.0) as i16,
        _ => 0,
    };
    let lstm = Lstm16 {
        n_input,
        n_cell,
        time_major: o.time_major(),
        cell_scale_power,
        cell_clip,
        hidden_zero_point: hidden_zp,
        forget_cell_scale: quantize_multiplier(q15 * cell_scale / cell_scale),
        input_cell_scale: quantize_multiplier(q15 * q15 / cell_scale),
        hidden_scale: quantize_multiplier(q15 * q15 / f64::from(hidden_scale)),
        gates: core::array::from_fn(|g| Gate16 {
            input_weights: &parts[g].0,
            bias: &parts[g].2,
            input_scale: parts[g].3 .0,
            recurrent_weights: &parts[g].1,
            recurrent_scale: parts[g].3 .1,
        }),
    };
    let block = lstm.encode();
    Lstm16::parse(&block).map_err(|e| e.to_string())?;
    Ok((block, o.time_major()))
}

/// A constant int64 vector of `len` values, as the kernel's two-word form.
fn int64_vector(ctx: &OpContext, i: usize, len: usize) -> Result<Vec<kernels::int16::Wide>> {
    let t = ctx.constant(i, fb::TensorType::INT64, 8)?;
    let values: Vec<_> = t
        .data
        .chunks_exact(8)
        .map(|b| kernels::int16::wide(u64::from_le_bytes(b.try_into().expect("8 bytes"))))
        .collect();
    if values.len() != len {
        return Err(format!(
            "input {i} has {} values for {len} cells",
            values.len()
        ));
    }
    Ok(values)
}

/// TFLite's variants of the LSTM that bench's kernel does not compute yet.
fn refuse_variants(ctx: &OpContext) -> Result<()> {
    let present = |i: &usize| ctx.optional(*i).is_some();
    if !present(&INPUT_WEIGHTS) || !present(&RECURRENT_WEIGHTS) {
        return Err(
            "it couples the input and forget gates (CIFG), which is not supported yet".into(),
        );
    }
    if PEEPHOLES.iter().any(present) {
        return Err("it has peephole connections, which are not supported yet".into());
    }
    if PROJECTION.iter().any(present) {
        return Err("it has a projection, which is not supported yet".into());
    }
    if LAYER_NORMS.iter().any(present) {
        return Err("it has layer normalization, which is not supported yet".into());
    }
    Ok(())
}

/// The cell state's scale as a power of two (TFLite requires one, at most 2^-9).
fn cell_scale_power(cell: &TensorInfo) -> Result<i32> {
    if cell.dtype != fb::TensorType::INT16 {
        return Err(
            "its cell state is not int16; only the int8 LSTM with an int16 cell state is supported"
                .into(),
        );
    }
    let scale = cell.quant_scale()?;
    let power = scale.log2().round() as i32;
    if (2f32).powi(power) != scale || !(-15..=-9).contains(&power) {
        return Err(format!(
            "its cell state scale {scale} is not a power of two from 2^-15 to 2^-9"
        ));
    }
    Ok(power)
}

/// The scale and zero point of the hidden state's intermediate (the fifth;
/// intermediates hold quantization only, their shape is empty).
fn hidden_quant(ctx: &OpContext, op: &fb::Operator) -> Result<(f32, i32)> {
    let intermediates = super::ends(op.intermediates());
    let index = intermediates
        .get(4)
        .and_then(|&i| usize::try_from(i).ok())
        .filter(|&i| i < ctx.reader.tensors.len())
        .ok_or(
            "it has no hidden-state intermediate tensor (the fifth), which its quantization needs",
        )?;
    let q = ctx.reader.tensors.get(index).quantization();
    let scale = q
        .and_then(|q| q.scale())
        .filter(|s| s.len() == 1)
        .map(|s| s.get(0));
    let zero_point = q
        .map(super::zero_points)
        .filter(|z| z.len() == 1)
        .map(|z| z[0]);
    match (scale, zero_point) {
        (Some(s), Some(z)) if s.is_finite() && s > 0.0 && (-128..=127).contains(&z) => {
            Ok((s, z as i32))
        }
        _ => Err("its hidden-state intermediate has no per-tensor int8 quantization".into()),
    }
}

/// A constant int8 matrix of rows `columns` long, with its one scale.
fn int8_matrix(ctx: &OpContext, i: usize, columns: usize) -> Result<(Vec<i8>, f32)> {
    let t = ctx.constant(i, fb::TensorType::INT8, 1)?;
    if t.dims.len() != 2 || t.dims[1] as usize != columns {
        return Err(format!(
            "input {i} has shape {:?}, expected [cells, {columns}]",
            t.dims
        ));
    }
    if t.zero_points().iter().any(|&z| z != 0) {
        return Err(format!(
            "input {i} has a nonzero zero point; LSTM weights are symmetric"
        ));
    }
    Ok((bytemuck::cast_slice(&t.data).to_vec(), t.quant_scale()?))
}

/// A constant int32 vector of `len` values.
fn int32_vector(ctx: &OpContext, i: usize, len: usize) -> Result<Vec<i32>> {
    let t = ctx.constant(i, fb::TensorType::INT32, 4)?;
    let values = super::le_words(&t.data, i32::from_le_bytes);
    if values.len() != len {
        return Err(format!(
            "input {i} has {} values for {len} cells",
            values.len()
        ));
    }
    Ok(values)
}

/// `bias + zero_point * row_sum(weights)`, wrapping as TFLite's int32 does.
fn folded_bias(bias: &[i32], weights: &[i8], zero_point: i32) -> Vec<i32> {
    let columns = weights.len() / bias.len().max(1);
    bias.iter()
        .zip(weights.chunks_exact(columns.max(1)))
        .map(|(&b, row)| {
            let sum = row.iter().fold(0i32, |s, &w| s.wrapping_add(w as i32));
            b.wrapping_add(sum.wrapping_mul(zero_point))
        })
        .collect()
}
