//! The stages in order: `bench run` (and `--resume`) in `run`, one model
//! over a file of inputs for `bench infer` in `infer`.

pub mod infer;
pub mod run;
