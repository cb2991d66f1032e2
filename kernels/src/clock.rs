//! Time stamps per operator: each target supplies its own clock.

/// A monotonic counter read by the executor around each operator. The unit
/// is the target's: CPU cycles (DWT CYCCNT, `mcycle`), emulated instructions
/// (SysTick under QEMU icount), or host nanoseconds.
pub trait Clock {
    /// The current count.
    fn now(&mut self) -> u64;
}

/// Receives one time stamp before the first operator and one after each.
pub trait Profiler {
    /// Called with the index of the operator about to run, or that just ran.
    fn stamp(&mut self, after_op: Option<usize>);
}

/// The profiler that records nothing (and compiles to nothing).
pub struct NoProfile;

impl Profiler for NoProfile {
    #[inline(always)]
    fn stamp(&mut self, _: Option<usize>) {}
}

/// Writes `clock.now()` into `stamps[0]` before the first operator and into
/// `stamps[i + 1]` after operator `i`; stamps past the slice are dropped.
pub struct StampProfiler<'c, 's, C: Clock> {
    clock: &'c mut C,
    stamps: &'s mut [u64],
}

impl<'c, 's, C: Clock> StampProfiler<'c, 's, C> {
    /// A profiler over `clock` writing into `stamps` (size it `op_count + 1`).
    pub fn new(clock: &'c mut C, stamps: &'s mut [u64]) -> Self {
        Self { clock, stamps }
    }
}

impl<C: Clock> Profiler for StampProfiler<'_, '_, C> {
    #[inline(always)]
    fn stamp(&mut self, after_op: Option<usize>) {
        let slot = after_op.map_or(0, |i| i + 1);
        let now = self.clock.now();
        if let Some(s) = self.stamps.get_mut(slot) {
            *s = now;
        }
    }
}

/// The host's monotonic clock, in nanoseconds since the clock was made.
#[cfg(feature = "std")]
pub struct HostClock(std::time::Instant);

#[cfg(feature = "std")]
impl HostClock {
    /// A clock starting at zero now.
    pub fn new() -> Self {
        Self(std::time::Instant::now())
    }
}

#[cfg(feature = "std")]
impl Default for HostClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl Clock for HostClock {
    fn now(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}
