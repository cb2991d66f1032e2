//! Stage 4, shared by `bench run`, `--resume` and `bench merge`: the
//! manifest, the rendered tables and the plots of a run whose result
//! tables are stored.

use crate::results::store::{self, ExitRow, MemoryRow, Row, RunWriter, SweepRow};
use std::path::{Path, PathBuf};

/// The result tables every rendering is made from.
pub struct Tables<'a> {
    /// One row per job.
    pub rows: &'a [Row],
    /// One row per threshold of every swept job.
    pub sweep: &'a [SweepRow],
    /// One row per exit of every swept job.
    pub exits: &'a [ExitRow],
    /// One row per layer of every prepared variant's memory timeline.
    pub memory: &'a [MemoryRow],
}

/// Stores `manifest`, then the tables rendered (`table.md`, `sweep.md`,
/// ...) and the plots. Plots are best effort: a missing font costs the
/// plots, not the run, and the reason is returned in their place.
pub fn finish(
    writer: &mut RunWriter,
    dir: &Path,
    manifest: serde_json::Value,
    tables: Tables,
) -> Result<Result<Vec<PathBuf>, String>, store::StoreError> {
    writer.set_manifest(manifest)?;
    writer.write_files(&crate::report::tables::stored_renderings(
        tables.rows,
        tables.sweep,
        tables.exits,
    ))?;
    Ok(crate::report::plot::write(
        dir,
        tables.rows,
        tables.sweep,
        tables.memory,
    ))
}
