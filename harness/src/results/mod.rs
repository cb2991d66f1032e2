//! The result store: run directories, flat tables, manifests, their checks,
//! and what judges two runs (compare).

pub mod compare;
pub mod figures;
pub mod manifest;
pub mod store;
pub mod table_pages;
