//! Reading the files users name (suites, targets, models, datasets, inputs,
//! stored runs): regular files only, since a FIFO or a device would block or
//! never end, and up to a size, so that a wrong path is an error naming the
//! file rather than a hang or an exhausted memory.

use std::io::Read;
use std::path::Path;

/// The largest input file bench reads whole: 2 GiB.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Opens `path` for reading if it is a regular file (following links).
pub fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {kind}"),
        ));
    }
    std::fs::File::open(path)
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// The bytes of the regular file at `path` (at most [`MAX_FILE_BYTES`]).
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    read_limited(path, MAX_FILE_BYTES)
}

/// The text of the regular file at `path` (at most [`MAX_FILE_BYTES`], UTF-8).
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is not UTF-8 text ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_limited(&file, 5).unwrap(), b"12345");
        assert_eq!(
            read_limited(&file, 4).unwrap_err().to_string(),
            "it is larger than 4 bytes"
        );
        assert_eq!(
            read(dir.path()).unwrap_err().to_string(),
            "it is a directory"
        );
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert_eq!(
            read(&fifo).unwrap_err().to_string(),
            "it is not a regular file (a FIFO, socket or device)"
        );
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(read_to_string(&file)
            .unwrap_err()
            .to_string()
            .starts_with("it is not UTF-8 text"));
    }
}
