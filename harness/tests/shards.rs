//! `bench run --shard i/n` and `bench merge`: three shards merged give the
//! rows of one unsharded run, and shards that do not belong together are
//! refused.

mod common;

use harness::results::store::{self, Row, SweepRow};
use std::path::{Path, PathBuf};
use std::process::Output;

fn bench(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .output()
        .unwrap()
}

fn suite(dir: &Path) -> PathBuf {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits");
    let m = models.display();
    let text = format!(
        "[suite]\nname = \"sharded\"\nwarmup = 0\nrepetitions = 3\n\n\
         [[dataset]]\nname = \"test\"\npath = \"{m}/digits-test.npz\"\nlimit = 30\n\n\
         [[model]]\nzoo = \"autoencoder\"\n\n\
         [[model]]\nname = \"digits\"\nsource = {{ onnx = \"{m}/digits-float.onnx\" }}\ndataset = \"test\"\n\n\
         [[variant]]\nname = \"int8\"\nquant = {{ scheme = \"int8\" }}\n\n\
         [[variant]]\nname = \"float32\"\nquant = {{ scheme = \"float32\" }}\n\n\
         [[variant]]\nname = \"exits\"\nmodels = [\"digits\"]\nquant = {{ scheme = \"int8\" }}\nexits = {{ range = {{ from = 0.0, to = 1.0, step = 0.5 }} }}\n"
    );
    let path = dir.join("sharded.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the suite (with `extra` arguments) and returns its run directory.
fn run(suite: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let before: Vec<PathBuf> = runs(out);
    let o = bench(
        &[
            &[
                "run",
                suite.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            extra,
        ]
        .concat(),
    );
    common::ok(&o);
    runs(out)
        .into_iter()
        .find(|d| !before.contains(d))
        .expect("a new run directory")
}

fn runs(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out.join("sharded"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// A row without what depends on the clock or the run's identity.
fn timeless(r: &Row) -> Row {
    Row {
        job: r.job.clone(),
        model: r.model.clone(),
        variant: r.variant.clone(),
        target: r.target.clone(),
        status: r.status.clone(),
        quant: r.quant.clone(),
        exits: r.exits.clone(),
        threshold: r.threshold,
        macs: r.macs,
        binary_ops: r.binary_ops,
        params: r.params,
        arena_bytes: r.arena_bytes,
        model_bytes: r.model_bytes,
        weight_bytes: r.weight_bytes,
        accuracy: r.accuracy,
        accuracy_source: r.accuracy_source.clone(),
        latency_n: r.latency_n,
        latency_unit: r.latency_unit.clone(),
        exit_counts: r.exit_counts.clone(),
        output_crc32: r.output_crc32.clone(),
        output_matches_reference: r.output_matches_reference,
        ..Row::default()
    }
}

/// A sweep row without its host timings.
fn timeless_sweep(r: &SweepRow) -> SweepRow {
    SweepRow {
        job: r.job.clone(),
        threshold: r.threshold,
        samples: r.samples,
        accuracy: r.accuracy,
        exit_rates: r.exit_rates.clone(),
        mean_macs: r.mean_macs,
        ..SweepRow::default()
    }
}

#[test]
fn three_shards_merged_equal_one_unsharded_run_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path());
    let out = dir.path().join("r");
    let whole = run(&suite, &out, &[]);
    let shards: Vec<PathBuf> = (1..=3)
        .map(|i| run(&suite, &out, &["--shard", &format!("{i}/3")]))
        .collect();
    let sizes: Vec<usize> = shards
        .iter()
        .map(|s| store::read_rows(s).unwrap().len())
        .collect();
    assert_eq!(sizes, [2, 2, 1], "round robin over the 5 jobs");
    let merged_dir = dir.path().join("merged");
    let args: Vec<&str> = ["merge"]
        .into_iter()
        .chain(shards.iter().rev().map(|s| s.to_str().unwrap()))
        .chain(["--out", merged_dir.to_str().unwrap()])
        .collect();
    let o = bench(&args);
    common::ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("merged 3 shards, 5 jobs"));
    let (a, b) = (
        store::read_rows(&whole).unwrap(),
        store::read_rows(&merged_dir).unwrap(),
    );
    assert_eq!(
        a.iter().map(timeless).collect::<Vec<_>>(),
        b.iter().map(timeless).collect::<Vec<_>>()
    );
    assert!(b.iter().all(|r| r.run_id.as_deref() == Some("merged")));
    let (sa, sb): (Vec<SweepRow>, Vec<SweepRow>) = (
        store::read_table(&whole).unwrap(),
        store::read_table(&merged_dir).unwrap(),
    );
    assert_eq!(sa.len(), 3);
    assert_eq!(
        sa.iter().map(timeless_sweep).collect::<Vec<_>>(),
        sb.iter().map(timeless_sweep).collect::<Vec<_>>()
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged_dir.join("manifest.json")).unwrap())
            .unwrap();
    let listed: Vec<&str> = manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["3/3", "2/3", "1/3"]);
    assert!(merged_dir.join("table.md").exists() && merged_dir.join("sweep.md").exists());
    // The merged run is finished as one run is: the same rendered files and plots.
    let rendered = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .chain(std::fs::read_dir(d.join("plots")).into_iter().flatten())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md") || n.ends_with(".png") || n.ends_with(".svg"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(rendered(&merged_dir), rendered(&whole));
    assert!(
        rendered(&whole).iter().any(|n| n.ends_with(".png")),
        "{:?}",
        rendered(&whole)
    );

    // What does not make one run is refused, and nothing is written.
    let refused = |dirs: &[&PathBuf], expected: &str| {
        let target = dir.path().join("refused");
        let args: Vec<&str> = ["merge"]
            .into_iter()
            .chain(dirs.iter().map(|d| d.to_str().unwrap()))
            .chain(["--out", target.to_str().unwrap()])
            .collect();
        let o = bench(&args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "{err}\nexpected: {expected}");
        assert!(!target.exists());
    };
    refused(
        &[&shards[0], &shards[0], &shards[2]],
        "the shards must be 1/n to n/n of one plan, each once",
    );
    refused(
        &[&shards[0], &shards[1]],
        "the shards must be 1/n to n/n of one plan, each once",
    );
    refused(
        &[&whole, &shards[1], &shards[2]],
        "is not a shard (it ran without --shard)",
    );
    let edited = shards[1].join("manifest.json");
    let text = std::fs::read_to_string(&edited).unwrap();
    let sha = serde_json::from_str::<serde_json::Value>(&text).unwrap()["suite"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&edited, text.replace(&sha, "0000")).unwrap();
    refused(
        &[&shards[0], &shards[1], &shards[2]],
        "differ in their suite file",
    );
    let o = bench(&[
        "merge",
        shards[0].to_str().unwrap(),
        "--out",
        merged_dir.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists; runs are never overwritten")
    );
}
