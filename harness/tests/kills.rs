//! Kills, signals and concurrency: `bench run` killed with SIGKILL at 20
//! seeded moments across prepare, build and run on an emulated board leaves
//! a run that `bench show` reads, that `--resume` finishes with every job
//! once, and no QEMU behind; SIGTERM stops a run cleanly; two resumes of one
//! run cannot both write it; a stored table changed afterwards is named.

mod common;

use harness::results::store::{self, Row};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const QEMU_SUITE: &str = "[suite]\nname = \"kills\"\nwarmup = 1\nrepetitions = 3\ntargets = [\"qemu-m4\"]\n\n[[model]]\nzoo = \"autoencoder\"\n\n\
[[variant]]\nname = \"int8\"\nquant = { scheme = \"int8\" }\n\n[[variant]]\nname = \"binary\"\nquant = { scheme = \"binary\" }\n\n\
[[variant]]\nname = \"int4\"\nquant = { scheme = \"int4\" }\n";

const HOST_SUITE: &str = "[suite]\nname = \"host\"\nwarmup = 2\nrepetitions = 300\n\n[[model]]\nzoo = \"ds-cnn\"\n\n\
[[variant]]\nname = \"float32\"\nquant = { scheme = \"float32\" }\n\n[[variant]]\nname = \"int8\"\nquant = { scheme = \"int8\" }\n\n\
[[variant]]\nname = \"binary\"\nquant = { scheme = \"binary\" }\n";

/// Set on every `bench` this file starts, and so inherited by the QEMUs
/// those start: what tells this file's QEMUs from any other run's on the
/// machine (a suite run beside the tests, another test binary).
const MARKER: &str = "BENCH_KILLS_TEST_PID";

fn bench(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench"));
    c.args(args)
        .env(MARKER, std::process::id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn run_dirs(out: &Path, suite: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join(suite))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.retain(|d| !d.file_name().unwrap().to_string_lossy().starts_with('.'));
    dirs.sort();
    dirs
}

/// A temporary directory holding the host suite `text`, and where its runs go.
fn host_run(text: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("host.toml");
    std::fs::write(&suite, text).unwrap();
    let out = dir.path().join("out");
    (dir, suite, out)
}

/// What `found` finds, polled while `child` runs (at most five minutes).
fn while_running<T>(child: &mut Child, what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "{what}: not within 300 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the run ended first"
        );
        if let Some(x) = found() {
            return x;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn jobs(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.job.clone().unwrap()).collect()
}

/// Pids of running QEMU processes that a `bench` of this test process started.
fn qemus() -> Vec<u32> {
    let marker = format!("{MARKER}={}", std::process::id());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("qemu-system"))
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
        })
        .collect()
}

fn no_qemu_left() -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if qemus().is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn killed_at_twenty_moments_every_run_reads_resumes_exactly_and_leaves_no_qemu() {
    if Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("qemu-system-arm is not installed: scripts/setup.sh installs it");
    }
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("kills.toml");
    std::fs::write(&suite, QEMU_SUITE).unwrap();
    let suite = suite.to_str().unwrap();
    // Two whole runs: the first builds the firmware (on a fresh clone
    // that takes minutes, which would spread the kills over the build);
    // the second gives the rows every resumed run must end with, and how
    // long a run takes once built, as every killed run below is.
    let cold = dir.path().join("cold");
    common::ok(
        &bench(&["run", suite, "--out", cold.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let whole = dir.path().join("whole");
    let started = Instant::now();
    let o = bench(&["run", suite, "--out", whole.to_str().unwrap()])
        .output()
        .unwrap();
    let span = started.elapsed();
    common::ok(&o);
    let expected = jobs(&store::read_rows(&run_dirs(&whole, "kills")[0]).unwrap());
    assert_eq!(expected.len(), 3);

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut resumed, mut before_any_dir) = (0, 0);
    for kill in 0..20 {
        // xorshift: the same 20 moments on every run of the test, spread over the whole run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = span.mul_f64((seed % 1000) as f64 / 1000.0);
        let out = dir.path().join(format!("k{kill}"));
        let mut child = bench(&["run", suite, "--out", out.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(
            no_qemu_left(),
            "kill {kill} at {at:?}: QEMU {:?} outlived bench",
            qemus()
        );
        let Some(run) = run_dirs(&out, "kills").pop() else {
            before_any_dir += 1;
            continue;
        };
        let show = bench(&["show", run.to_str().unwrap()]).output().unwrap();
        assert_eq!(
            show.status.code(),
            Some(0),
            "kill {kill} at {at:?}: show: {}",
            String::from_utf8_lossy(&show.stderr)
        );
        let o = bench(&["run", suite, "--resume", run.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "kill {kill} at {at:?}: resume: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            jobs(&store::read_rows(&run).unwrap()),
            expected,
            "kill {kill} at {at:?}: every job once, in plan order"
        );
        assert!(no_qemu_left());
        resumed += 1;
    }
    eprintln!("20 kills over {span:?}: {resumed} runs resumed, {before_any_dir} killed before their run directory existed");
    assert!(
        resumed >= 10,
        "most kills must land after the run directory exists ({resumed} of 20)"
    );
}

#[test]
fn sigterm_stops_a_run_that_resume_then_finishes() {
    let (_dir, suite, out) = host_run(HOST_SUITE);
    let mut child = bench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    // Once the first job is stored, ask it to stop.
    while_running(&mut child, "a stored job", || {
        run_dirs(&out, "host")
            .first()
            .is_some_and(|d| store::read_rows(d).is_ok_and(|r| !r.is_empty()))
            .then_some(())
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    let run = run_dirs(&out, "host").remove(0);
    assert!(
        err.contains(&format!(
            "finish the run with: bench run {} --resume {}",
            suite.display(),
            run.display()
        )),
        "{err}"
    );
    let stored = store::read_rows(&run).unwrap();
    assert!(
        !stored.is_empty()
            && stored.len() < 3
            && stored.iter().all(|r| r.status.as_deref() == Some("ok")),
        "{stored:?}"
    );
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"interrupted\": true"), "{manifest}");
    let o = bench(&[
        "run",
        suite.to_str().unwrap(),
        "--resume",
        run.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    common::ok(&o);
    assert_eq!(
        jobs(&store::read_rows(&run).unwrap()),
        [
            "ds-cnn/float32/host",
            "ds-cnn/int8/host",
            "ds-cnn/binary/host"
        ]
    );
}

#[test]
fn two_resumes_of_one_run_cannot_both_write_it() {
    let (_dir, suite, out) = host_run(HOST_SUITE);
    // A plan that selects nothing is refused and leaves no run behind.
    let o = bench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--only",
        "nothing",
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(run_dirs(&out, "host").is_empty());
    // A run killed as soon as its directory exists, before its first job is stored.
    let mut first = bench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    let run = while_running(&mut first, "the run directory", || {
        run_dirs(&out, "host").pop()
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let (a, b) = (
        bench(&[
            "run",
            suite.to_str().unwrap(),
            "--resume",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap(),
        bench(&[
            "run",
            suite.to_str().unwrap(),
            "--resume",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap(),
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    let refused = if codes == [Some(0), Some(2)] { &b } else { &a };
    assert!(
        codes == [Some(0), Some(2)] || codes == [Some(2), Some(0)],
        "{codes:?}: {} / {}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!(
            "failed to resume {}: failed to lock {}: another bench (pid ",
            run.display(),
            run.display()
        )) && err.contains("is writing this run; wait for it to finish"),
        "{err}"
    );
    assert_eq!(
        jobs(&store::read_rows(&run).unwrap()),
        [
            "ds-cnn/float32/host",
            "ds-cnn/int8/host",
            "ds-cnn/binary/host"
        ],
        "every job once"
    );
}

#[test]
fn a_stored_table_changed_afterwards_is_named_not_read() {
    let (_dir, suite, out) = host_run(
        &HOST_SUITE
            .replace("repetitions = 300", "repetitions = 3")
            .replace("zoo = \"ds-cnn\"", "zoo = \"autoencoder\""),
    );
    let o = bench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    common::ok(&o);
    let run = run_dirs(&out, "host").remove(0);
    let parquet = run.join("results.parquet");
    let mut bytes = std::fs::read(&parquet).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&parquet, &bytes).unwrap();
    for args in [
        vec!["show", run.to_str().unwrap()],
        vec!["report", run.to_str().unwrap()],
        vec!["compare", run.to_str().unwrap(), run.to_str().unwrap()],
    ] {
        let o = bench(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: failed to read {}: it changed after bench wrote it (its SHA-256 is ",
                parquet.display()
            )),
            "{args:?}: {err}"
        );
    }
    // Without the manifest's checksum (a run of an older bench), polars reads the damaged file behind the guard.
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    value.as_object_mut().unwrap().remove("files");
    std::fs::write(run.join("manifest.json"), value.to_string()).unwrap();
    for flip in (8..bytes.len() - 8).step_by(97) {
        let mut damaged = bytes.clone();
        damaged[flip] ^= 0xff;
        std::fs::write(&parquet, &damaged).unwrap();
        let o = bench(&["show", run.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && matches!(o.status.code(), Some(0) | Some(2)),
            "byte {flip}: {err}"
        );
    }
}
