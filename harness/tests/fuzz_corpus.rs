//! Every fuzz target's committed corpus (seeds, and each crash input found
//! and fixed, kept as a regression input) replayed through the same code the
//! fuzzers run (`harness::fuzzing`), in every test run, on stable Rust.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_target_returns_on_every_corpus_input() {
    for (name, run) in harness::fuzzing::TARGETS {
        let dir = corpus(name);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "fuzz target {name} has no committed corpus"
        );
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let ok = std::panic::catch_unwind(|| run(&data));
            assert!(
                ok.is_ok(),
                "fuzz target {name} panicked on {}",
                input.display()
            );
        }
    }
}

#[test]
fn every_fuzz_target_is_declared_and_has_a_binary() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"))
            .unwrap();
    for (name, _) in harness::fuzzing::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml does not declare {name}"
        );
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fuzz/fuzz_targets/{name}.rs")),
        )
        .unwrap();
        assert!(
            source.contains(&format!("harness::fuzzing::{name}(data)")),
            "fuzz_targets/{name}.rs does not run harness::fuzzing::{name}"
        );
    }
}

/// Writes the seed frames of the `frames` target (run once with `--ignored`;
/// the files are committed).
#[test]
#[ignore]
fn write_frame_seeds() {
    use protocol::{Clock, Response};
    let responses = [
        Response::Hello {
            version: protocol::VERSION,
            board: "seed",
            clock: Clock::Cycles,
            ticks_per_second: 25_000_000,
            arena_capacity: 65536,
            arena_needed: 16000,
            input_bytes: 490,
        },
        Response::Ack,
        Response::Inference {
            index: 0,
            ticks: 123_456,
            exit: Some(1),
        },
        Response::Output(&[1, 2, 3, 250]),
        Response::Done {
            stack_peak: Some(2048),
        },
        Response::Error("no model"),
    ];
    let mut stream = Vec::new();
    for (i, r) in responses.iter().enumerate() {
        let (mut scratch, mut frame) = (vec![0u8; 512], vec![0u8; 1024]);
        let n = protocol::encode(r, &mut scratch, &mut frame).unwrap();
        std::fs::write(corpus("frames").join(format!("response-{i}")), &frame[..n]).unwrap();
        stream.extend_from_slice(&frame[..n]);
    }
    std::fs::write(corpus("frames").join("conversation"), stream).unwrap();
}
