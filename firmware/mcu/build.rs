//! Puts the target's memory map and the model into the firmware:
//! `BENCH_MEMORY` (`FLASH:origin:length,RAM:origin:length`, from the target
//! file) becomes `memory.x`; `BENCH_MODEL_BLOB` (a blob the harness
//! prepared) is checked and its sizes become constants for the buffers.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BENCH_MEMORY");
    println!("cargo:rerun-if-env-changed=BENCH_MODEL_BLOB");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = std::env::var("BENCH_MEMORY").unwrap_or_else(|_| "FLASH:0x00000000:4M,RAM:0x20000000:4M".into());
    let mut regions = String::from("MEMORY\n{\n");
    for region in memory.split(',') {
        let parts: Vec<&str> = region.split(':').collect();
        let [name, origin, length] = parts[..] else { panic!("BENCH_MEMORY: `{region}` is not NAME:ORIGIN:LENGTH") };
        regions.push_str(&format!("  {name} : ORIGIN = {origin}, LENGTH = {length}\n"));
    }
    regions.push_str("}\n");
    std::fs::write(out.join("memory.x"), regions).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's linker script, which includes memory.x.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("arm") {
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    }

    // Without a model (e.g. a lint run) the firmware reports that it has none.
    let blob_path = match std::env::var("BENCH_MODEL_BLOB") {
        Ok(path) => PathBuf::from(path),
        Err(_) => {
            let empty = out.join("empty.blob");
            std::fs::write(&empty, []).expect("write an empty blob");
            empty
        }
    };
    println!("cargo:rerun-if-changed={}", blob_path.display());
    let bytes = std::fs::read(&blob_path).unwrap_or_else(|e| panic!("failed to read BENCH_MODEL_BLOB {}: {e}", blob_path.display()));
    let (arena, input, output) = match kernels::model::Model::parse(&bytes) {
        Ok(m) => (m.arena_bytes(), m.header().input.byte_len().unwrap_or(0), m.header().output.byte_len().unwrap_or(0)),
        // The firmware reports a blob that does not load at run time, with the reason.
        Err(_) => (0, 0, 0),
    };
    let model_rs = format!(
        "/// The model blob.\nstatic BLOB: &Aligned<[u8; {len}]> = &Aligned(*include_bytes!({path:?}));\n\
         /// Arena bytes the model needs.\nconst ARENA_BYTES: usize = {arena};\n\
         /// Input tensor bytes.\nconst INPUT_BYTES: usize = {input};\n\
         /// Output tensor bytes.\nconst OUTPUT_BYTES: usize = {output};\n",
        len = bytes.len(),
        path = blob_path.display().to_string(),
    );
    std::fs::write(out.join("model.rs"), model_rs).expect("write model.rs");
}
