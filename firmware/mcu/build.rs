//! Puts the target's memory map and the model into the firmware:
//! `BENCH_MEMORY` (`FLASH:origin:length,RAM:origin:length`, from the target
//! file) becomes `memory.x`, with `BENCH_STACK_BYTES` at the top of RAM set
//! apart for the stack; `BENCH_MODEL_BLOB` (a blob the harness
//! prepared) is checked and its sizes become constants for the buffers.

use std::path::PathBuf;

/// A firmware is for exactly one board: refuse a build with none or several
/// `board-*` features (their modules would be missing or collide).
fn one_board() {
    let boards: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_BOARD_")
                .map(|b| b.to_lowercase().replace('_', "-"))
        })
        .collect();
    if boards.len() != 1 {
        let listed = if boards.is_empty() {
            "none".to_string()
        } else {
            boards.join(", ")
        };
        panic!("bench-firmware-mcu is built for exactly one board feature (`--features board-<name>`, as the target file's [build] features give it); got {listed}");
    }
}

fn main() {
    one_board();
    println!("cargo:rerun-if-env-changed=BENCH_MEMORY");
    println!("cargo:rerun-if-env-changed=BENCH_STACK_BYTES");
    println!("cargo:rerun-if-env-changed=BENCH_MODEL_BLOB");
    println!("cargo:rerun-if-env-changed=BENCH_OUTPUT_QUANT");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = std::env::var("BENCH_MEMORY")
        .unwrap_or_else(|_| "FLASH:0x00000000:4M,RAM:0x20000000:4M".into());
    let stack: u64 = std::env::var("BENCH_STACK_BYTES").map_or(3072, |s| {
        s.parse().expect("BENCH_STACK_BYTES is a number of bytes")
    });
    std::fs::write(out.join("memory.x"), memory_x(&memory, stack)).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // The runtime crates' linker scripts: cortex-m-rt's includes memory.x,
    // riscv-rt's does not.
    // Armv6-M has no DWT cycle counter: real M0+ boards count with SysTick.
    println!("cargo::rustc-check-cfg=cfg(armv6m)");
    if std::env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv6m")) {
        println!("cargo:rustc-cfg=armv6m");
    }
    match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("arm") => println!("cargo:rustc-link-arg-bins=-Tlink.x"),
        Ok("riscv32") => {
            println!("cargo:rustc-link-arg-bins=-Tmemory.x");
            println!("cargo:rustc-link-arg-bins=-Tlink.x");
        }
        _ => {}
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
    let bytes = std::fs::read(&blob_path).unwrap_or_else(|e| {
        panic!(
            "failed to read BENCH_MODEL_BLOB {}: {e}",
            blob_path.display()
        )
    });
    let (arena, input, output) = match kernels::model::Model::parse(&bytes) {
        Ok(m) => (
            m.arena_bytes(),
            m.header().input.byte_len().unwrap_or(0),
            m.header().output.byte_len().unwrap_or(0),
        ),
        // The firmware reports a blob that does not load at run time, with the reason.
        Err(_) => (0, 0, 0),
    };
    // The output's quantization, for the EEMBC DUT's dequantized results.
    let output_quant = match std::env::var("BENCH_OUTPUT_QUANT") {
        Ok(q) => {
            let (scale, zero) = q
                .split_once(',')
                .expect("BENCH_OUTPUT_QUANT is `scale,zero_point`");
            let scale: f32 = scale
                .parse()
                .expect("BENCH_OUTPUT_QUANT's scale is a number");
            let zero: i32 = zero
                .parse()
                .expect("BENCH_OUTPUT_QUANT's zero point is an integer");
            format!("Some(({scale:e}, {zero}))")
        }
        Err(_) => "None".into(),
    };
    let model_rs = format!(
        "/// The model blob.\nstatic BLOB: &Aligned<[u8; {len}]> = &Aligned(*include_bytes!({path:?}));\n\
         /// Arena bytes the model needs.\nconst ARENA_BYTES: usize = {arena};\n\
         /// Input tensor bytes.\nconst INPUT_BYTES: usize = {input};\n\
         /// Output tensor bytes.\nconst OUTPUT_BYTES: usize = {output};\n\
         /// The output's `(scale, zero point)`, if the harness gave it.\n\
         #[allow(dead_code)]\nconst OUTPUT_QUANT: Option<(f32, i32)> = {output_quant};\n",
        len = bytes.len(),
        path = blob_path.display().to_string(),
    );
    std::fs::write(out.join("model.rs"), model_rs).expect("write model.rs");
}

/// The linker's memory map: the target's regions, with the top `stack`
/// bytes of RAM set apart as the STACK region, so that static data that
/// leaves less than that for the stack fails to link ("will not fit in
/// region 'RAM'") instead of overwriting itself at run time.
fn memory_x(memory: &str, stack: u64) -> String {
    let mut regions = String::from("MEMORY\n{\n");
    let mut stack_top = String::new();
    for region in memory.split(',') {
        let parts: Vec<&str> = region.split(':').collect();
        let [name, origin, length] = parts[..] else {
            panic!("BENCH_MEMORY: `{region}` is not NAME:ORIGIN:LENGTH")
        };
        if name == "RAM" {
            let origin = parse_number(origin);
            let length = parse_number(length);
            assert!(
                length > stack,
                "BENCH_MEMORY: RAM ({length} bytes) is smaller than the stack ({stack} bytes)"
            );
            regions.push_str(&format!(
                "  RAM : ORIGIN = {origin:#x}, LENGTH = {}\n",
                length - stack
            ));
            regions.push_str(&format!(
                "  STACK : ORIGIN = {:#x}, LENGTH = {stack}\n",
                origin + length - stack
            ));
            stack_top = format!("_stack_start = {:#x};\n", origin + length);
        } else {
            regions.push_str(&format!(
                "  {name} : ORIGIN = {origin}, LENGTH = {length}\n"
            ));
        }
    }
    regions.push_str("}\n");
    regions.push_str(&stack_top);
    // A boot stage 2 region (RP2040): the boot ROM reads its 256 bytes first.
    if memory.split(',').any(|r| r.starts_with("BOOT2:")) {
        regions.push_str("SECTIONS {\n  .boot2 ORIGIN(BOOT2) : { KEEP(*(.boot2)); } > BOOT2\n} INSERT BEFORE .text;\n");
    }
    // riscv-rt places sections by these aliases; cortex-m-rt ignores them.
    for (alias, region) in [
        ("TEXT", "FLASH"),
        ("RODATA", "FLASH"),
        ("DATA", "RAM"),
        ("BSS", "RAM"),
        ("HEAP", "RAM"),
        ("STACK", "STACK"),
    ] {
        regions.push_str(&format!("REGION_ALIAS(\"REGION_{alias}\", {region});\n"));
    }
    regions
}

/// `0x2000_0000`, `16384` or `16K`/`4M`.
fn parse_number(text: &str) -> u64 {
    let t = text.replace('_', "");
    let (digits, scale) = match t.as_bytes().last() {
        Some(b'K') => (&t[..t.len() - 1], 1024),
        Some(b'M') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (&t[..], 1),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    value.unwrap_or_else(|_| panic!("BENCH_MEMORY: `{text}` is not a number")) * scale
}
