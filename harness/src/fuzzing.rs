//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run by
//! `scripts/fuzz.sh`), one per reader of outside bytes. They live here so
//! that `tests/fuzz_corpus.rs` replays every committed corpus file through
//! the same code on stable Rust in every test run. Each returns normally for
//! any input: errors are fine, a panic or a hang is a bug.

use std::path::Path;

/// A fuzz target's body: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/Cargo.toml` declares them.
pub const TARGETS: &[(&str, Target)] = &[
    ("tflite", tflite),
    ("onnx", onnx),
    ("npy", npy),
    ("npz", npz),
    ("csv", csv),
    ("suite", suite),
    ("target", target),
    ("frames", frames),
    ("results", results),
];

/// A `.tflite` flatbuffer through the importer.
pub fn tflite(data: &[u8]) {
    let _ = crate::model::tflite::import(data, "fuzz", Path::new("fuzz.tflite"));
}

/// An `.onnx` protobuf through the importer.
pub fn onnx(data: &[u8]) {
    let _ = crate::model::onnx::import(data, "fuzz", Path::new("fuzz.onnx"));
}

/// A `.npy` array read as floats and as int8.
pub fn npy(data: &[u8]) {
    if let Ok(array) = crate::input::npy::parse(data) {
        let _ = array.into_vec::<f32>();
    }
    if let Ok(array) = crate::input::npy::parse(data) {
        let _ = array.into_vec::<i8>();
    }
}

/// A `.npz` archive's `x` member.
pub fn npz(data: &[u8]) {
    if let Ok(Some(member)) = crate::input::npy::npz_member(data, "x") {
        npy(&member);
    }
}

/// A dataset `.csv` (polars' reader, behind the guard as in `dataset::load`).
pub fn csv(data: &[u8]) {
    let _ = crate::guard::catching("polars", || crate::input::dataset::read_csv(data, "label"));
}

/// A suite file (its model and dataset paths do not exist: those are errors too).
pub fn suite(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::input::suite::parse(Path::new("/nonexistent/fuzz.toml"), text.into());
    }
}

/// A target file.
pub fn target(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ =
            crate::input::target::parse(Path::new("/nonexistent/fuzz.toml"), "fuzz", text.into());
    }
}

/// Bytes from a device: frames cut by the reader, each decoded as a response.
pub fn frames(data: &[u8]) {
    let mut reader = protocol::FrameReader::new(vec![0u8; 4096]);
    for &b in data {
        if let protocol::Pushed::Frame(len) = reader.push(b) {
            let _ = protocol::decode::<protocol::Response>(reader.frame(len));
        }
    }
}

/// A stored `results.parquet`.
pub fn results(data: &[u8]) {
    let _ = crate::results::store::parse_table::<crate::results::store::Row>(data);
}
