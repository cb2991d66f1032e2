//! The QEMU side: the plugin API's C declarations (from QEMU's
//! `include/qemu/qemu-plugin.h`, API version 1, QEMU 7.2 as Debian 12 ships
//! it; written out so that building needs no QEMU headers) and the
//! callbacks that feed [`State`].

#![allow(non_upper_case_globals)]

use super::State;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::Mutex;

/// The plugin API version this plugin was written against.
#[no_mangle]
pub static qemu_plugin_version: c_int = 1;

type PluginId = u64;
#[repr(C)]
struct Tb {
    _private: [u8; 0],
}
#[repr(C)]
struct Insn {
    _private: [u8; 0],
}

/// `QEMU_PLUGIN_CB_NO_REGS`: the callbacks read no guest registers.
const CB_NO_REGS: c_int = 0;
/// `QEMU_PLUGIN_MEM_RW`: every access; the callback keeps the loads
/// (`qemu_plugin_mem_is_store`), which does not depend on how a QEMU
/// version filters by this argument.
const MEM_RW: c_int = 3;

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: extern "C" fn(PluginId, *mut Tb));
    fn qemu_plugin_register_atexit_cb(
        id: PluginId,
        cb: extern "C" fn(PluginId, *mut c_void),
        userdata: *mut c_void,
    );
    fn qemu_plugin_register_vcpu_tb_exec_cb(
        tb: *mut Tb,
        cb: extern "C" fn(c_uint, *mut c_void),
        flags: c_int,
        userdata: *mut c_void,
    );
    fn qemu_plugin_register_vcpu_mem_cb(
        insn: *mut Insn,
        cb: extern "C" fn(c_uint, u32, u64, *mut c_void),
        flags: c_int,
        rw: c_int,
        userdata: *mut c_void,
    );
    fn qemu_plugin_tb_n_insns(tb: *const Tb) -> usize;
    fn qemu_plugin_tb_vaddr(tb: *const Tb) -> u64;
    fn qemu_plugin_tb_get_insn(tb: *const Tb, idx: usize) -> *mut Insn;
    fn qemu_plugin_insn_vaddr(insn: *const Insn) -> u64;
    fn qemu_plugin_insn_size(insn: *const Insn) -> usize;
    fn qemu_plugin_insn_disas(insn: *const Insn) -> *mut c_char;
    fn qemu_plugin_outs(string: *const c_char);
    fn qemu_plugin_mem_size_shift(info: u32) -> c_uint;
    fn qemu_plugin_mem_is_store(info: u32) -> bool;
    fn free(p: *mut c_void);
}

/// One vCPU (the boards are single-core), so the lock is never contended.
static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_mut().map(f)
}

fn say(text: &str) {
    if let Ok(s) = std::ffi::CString::new(text) {
        // SAFETY: a valid NUL-terminated string for the duration of the call.
        unsafe { qemu_plugin_outs(s.as_ptr()) }
    }
}

/// QEMU's entry point.
///
/// # Safety
/// Called by QEMU with `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let args: Vec<String> = (0..argc.max(0) as usize)
        .map(|i| CStr::from_ptr(*argv.add(i)).to_string_lossy().into_owned())
        .collect();
    match State::from_args(&args) {
        Ok(state) => {
            *STATE.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
            qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
            qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
            0
        }
        Err(e) => {
            say(&format!("bench-qemu-plugin: {e}\n"));
            -1
        }
    }
}

/// The instructions of `tb`, with their handles for registering callbacks.
///
/// # Safety
/// `tb` must be the block of a translation callback, during it.
unsafe fn instructions(tb: *mut Tb) -> Vec<((u64, usize, String), *mut Insn)> {
    (0..qemu_plugin_tb_n_insns(tb))
        .map(|i| {
            let insn = qemu_plugin_tb_get_insn(tb, i);
            let text = qemu_plugin_insn_disas(insn);
            let disas = if text.is_null() {
                String::new()
            } else {
                let s = CStr::from_ptr(text).to_string_lossy().into_owned();
                free(text.cast());
                s
            };
            let address = qemu_plugin_insn_vaddr(insn);
            ((address, qemu_plugin_insn_size(insn), disas), insn)
        })
        .collect()
}

extern "C" fn on_translate(_id: PluginId, tb: *mut Tb) {
    // SAFETY: `tb` is valid during this callback.
    let (vaddr, insns) = unsafe { (qemu_plugin_tb_vaddr(tb), instructions(tb)) };
    let handles: Vec<*mut Insn> = insns.iter().map(|(_, h)| *h).collect();
    let texts = insns.into_iter().map(|(t, _)| t).collect();
    let Some((index, watch_loads)) = with_state(|s| (s.block(vaddr, texts), s.flash.1 > s.flash.0))
    else {
        return;
    };
    let userdata = index as *mut c_void;
    // SAFETY: registering callbacks on the block being translated.
    unsafe {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, CB_NO_REGS, userdata);
        if watch_loads {
            for insn in handles {
                qemu_plugin_register_vcpu_mem_cb(insn, on_load, CB_NO_REGS, MEM_RW, userdata);
            }
        }
    }
}

extern "C" fn on_exec(_vcpu: c_uint, userdata: *mut c_void) {
    with_state(|s| s.enter(userdata as usize));
}

extern "C" fn on_load(_vcpu: c_uint, info: u32, vaddr: u64, userdata: *mut c_void) {
    // SAFETY: `info` is the access's meminfo, valid during this callback.
    let (store, shift) = unsafe {
        (
            qemu_plugin_mem_is_store(info),
            qemu_plugin_mem_size_shift(info),
        )
    };
    if store {
        return;
    }
    let bytes = 1u64 << shift;
    with_state(|s| s.load(userdata as usize, vaddr, bytes));
}

extern "C" fn on_exit(_id: PluginId, _userdata: *mut c_void) {
    if let Some(Err(e)) = with_state(|s| std::fs::write(&s.out, s.report())) {
        say(&format!(
            "bench-qemu-plugin: failed to write its report: {e}\n"
        ));
    }
}
