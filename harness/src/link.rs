//! Links: the byte pipes between the harness and a device. The host
//! target's link is a child process's stdin and stdout; QEMU's serial PTY
//! and a board's UART or RTT channel implement the same trait.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// A byte pipe to a device.
pub trait Link {
    /// Sends bytes to the device.
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The next bytes from the device; `Ok(None)` on timeout, an error when
    /// the device closed the link.
    fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>>;
}

/// A device process spoken to over its stdin and stdout.
pub struct ProcessLink {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    stderr: Receiver<String>,
}

impl ProcessLink {
    /// Starts `command` with piped stdio. A thread forwards its stdout, so
    /// reads can have a deadline.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let (stdin, mut stdout, mut err) = (child.stdin.take(), child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = etx.send(text);
        });
        Ok(Self { child, stdin, chunks, stderr })
    }

    /// Stops the device process and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        self.stderr.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
    }
}

impl Link for ProcessLink {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("link closed"))?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        match self.chunks.recv_timeout(timeout) {
            Ok(chunk) => chunk.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the device closed its output")),
        }
    }
}

impl Drop for ProcessLink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
