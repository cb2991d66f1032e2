//! Rendering stored rows: the run's tables, pivot tables, plots.

pub mod pivot;
pub mod plot;
pub mod tables;
