//! `bench merge DIR... --out DIR`: joins the runs of `bench run --shard i/n`
//! into one run, as if it had run unsharded: rows back in plan order, none
//! lost or doubled, and one manifest. Shards whose provenance disagrees
//! (another commit, suite, toolchain or target file) are refused.

use crate::input::plan::Shard;
use crate::results::store::{self, ExitRow, LayerRow, MemoryRow, Row, SweepRow, Table};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A shard's files.
    #[error("failed to merge: {0}")]
    Store(#[from] store::StoreError),
    /// The shards do not make one run.
    #[error("failed to merge: {0}")]
    Refused(String),
}

/// What a merge wrote.
pub struct Merged {
    /// The merged run directory.
    pub dir: PathBuf,
    /// Its rows, in plan order.
    pub rows: Vec<Row>,
    /// Plots drawn from the merged tables, or why there are none.
    pub plots: Result<Vec<PathBuf>, String>,
}

/// Manifest fields that must be equal in every shard, as JSON pointers.
const SAME: &[(&str, &str)] = &[
    ("/suite/sha256", "suite file"),
    ("/suite/name", "suite name"),
    ("/git_commit", "git commit"),
    ("/git_dirty", "uncommitted changes"),
    ("/bench_version", "bench version"),
    ("/rustc", "Rust toolchain"),
];

struct ShardRun {
    dir: PathBuf,
    manifest: Value,
    shard: Shard,
}

fn read_manifest(dir: &Path) -> Result<ShardRun, MergeError> {
    let path = dir.join("manifest.json");
    let manifest = crate::results::manifest::read(dir).map_err(store::StoreError::from)?;
    let shard = manifest["shard"]
        .as_str()
        .ok_or_else(|| {
            MergeError::Refused(format!(
                "{} is not a shard (it ran without --shard)",
                dir.display()
            ))
        })?
        .parse::<Shard>()
        .map_err(|e| MergeError::Refused(format!("{}: {e}", path.display())))?;
    Ok(ShardRun {
        dir: dir.into(),
        manifest,
        shard,
    })
}

/// Checks that the shards are the slices of one run.
fn check(shards: &[ShardRun]) -> Result<(), MergeError> {
    let first = &shards[0];
    for other in &shards[1..] {
        for (pointer, what) in SAME {
            let (a, b) = (
                &first.manifest.pointer(pointer),
                &other.manifest.pointer(pointer),
            );
            if a != b {
                return Err(MergeError::Refused(format!(
                    "{} and {} differ in their {what}: {} vs {}",
                    first.dir.display(),
                    other.dir.display(),
                    a.map_or("none".into(), Value::to_string),
                    b.map_or("none".into(), Value::to_string)
                )));
            }
        }
        // A target in both shards must be the same file under the same emulator.
        for t in other.manifest["targets"].as_array().into_iter().flatten() {
            let same_name = first.manifest["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["name"] == t["name"]);
            if let Some(f) = same_name {
                for field in ["sha256", "emulator"] {
                    if f[field] != t[field] {
                        return Err(MergeError::Refused(format!(
                            "{} and {} ran target {} with a different {}: {} vs {}",
                            first.dir.display(),
                            other.dir.display(),
                            t["name"],
                            if field == "sha256" {
                                "target file"
                            } else {
                                "emulator"
                            },
                            f[field],
                            t[field]
                        )));
                    }
                }
            }
        }
    }
    let count = first.shard.count;
    let mut indices: Vec<usize> = shards.iter().map(|s| s.shard.index).collect();
    indices.sort_unstable();
    if shards.iter().any(|s| s.shard.count != count) || indices != (1..=count).collect::<Vec<_>>() {
        let names: Vec<String> = shards
            .iter()
            .map(|s| format!("{} ({})", s.dir.display(), s.shard))
            .collect();
        return Err(MergeError::Refused(format!(
            "the shards must be 1/n to n/n of one plan, each once; got {}",
            names.join(", ")
        )));
    }
    Ok(())
}

/// Merges the shard runs in `dirs` into a new run directory `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    if dirs.is_empty() {
        return Err(MergeError::Refused("no shard to merge".into()));
    }
    if out.exists() {
        return Err(MergeError::Refused(format!(
            "{} already exists; runs are never overwritten",
            out.display()
        )));
    }
    let shards = dirs
        .iter()
        .map(|d| read_manifest(d))
        .collect::<Result<Vec<_>, _>>()?;
    check(&shards)?;
    let placed = placed_rows(&shards)?;
    let run_id = out
        .file_name()
        .map_or_else(|| "merged".into(), |n| n.to_string_lossy().into_owned());
    let order: Vec<String> = placed.iter().filter_map(|(_, r)| r.job.clone()).collect();
    let rows: Vec<Row> = placed
        .into_iter()
        .map(|(_, r)| Row {
            run_id: Some(run_id.clone()),
            ..r
        })
        .collect();
    std::fs::create_dir_all(out).map_err(|error| store::StoreError::Io {
        action: "create",
        path: out.into(),
        error,
    })?;
    let lock = store::RunLock::acquire(out)?;
    let mut writer = store::RunWriter::open(out, Value::Null, Some(lock));
    writer.set_manifest(merged_manifest(&shards, &run_id))?;
    writer.write_table(&rows)?;
    let position = |job: &Option<String>| {
        order
            .iter()
            .position(|j| Some(j) == job.as_ref())
            .unwrap_or(usize::MAX)
    };
    merge_table::<LayerRow>(
        &shards,
        &mut writer,
        &run_id,
        |r| position(&r.job),
        |r, id| r.run_id = Some(id.into()),
    )?;
    let sweep = merge_table::<SweepRow>(
        &shards,
        &mut writer,
        &run_id,
        |r| position(&r.job),
        |r, id| r.run_id = Some(id.into()),
    )?;
    let exits = merge_table::<ExitRow>(
        &shards,
        &mut writer,
        &run_id,
        |r| position(&r.job),
        |r, id| r.run_id = Some(id.into()),
    )?;
    // Every shard prepared the variants it ran: one timeline per variant.
    let mut memory: Vec<MemoryRow> = Vec::new();
    for s in &shards {
        memory.extend(store::read_optional::<MemoryRow>(&s.dir)?);
    }
    let key = |r: &MemoryRow| (r.model.clone(), r.variant.clone(), r.step);
    let mut seen = std::collections::HashSet::new();
    memory.retain(|r| seen.insert(key(r)));
    memory
        .iter_mut()
        .for_each(|r| r.run_id = Some(run_id.clone()));
    if !memory.is_empty() {
        writer.write_table(&memory)?;
    }
    // Tables and plots are drawn again from the merged tables, as `bench run` draws them.
    let tables = super::finish::Tables {
        rows: &rows,
        sweep: &sweep,
        exits: &exits,
        memory: &memory,
    };
    let plots = super::finish::finish(&mut writer, out, merged_manifest(&shards, &run_id), tables)?;
    Ok(Merged {
        dir: out.into(),
        rows,
        plots,
    })
}

/// Every shard's rows in their place in the whole plan (shard i's k-th job
/// is job k*n + i - 1); a job in two shards is refused.
fn placed_rows(shards: &[ShardRun]) -> Result<Vec<(usize, Row)>, MergeError> {
    // Each row's place in the whole plan: shard i's k-th job is job k*n + i - 1.
    let mut placed: Vec<(usize, Row)> = Vec::new();
    for s in shards {
        for (k, row) in store::read_rows(&s.dir)?.into_iter().enumerate() {
            placed.push((s.shard.plan_position(k), row));
        }
    }
    placed.sort_by_key(|(position, _)| *position);
    let mut seen: Vec<&str> = Vec::new();
    for (_, row) in &placed {
        let job = row.job.as_deref().unwrap_or("");
        if seen.contains(&job) {
            return Err(MergeError::Refused(format!(
                "job {job} is in more than one shard"
            )));
        }
        seen.push(job);
    }
    Ok(placed)
}

/// Concatenates one optional table of every shard, ordered by `position` (stable).
fn merge_table<T: Table>(
    shards: &[ShardRun],
    writer: &mut store::RunWriter,
    run_id: &str,
    position: impl Fn(&T) -> usize,
    relabel: impl Fn(&mut T, &str),
) -> Result<Vec<T>, MergeError> {
    let mut rows: Vec<T> = Vec::new();
    for s in shards {
        rows.extend(store::read_optional::<T>(&s.dir)?);
    }
    rows.sort_by_key(|r| position(r));
    rows.iter_mut().for_each(|r| relabel(r, run_id));
    if !rows.is_empty() {
        writer.write_table(&rows)?;
    }
    Ok(rows)
}

/// The first shard's manifest, with every shard's own run and every target's device programs.
fn merged_manifest(shards: &[ShardRun], run_id: &str) -> Value {
    let mut manifest = shards[0].manifest.clone();
    let mut targets: Vec<Value> = Vec::new();
    for s in shards {
        for t in s.manifest["targets"].as_array().into_iter().flatten() {
            match targets.iter_mut().find(|m| m["name"] == t["name"]) {
                Some(m) => {
                    let programs = t["device_programs"].as_array().cloned().unwrap_or_default();
                    if let Some(list) = m["device_programs"].as_array_mut() {
                        list.extend(programs);
                    }
                }
                None => targets.push(t.clone()),
            }
        }
    }
    manifest["run_id"] = run_id.into();
    // The shards' checksums are of their files; the writer records the merged run's.
    if let Some(fields) = manifest.as_object_mut() {
        fields.remove("files");
    }
    manifest["targets"] = targets.into();
    manifest["shard"] = Value::Null;
    manifest["shards"] = shards
        .iter()
        .map(|s| {
            json!({
                "shard": s.shard.to_string(),
                "run_id": s.manifest["run_id"],
                "dir": s.dir,
                "host": s.manifest["host"],
                "command": s.manifest["command"],
                "started": s.manifest["started"],
                "finished": s.manifest["finished"],
            })
        })
        .collect::<Vec<_>>()
        .into();
    manifest
}
