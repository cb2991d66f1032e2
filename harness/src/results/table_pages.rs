//! A check of a Parquet file's page headers before polars decodes it.
//!
//! polars trusts a data page's value count: a damaged header whose count is
//! negative (an `i32` read as `usize`) or far beyond its column chunk makes
//! the decoder reserve up to 2^61 bytes for a validity bitmap, and the
//! failed allocation aborts the process, which no `catch_unwind` can turn
//! into an error. Reading the headers alone (no decompression, no decoding)
//! and holding every count to its column chunk's turns that into a message.

use polars_buffer::Buffer;
use polars_parquet::parquet::page::{CompressedPage, DataPageHeader};
use polars_parquet::parquet::read::{get_page_iterator, read_metadata};
use std::io::Cursor;

/// The largest page bench reads, compressed or not: its tables hold one row
/// per job, so a larger page is damage, not data.
const MAX_PAGE_BYTES: usize = 256 << 20;

/// Checks every page header of every column chunk of `bytes`.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let buffer = Buffer::from(bytes.to_vec());
    let metadata = read_metadata(&mut Cursor::new(bytes)).map_err(|e| e.to_string())?;
    for (group_index, group) in metadata.row_groups.iter().enumerate() {
        for column in group.parquet_columns() {
            let name = &column.descriptor().path_in_schema;
            let at = || format!("row group {group_index}, column {}", name.join("."));
            let chunk_values = usize::try_from(column.num_values())
                .map_err(|_| format!("{}: negative value count", at()))?;
            if chunk_values < group.num_rows() {
                return Err(format!(
                    "{}: {chunk_values} values for {} rows",
                    at(),
                    group.num_rows()
                ));
            }
            check_pages(column, buffer.clone(), chunk_values)
                .map_err(|e| format!("{}: {e}", at()))?;
        }
    }
    Ok(())
}

/// Sums the value counts of one column chunk's data pages and holds each
/// page to the chunk's count and to [`MAX_PAGE_BYTES`].
fn check_pages(
    column: &polars_parquet::parquet::metadata::ColumnChunkMetadata,
    buffer: Buffer<u8>,
    chunk_values: usize,
) -> Result<(), String> {
    let pages = get_page_iterator(column, Cursor::new(buffer), Vec::new(), MAX_PAGE_BYTES)
        .map_err(|e| e.to_string())?;
    let mut seen = 0usize;
    for page in pages {
        let page = page.map_err(|e| e.to_string())?;
        let CompressedPage::Data(page) = page else {
            continue;
        };
        if page.uncompressed_size() > MAX_PAGE_BYTES {
            return Err(format!(
                "a page of {} bytes uncompressed",
                page.uncompressed_size()
            ));
        }
        let (values, nulls) = match page.header() {
            DataPageHeader::V1(header) => (i64::from(header.num_values), 0),
            DataPageHeader::V2(header) => {
                (i64::from(header.num_values), i64::from(header.num_nulls))
            }
        };
        let values = usize::try_from(values).map_err(|_| format!("a page of {values} values"))?;
        if !(0..=values as i64).contains(&nulls) {
            return Err(format!("a page of {values} values with {nulls} nulls"));
        }
        seen = seen.saturating_add(values);
        if seen > chunk_values {
            return Err(format!(
                "its pages hold more than the {chunk_values} values it declares"
            ));
        }
    }
    if seen != chunk_values {
        return Err(format!(
            "its pages hold {seen} values, it declares {chunk_values}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::store::{Row, Table};

    fn regression(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus/results")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn a_table_bench_writes_passes() {
        let rows = vec![
            Row {
                job: Some("m/v/t".into()),
                status: Some("ok".into()),
                ..Row::default()
            };
            3
        ];
        let mut df = Row::to_frame(&rows).unwrap();
        let mut bytes = Vec::new();
        polars::prelude::ParquetWriter::new(&mut bytes)
            .finish(&mut df)
            .unwrap();
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn a_page_whose_value_count_would_abort_polars_is_refused() {
        // Both found by the `results` fuzz target: polars aborted on them.
        for name in [
            "regression-validity-bitmap-2pow61",
            "regression-page-validity-oom",
        ] {
            let error = check(&regression(name)).unwrap_err();
            assert!(error.starts_with("row group 0, column "), "{name}: {error}");
            println!("{name}: {error}");
        }
    }
}
