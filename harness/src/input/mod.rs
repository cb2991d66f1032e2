//! What the user gives: suite and target files (schema, checks, spans for
//! diagnostics), datasets and input files, and the plan of jobs made from
//! them. Everything here is checked before anything runs.

pub mod dataset;
pub mod diag;
pub mod files;
pub mod npy;
pub mod plan;
pub mod runtime;
pub mod suite;
pub mod target;
