//! Generations of a source table's BigQuery tables: the gate every batch passes before a write
//! mode sees it.
//!
//! Capture starts a new generation of a table when BigQuery cannot follow the source in place
//! (a column dropped, renamed or retyped, a new key, the table dropped or replaced), with a
//! control message ([`pg2bq_core::wire::TableControl`]), and copies the table again. Here:
//!
//! - a control message of a newer generation drops the table's BigQuery tables made before it
//!   was issued, and records the generation in the description of the staging table (made
//!   again, empty: it outlives the generations, and marks a dropped table); a control message
//!   of a generation already recorded does nothing (Pub/Sub may deliver it twice);
//! - a batch of an older generation is discarded: its rows come again with the copy;
//! - a batch of a newer generation waits (a transient error: Pub/Sub delivers it again) until
//!   its control message arrived, so that the tables are dropped once, before anything of the
//!   new generation is written, whatever order Pub/Sub delivers in.
//!
//! Each instance remembers the generations it read for a few seconds; a table that never had a
//! new generation costs one table lookup per instance and period.

use crate::error::{Result, WriterError};
use crate::modes::merge::Merger;
use crate::table_meta::{GenerationMark, description, generation_mark};
use crate::tables::TableRegistry;
use pg2bq_bigquery::BigQueryError;
use pg2bq_bigquery::rest::{FieldSpec, Partitioning, RestClient, TableOptions, TimeUnit};
use pg2bq_core::bq_naming::{APPENDED_AT_COLUMN, BqTableName, SEQ_COLUMN};
use pg2bq_core::wire::{ChangeBatch, ControlAction, TableControl};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long an instance trusts a generation it read.
const REMEMBER: Duration = Duration::from_secs(10);

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Write it.
    Write,
    /// Discard it: its table is at a newer generation (or gone).
    Stale {
        /// The table's generation.
        current: u64,
    },
}

/// The gate.
pub struct Generations {
    rest: RestClient,
    tables: Arc<TableRegistry>,
    merger: Arc<Merger>,
    read: Mutex<HashMap<BqTableName, (GenerationMark, Instant)>>,
}

impl Generations {
    /// A gate reading and writing marks through `rest`; `tables` and `merger` forget what they
    /// knew of tables it drops.
    pub fn new(rest: RestClient, tables: Arc<TableRegistry>, merger: Arc<Merger>) -> Self {
        Generations {
            rest,
            tables,
            merger,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the batch of `target`'s source table is written or discarded; a batch of a
    /// generation whose control message has not arrived yet is a transient error.
    pub async fn admit(&self, batch: &ChangeBatch, target: &BqTableName) -> Result<Admission> {
        let mark = self.mark(target, false).await?;
        let mark = if batch.generation > mark.generation {
            self.mark(target, true).await?
        } else {
            mark
        };
        if batch.generation < mark.generation
            || (batch.generation == mark.generation && mark.dropped)
        {
            return Ok(Admission::Stale {
                current: mark.generation,
            });
        }
        if batch.generation > mark.generation {
            return Err(WriterError::BigQuery(BigQueryError::Transient(format!(
                "{} is at generation {} in BigQuery and this batch of generation {} waits for the \
                 control message that starts it",
                batch.source, mark.generation, batch.generation
            ))));
        }
        Ok(Admission::Write)
    }

    /// Applies a control message for `target`'s source table (idempotent).
    pub async fn apply(
        &self,
        batch: &ChangeBatch,
        control: &TableControl,
        target: &BqTableName,
    ) -> Result<bool> {
        let recorded = self.mark(target, true).await?;
        if batch.generation <= recorded.generation {
            return Ok(false);
        }
        let staging = target.change_table();
        let issued_ms = control.issued_at_us / 1000;
        if let Some(info) = self.rest.table(target).await?
            && info.created_ms.is_none_or(|created| created < issued_ms)
        {
            self.rest.delete_table(target).await?;
        }
        // Read once more right before: an instance that took the same control message first
        // may have made the new staging table already (and batches may be written to it).
        if self.mark(target, true).await?.generation >= batch.generation {
            return Ok(false);
        }
        self.rest.delete_table(&staging).await?;
        let mark = GenerationMark {
            generation: batch.generation,
            dropped: control.action == ControlAction::Dropped,
        };
        self.tables.forget_target(target).await;
        self.merger.forget(target).await;
        // The live view reads the dropped tables: it is made again by the first MERGE.
        self.rest
            .query(&format!(
                "DROP VIEW IF EXISTS {}",
                target.live_view().quoted(self.rest.project())
            ))
            .await?;
        let marker = [
            FieldSpec {
                name: SEQ_COLUMN.to_owned(),
                bq_type: "STRING".to_owned(),
                mode: "NULLABLE".to_owned(),
                description: None,
            },
            FieldSpec {
                name: APPENDED_AT_COLUMN.to_owned(),
                bq_type: "TIMESTAMP".to_owned(),
                mode: "NULLABLE".to_owned(),
                description: None,
            },
        ];
        // Partitioned as every staging table (see `TableShape::staging_options`); clustering
        // waits for the key columns.
        let options = TableOptions {
            partitioning: Some(Partitioning::Time {
                field: Some(APPENDED_AT_COLUMN.to_owned()),
                unit: TimeUnit::Hour,
            }),
            ..TableOptions::default()
        };
        self.rest.ensure_dataset(&staging.dataset).await?;
        if !self.rest.create_table(&staging, &marker, &options).await? {
            // Another instance made it first (a control message delivered twice): it holds
            // this generation's mark, or gets it below.
            tracing::debug!(table = %staging.table, "staging table made by another instance");
        }
        self.rest
            .set_description(&staging, &description(None, Some(mark)))
            .await?;
        self.read
            .lock()
            .await
            .insert(target.clone(), (mark, Instant::now()));
        tracing::warn!(
            source = %batch.source,
            dataset = %target.dataset,
            table = %target.table,
            generation = batch.generation,
            action = ?control.action,
            reason = %control.reason,
            "dropped the table's BigQuery tables: a new generation starts (the table is copied again)"
        );
        Ok(true)
    }

    /// The recorded generation of `target`'s source table: remembered, or read afresh when
    /// `fresh` or when older than [`REMEMBER`].
    async fn mark(&self, target: &BqTableName, fresh: bool) -> Result<GenerationMark> {
        if !fresh
            && let Some((mark, at)) = self.read.lock().await.get(target)
            && at.elapsed() < REMEMBER
        {
            return Ok(*mark);
        }
        let mark = self
            .rest
            .table(&target.change_table())
            .await?
            .and_then(|info| info.description.as_deref().and_then(generation_mark))
            .unwrap_or_default();
        self.read
            .lock()
            .await
            .insert(target.clone(), (mark, Instant::now()));
        Ok(mark)
    }
}
