//! Where the write modes' encoded rows go: a table's default stream, or nowhere (benchmarks).
//!
//! A row too big for an AppendRows request goes by a load job instead
//! (`pg2bq_bigquery::load`), up to BigQuery's row size limit; a bigger one is refused with the
//! reason, as is a big row of a native CDC table (CDC takes rows through Storage Write only).
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
use pg2bq_bigquery::load::{MAX_LOAD_ROW_BYTES, json_line};
use pg2bq_bigquery::rest::RestClient;
use pg2bq_bigquery::storage_write::{MAX_APPEND_ROW_BYTES, StorageWriter};
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::bq_values::BqValue;

/// Encodes rows and appends them with the Storage Write API, or drops them (`PG2BQ_APPEND_SINK=null`).
#[derive(Clone)]
pub struct RowSink {
    storage: StorageWriter,
    rest: RestClient,
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
    pub fn new(storage: StorageWriter, rest: RestClient, sink: AppendSink) -> Self {
        if sink == AppendSink::Null {
            tracing::warn!(
                "PG2BQ_APPEND_SINK=null: rows are encoded and dropped (benchmarks only)"
            );
        }
        RowSink {
            storage,
            rest,
            sink,
        }
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
        // Spans of rows still to append, as (start, encoded rows); rows too big for a request
        // split the spans and are loaded instead.
        let mut todo: Vec<(usize, Vec<Vec<u8>>)> = vec![(0, Vec::new())];
        let mut big = Vec::new();
        for (i, row) in encoded.into_iter().enumerate() {
            if row.len() > MAX_APPEND_ROW_BYTES {
                big.push((i, row.len()));
                todo.push((i + 1, Vec::new()));
            } else {
                todo.last_mut().expect("never empty").1.push(row);
            }
        }
        for (i, bytes) in big {
            match self.load(table, layout, &rows[i], bytes).await? {
                Ok(()) => {
                    appended.written.rows += 1;
                    appended.written.bytes += bytes;
                }
                Err(reason) => appended.refused.push((i, reason)),
            }
        }
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

    /// Writes one row too big for an AppendRows request (`bytes` encoded) with a load job.
    /// Returns the reason when it cannot be written to BigQuery at all.
    async fn load(
        &self,
        table: &BqTableName,
        layout: &RowLayout,
        row: &[BqValue],
        bytes: usize,
    ) -> Result<std::result::Result<(), String>> {
        if layout.has_pseudo_columns() {
            return Ok(Err(format!(
                "the row is {bytes} bytes, more than a Storage Write request holds \
                 ({MAX_APPEND_ROW_BYTES} bytes), and BigQuery CDC (PG2BQ_MERGE_STRATEGY=native) \
                 applies changes only through Storage Write: write this table with the staged \
                 strategy to replicate rows this big"
            )));
        }
        let line = json_line(layout.columns(), row).len();
        if line > MAX_LOAD_ROW_BYTES {
            return Ok(Err(format!(
                "the row is {line} bytes as BigQuery loads it (BYTES values in base64), more \
                 than BigQuery's maximum row size ({MAX_LOAD_ROW_BYTES} bytes): BigQuery cannot \
                 hold it; a later change of the row that makes it smaller replicates"
            )));
        }
        let started = std::time::Instant::now();
        match self
            .rest
            .load_rows(table, layout.columns(), std::slice::from_ref(&row.to_vec()))
            .await
        {
            Ok(()) => {
                tracing::info!(
                    dataset = %table.dataset,
                    table = %table.table,
                    bytes,
                    load_ms = started.elapsed().as_millis() as u64,
                    "row too big for a Storage Write request: written by a load job"
                );
                Ok(Ok(()))
            }
            Err(e) if e.is_content_refusal() => Ok(Err(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }
}
