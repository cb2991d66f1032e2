//! TFLite Micro's 16x8 LSTM (int16 activations, int8 weights, int64
//! biases): eight models `scripts/lstm16-models.py` writes, run by bench on
//! the host with `suites/lstm16.toml`'s input. Each output must equal, by
//! CRC-32 of its bytes, TFLite Micro's on the same input (goldens from
//! `scripts/lstm16-goldens.sh`, which runs TFLM under QEMU: LiteRT has no
//! int16 LSTM to be the reference).

mod common;

use common::bench;
use std::path::Path;

#[test]
fn sixteen_by_eight_lstms_match_tflite_micro() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("harness/tests/golden/lstm16/tflm_outputs.json"))
            .unwrap(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let run_args = ["run", "suites/lstm16.toml", "--target", "host", "--out"];
    common::succeed(bench(&run_args).arg(out.path()).current_dir(&root));
    let run = common::only_run(&out.path().join("lstm16"));
    let rows = harness::results::store::read_rows(&run).unwrap();
    for r in &rows {
        let model = r.model.as_deref().unwrap();
        let want = golden["output_crc32"][model].as_str().unwrap();
        assert_eq!(
            r.output_crc32.as_deref(),
            Some(want),
            "{model}: output differs from TFLM's"
        );
    }
    assert_eq!(rows.len(), 8);
}
