//! Copying one range of a table from an exported snapshot and publishing it as `read` changes.

use super::copy_text::{CopyBatches, JsonBatch};
use crate::error::{CaptureError, Result};
use crate::pipeline::batcher::BatchLimits;
use crate::sinks::{BatchSink, EncodedBatch, PublishFuture, Published};
use crate::source::relations::RelationInfo;
use futures::stream::{FuturesUnordered, StreamExt};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::wire::{ChangeBatch, WIRE_VERSION};
use pg2bq_source::state::backfill::Range;
use tokio_postgres::{Client, IsolationLevel};

/// Most batches of one range waiting for Pub/Sub at once.
const MAX_IN_FLIGHT: usize = 16;

/// What a range copy needs besides its connection.
pub struct RangeCopy<'a> {
    /// The table's columns.
    pub info: &'a RelationInfo,
    /// The range.
    pub range: &'a Range,
    /// `SET TRANSACTION SNAPSHOT` name.
    pub snapshot: &'a str,
    /// The snapshot's consistent point (the rows' sequence number).
    pub consistent_point: Lsn,
    /// Where batches go.
    pub sink: &'a dyn BatchSink,
    /// Batch size limits.
    pub limits: BatchLimits,
}

impl RangeCopy<'_> {
    /// Copies the range and returns once Pub/Sub acknowledged every row; returns the row count.
    pub async fn run(&self, sql: &mut Client) -> Result<i64> {
        let tx = sql
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(CaptureError::postgres("starting a backfill transaction"))?;
        tx.batch_execute(&format!(
            "SET TRANSACTION SNAPSHOT '{}'",
            self.snapshot.replace('\'', "")
        ))
        .await
        .map_err(CaptureError::postgres(
            "importing the backfill snapshot (it ends with its exporting session)",
        ))?;
        let stream =
            tx.copy_out(self.copy_sql().as_str())
                .await
                .map_err(CaptureError::postgres(format!(
                    "copying {}",
                    self.info.table
                )))?;
        futures::pin_mut!(stream);
        let commit_time_us = pg2bq_core::civil::now_us();
        let template = ChangeBatch {
            version: WIRE_VERSION,
            source: self.info.table.clone(),
            columns: self.info.columns.clone(),
            changes: Vec::new(),
            generation: self.info.generation,
            control: None,
        };
        let range = u64::try_from(self.range.first_block).unwrap_or(0);
        let mut batches = CopyBatches::new(
            &template,
            self.consistent_point,
            range,
            commit_time_us,
            self.limits,
        );
        let mut in_flight: FuturesUnordered<PublishFuture> = FuturesUnordered::new();
        let mut rows = 0i64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(CaptureError::postgres(format!(
                "reading {}",
                self.info.table
            )))?;
            let done = batches
                .push(&chunk)
                .map_err(|e| CaptureError::Decode(format!("COPY of {}: {e}", self.info.table)))?;
            for batch in done {
                rows += batch.changes as i64;
                in_flight.push(self.publish(batch, commit_time_us));
                while in_flight.len() >= MAX_IN_FLIGHT {
                    acknowledged(in_flight.next().await)?;
                }
            }
        }
        if batches.has_partial_row() {
            return Err(CaptureError::Decode(format!(
                "COPY of {} ended in the middle of a row",
                self.info.table
            )));
        }
        if let Some(batch) = batches.finish() {
            rows += batch.changes as i64;
            in_flight.push(self.publish(batch, commit_time_us));
        }
        while let Some(published) = in_flight.next().await {
            acknowledged(Some(published))?;
        }
        tx.commit()
            .await
            .map_err(CaptureError::postgres("ending a backfill transaction"))?;
        Ok(rows)
    }

    fn copy_sql(&self) -> String {
        let columns: Vec<String> = self
            .info
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let table = format!(
            "{}.{}",
            quote_ident(&self.info.table.schema),
            quote_ident(&self.info.table.table)
        );
        let filter = if self.range.whole {
            String::new()
        } else {
            let mut filter = format!(" WHERE ctid >= '({},0)'::tid", self.range.first_block);
            if let Some(end) = self.range.end_block {
                filter.push_str(&format!(" AND ctid < '({end},0)'::tid"));
            }
            filter
        };
        format!(
            "COPY (SELECT {} FROM {table}{filter}) TO STDOUT",
            columns.join(", ")
        )
    }

    fn publish(&self, batch: JsonBatch, commit_time_us: i64) -> PublishFuture {
        let encoded = EncodedBatch {
            source: self.info.table.clone(),
            json: batch.json,
            changes: batch.changes,
            first_seq: batch.first_seq.to_string(),
            last_seq: batch.last_seq.to_string(),
            min_commit_lsn: self.consistent_point,
            oldest_commit_us: commit_time_us,
            newest_commit_us: commit_time_us,
        };
        self.sink.send(encoded).1
    }
}

fn acknowledged(published: Option<Published>) -> Result<()> {
    match published {
        Some(published) => published.result.map(|_| ()),
        None => Ok(()),
    }
}
