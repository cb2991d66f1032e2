//! Child processes (QEMU, the host device program, cargo) end when bench
//! ends: each is started with `PR_SET_PDEATHSIG` on Linux, so the kernel
//! kills it even when bench is killed with SIGKILL, and the ones running
//! are remembered so that SIGINT, SIGTERM or SIGHUP can stop them at once.
//! The first such signal only asks bench to stop: the job in progress is
//! abandoned (not stored), the store is finished and stays resumable. A
//! second one exits at once.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Exit status of a run stopped by a signal (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: u8 = 130;

/// Handles SIGINT, SIGTERM and SIGHUP from now on (idempotent).
pub fn handle_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    // Asked twice: children die with bench (PR_SET_PDEATHSIG).
                    std::process::exit(128 + signal);
                }
                eprintln!("\nbench: stopping (signal {signal}): the job in progress is abandoned, the results stored so far are kept; again to quit at once");
                kill_running();
            }
        });
    });
}

/// Whether a signal asked bench to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn kill_running() {
    let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        // Each child leads its own process group: cargo's compilers go with it.
        #[cfg(unix)]
        unsafe {
            // SAFETY: kill(2) with a pid bench started and has not reaped; no memory is touched.
            libc::kill(-(pid as i32), libc::SIGKILL);
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
}

/// Starts `command` as a child that dies with bench, in its own process
/// group (so a terminal's Ctrl-C reaches bench alone, which then stops it).
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        command.process_group(0);
        // SAFETY: the closure runs between fork and exec and only calls
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // bench may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let child = command.spawn()?;
    if let Ok(mut running) = RUNNING.lock() {
        running.push(child.id());
    }
    if interrupted() {
        kill_running();
    }
    Ok(child)
}

/// Forgets a child that was waited for (its pid may be reused).
pub fn reaped(child: &Child) {
    forget(child.id());
}

/// Ends `child` (a no-op if it already ended and was waited for), waits for
/// it and forgets it.
pub fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
    reaped(child);
}

/// Forgets the child `pid` once waited for.
pub fn forget(pid: u32) {
    if let Ok(mut running) = RUNNING.lock() {
        running.retain(|&p| p != pid);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_is_registered_until_reaped() {
        let mut child = super::spawn(std::process::Command::new("true").arg("x")).unwrap();
        assert!(super::RUNNING.lock().unwrap().contains(&child.id()));
        assert!(child.wait().unwrap().success());
        super::reaped(&child);
        assert!(!super::RUNNING.lock().unwrap().contains(&child.id()));
    }
}
