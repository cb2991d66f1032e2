//! TFLite's integer LSTM: UNIDIRECTIONAL_SEQUENCE_LSTM with int8 input,
//! weights, hidden state and output and an int16 cell state (the "8x8_16"
//! scheme, `lstm_eval.cc`'s `LstmStepInteger8x8_16` and the portable
//! tensor utilities it calls), transcribed step for step: each gate is two
//! int8 matrix-vector products requantized to int16 Q3.12 and added with
//! saturation, then gemmlowp's 16-bit logistic (or tanh for the cell
//! gate); the cell state is `forget * cell + input * cell_gate`; the hidden
//! state `output * tanh(cell)` requantized to int8. Variants TFLite adds
//! to that (peephole, projection, layer normalization, CIFG) are refused
//! by the importer.
//!
//! Every inference starts from zero states (the hidden state at its zero
//! point), as a classifier's does; TFLite keeps them in variable tensors
//! across invocations until they are reset.
//!
//! The operator's constants are one block, [`Lstm::parse`]'s layout:
//! [`HEADER_WORDS`] i32 words, then each gate's two int32 bias vectors
//! (zero point times the weights' row sums folded in, as TFLite
//! precomputes them), then each gate's two int8 weight matrices.

use crate::error::{ensure, expect_len, KernelError};
use crate::fixedpoint16::{logistic, tanh};
use crate::quant::{multiply_by_quantized_multiplier, ChannelRequant, Requant, Rounding};

/// Gates in TFLite's order of computation: input, forget, cell, output.
pub const GATES: usize = 4;
/// Header words: sizes, flags, the cell and hidden parameters, then each
/// gate's two multipliers (`multiplier, shift` each).
pub const HEADER_WORDS: usize = 10 + GATES * 4;
/// The header word that names the block's scheme: 0 for this one (TFLite's
/// 8x8_16), [`crate::lstm16::SCHEME`] for TFLM's 16x8 block.
pub const SCHEME_WORD: usize = 9;

/// Whether an LSTM block is TFLM's 16x8 one ([`crate::lstm16`]).
pub fn is_16x8(block: &[u8]) -> bool {
    block.len() >= 4 * (SCHEME_WORD + 1) && word(block, SCHEME_WORD) == crate::lstm16::SCHEME
}

/// One gate: `W_x x + b_x` and `W_h h + b_h`, each requantized to Q3.12.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    /// `[n_cell, n_input]` row-major.
    pub input_weights: &'a [i8],
    /// `n_cell` effective biases of the input product.
    pub input_bias: &'a [i32],
    /// Input product to Q3.12.
    pub input_scale: Requant,
    /// `[n_cell, n_cell]` row-major (no projection: the output size is the cell count).
    pub recurrent_weights: &'a [i8],
    /// `n_cell` effective biases of the recurrent product.
    pub recurrent_bias: &'a [i32],
    /// Recurrent product to Q3.12.
    pub recurrent_scale: Requant,
}

/// A parsed LSTM block.
#[derive(Clone, Copy, Debug)]
pub struct Lstm<'a> {
    /// Input features per step.
    pub n_input: usize,
    /// Cells (and outputs).
    pub n_cell: usize,
    /// `[time, batch, features]` rather than `[batch, time, features]`.
    pub time_major: bool,
    /// The cell state's scale is `2^cell_scale_power` (-15 to -9).
    pub cell_scale_power: i32,
    /// Cell state clip in its own units (0: none).
    pub cell_clip: i16,
    /// `output_gate * tanh(cell)` (Q0.30) to the hidden state's int8.
    pub hidden_scale: Requant,
    /// The zero point the hidden state is requantized to.
    pub hidden_zero_point: i32,
    /// The output state's zero point: the hidden state's value at the start.
    pub state_zero_point: i32,
    /// The gates, in [`GATES`] order.
    pub gates: [Gate<'a>; GATES],
}

/// Bytes of the block for `n_input` inputs and `n_cell` cells.
pub fn block_len(n_input: usize, n_cell: usize) -> usize {
    4 * (HEADER_WORDS + GATES * 2 * n_cell) + GATES * n_cell * (n_input + n_cell)
}

/// Scratch bytes one run needs: the cell state (int16) and hidden state
/// (int8) of each batch row, and five int16 vectors of one step.
pub fn scratch_len(batch: usize, n_cell: usize) -> usize {
    2 * batch * n_cell + (batch * n_cell).next_multiple_of(2) + 2 * 5 * n_cell
}

/// Word `i` of a block (little-endian i32); the caller checked the length.
pub(crate) fn word(block: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([
        block[4 * i],
        block[4 * i + 1],
        block[4 * i + 2],
        block[4 * i + 3],
    ])
}

impl<'a> Lstm<'a> {
    /// Reads a block (4-byte aligned), checking its sizes and parameters.
    pub fn parse(block: &'a [u8]) -> Result<Self, KernelError> {
        ensure(
            block.len() >= 4 * HEADER_WORDS,
            "lstm: block shorter than its header",
        )?;
        ensure(
            word(block, SCHEME_WORD) == 0,
            "lstm: not an 8x8_16 LSTM block",
        )?;
        let size = |i: usize| usize::try_from(word(block, i)).unwrap_or(usize::MAX);
        let (n_input, n_cell) = (size(0), size(1));
        let zero_points = [word(block, 7), word(block, 8)];
        ensure(
            (1..=4096).contains(&n_input) && (1..=4096).contains(&n_cell),
            "lstm: input and cell counts must be 1 to 4096",
        )?;
        expect_len("lstm block", block.len(), block_len(n_input, n_cell))?;
        let requant = |i: usize| Requant {
            multiplier: word(block, i),
            shift: word(block, i + 1),
        };
        ensure(
            zero_points.iter().all(|z| (-128..=127).contains(z)),
            "lstm: zero points must be int8 values",
        )?;
        let cell_scale_power = word(block, 3);
        ensure(
            (-15..=-9).contains(&cell_scale_power),
            "lstm: cell state scale must be 2^-15 to 2^-9",
        )?;
        let words: &[i32] =
            bytemuck::try_cast_slice(&block[4 * HEADER_WORDS..][..4 * GATES * 2 * n_cell])
                .map_err(|_| KernelError::Param {
                    what: "lstm: block is not 4-byte aligned",
                })?;
        let bytes: &[i8] = bytemuck::cast_slice(&block[4 * (HEADER_WORDS + GATES * 2 * n_cell)..]);
        let gates = core::array::from_fn(|g| {
            let biases = &words[g * 2 * n_cell..][..2 * n_cell];
            let weights = &bytes[g * n_cell * (n_input + n_cell)..][..n_cell * (n_input + n_cell)];
            Gate {
                input_weights: &weights[..n_cell * n_input],
                input_bias: &biases[..n_cell],
                input_scale: requant(10 + 4 * g),
                recurrent_weights: &weights[n_cell * n_input..],
                recurrent_bias: &biases[n_cell..],
                recurrent_scale: requant(12 + 4 * g),
            }
        });
        let lstm = Lstm {
            n_input,
            n_cell,
            time_major: word(block, 2) != 0,
            cell_scale_power,
            cell_clip: word(block, 4) as i16,
            hidden_scale: requant(5),
            hidden_zero_point: word(block, 7),
            state_zero_point: word(block, 8),
            gates,
        };
        let scales = lstm
            .gates
            .iter()
            .flat_map(|g| [g.input_scale, g.recurrent_scale]);
        ensure(
            scales.chain([lstm.hidden_scale]).all(|r| r.is_valid()),
            "lstm: requantization shift must be in -31..=31",
        )?;
        Ok(lstm)
    }

    /// The block's bytes (the host writes it; [`Lstm::parse`] reads it).
    #[cfg(feature = "std")]
    pub fn encode(&self) -> std::vec::Vec<u8> {
        let mut header = [0i32; HEADER_WORDS];
        header[..10].copy_from_slice(&[
            self.n_input as i32,
            self.n_cell as i32,
            self.time_major as i32,
            self.cell_scale_power,
            self.cell_clip as i32,
            self.hidden_scale.multiplier,
            self.hidden_scale.shift,
            self.hidden_zero_point,
            self.state_zero_point,
            0,
        ]);
        for (g, gate) in self.gates.iter().enumerate() {
            header[10 + 4 * g..][..4].copy_from_slice(&[
                gate.input_scale.multiplier,
                gate.input_scale.shift,
                gate.recurrent_scale.multiplier,
                gate.recurrent_scale.shift,
            ]);
        }
        let mut out: std::vec::Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
        for gate in &self.gates {
            for b in gate.input_bias.iter().chain(gate.recurrent_bias) {
                out.extend_from_slice(&b.to_le_bytes());
            }
        }
        let matrices = self
            .gates
            .iter()
            .map(|g| (g.input_weights, g.recurrent_weights));
        push_weights(&mut out, matrices);
        out
    }
}

/// Appends each gate's input then recurrent int8 matrix, as both blocks end.
#[cfg(feature = "std")]
pub(crate) fn push_weights<'w>(
    out: &mut std::vec::Vec<u8>,
    matrices: impl Iterator<Item = (&'w [i8], &'w [i8])>,
) {
    for (input, recurrent) in matrices {
        out.extend(input.iter().chain(recurrent).map(|&w| w as u8));
    }
}

/// `gate[row] = sat16(gate[row] + requant(bias[row] + W[row] . x))`
/// (`MatrixBatchVectorMultiplyAccumulate` into int16), four rows at a
/// time through the int8 dot products (the DSP ones on cores that have
/// them: the input is widened once for four rows), the four sums
/// requantized together (gemmlowp's two roundings as one 64-bit floor, in
/// assembly on DSP cores) with the multiplier unpacked once.
fn accumulate_product(gate: &mut [i16], x: &[i8], weights: &[i8], bias: &[i32], scale: Requant) {
    use crate::int8::dot::{dot, dot4};
    let requant = ChannelRequant::new(scale, Rounding::Double);
    let (k, rows) = (x.len(), gate.len());
    let add = |gate: &mut i16, scaled: i32| {
        *gate = (scaled + *gate as i32).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
    };
    let mut row = 0;
    while row + 4 <= rows {
        let w = core::array::from_fn(|j| &weights[(row + j) * k..][..k]);
        let sums = dot4(x, w, 0);
        let sums: [i32; 4] = core::array::from_fn(|j| bias[row + j].wrapping_add(sums[j]));
        let scaled = match requant.rounding_down() {
            Some(down) => down.apply_each(sums),
            None => sums.map(|s| requant.apply_double(s)),
        };
        for (gate, scaled) in gate[row..row + 4].iter_mut().zip(scaled) {
            add(gate, scaled);
        }
        row += 4;
    }
    for row in row..rows {
        let sum = bias[row].wrapping_add(dot(x, &weights[row * k..][..k], 0));
        add(&mut gate[row], requant.apply_double(sum));
    }
}

/// `RoundingDivideByPOT(a * b, shift)` as int16 (`CwiseMul` with a shift).
fn mul_shift(a: i16, b: i16, shift: u32) -> i16 {
    crate::quant::rounding_divide_by_pot(a as i32 * b as i32, shift) as i16
}

/// The scratch's parts: cell states, hidden states, and the step's five vectors.
struct State<'s> {
    cells: &'s mut [i16],
    hidden: &'s mut [i8],
    vectors: &'s mut [i16],
}

fn split_scratch(
    scratch: &mut [u8],
    batch: usize,
    n_cell: usize,
) -> Result<State<'_>, KernelError> {
    expect_len("lstm scratch", scratch.len(), scratch_len(batch, n_cell))?;
    let (cells, rest) = scratch.split_at_mut(2 * batch * n_cell);
    let (hidden, vectors) = rest.split_at_mut((batch * n_cell).next_multiple_of(2));
    let misaligned = KernelError::Param {
        what: "lstm: scratch is not 2-byte aligned",
    };
    Ok(State {
        cells: bytemuck::try_cast_slice_mut(cells).map_err(|_| misaligned)?,
        hidden: bytemuck::cast_slice_mut(&mut hidden[..batch * n_cell]),
        vectors: bytemuck::try_cast_slice_mut(vectors).map_err(|_| misaligned)?,
    })
}

/// Runs the sequence `input` (`[batch, time, n_input]`, or time first)
/// into `output` (the same with `n_cell` features), from zero states.
pub fn run(
    l: &Lstm,
    (batch, time): (usize, usize),
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), KernelError> {
    let n_cell = l.n_cell;
    expect_len("input", input.len(), batch * time * l.n_input)?;
    expect_len("output", output.len(), batch * time * n_cell)?;
    let state = split_scratch(scratch, batch, n_cell)?;
    state.cells.fill(0);
    state.hidden.fill(l.state_zero_point as i8);
    let (gates, tanh_cell) = state.vectors.split_at_mut(GATES * n_cell);
    for b in 0..batch {
        let cell = &mut state.cells[b * n_cell..][..n_cell];
        let hidden = &mut state.hidden[b * n_cell..][..n_cell];
        for t in 0..time {
            let step = if l.time_major {
                t * batch + b
            } else {
                b * time + t
            };
            let x = &input[step * l.n_input..][..l.n_input];
            step_once(l, x, cell, hidden, gates, tanh_cell);
            output[step * n_cell..][..n_cell].copy_from_slice(hidden);
        }
    }
    Ok(())
}

/// One time step of one batch row (`LstmStepInteger8x8_16`).
fn step_once(
    l: &Lstm,
    x: &[i8],
    cell: &mut [i16],
    hidden: &mut [i8],
    gates: &mut [i16],
    tanh_cell: &mut [i16],
) {
    let n = l.n_cell;
    for (g, gate) in l.gates.iter().enumerate() {
        let out = &mut gates[g * n..][..n];
        out.fill(0);
        accumulate_product(
            out,
            x,
            gate.input_weights,
            gate.input_bias,
            gate.input_scale,
        );
        accumulate_product(
            out,
            hidden,
            gate.recurrent_weights,
            gate.recurrent_bias,
            gate.recurrent_scale,
        );
        // Q3.12 in; the cell gate is a tanh, the others sigmoids; Q0.15 out.
        for v in out.iter_mut() {
            *v = if g == 2 { tanh(*v, 3) } else { logistic(*v, 3) };
        }
    }
    let (input_gate, rest) = gates.split_at(n);
    let (forget_gate, rest) = rest.split_at(n);
    let (cell_gate, output_gate) = rest.split_at(n);
    // UpdateLstmCellInteger: forget * cell (Q0.15 x cell, >> 15) plus
    // input * cell_gate (Q0.30, to the cell's scale), saturating, clipped.
    let shift = (30 + l.cell_scale_power) as u32;
    for i in 0..n {
        let kept = mul_shift(forget_gate[i], cell[i], 15) as i32;
        let added = mul_shift(input_gate[i], cell_gate[i], shift) as i32;
        let mut c = (kept + added).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        if l.cell_clip > 0 {
            c = c.clamp(-l.cell_clip, l.cell_clip);
        }
        cell[i] = c;
    }
    // CalculateLstmOutputInteger8x8_16 without projection.
    let integer_bits = 15 + l.cell_scale_power;
    for (t, &c) in tanh_cell.iter_mut().zip(cell.iter()) {
        *t = tanh(c, integer_bits);
    }
    for i in 0..n {
        let product = output_gate[i] as i32 * tanh_cell[i] as i32;
        let scaled = multiply_by_quantized_multiplier(
            product,
            l.hidden_scale.multiplier,
            l.hidden_scale.shift,
        );
        hidden[i] = (scaled + l.hidden_zero_point).clamp(-128, 127) as i8;
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn zero_lstm<'a>(weights: &'a [i8], biases: &'a [i32], hidden_zero_point: i32) -> Lstm<'a> {
        let scale = crate::quant::quantize_multiplier(0.25);
        let gate = Gate {
            input_weights: &weights[..6],
            input_bias: &biases[..2],
            input_scale: scale,
            recurrent_weights: &weights[6..10],
            recurrent_bias: &biases[2..],
            recurrent_scale: scale,
        };
        Lstm {
            n_input: 3,
            n_cell: 2,
            time_major: false,
            cell_scale_power: -12,
            cell_clip: 0,
            hidden_scale: scale,
            hidden_zero_point,
            state_zero_point: hidden_zero_point,
            gates: [gate; GATES],
        }
    }

    #[test]
    fn a_block_reads_back_as_it_was_written() {
        let (weights, biases) = ([3i8, -1, 4, 1, -5, 9, 2, -6, 5, 3], [7i32, -8, 9, -10]);
        let block = zero_lstm(&weights, &biases, -3).encode();
        assert_eq!(block.len(), block_len(3, 2));
        let l = Lstm::parse(&block).unwrap();
        assert_eq!((l.n_input, l.n_cell, l.hidden_zero_point), (3, 2, -3));
        assert_eq!(l.gates[3].input_weights, &weights[..6]);
        assert_eq!(l.gates[2].recurrent_bias, &biases[2..]);
        assert!(Lstm::parse(&block[..block.len() - 1]).is_err());
        let mut bad = block.clone();
        bad[12..16].copy_from_slice(&(-8i32).to_le_bytes()); // cell scale 2^-8
        assert!(Lstm::parse(&bad).is_err());
    }

    #[test]
    fn with_zero_weights_the_hidden_state_stays_at_its_zero_point() {
        // Gates are sigmoid(0) = 1/2, the cell gate tanh(0) = 0: the cell
        // stays 0, and the hidden state is 1/2 * tanh(0) = 0, its zero point.
        let block = zero_lstm(&[0; 10], &[0; 4], -7).encode();
        let l = Lstm::parse(&block).unwrap();
        let input = [5i8, -9, 100, 1, 2, 3, -128, 127, 0, 4, 4, 4];
        let mut output = [0i8; 8]; // 2 batch rows x 2 steps x 2 cells
        let mut scratch = std::vec![0u8; scratch_len(2, 2)];
        run(&l, (2, 2), &input, &mut output, &mut scratch).unwrap();
        assert_eq!(output, [-7; 8]);
        assert!(run(&l, (2, 2), &input[..11], &mut output, &mut scratch).is_err());
    }
}
