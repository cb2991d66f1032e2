//! The bench harness: everything on the host side of the pipeline
//! (suite, plan, model preparation, build, runners, store, report).
//!
//! So far it holds the model graph and the zoo; the rest of the pipeline
//! lands stage by stage, one module per stage.
#![warn(missing_docs)]

pub mod model;
