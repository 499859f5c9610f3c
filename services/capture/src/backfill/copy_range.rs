//! Copying one range of a table from an exported snapshot and publishing it as `read` changes.
//!
//! The range's transaction imports the snapshot, locks the table (ACCESS SHARE, as the COPY
//! would, but before the checks: nothing can rewrite the table between them and the COPY) and
//! checks two things first:
//! - the table's file is still the one its ranges were planned from, and the one the snapshot
//!   saw: a table rewritten since (VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, pg_repack)
//!   has its rows in other blocks, and a rewrite by ALTER TABLE or pg_repack writes them anew,
//!   invisible to an older snapshot. The range is not copied ([`RangeOutcome::Rewritten`]);
//! - row-level security would not filter what the user reads: the copy refuses the table with
//!   the fix rather than copy a subset (sessions run with `row_security = off`, so PostgreSQL
//!   would refuse the COPY too).

use super::copy_text::{CopyBatches, JsonBatch};
use crate::error::{CaptureError, Result};
use crate::pipeline::batcher::BatchLimits;
use crate::sinks::{BatchSink, EncodedBatch, PublishFuture, Published};
use crate::source::relations::RelationInfo;
use futures::stream::{FuturesUnordered, StreamExt};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::protect::Protection;
use pg2bq_core::wire::{ChangeBatch, WIRE_VERSION};
use pg2bq_source::state::backfill::Range;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, IsolationLevel, Transaction};

/// Most batches of one range waiting for Pub/Sub at once.
const MAX_IN_FLIGHT: usize = 16;

/// What a range copy needs besides its connection.
pub struct RangeCopy<'a> {
    /// The table's columns.
    pub info: &'a RelationInfo,
    /// The range.
    pub range: &'a Range,
    /// The relfilenode the table's ranges were planned from (`None`: not known, or a
    /// partitioned table).
    pub relfilenode: Option<i64>,
    /// `SET TRANSACTION SNAPSHOT` name.
    pub snapshot: &'a str,
    /// The snapshot's consistent point (the rows' sequence number).
    pub consistent_point: Lsn,
    /// Where batches go.
    pub sink: &'a dyn BatchSink,
    /// The columns hashed or masked before they leave capture.
    pub protection: &'a Protection,
    /// Batch size limits.
    pub limits: BatchLimits,
}

/// What became of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Copied, and every row acknowledged: this many rows.
    Copied(i64),
    /// Not copied: the table was rewritten since its ranges were planned or since the snapshot
    /// was taken; the table must be planned again and copied from a new snapshot.
    Rewritten,
}

impl RangeCopy<'_> {
    /// Copies the range and returns once Pub/Sub acknowledged every row, with the row count;
    /// or finds that the table was rewritten and copies nothing.
    pub async fn run(&self, sql: &mut Client) -> Result<RangeOutcome> {
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
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS SHARE MODE",
            self.quoted_table()
        ))
        .await
        .map_err(|e| self.refusal(e, "locking"))?;
        if self.rewritten(&tx).await? {
            return Ok(RangeOutcome::Rewritten);
        }
        let stream = tx
            .copy_out(self.copy_sql().as_str())
            .await
            .map_err(|e| self.refusal(e, "copying"))?;
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
            self.protection.table(&template.source, &template.columns),
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
        Ok(RangeOutcome::Copied(rows))
    }

    /// Whether the table's file is no longer the planned one or the snapshot's (for a
    /// partitioned table: whether a partition was rewritten after the snapshot). Refuses a
    /// table whose rows row-level security would filter.
    async fn rewritten(&self, tx: &Transaction<'_>) -> Result<bool> {
        let table = self.quoted_table();
        // `c.relfilenode` is read through the snapshot, `pg_relation_filenode` from the
        // catalogue as it is now (after the lock): the file the COPY reads.
        let sql = if self.range.whole {
            "SELECT (SELECT count(*) FROM pg_catalog.pg_partition_tree($1::text::regclass) t \
                     JOIN pg_catalog.pg_class c ON c.oid = t.relid \
                     WHERE t.isleaf AND c.relkind = 'r' \
                       AND pg_catalog.pg_relation_filenode(c.oid) IS DISTINCT FROM c.relfilenode) > 0, \
                    NULL::bigint, pg_catalog.row_security_active($1::text::regclass), current_user::text"
        } else {
            "SELECT pg_catalog.pg_relation_filenode(c.oid) IS DISTINCT FROM c.relfilenode, \
                    pg_catalog.pg_relation_filenode(c.oid)::bigint, \
                    pg_catalog.row_security_active(c.oid), current_user::text \
             FROM pg_catalog.pg_class c WHERE c.oid = $1::text::regclass"
        };
        let row = tx
            .query_opt(sql, &[&table])
            .await
            .map_err(CaptureError::postgres(format!(
                "checking the file of {}",
                self.info.table
            )))?;
        // No row: the table the snapshot saw under this name is not this one (it was dropped
        // and created again).
        let Some(row) = row else {
            return Ok(true);
        };
        let (changed_since_snapshot, file, hidden, user): (bool, Option<i64>, bool, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if hidden {
            return Err(CaptureError::Config(format!(
                "backfill of {}: row-level security would hide rows of it from {user}, and a \
                 backfill never copies a subset of a table; it is not copied until the user may \
                 read every row. Fix: ALTER ROLE \"{}\" BYPASSRLS; (as a superuser), or run capture \
                 as the table's owner (when it does not FORCE ROW LEVEL SECURITY); the next round \
                 copies it",
                self.info.table,
                user.replace('"', "\"\"")
            )));
        }
        let changed_since_plan =
            matches!((self.relfilenode, file), (Some(planned), Some(now)) if planned != now);
        Ok(changed_since_snapshot || changed_since_plan)
    }

    /// A refused lock or COPY as an error: a missing privilege is the user's to fix.
    fn refusal(&self, error: tokio_postgres::Error, doing: &str) -> CaptureError {
        if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            let reason = error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned());
            return CaptureError::Config(format!(
                "backfill of {}: {reason}. Fix: GRANT SELECT ON {} TO <capture's user>; and, if \
                 the table has row-level security, ALTER ROLE <capture's user> BYPASSRLS; the next \
                 round copies it",
                self.info.table,
                self.quoted_table()
            ));
        }
        CaptureError::postgres(format!("{doing} {}", self.info.table))(error)
    }

    fn quoted_table(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.info.table.schema),
            quote_ident(&self.info.table.table)
        )
    }

    fn copy_sql(&self) -> String {
        let columns: Vec<String> = self
            .info
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let table = self.quoted_table();
        let mut conditions = Vec::new();
        if !self.range.whole {
            conditions.push(format!("ctid >= '({},0)'::tid", self.range.first_block));
            if let Some(end) = self.range.end_block {
                conditions.push(format!("ctid < '({end},0)'::tid"));
            }
        }
        // The rows the publication's row filter lets through.
        if let Some(row_filter) = &self.info.row_filter {
            conditions.push(format!("({row_filter})"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
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
