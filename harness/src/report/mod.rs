//! Rendering stored rows: the run's tables (`tables`), sweep tables
//! (`sweep`), pivot tables (`pivot`), plots (`plot`), each in the four
//! renderings of `format`.

pub mod format;
pub mod pivot;
pub mod plot;
pub mod sweep;
pub mod tables;
