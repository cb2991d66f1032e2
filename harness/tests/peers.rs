//! TFLite Micro built by bench from the peers' snapshot (`BENCH_PEERS_DIR`)
//! and driven through the MLPerf Tiny DUT protocol under QEMU.

use harness::build::tflm::{self, Kernels};
use harness::input::target;

#[test]
fn tflm_builds_for_qemu_m4() {
    if std::env::var_os(tflm::PEERS_ENV).is_none() {
        eprintln!("skipped: {} is not set", tflm::PEERS_ENV);
        return;
    }
    let root = harness::workspace_root();
    let target = target::load(&target::targets_dir(), "qemu-m4").unwrap();
    let model = root.join("models/mlperf-tiny/kws_ref_model.tflite");
    let elf = tflm::build(&target, Kernels::CmsisNn, &model).unwrap();
    eprintln!("{}", elf.display());
}
