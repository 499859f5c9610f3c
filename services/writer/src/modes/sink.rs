//! Where the write modes' encoded rows go: a table's default stream, or nowhere (benchmarks).
//!
//! A row BigQuery refuses never takes the others with it: [`RowSink::append`] returns the
//! refused rows with BigQuery's reason and appends the rest. BigQuery names a refused row
//! (`row_errors`); a permanent refusal of a whole request that names no row is narrowed down by
//! appending halves until the refused rows are found. A transient failure is an error: the
//! caller answers so that the batch is delivered again.

use super::Written;
use crate::args::AppendSink;
use crate::error::Result;
use crate::row_layout::RowLayout;
use pg2bq_bigquery::BigQueryError;
use pg2bq_bigquery::storage_write::StorageWriter;
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::bq_values::BqValue;

/// Encodes rows and appends them with the Storage Write API, or drops them (`PG2BQ_APPEND_SINK=null`).
#[derive(Clone)]
pub struct RowSink {
    storage: StorageWriter,
    sink: AppendSink,
}

/// What an append did.
#[derive(Debug, Default)]
pub struct Appended {
    /// Rows written and their encoded bytes.
    pub written: Written,
    /// Rows BigQuery refused for good (by position in the rows given), with its reason.
    pub refused: Vec<(usize, String)>,
}

impl RowSink {
    /// A sink appending with `storage`, or dropping rows when `sink` is [`AppendSink::Null`].
    pub fn new(storage: StorageWriter, sink: AppendSink) -> Self {
        if sink == AppendSink::Null {
            tracing::warn!(
                "PG2BQ_APPEND_SINK=null: rows are encoded and dropped (benchmarks only)"
            );
        }
        RowSink { storage, sink }
    }

    /// Encodes `rows` with `layout` and appends them to `table`; returns once BigQuery
    /// acknowledged every row it accepts.
    pub async fn append(
        &self,
        table: &BqTableName,
        layout: &RowLayout,
        rows: &[Vec<BqValue>],
    ) -> Result<Appended> {
        let encoded: Vec<Vec<u8>> = rows.iter().map(|row| layout.encode(row)).collect();
        if self.sink == AppendSink::Null {
            return Ok(Appended {
                written: Written {
                    rows: encoded.len(),
                    bytes: encoded.iter().map(Vec::len).sum(),
                    ..Written::default()
                },
                refused: Vec::new(),
            });
        }
        let mut appended = Appended::default();
        // Spans of rows still to append, as (start, encoded rows).
        let mut todo: Vec<(usize, Vec<Vec<u8>>)> = vec![(0, encoded)];
        while let Some((start, span)) = todo.pop() {
            if span.is_empty() {
                continue;
            }
            let bytes: usize = span.iter().map(Vec::len).sum();
            let count = span.len();
            match self
                .storage
                .append(table, layout.descriptor(), span.clone())
                .await
            {
                Ok(()) => {
                    appended.written.rows += count;
                    appended.written.bytes += bytes;
                }
                Err(BigQueryError::RowRefused { index, message, .. }) => {
                    let at = usize::try_from(index).unwrap_or(usize::MAX).min(count - 1);
                    appended.refused.push((start + at, message));
                    let mut rest = span;
                    let after = rest.split_off(at + 1);
                    rest.pop();
                    todo.push((start, rest));
                    todo.push((start + at + 1, after));
                }
                Err(e) if !e.is_content_refusal() => return Err(e.into()),
                Err(e) if count == 1 => appended.refused.push((start, e.to_string())),
                Err(_) => {
                    let mut first = span;
                    let second = first.split_off(count / 2);
                    todo.push((start, first));
                    todo.push((start + count / 2, second));
                }
            }
        }
        appended.refused.sort_by_key(|(row, _)| *row);
        Ok(appended)
    }
}
