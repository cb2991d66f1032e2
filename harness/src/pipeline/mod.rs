//! The stages in order. `bench run` (and `--resume`) in `run`: prepare,
//! build, run the jobs, finish; `merge` joins shard runs and finishes them
//! the same way; `infer` runs one model over a file of inputs for
//! `bench infer`.

mod build;
pub mod finish;
pub mod infer;
mod job;
pub mod merge;
mod peer_job;
mod prepare;
pub mod run;
mod windows;

/// Reports progress; the CLI draws a bar, tests stay silent.
pub trait Progress {
    /// A phase with `total` steps begins.
    fn start(&mut self, phase: &str, total: usize);
    /// One step of the phase is done.
    fn step(&mut self, label: &str);
    /// The phase is over.
    fn finish(&mut self);
}
