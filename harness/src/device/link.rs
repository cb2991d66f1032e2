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
    /// Stops the device and returns what it said on the side (stderr,
    /// emulator messages), for error reports.
    fn stop(&mut self) -> String;
    /// Gives a device that was asked to end its program up to `timeout`
    /// to do so, before [`Link::stop`] ends it by force.
    fn await_exit(&mut self, _timeout: Duration) {}
    /// Bytes of stack the device used, where the link can read its memory
    /// (a debug probe reading the painted stack back).
    fn stack_peak(&mut self) -> Option<u32> {
        None
    }
}

impl Link for Box<dyn Link> {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        (**self).send(bytes)
    }
    fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        (**self).recv(timeout)
    }
    fn stop(&mut self) -> String {
        (**self).stop()
    }
    fn await_exit(&mut self, timeout: Duration) {
        (**self).await_exit(timeout)
    }
    fn stack_peak(&mut self) -> Option<u32> {
        (**self).stack_peak()
    }
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
        let mut child = crate::device::process::spawn(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )?;
        let (stdin, mut stdout, mut err) = (
            child.stdin.take(),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
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
        Ok(Self {
            child,
            stdin,
            chunks,
            stderr,
        })
    }
}

impl Link for ProcessLink {
    fn stop(&mut self) -> String {
        drop(self.stdin.take());
        // A device program that saw its input close gets a moment to end by itself.
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::device::process::end(&mut self.child);
        self.stderr
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default()
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("link closed"))?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        match self.chunks.recv_timeout(timeout) {
            Ok(chunk) => chunk.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the device closed its output",
            )),
        }
    }
}

impl Drop for ProcessLink {
    fn drop(&mut self) {
        crate::device::process::end(&mut self.child);
    }
}

/// An emulated board: a QEMU process whose first serial port is a PTY,
/// opened with the `serialport` crate. QEMU's own messages (and the
/// firmware's semihosting output) are kept for error reports.
pub struct QemuLink {
    child: Child,
    port: Box<dyn serialport::SerialPort>,
    stderr: Receiver<String>,
    /// How QEMU ended, if it ended by itself (seen by [`Link::await_exit`] or [`Link::stop`]).
    exit: Option<std::process::ExitStatus>,
}

impl QemuLink {
    /// How QEMU ended by itself (after [`Link::stop`]): `None` if it had to be killed.
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.exit
    }

    /// Starts `command` (a QEMU invocation with `-serial pty`) and opens the
    /// PTY it reports, waiting at most `timeout` for it.
    pub fn spawn(mut command: Command, timeout: Duration) -> std::io::Result<Self> {
        let mut child = crate::device::process::spawn(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )?;
        let (stdout, stderr) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        // QEMU announces the PTY on stdout or stderr depending on version; watch both.
        let (pty_tx, pty_rx) = mpsc::channel::<String>();
        let (etx, stderr_text) = mpsc::channel();
        for (stream, keep) in [
            (Box::new(stdout) as Box<dyn Read + Send>, false),
            (Box::new(stderr), true),
        ] {
            let (pty_tx, etx) = (pty_tx.clone(), etx.clone());
            std::thread::spawn(move || {
                let mut text = String::new();
                for line in
                    std::io::BufRead::lines(std::io::BufReader::new(stream)).map_while(Result::ok)
                {
                    if let Some(path) = line
                        .split("redirected to ")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                    {
                        let _ = pty_tx.send(path.to_string());
                    } else {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
                if keep || !text.is_empty() {
                    let _ = etx.send(text);
                }
            });
        }
        // QEMU that exits at once (a bad machine or CPU name) is reported as
        // soon as it ends, not after the whole timeout.
        let deadline = std::time::Instant::now() + timeout;
        let mut ended = None;
        let path = loop {
            match pty_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(p) => break Some(p),
                Err(_) if ended.is_some() || std::time::Instant::now() >= deadline => break None,
                Err(_) => ended = child.try_wait().ok().flatten(),
            }
        };
        let Some(path) = path else {
            crate::device::process::end(&mut child);
            let said = stderr_text
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            let why = match ended {
                Some(status) => format!("QEMU exited ({status}) before it opened a serial PTY"),
                None => format!(
                    "QEMU did not open a serial PTY within {} s",
                    timeout.as_secs()
                ),
            };
            return Err(std::io::Error::other(format!("{why}: {}", said.trim())));
        };
        let port = serialport::new(&path, 115_200)
            .timeout(Duration::from_millis(50))
            .open()
            .map_err(|e| std::io::Error::other(format!("failed to open {path}: {e}")))?;
        Ok(Self {
            child,
            port,
            stderr: stderr_text,
            exit: None,
        })
    }
}

impl Link for QemuLink {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }

    fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 4096];
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.port.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => return Ok(Some(buf[..n].to_vec())),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("QEMU exited ({status})"),
                ));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    fn await_exit(&mut self, timeout: Duration) {
        // A firmware asked to stop exits through semihosting.
        let deadline = std::time::Instant::now() + timeout;
        while self.exit.is_none() && std::time::Instant::now() < deadline {
            self.exit = self.child.try_wait().ok().flatten();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) -> String {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        if self.exit.is_none() {
            // Asked to quit first, so that QEMU's exit handlers run (a
            // cycle plugin writes its report then); a firmware with no stop
            // command (a peer's DUT) ends here.
            // SAFETY: signals the child, which is not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            self.await_exit(Duration::from_secs(2));
        }
        // Killed only if it did not end by itself (std never signals a reaped child).
        crate::device::process::end(&mut self.child);
        let mut said = String::new();
        while let Ok(text) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            said.push_str(&text);
        }
        said
    }
}

impl Drop for QemuLink {
    fn drop(&mut self) {
        crate::device::process::end(&mut self.child);
    }
}
