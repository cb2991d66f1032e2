//! Which x86-64 instruction-set level the kernels may use, chosen at run
//! time.
//!
//! A host build targets baseline x86-64 (SSE2), so the AVX2 and AVX-512
//! kernels are compiled with `#[target_feature]` and only called once the
//! CPU is known to have the features ([`Isa::is_available`], std's
//! `is_x86_feature_detected!`). Nothing is selected by default: the
//! portable kernels stay the host reference (the oracle every device output
//! is checked against), and only the host target's device program opts in
//! with [`select`], so every host run checks the SIMD kernels against the
//! portable ones too.

use core::sync::atomic::{AtomicU8, Ordering};

/// A level of x86-64 SIMD the int8 and binary kernels have an implementation for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Isa {
    /// Baseline x86-64: the portable kernels.
    Portable = 0,
    /// AVX2 and POPCNT (Haswell, Zen 1 and later): 8 lanes of 32 bits,
    /// 16-bit multiply-adds; binary layers count 64 bits per POPCNT.
    Avx2 = 1,
    /// AVX-512 F/BW/VL with VNNI and VPOPCNTDQ (Ice Lake, Zen 4 and later):
    /// 16 lanes, four 8-bit multiply-accumulates per 32-bit lane.
    Avx512 = 2,
}

impl Isa {
    /// Every level, from the baseline up.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name reports use (`portable`, `avx2`, `avx512-vnni`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512-vnni",
        }
    }

    /// Whether this CPU (and the operating system's saved register state)
    /// supports the level.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt")
            }
            Isa::Avx512 => {
                // Every AVX-512 processor has AVX2, which this level's
                // kernels also use; checked all the same.
                Isa::Avx2.is_available()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
                    && std::is_x86_feature_detected!("avx512vpopcntdq")
            }
        }
    }

    /// The highest level this CPU supports.
    pub fn best_available() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.is_available())
            .unwrap_or(Isa::Portable)
    }
}

static SELECTED: AtomicU8 = AtomicU8::new(Isa::Portable as u8);

/// Lets the kernels use `isa` from now on, if the CPU has it; returns the
/// level in force afterwards (unchanged when `isa` is not available).
pub fn select(isa: Isa) -> Isa {
    if isa.is_available() {
        SELECTED.store(isa as u8, Ordering::Relaxed);
    }
    selected()
}

/// The level the kernels use ([`Isa::Portable`] unless [`select`]ed).
#[inline]
pub fn selected() -> Isa {
    match SELECTED.load(Ordering::Relaxed) {
        2 => Isa::Avx512,
        1 => Isa::Avx2,
        _ => Isa::Portable,
    }
}

std::thread_local! {
    /// The kernels' scratch buffer on this thread (padded input copies),
    /// kept between calls so that a layer does not allocate it again.
    static SCRATCH: core::cell::RefCell<std::vec::Vec<u64>> =
        const { core::cell::RefCell::new(std::vec::Vec::new()) };
}

/// This thread's scratch buffer, at least `bytes` long and aligned for
/// any element type, taken out until [`put_scratch`] gives it back. Not
/// lent to a closure: a closure's body is compiled without its caller's
/// target features (a kernel's intrinsics in one became calls).
pub(crate) fn take_scratch(bytes: usize) -> std::vec::Vec<u64> {
    let mut scratch = SCRATCH.take();
    let words = bytes.div_ceil(8);
    if scratch.len() < words {
        scratch.resize(words, 0);
    }
    scratch
}

/// Gives back the buffer [`take_scratch`] took, for the next call.
pub(crate) fn put_scratch(scratch: std::vec::Vec<u64>) {
    SCRATCH.set(scratch);
}

/// Copies of a prepared model's constant data, made once (int4 filters
/// unpacked, sparse ones written out dense or as the sparse kernel's pairs)
/// and found again by a key naming what they were made from (its address,
/// length and shape). Addresses are sound keys because only `'static`
/// models are prepared: their memory is never freed nor changed, and the
/// copies are leaked to live as long.
pub(crate) struct Copies<K, V: ?Sized + 'static = [i8]> {
    copies: std::sync::RwLock<std::vec::Vec<(K, &'static V)>>,
}

impl<K: PartialEq, V: ?Sized + 'static> Copies<K, V> {
    pub(crate) const fn new() -> Self {
        Copies {
            copies: std::sync::RwLock::new(std::vec::Vec::new()),
        }
    }

    /// The copy made for `key`, if any.
    pub(crate) fn find(&self, key: &K) -> Option<&'static V> {
        let copies = self.copies.read().unwrap_or_else(|e| e.into_inner());
        copies.iter().find(|(k, _)| k == key).map(|(_, c)| *c)
    }

    /// The copy for `key`, made by `make` on the first call.
    pub(crate) fn get_or_make<M: Into<std::boxed::Box<V>>>(
        &self,
        key: K,
        make: impl FnOnce() -> M,
    ) -> &'static V {
        if let Some(copy) = self.find(&key) {
            return copy;
        }
        let copy: &'static V = std::boxed::Box::leak(make().into());
        self.copies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, copy));
        copy
    }
}
