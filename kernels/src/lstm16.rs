//! TFLite Micro's 16x8 LSTM: UNIDIRECTIONAL_SEQUENCE_LSTM with int16
//! input, hidden state and output, int8 weights, an int16 cell state and
//! int64 biases (`lstm_eval.h`'s `LstmStep<int16_t, int8_t, int16_t,
//! int64_t>`). TFLite's own kernels have no such LSTM and its converter
//! does not make one; TFLM runs it, so TFLM is its reference.
//!
//! TFLM computes a gate differently from TFLite's 8x8_16 path
//! ([`crate::lstm`]): each of the two products is a full FULLY_CONNECTED to
//! int16 Q3.12 (64-bit sums, 64-bit `MultiplyByQuantizedMultiplier`, clamp),
//! the two are added with saturation, and the non-linearities are TFLite's
//! int16 LOGISTIC and TANH ([`crate::int16::Curve`], the 513-entry table),
//! not gemmlowp's. The cell and hidden updates are three int16
//! `MulElementwise`s with their own multipliers.
//!
//! The operator's constants are one block, [`Lstm16::parse`]'s layout:
//! [`HEADER_WORDS`] i32 words (word [`crate::lstm::SCHEME_WORD`] is
//! [`SCHEME`]), each gate's int64 biases as two words each, then each
//! gate's input and recurrent int8 weight matrices.

use crate::error::{ensure, expect_len, KernelError};
use crate::int16::{multiply_by_quantized_multiplier_64, Curve, Wide};
use crate::lstm::{word, GATES, SCHEME_WORD};
use crate::quant::{multiply_by_quantized_multiplier, Requant};

/// The scheme word of a 16x8 block.
pub const SCHEME: i32 = 1;
/// Header words: sizes and flags (10), each gate's two FULLY_CONNECTED
/// multipliers (4 each), then the three inter-gate multipliers.
pub const HEADER_WORDS: usize = 10 + GATES * 4 + 6;

/// One gate: two products to Q3.12, added.
#[derive(Clone, Copy, Debug)]
pub struct Gate16<'a> {
    /// `[n_cell, n_input]` row-major.
    pub input_weights: &'a [i8],
    /// `n_cell` int64 biases of the input product, as [`Wide`] words.
    pub bias: &'a [Wide],
    /// Input product to Q3.12.
    pub input_scale: Requant,
    /// `[n_cell, n_cell]` row-major.
    pub recurrent_weights: &'a [i8],
    /// Recurrent product to Q3.12 (no bias).
    pub recurrent_scale: Requant,
}

/// A parsed 16x8 LSTM block.
#[derive(Clone, Copy, Debug)]
pub struct Lstm16<'a> {
    /// Input features per step.
    pub n_input: usize,
    /// Cells (and outputs).
    pub n_cell: usize,
    /// `[time, batch, features]` rather than `[batch, time, features]`.
    pub time_major: bool,
    /// The cell state's scale is `2^cell_scale_power` (-15 to -9 here).
    pub cell_scale_power: i32,
    /// Cell state clip in its own units (0: none).
    pub cell_clip: i16,
    /// The hidden state's zero point.
    pub hidden_zero_point: i32,
    /// forget gate (Q0.15) x cell -> cell.
    pub forget_cell_scale: Requant,
    /// input gate x cell gate (Q0.15 each) -> cell.
    pub input_cell_scale: Requant,
    /// tanh(cell) x output gate (Q0.15 each) -> hidden state.
    pub hidden_scale: Requant,
    /// The gates in [`GATES`] order: input, forget, cell, output.
    pub gates: [Gate16<'a>; GATES],
}

/// Bytes of the block for `n_input` inputs and `n_cell` cells.
pub fn block_len(n_input: usize, n_cell: usize) -> usize {
    4 * HEADER_WORDS + GATES * 8 * n_cell + GATES * n_cell * (n_input + n_cell)
}

/// Scratch bytes one run needs: the cell and hidden states of each batch
/// row and six int16 vectors of one step (four gates, two buffers).
pub fn scratch_len(batch: usize, n_cell: usize) -> usize {
    2 * (2 * batch * n_cell + 6 * n_cell)
}

impl<'a> Lstm16<'a> {
    /// Reads a block (4-byte aligned), checking its sizes and parameters.
    pub fn parse(block: &'a [u8]) -> Result<Self, KernelError> {
        ensure(
            block.len() >= 4 * HEADER_WORDS && word(block, SCHEME_WORD) == SCHEME,
            "lstm16: not a 16x8 LSTM block",
        )?;
        let size = |i: usize| usize::try_from(word(block, i)).unwrap_or(usize::MAX);
        let (n_input, n_cell) = (size(0), size(1));
        ensure(
            (1..=4096).contains(&n_input) && (1..=4096).contains(&n_cell),
            "lstm16: input and cell counts must be 1 to 4096",
        )?;
        expect_len("lstm16 block", block.len(), block_len(n_input, n_cell))?;
        let cell_scale_power = word(block, 3);
        ensure(
            (-15..=-9).contains(&cell_scale_power),
            "lstm16: cell state scale must be 2^-15 to 2^-9",
        )?;
        let requant = |i: usize| Requant {
            multiplier: word(block, i),
            shift: word(block, i + 1),
        };
        let body = &block[4 * HEADER_WORDS..];
        let biases: &[Wide] =
            bytemuck::try_cast_slice(&body[..GATES * 8 * n_cell]).map_err(|_| {
                KernelError::Param {
                    what: "lstm16: block is not 4-byte aligned",
                }
            })?;
        let weights: &[i8] = bytemuck::cast_slice(&body[GATES * 8 * n_cell..]);
        let gates = core::array::from_fn(|g| {
            let w = &weights[g * n_cell * (n_input + n_cell)..][..n_cell * (n_input + n_cell)];
            Gate16 {
                input_weights: &w[..n_cell * n_input],
                bias: &biases[g * n_cell..][..n_cell],
                input_scale: requant(10 + 4 * g),
                recurrent_weights: &w[n_cell * n_input..],
                recurrent_scale: requant(12 + 4 * g),
            }
        });
        let inter = 10 + 4 * GATES;
        let l = Lstm16 {
            n_input,
            n_cell,
            time_major: word(block, 2) != 0,
            cell_scale_power,
            cell_clip: word(block, 4) as i16,
            hidden_zero_point: word(block, 5),
            forget_cell_scale: requant(inter),
            input_cell_scale: requant(inter + 2),
            hidden_scale: requant(inter + 4),
            gates,
        };
        let mut scales = l
            .gates
            .iter()
            .flat_map(|g| [g.input_scale, g.recurrent_scale])
            .chain([l.forget_cell_scale, l.input_cell_scale, l.hidden_scale]);
        ensure(
            scales.all(|r| r.is_valid()) && (-32768..=32767).contains(&l.hidden_zero_point),
            "lstm16: requantization shift must be in -31..=31",
        )?;
        Ok(l)
    }

    /// The block's bytes (the host writes it; [`Lstm16::parse`] reads it).
    #[cfg(feature = "std")]
    pub fn encode(&self) -> std::vec::Vec<u8> {
        let mut header = [0i32; HEADER_WORDS];
        header[..10].copy_from_slice(&[
            self.n_input as i32,
            self.n_cell as i32,
            self.time_major as i32,
            self.cell_scale_power,
            self.cell_clip as i32,
            self.hidden_zero_point,
            0,
            0,
            0,
            0,
        ]);
        header[SCHEME_WORD] = SCHEME;
        for (g, gate) in self.gates.iter().enumerate() {
            header[10 + 4 * g..][..4].copy_from_slice(&[
                gate.input_scale.multiplier,
                gate.input_scale.shift,
                gate.recurrent_scale.multiplier,
                gate.recurrent_scale.shift,
            ]);
        }
        let inter = [
            self.forget_cell_scale,
            self.input_cell_scale,
            self.hidden_scale,
        ];
        for (k, r) in inter.iter().enumerate() {
            header[10 + 4 * GATES + 2 * k..][..2].copy_from_slice(&[r.multiplier, r.shift]);
        }
        let mut out: std::vec::Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
        for gate in &self.gates {
            out.extend(gate.bias.iter().flatten().flat_map(|w| w.to_le_bytes()));
        }
        let matrices = self
            .gates
            .iter()
            .map(|g| (g.input_weights, g.recurrent_weights));
        crate::lstm::push_weights(&mut out, matrices);
        out
    }
}

fn wide_value(w: Wide) -> i64 {
    (u64::from(w[0]) | (u64::from(w[1]) << 32)) as i64
}

fn sat16(v: i64) -> i16 {
    v.clamp(i16::MIN.into(), i16::MAX.into()) as i16
}

/// TFLM's int16 FULLY_CONNECTED of one row to Q3.12: int64 sums, the
/// 64-bit rescale, clamped to int16 (zero points are 0 in the scheme).
fn fully_connected(out: &mut [i16], x: &[i16], weights: &[i8], bias: Option<&[Wide]>, r: Requant) {
    for (row, o) in out.iter_mut().enumerate() {
        let w = &weights[row * x.len()..][..x.len()];
        let mut acc = w
            .iter()
            .zip(x)
            .fold(0i64, |acc, (&w, &x)| acc + i64::from(w) * i64::from(x));
        if let Some(bias) = bias {
            acc += wide_value(bias[row]);
        }
        *o = sat16(multiply_by_quantized_multiplier_64(
            acc,
            r.multiplier,
            r.shift,
        ));
    }
}

/// `MulElementwise` of two int16 vectors into int16 (offsets 0 in, `zero_point` out).
fn mul(out: &mut [i16], a: &[i16], b: &[i16], r: Requant, zero_point: i32) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        let product = i32::from(a) * i32::from(b);
        let scaled = multiply_by_quantized_multiplier(product, r.multiplier, r.shift);
        *o = sat16(i64::from(zero_point) + i64::from(scaled));
    }
}

/// TFLM's `Tanh(cell_state_scale_power, ...)`: the input rescaled from
/// `2^power` to the table's `1 / (3 * 4096)` units.
fn tanh_of_power(power: i32) -> Curve {
    let left_shift = 15 + power - 3;
    let (input_multiplier, input_left_shift) = if left_shift >= 0 {
        (3 << left_shift, 0)
    } else {
        (3, -left_shift)
    };
    Curve {
        tanh: true,
        input_multiplier,
        input_left_shift,
    }
}

/// The scratch's parts.
struct State<'s> {
    cells: &'s mut [i16],
    hidden: &'s mut [i16],
    vectors: &'s mut [i16],
}

/// Runs the sequence `input` (`[batch, time, n_input]`, or time first)
/// into `output` (the same with `n_cell` features), from zero states.
pub fn run(
    l: &Lstm16,
    (batch, time): (usize, usize),
    input: &[i16],
    output: &mut [i16],
    scratch: &mut [u8],
) -> Result<(), KernelError> {
    let n = l.n_cell;
    expect_len("input", input.len(), batch * time * l.n_input)?;
    expect_len("output", output.len(), batch * time * n)?;
    expect_len("lstm16 scratch", scratch.len(), scratch_len(batch, n))?;
    let words: &mut [i16] =
        bytemuck::try_cast_slice_mut(scratch).map_err(|_| KernelError::Param {
            what: "lstm16: scratch is not 2-byte aligned",
        })?;
    let (cells, rest) = words.split_at_mut(batch * n);
    let (hidden, vectors) = rest.split_at_mut(batch * n);
    let state = State {
        cells,
        hidden,
        vectors,
    };
    state.cells.fill(0);
    state.hidden.fill(l.hidden_zero_point as i16);
    for b in 0..batch {
        let cell = &mut state.cells[b * n..][..n];
        let hidden = &mut state.hidden[b * n..][..n];
        for t in 0..time {
            let step = if l.time_major {
                t * batch + b
            } else {
                b * time + t
            };
            let x = &input[step * l.n_input..][..l.n_input];
            step_once(l, x, cell, hidden, state.vectors)?;
            output[step * n..][..n].copy_from_slice(hidden);
        }
    }
    Ok(())
}

/// One time step of one batch row (`LstmStep`).
fn step_once(
    l: &Lstm16,
    x: &[i16],
    cell: &mut [i16],
    hidden: &mut [i16],
    vectors: &mut [i16],
) -> Result<(), KernelError> {
    let n = l.n_cell;
    let (gates, rest) = vectors.split_at_mut(GATES * n);
    let (buffer, product) = rest.split_at_mut(n);
    let sigmoid = Curve {
        tanh: false,
        input_multiplier: 0,
        input_left_shift: 0,
    };
    for (g, gate) in l.gates.iter().enumerate() {
        let out = &mut gates[g * n..][..n];
        fully_connected(
            out,
            x,
            gate.input_weights,
            Some(gate.bias),
            gate.input_scale,
        );
        fully_connected(
            buffer,
            hidden,
            gate.recurrent_weights,
            None,
            gate.recurrent_scale,
        );
        for (o, &r) in out.iter_mut().zip(buffer.iter()) {
            *o = sat16(i64::from(*o) + i64::from(r));
        }
        // The cell gate is a tanh (TFLM's LSTM runs no other), the rest sigmoids.
        let curve = if g == 2 { tanh_of_power(-12) } else { sigmoid };
        buffer.copy_from_slice(out);
        curve.run(buffer, out)?;
    }
    let (input_gate, rest) = gates.split_at(n);
    let (forget_gate, rest) = rest.split_at(n);
    let (cell_gate, output_gate) = rest.split_at(n);
    // UpdateLstmCell: forget x cell, input x cell gate, added with saturation.
    buffer.copy_from_slice(cell);
    mul(cell, forget_gate, buffer, l.forget_cell_scale, 0);
    mul(product, input_gate, cell_gate, l.input_cell_scale, 0);
    for (c, &p) in cell.iter_mut().zip(product.iter()) {
        *c = sat16(i64::from(*c) + i64::from(p));
        if l.cell_clip > 0 {
            *c = (*c).clamp(-l.cell_clip, l.cell_clip);
        }
    }
    // UpdateLstmHidden: tanh(cell) x output gate to the hidden state.
    tanh_of_power(l.cell_scale_power).run(cell, buffer)?;
    mul(
        hidden,
        buffer,
        output_gate,
        l.hidden_scale,
        l.hidden_zero_point,
    );
    Ok(())
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn zero_lstm<'a>(weights: &'a [i8], biases: &'a [Wide]) -> Lstm16<'a> {
        let scale = crate::quant::quantize_multiplier(0.25);
        let gate = Gate16 {
            input_weights: &weights[..6],
            bias: biases,
            input_scale: scale,
            recurrent_weights: &weights[6..10],
            recurrent_scale: scale,
        };
        Lstm16 {
            n_input: 3,
            n_cell: 2,
            time_major: false,
            cell_scale_power: -11,
            cell_clip: 0,
            hidden_zero_point: 0,
            forget_cell_scale: scale,
            input_cell_scale: scale,
            hidden_scale: scale,
            gates: [gate; GATES],
        }
    }

    #[test]
    fn a_block_reads_back_as_it_was_written() {
        let weights = [3i8, -1, 4, 1, -5, 9, 2, -6, 5, 3];
        let biases = [crate::int16::wide(7), crate::int16::wide((-8i64) as u64)];
        let block = zero_lstm(&weights, &biases).encode();
        assert_eq!(block.len(), block_len(3, 2));
        let l = Lstm16::parse(&block).unwrap();
        assert_eq!((l.n_input, l.n_cell, l.cell_scale_power), (3, 2, -11));
        assert_eq!(l.gates[3].input_weights, &weights[..6]);
        assert_eq!(wide_value(l.gates[2].bias[1]), -8);
        assert!(Lstm16::parse(&block[..block.len() - 1]).is_err());
        // An 8x8_16 block is not read as a 16x8 one.
        let mut other = block.clone();
        other[4 * SCHEME_WORD..][..4].copy_from_slice(&0i32.to_le_bytes());
        assert!(Lstm16::parse(&other).is_err());
    }

    #[test]
    fn with_zero_weights_the_hidden_state_stays_zero() {
        // Gates are sigmoid(0) = 1/2 and tanh(0) = 0: the cell stays 0 and
        // the hidden state 1/2 * tanh(0) = 0.
        let block = zero_lstm(&[0; 10], &[[0; 2]; 2]).encode();
        let l = Lstm16::parse(&block).unwrap();
        let input = [5i16, -9, 30000, 1, 2, 3, -32768, 32767, 0, 4, 4, 4];
        let mut output = [7i16; 8];
        let mut scratch = std::vec![0u8; scratch_len(2, 2)];
        run(&l, (2, 2), &input, &mut output, &mut scratch).unwrap();
        assert_eq!(output, [0; 8]);
    }
}
