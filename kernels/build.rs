//! `arm_dsp`: the target has the Armv7E-M DSP instructions (SMLAD,
//! SXTB16, SADD16) in Thumb-2. Rust's `target_feature = "dsp"` is not
//! stable to test, so the triple decides: every `thumbv7em` core (M4, M7)
//! has them, and so does Armv7-A in Thumb mode (`thumbv7neon` Linux), where
//! the kernel property tests run the same code under `qemu-arm`. Armv8-M
//! Mainline cores have the DSP extension as an option; their target files
//! say so with `--cfg arm_dsp` in their rustflags (qemu-m33, qemu-m55).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(arm_dsp)");
    // `arm_mve`: the core has Helium (the M-profile Vector Extension) and
    // the build enables it (`-C target-cpu=cortex-m55`); its target file
    // says so with `--cfg arm_mve`, as for `arm_dsp` (qemu-m55).
    println!("cargo::rustc-check-cfg=cfg(arm_mve)");
    host_isa();
    op_families();
    stack();
    println!("cargo:rerun-if-env-changed=TARGET");
    if std::env::var("TARGET")
        .is_ok_and(|t| t.starts_with("thumbv7em") || t.starts_with("thumbv7neon"))
    {
        println!("cargo:rustc-cfg=arm_dsp");
    }
}

/// `op_lstm`, `op_resize`, `op_log_softmax`, `op_weight_offset`, `op_int16`,
/// `op_svdf`, `op_matmul`, `op_float_math`, `op_gather`, `op_int4`,
/// `op_sparse`, `op_binary`, `op_float`, `op_deep_conv`, `op_fused`: the executor runs that operator family (its `op-*` feature,
/// or `std`; without `op_deep_conv` its convolutions run, on the portable loops).
fn op_families() {
    const FAMILIES: [&str; 15] = [
        "lstm",
        "resize",
        "log_softmax",
        "weight_offset",
        "int16",
        "svdf",
        "matmul",
        "float_math",
        "gather",
        "int4",
        "sparse",
        "binary",
        "float",
        "deep_conv",
        "fused",
    ];
    let std = std::env::var_os("CARGO_FEATURE_STD").is_some();
    for family in FAMILIES {
        println!("cargo::rustc-check-cfg=cfg(op_{family})");
        let feature = format!("CARGO_FEATURE_OP_{}", family.to_uppercase());
        if std || std::env::var_os(feature).is_some() {
            println!("cargo:rustc-cfg=op_{family}");
        }
    }
}

/// `large_stack`: the firmware being built sets at least 12 KiB of RAM
/// apart for its stack (`stack_bytes` in its target file, which the
/// harness passes as `BENCH_STACK_BYTES`), so the kernels of cores without
/// DSP may keep 4 KiB buffers there too, as the DSP cores' always do.
fn stack() {
    println!("cargo::rustc-check-cfg=cfg(large_stack)");
    println!("cargo:rerun-if-env-changed=BENCH_STACK_BYTES");
    let bytes = std::env::var("BENCH_STACK_BYTES").ok();
    if bytes.and_then(|b| b.parse::<u64>().ok()) >= Some(12 * 1024) {
        println!("cargo:rustc-cfg=large_stack");
    }
}

/// `host_avx2`, `host_avx512`: the machine building a native x86-64 build
/// has the instructions of `x86::Isa::Avx2`/`Avx512`. Tests are run where
/// they are built, so the ISA suites of a CPU without them are marked
/// ignored (shown as such) instead of passing without running.
fn host_isa() {
    println!("cargo::rustc-check-cfg=cfg(host_avx2, host_avx512)");
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    #[cfg(target_arch = "x86_64")]
    if native {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt");
        let avx512 = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512vpopcntdq");
        if avx2 {
            println!("cargo:rustc-cfg=host_avx2");
        }
        if avx512 {
            println!("cargo:rustc-cfg=host_avx512");
        }
    }
    let _ = native;
}
