//! `arm_dsp`: the target has the Armv7E-M DSP instructions (SMLAD,
//! SXTB16, SADD16) in Thumb-2. Rust's `target_feature = "dsp"` is not
//! stable to test, so the triple decides: every `thumbv7em` core (M4, M7)
//! has them, and so does Armv7-A in Thumb mode (`thumbv7neon` Linux), where
//! the kernel property tests run the same code under `qemu-arm`. Armv8-M
//! Mainline cores have the DSP extension as an option; their target files
//! say so with `--cfg arm_dsp` in their rustflags (qemu-m33, qemu-m55).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(arm_dsp)");
    println!("cargo:rerun-if-env-changed=TARGET");
    if std::env::var("TARGET")
        .is_ok_and(|t| t.starts_with("thumbv7em") || t.starts_with("thumbv7neon"))
    {
        println!("cargo:rustc-cfg=arm_dsp");
    }
}
