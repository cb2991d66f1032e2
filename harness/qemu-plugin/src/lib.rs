//! A QEMU TCG plugin that records what a firmware executed between its
//! timing markers, for bench's per-core cycle models.
//!
//! QEMU runs bench's firmware with `-icount`, which counts instructions
//! exactly but says nothing of how long each takes on the real core. This
//! plugin, loaded with `-plugin libbench_qemu_plugin.so,begin=ADDR,end=ADDR,
//! out=FILE[,flash=LO-HI][,windows=N]`, counts from each execution of the
//! block at `begin` (the firmware's `bench_timed_begin`) to the next at
//! `end`, for the first `N` such windows (the timed inferences; a sweep's
//! later runs exit early and are not counted):
//!
//! * how often each translated block ran,
//! * how often control left it for anything but the next address (a taken
//!   branch, call, return or exception: a pipeline refill on the core),
//! * how many bytes its loads read from the range `flash` (weights, tables
//!   and constants that a board reads through flash wait states),
//!
//! and at exit writes them with each block's instructions as QEMU
//! disassembles them. bench's harness turns that into cycles with the
//! core's documented timings (`harness/src/telemetry/cycles.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;

#[cfg(not(test))]
mod qemu;

/// One translated block and what it did inside the windows.
struct Block {
    vaddr: u64,
    /// (address, bytes, disassembly) of each instruction.
    insns: Vec<(u64, usize, String)>,
    execs: u64,
    taken: u64,
    flash_bytes: u64,
}

impl Block {
    /// The address after its last instruction.
    fn end(&self) -> u64 {
        self.insns
            .last()
            .map_or(self.vaddr, |(a, n, _)| a + *n as u64)
    }
}

/// The plugin's settings and counts.
struct State {
    begin: u64,
    end: u64,
    flash: (u64, u64),
    out: String,
    blocks: Vec<Block>,
    /// A block is known by its start and length: QEMU may translate the
    /// same address again (after a flush), and a retranslation is the same code.
    index: HashMap<(u64, usize), usize>,
    inside: bool,
    windows: u64,
    /// Windows to count (all if `None`).
    limit: Option<u64>,
    last: Option<usize>,
}

fn parse_address(text: &str) -> Option<u64> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(hex, 16).ok()
}

impl State {
    /// Reads the `key=value` arguments.
    fn from_args(args: &[String]) -> Result<State, String> {
        let (mut begin, mut end, mut out, mut flash, mut limit) = (None, None, None, (0, 0), None);
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("argument `{arg}` is not key=value"))?;
            let address = || {
                parse_address(value).ok_or_else(|| format!("{key}={value} is not a hex address"))
            };
            match key {
                "begin" => begin = Some(address()?),
                "end" => end = Some(address()?),
                "out" => out = Some(value.to_string()),
                "windows" => {
                    limit = Some(
                        value
                            .parse()
                            .map_err(|_| format!("windows={value} is not a count"))?,
                    )
                }
                "flash" => {
                    flash = value
                        .split_once('-')
                        .and_then(|(lo, hi)| Some((parse_address(lo)?, parse_address(hi)?)))
                        .ok_or_else(|| format!("flash={value} is not LO-HI in hex"))?;
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let missing = |what: &str| format!("missing argument {what}=");
        // Thumb function addresses carry bit 0; blocks start at even ones.
        Ok(State {
            begin: begin.ok_or_else(|| missing("begin"))? & !1,
            end: end.ok_or_else(|| missing("end"))? & !1,
            flash,
            out: out.ok_or_else(|| missing("out"))?,
            blocks: Vec::new(),
            index: HashMap::new(),
            inside: false,
            windows: 0,
            limit,
            last: None,
        })
    }

    /// The index of the block at `vaddr` with these instructions, added if new.
    fn block(&mut self, vaddr: u64, insns: Vec<(u64, usize, String)>) -> usize {
        let key = (vaddr, insns.len());
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.blocks.push(Block {
            vaddr,
            insns,
            execs: 0,
            taken: 0,
            flash_bytes: 0,
        });
        self.index.insert(key, self.blocks.len() - 1);
        self.blocks.len() - 1
    }

    /// Block `i` starts to run.
    fn enter(&mut self, i: usize) {
        let vaddr = self.blocks[i].vaddr;
        let more = self.limit.is_none_or(|n| self.windows < n);
        if vaddr == self.begin && !self.inside && more {
            self.inside = true;
            self.windows += 1;
            self.last = None;
        }
        if self.inside {
            if let Some(last) = self.last {
                if self.blocks[last].end() != vaddr {
                    self.blocks[last].taken += 1;
                }
            }
            self.blocks[i].execs += 1;
            self.last = Some(i);
        }
        if vaddr == self.end {
            self.inside = false;
        }
    }

    /// Block `i` loaded `bytes` from `vaddr`.
    fn load(&mut self, i: usize, vaddr: u64, bytes: u64) {
        if self.inside && (self.flash.0..self.flash.1).contains(&vaddr) {
            self.blocks[i].flash_bytes += bytes;
        }
    }

    /// The report: a header, then each block that ran inside the windows
    /// with its counts and instructions.
    fn report(&self) -> String {
        let mut text = format!("bench-qemu-plugin 1\nwindows {}\n", self.windows);
        for b in self.blocks.iter().filter(|b| b.execs > 0) {
            let _ = writeln!(
                text,
                "block {:#x} execs {} taken {} flash-bytes {}",
                b.vaddr, b.execs, b.taken, b.flash_bytes
            );
            for (address, bytes, disas) in &b.insns {
                let _ = writeln!(text, "  {address:#x} {bytes} {disas}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_read_and_their_errors_named() {
        let s = State::from_args(&args(&[
            "begin=0x101",
            "end=0x200",
            "out=/tmp/x",
            "flash=0x0-0x400000",
        ]))
        .unwrap();
        assert_eq!(
            (s.begin, s.end, s.flash, s.out.as_str()),
            (0x100, 0x200, (0, 0x40_0000), "/tmp/x")
        );
        let error = |list: &[&str]| State::from_args(&args(list)).err().unwrap();
        assert_eq!(error(&["begin=0x100", "out=x"]), "missing argument end=");
        assert_eq!(error(&["begin=zz"]), "begin=zz is not a hex address");
        assert_eq!(error(&["speed=3"]), "unknown argument `speed`");
        assert_eq!(error(&["flash=0x10"]), "flash=0x10 is not LO-HI in hex");
        assert_eq!(error(&["begin"]), "argument `begin` is not key=value");
        assert_eq!(error(&["windows=x"]), "windows=x is not a count");
    }

    /// Two windows of: begin (0x10, calls 0x40), a loop block at 0x40 run
    /// three times (taken back twice, then falls through to 0x44) loading 4
    /// bytes from flash and 4 from elsewhere each time, and end at 0x44; a
    /// block outside the windows is not counted.
    #[test]
    fn blocks_are_counted_inside_the_windows_with_their_taken_exits_and_flash_bytes() {
        let mut s = State::from_args(&args(&[
            "begin=0x11",
            "end=0x44",
            "out=x",
            "flash=0x1000-0x2000",
        ]))
        .unwrap();
        let begin = s.block(
            0x10,
            vec![
                (0x10, 2, "movs r0, #1".into()),
                (0x12, 4, "bl #0x40".into()),
            ],
        );
        let body = s.block(
            0x40,
            vec![
                (0x40, 2, "ldr r1, [r2]".into()),
                (0x42, 2, "bne #0x40".into()),
            ],
        );
        let end = s.block(0x44, vec![(0x44, 2, "bx lr".into())]);
        let outside = s.block(0x80, vec![(0x80, 2, "nop".into())]);
        assert_eq!(
            s.block(0x40, vec![(0x40, 2, "x".into()), (0x42, 2, "y".into())]),
            body
        );
        for _ in 0..2 {
            s.enter(outside);
            s.enter(begin);
            for _ in 0..3 {
                s.enter(body);
                s.load(body, 0x1800, 4);
                s.load(body, 0x3000, 4);
            }
            s.enter(end);
            s.enter(outside);
        }
        s.load(outside, 0x1800, 4);
        assert_eq!(s.windows, 2);
        // A third window past `windows=2` is not counted.
        let mut limited =
            State::from_args(&args(&["begin=0x10", "end=0x44", "out=x", "windows=1"])).unwrap();
        let entry = limited.block(0x10, vec![(0x10, 2, "nop".into())]);
        let exit = limited.block(0x44, vec![(0x44, 2, "bx lr".into())]);
        for _ in 0..3 {
            limited.enter(entry);
            limited.enter(exit);
        }
        assert_eq!((limited.windows, limited.blocks[entry].execs), (1, 1));
        let counts = |i: usize| {
            (
                s.blocks[i].execs,
                s.blocks[i].taken,
                s.blocks[i].flash_bytes,
            )
        };
        assert_eq!(counts(begin), (2, 2, 0));
        assert_eq!(counts(body), (6, 4, 24));
        assert_eq!(counts(end), (2, 0, 0));
        assert_eq!(counts(outside), (0, 0, 0));
        assert_eq!(
            s.report(),
            "bench-qemu-plugin 1\nwindows 2\n\
             block 0x10 execs 2 taken 2 flash-bytes 0\n  0x10 2 movs r0, #1\n  0x12 4 bl #0x40\n\
             block 0x40 execs 6 taken 4 flash-bytes 24\n  0x40 2 ldr r1, [r2]\n  0x42 2 bne #0x40\n\
             block 0x44 execs 2 taken 0 flash-bytes 0\n  0x44 2 bx lr\n"
        );
    }
}
