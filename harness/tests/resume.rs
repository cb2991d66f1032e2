//! An interrupted run: killed with SIGKILL mid-way, its store stays
//! readable, and `bench run --resume` finishes it without redoing the jobs
//! it had stored.

mod common;

use harness::results::store::{self, Row};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SUITE: &str = "[suite]\nname = \"long\"\nwarmup = 2\nrepetitions = 150\n\n[[model]]\nzoo = \"ds-cnn\"\n\n\
[[variant]]\nname = \"float32\"\nquant = { scheme = \"float32\" }\n\n[[variant]]\nname = \"int8\"\nquant = { scheme = \"int8\" }\n\n\
[[variant]]\nname = \"int8-pt\"\nquant = { scheme = \"int8\", granularity = \"per-tensor\" }\n\n[[variant]]\nname = \"int4\"\nquant = { scheme = \"int4\" }\n\n\
[[variant]]\nname = \"binary\"\nquant = { scheme = \"binary\" }\n\n[[variant]]\nname = \"pruned\"\nquant = { scheme = \"int8\" }\nprune = { method = \"channels\", ratio = 0.5 }\n";

fn bench() -> std::process::Command {
    common::bench(&[])
}

/// The run of the suite `long` under `out`.
fn only_run(out: &Path) -> PathBuf {
    common::only_run(&out.join("long"))
}

fn jobs(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.job.clone().unwrap()).collect()
}

#[test]
fn a_killed_run_resumes_to_the_rows_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("long.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let whole = dir.path().join("whole");
    let o = bench()
        .args([
            "run",
            suite.to_str().unwrap(),
            "--out",
            whole.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    common::ok(&o);
    let expected = store::read_rows(&only_run(&whole)).unwrap();
    assert_eq!(expected.len(), 6);

    // Kill it once two jobs are stored; every read of the store on the way must succeed.
    let out = dir.path().join("killed");
    let mut child = bench()
        .args([
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut reads = 0;
    loop {
        assert!(Instant::now() < deadline, "the run never stored two jobs");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        let run = out.join("long");
        if let Some(entry) = std::fs::read_dir(&run).ok().and_then(|mut d| d.next()) {
            let run_dir = entry.unwrap().path();
            if run_dir.join("results.parquet").exists() {
                let rows = store::read_rows(&run_dir).expect("the store is readable at any moment");
                reads += 1;
                if rows.len() >= 2 {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let run_dir = only_run(&out);
    let before = store::read_rows(&run_dir).unwrap();
    assert!(
        reads >= 1 && (2..6).contains(&before.len()),
        "{} rows stored before the kill",
        before.len()
    );
    let manifest = std::fs::read_to_string(run_dir.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"finished\": null"),
        "an interrupted run's manifest says it did not finish"
    );

    // A changed suite is refused; the same suite finishes the run.
    std::fs::write(
        &suite,
        SUITE.replace("repetitions = 150", "repetitions = 151"),
    )
    .unwrap();
    let o = bench()
        .args([
            "run",
            suite.to_str().unwrap(),
            "--resume",
            run_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the suite file changed since the run started"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&suite, SUITE).unwrap();
    let o = bench()
        .args([
            "run",
            suite.to_str().unwrap(),
            "--resume",
            run_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    common::ok(&o);
    let after = store::read_rows(&run_dir).unwrap();
    assert_eq!(
        jobs(&after),
        jobs(&expected),
        "the same rows, in plan order"
    );
    assert!(after
        .iter()
        .all(|r| r.status.as_deref() == Some("ok") && r.output_matches_reference == Some(true)));
    // Stored jobs were not run again: their measurements are the ones from before the kill.
    for b in &before {
        let a = after.iter().find(|a| a.job == b.job).unwrap();
        assert_eq!(
            (a.latency_median, a.latency_mad, &a.output_crc32),
            (b.latency_median, b.latency_mad, &b.output_crc32)
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["resumed"].as_array().map(Vec::len), Some(1));
    assert!(manifest["finished"].is_string());
    // Nothing left: resuming again runs nothing and keeps the rows.
    let o = bench()
        .args([
            "run",
            suite.to_str().unwrap(),
            "--resume",
            run_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    common::ok(&o);
    assert_eq!(store::read_rows(&run_dir).unwrap(), after);
}
