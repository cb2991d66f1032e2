//! `.npy` arrays and `.npz` archives, checked before npyz reads them: the
//! header's shape is parsed here first (npyz multiplies it out unchecked and
//! panics on a shape such as `(18446744073709551615, 49)`), and the data must
//! be exactly as long as the header says, so truncated files and trailing
//! bytes are errors rather than short or silently padded arrays.

use std::io::Read;
use std::path::Path;

/// An array whose header and length were checked: npyz reads it from memory.
pub type Checked<'a> = npyz::NpyFile<&'a [u8]>;

/// The largest `.npz` member bench unpacks: as much as [`crate::input::files::MAX_FILE_BYTES`].
const MAX_MEMBER_BYTES: u64 = crate::input::files::MAX_FILE_BYTES;

/// Checks the `.npy` bytes and opens them for npyz.
pub fn parse(bytes: &[u8]) -> Result<Checked<'_>, String> {
    let (header_text, data_offset) = header(bytes)?;
    let elements = shape_elements(&header_text)?;
    let npy = crate::guard::catching("npyz", || npyz::NpyFile::new(bytes))
        .and_then(|r| r.map_err(|e| format!("not a .npy file ({e})")))?;
    let npyz::DType::Plain(t) = npy.dtype() else {
        return Err("not a plain numeric array (records or objects)".into());
    };
    let item = t.num_bytes().ok_or("its element type has no fixed size")? as u64;
    let expected = elements.checked_mul(item).ok_or_else(|| {
        format!(
            "its shape {:?} holds more bytes than any file can",
            npy.shape()
        )
    })?;
    let data = (bytes.len() - data_offset) as u64;
    match data.cmp(&expected) {
        std::cmp::Ordering::Less => Err(format!("it is truncated: shape {:?} of {t} needs {expected} bytes of data, the file has {data}", npy.shape())),
        std::cmp::Ordering::Greater => {
            Err(format!("it has {} bytes after the data that shape {:?} of {t} describes ({expected} bytes)", data - expected, npy.shape()))
        }
        std::cmp::Ordering::Equal => Ok(npy),
    }
}

/// The header's text and where the data starts (NPY format versions 1 to 3).
fn header(bytes: &[u8]) -> Result<(String, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic string)".into());
    }
    let (len, start): (usize, usize) = match (bytes[6], bytes[7]) {
        (1, 0) => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        (2, 0) | (3, 0) if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        (major, minor) => {
            return Err(format!(
                "not a .npy file bench reads (format version {major}.{minor})"
            ))
        }
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("its header is longer than the file")?;
    // Versions 1 and 2 are Latin-1, version 3 UTF-8; a shape is ASCII either way.
    let text = bytes[start..end].iter().map(|&b| b as char).collect();
    Ok((text, end))
}

/// The number of elements the header's `shape` gives, multiplied out checked.
fn shape_elements(header: &str) -> Result<u64, String> {
    use py_literal::Value;
    // py_literal's parser takes exponential time over deep nesting (fuzzing
    // found 118 `{` hang it); a real header nests a dict, a dtype list and tuples.
    let mut depth = 0usize;
    for c in header.chars() {
        match c {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 8 {
            return Err("its header nests deeper than a .npy header does".into());
        }
    }
    let parsed: Value = crate::guard::catching("py_literal", || {
        header.trim_end_matches(['\n', ' ', '\0']).parse::<Value>()
    })?
    .map_err(|e| format!("its header is not a Python literal ({e})"))?;
    let Value::Dict(entries) = parsed else {
        return Err("its header is not a dict".into());
    };
    let shape = entries
        .iter()
        .find(|(k, _)| k.as_string().is_some_and(|k| k == "shape"))
        .map(|(_, v)| v)
        .ok_or("its header has no 'shape'")?;
    let Value::Tuple(dims) = shape else {
        return Err("its header's 'shape' is not a tuple".into());
    };
    dims.iter().try_fold(1u64, |n, d| {
        let dim = d
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| format!("its shape has a dimension {d} that is not a size"))?;
        n.checked_mul(dim)
            .ok_or_else(|| format!("its shape {shape} has more elements than any file can hold"))
    })
}

/// The bytes of member `name.npy` of the `.npz` archive `bytes`, if it has one.
pub fn npz_member(bytes: &[u8], name: &str) -> Result<Option<Vec<u8>>, String> {
    crate::guard::catching("zip", || {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("not a .npz (zip) archive ({e})"))?;
        let mut member = match archive.by_name(&format!("{name}.npy")) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(format!("failed to read `{name}.npy` in the archive ({e})")),
        };
        let mut out = Vec::new();
        (&mut member)
            .take(MAX_MEMBER_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("failed to unpack `{name}.npy` ({e})"))?;
        if out.len() as u64 > MAX_MEMBER_BYTES {
            return Err(format!(
                "`{name}.npy` unpacks to more than {MAX_MEMBER_BYTES} bytes"
            ));
        }
        Ok(Some(out))
    })?
}

/// The bytes of the `.npy` or `.npz` file at `path`, for [`parse`] and [`npz_member`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    crate::input::files::read(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut text = header.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((text.len() as u16).to_le_bytes());
        bytes.extend(text.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn shapes_and_lengths_are_checked_before_npyz_reads() {
        let good = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &[0; 24],
        );
        assert_eq!(
            parse(&good).unwrap().into_vec::<f32>().unwrap(),
            vec![0.0; 6]
        );
        let huge = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 49, 10, 1), }", &[0; 24]);
        assert_eq!(
            parse(&huge).err().unwrap(),
            "its shape (18446744073709551615, 49, 10, 1) has more elements than any file can hold"
        );
        let big = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }",
            &[],
        );
        assert_eq!(
            parse(&big).err().unwrap(),
            "its shape [4611686018427387904] holds more bytes than any file can"
        );
        let short = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &[0; 20],
        );
        assert_eq!(
            parse(&short).err().unwrap(),
            "it is truncated: shape [2, 3] of <f4 needs 24 bytes of data, the file has 20"
        );
        let long = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &[0; 27],
        );
        assert_eq!(
            parse(&long).err().unwrap(),
            "it has 3 bytes after the data that shape [2, 3] of <f4 describes (24 bytes)"
        );
        let negative = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }",
            &[],
        );
        assert_eq!(
            parse(&negative).err().unwrap(),
            "its shape has a dimension -1 that is not a size"
        );
        assert_eq!(
            parse(b"\x93NUMPY\x01\x00\xff\xff{").err().unwrap(),
            "its header is longer than the file"
        );
        assert_eq!(
            parse(b"PK\x03\x04").err().unwrap(),
            "not a .npy file (no \\x93NUMPY magic string)"
        );
    }
}
