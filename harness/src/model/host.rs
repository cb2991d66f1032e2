//! Running a lowered model in this process, with the kernel crate's
//! portable executor: the reference every device output is checked
//! against, the calibration runs, and the import tests.

use kernels::model::{Model, Outcome, TensorDesc};

/// A model parsed once and its arena, ready to run input after input.
pub struct HostModel<'a> {
    model: Model<'a>,
    /// 16-byte aligned storage behind [`HostModel::arena`].
    words: Vec<u128>,
}

impl<'a> HostModel<'a> {
    /// Parses `blob` and allocates its arena.
    pub fn new(blob: &'a [u8]) -> Result<Self, String> {
        let model = Model::parse(blob).map_err(|e| format!("failed to load the model: {e}"))?;
        let words = vec![0u128; model.arena_bytes().div_ceil(16)];
        Ok(Self { model, words })
    }

    fn arena(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.words)
    }

    /// Runs one inference on `input` (the input tensor's bytes) with these exit thresholds.
    pub fn run(&mut self, input: &[u8], thresholds: &[f32]) -> Result<Outcome, String> {
        let model = self.model;
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut self.words);
        let slot = model
            .input_mut(arena)
            .ok_or("the model input lies outside its arena")?;
        if slot.len() != input.len() {
            return Err(format!(
                "the model takes {} input bytes, got {}",
                slot.len(),
                input.len()
            ));
        }
        slot.copy_from_slice(input);
        model
            .run(arena, thresholds)
            .map_err(|e| format!("failed to run the model: {e}"))
    }

    /// The bytes of tensor `t` after the last run (only meaningful for
    /// tensors the memory plan has not reused since they were written).
    pub fn tensor(&mut self, t: &TensorDesc) -> &[u8] {
        let model = self.model;
        model.tensor(self.arena(), t).unwrap_or(&[])
    }
}
