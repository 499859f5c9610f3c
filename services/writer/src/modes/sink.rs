//! Where the write modes' encoded rows go: a table's default stream, or nowhere (benchmarks).

use super::Written;
use crate::args::AppendSink;
use crate::error::Result;
use crate::row_layout::RowLayout;
use pg2bq_bigquery::storage_write::StorageWriter;
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::bq_values::BqValue;

/// Encodes rows and appends them with the Storage Write API, or drops them (`PG2BQ_APPEND_SINK=null`).
#[derive(Clone)]
pub struct RowSink {
    storage: StorageWriter,
    sink: AppendSink,
}

impl RowSink {
    /// A sink appending through `storage`, or dropping the rows if `sink` says so.
    pub fn new(storage: StorageWriter, sink: AppendSink) -> Self {
        if sink == AppendSink::Null {
            tracing::warn!(
                "PG2BQ_APPEND_SINK=null: rows are encoded and dropped (benchmarks only)"
            );
        }
        RowSink { storage, sink }
    }

    /// Encodes `rows` with `layout` and appends them to `table`; returns once BigQuery
    /// acknowledged them.
    pub async fn append(
        &self,
        table: &BqTableName,
        layout: &RowLayout,
        rows: &[Vec<BqValue>],
    ) -> Result<Written> {
        let encoded: Vec<Vec<u8>> = rows.iter().map(|row| layout.encode(row)).collect();
        let written = Written {
            rows: encoded.len(),
            bytes: encoded.iter().map(Vec::len).sum(),
        };
        if self.sink == AppendSink::Bigquery {
            self.storage
                .append(table, layout.descriptor(), encoded)
                .await?;
        }
        Ok(written)
    }
}
