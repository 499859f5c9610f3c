//! What happens to replicated tables outside the stream of row changes, found by looking at the
//! catalogue at every publication check:
//!
//! - the publication's outcome: tables skipped (recorded with the fix, and warned about once),
//!   tables that joined it (copied, again if they had been copied before);
//! - tables that left their name (dropped, or renamed): their BigQuery tables are dropped by a
//!   control message of a new generation, so that nothing of them lingers (a renamed table is
//!   copied under its new name as a table that joined);
//! - schema changes of tables that have had no row change since (the stream only sees a new
//!   shape with the next change of the table);
//! - partition maintenance under `publish_via_partition_root`, which PostgreSQL does not
//!   publish: a partition truncated, detached, dropped or attached with its rows changes the
//!   partitioned table's storage (its partitions and their files), and the table is copied
//!   again, the sweep removing the rows that left.

use crate::error::{CaptureError, Result};
use crate::pipeline::batcher::ReadyBatch;
use crate::sinks::BatchSink;
use crate::source::shapes::{Shapes, shape_of_table, storage};
use pg2bq_core::column_rules::ColumnRules;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::protect::Protection;
use pg2bq_core::wire::{ChangeBatch, ColumnSpec, ControlAction, TableControl, TableId};
use pg2bq_source::catalog::Catalog;
use pg2bq_source::catalog::Unpublishable;
use pg2bq_source::publication::Reconciled;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::shapes::ShapeRecord;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio_postgres::Client;

/// The checks, and what they remember between rounds.
pub struct TableEvents {
    state: StateStore,
    shapes: Shapes,
    sink: Arc<dyn BatchSink>,
    protection: Arc<Protection>,
    publication: String,
    /// The columns and rows replicated of each table.
    rules: ColumnRules,
    /// Tables reported skipped, so that each is warned about once.
    warned: BTreeSet<TableId>,
    /// Whether the control messages of tables that left their name were published again since
    /// capture started (a capture stopped between recording and publishing one loses nothing).
    announced: bool,
}

impl TableEvents {
    /// Checks for the stream of `state`, publishing control messages to `sink` (with the
    /// columns `protection` protects described as such).
    pub fn new(
        state: StateStore,
        shapes: Shapes,
        sink: Arc<dyn BatchSink>,
        protection: Arc<Protection>,
        publication: &str,
        rules: ColumnRules,
    ) -> Self {
        TableEvents {
            state,
            shapes,
            sink,
            protection,
            publication: publication.to_owned(),
            rules,
            warned: BTreeSet::new(),
            announced: false,
        }
    }

    /// Acts on a publication check's outcome, then looks for tables that left their name and
    /// for partition maintenance.
    pub async fn round(&mut self, sql: &Client, reconciled: &Reconciled) -> Result<()> {
        self.skipped(sql, &reconciled.skipped).await?;
        for table in &reconciled.added {
            // A table that joins is copied, again if it had been (it left and came back, or
            // another table took its name).
            if self.state.reset_backfill(sql, table).await? {
                tracing::info!(table = %table, "the table joined the publication again: copying it again");
            }
        }
        for table in &reconciled.changed {
            // Columns newly replicated and rows newly matching its filter have no change in the
            // stream: the copy brings them (and its sweep removes rows that no longer match).
            self.state.reset_backfill(sql, table).await?;
            tracing::info!(table = %table, "the table's column selection or row filter changed: copying it again");
        }
        self.gone(sql).await?;
        self.reshaped(sql).await?;
        self.partitions(sql).await
    }

    /// Published tables whose shape in the catalogue differs from the one recorded: a schema
    /// change of a table that has had no row change since (the stream would only see it with
    /// the next one). It is handled as the stream would, from the current position.
    async fn reshaped(&self, sql: &Client) -> Result<()> {
        let latest = self.state.latest_shapes(sql).await?;
        for table in Catalog::with_rules(self.rules.clone())
            .publication_tables(sql, &self.publication)
            .await?
        {
            let shape = shape_of_table(&table);
            let Some(recorded) = latest
                .iter()
                .find(|r| r.table == table.id && r.relation_id == table.oid && !r.dropped)
            else {
                // Not recorded yet: its copy or its first change records it.
                continue;
            };
            if recorded.shape.same_as(&shape) {
                continue;
            }
            let lsn = current_lsn(sql).await?;
            let placed = self
                .shapes
                .observe(sql, table.oid, &table.id, shape, lsn)
                .await?;
            if let (Some(record), Some(control)) = (placed.record, placed.control) {
                self.publish(&record, control).await?;
            }
        }
        Ok(())
    }

    async fn skipped(&mut self, sql: &Client, skipped: &[Unpublishable]) -> Result<()> {
        self.state.record_skipped(sql, skipped).await?;
        for table in skipped {
            if self.warned.insert(table.table.clone()) {
                tracing::warn!(
                    table = %table.table,
                    reason = %table.reason,
                    fix = %table.fix,
                    "table skipped: it is not replicated"
                );
            }
        }
        self.warned
            .retain(|t| skipped.iter().any(|s| s.table == *t));
        Ok(())
    }

    /// Tables whose newest record names a relation that no longer has that name.
    async fn gone(&mut self, sql: &Client) -> Result<()> {
        let latest = self.state.latest_shapes(sql).await?;
        if !self.announced {
            for record in latest.iter().filter(|r| r.dropped) {
                self.announce(record, record.reason.clone().unwrap_or_default())
                    .await?;
            }
            self.announced = true;
        }
        for record in latest.iter().filter(|r| !r.dropped) {
            let now: Option<TableId> = sql
                .query_opt(
                    "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                    &[&record.relation_id],
                )
                .await
                .map_err(CaptureError::postgres("looking up a replicated table"))?
                .map(|r| pg2bq_source::catalog::table_id(&r));
            let reason = match now {
                Some(name) if name == record.table => continue,
                Some(name) => format!("{} was renamed to {name}", record.table),
                None => format!("{} was dropped", record.table),
            };
            let lsn = current_lsn(sql).await?;
            let placed = self.shapes.gone(sql, record, reason.clone(), lsn).await?;
            if let Some(control) = placed.control {
                let mut gone = record.clone();
                gone.generation = placed.generation;
                self.publish(&gone, control).await?;
            }
        }
        Ok(())
    }

    async fn announce(&self, record: &ShapeRecord, reason: String) -> Result<()> {
        let control = TableControl {
            action: ControlAction::Dropped,
            reason,
            issued_at_us: pg2bq_core::civil::now_us(),
        };
        self.publish(record, control).await
    }

    async fn publish(&self, record: &ShapeRecord, control: TableControl) -> Result<()> {
        let columns = record
            .shape
            .columns
            .iter()
            .map(|c| ColumnSpec {
                name: c.name.clone(),
                pg_type: c.pg_type.clone(),
                type_modifier: c.type_modifier,
                key: c.key,
            })
            .collect();
        let batch = ChangeBatch::control(record.table.clone(), columns, record.generation, control);
        let ready = ReadyBatch {
            batch,
            min_commit_lsn: Lsn(0),
        };
        let (_, published) = self.sink.send(ready.encode(&self.protection));
        published.await.result.map(|_| ())
    }

    /// Partitioned tables of the publication whose partitions or their files changed.
    async fn partitions(&self, sql: &Client) -> Result<()> {
        let rows = sql
            .query(
                "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_catalog.pg_publication_tables p \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname \
                 JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename \
                 WHERE p.pubname = $1 AND c.relkind = 'p'",
                &[&self.publication],
            )
            .await
            .map_err(CaptureError::postgres("listing partitioned tables"))?;
        for row in &rows {
            let oid: u32 = row.get(0);
            let table = TableId {
                schema: row.get(1),
                table: row.get(2),
            };
            let layout = storage(sql, oid).await?.unwrap_or_default();
            match self.state.partition_layout(sql, &table).await? {
                Some(recorded) if recorded == layout => {}
                Some(_) => {
                    let reason = format!(
                        "partitions of {table} were truncated, detached, dropped, attached or \
                         rewritten (PostgreSQL does not publish these under publish_via_partition_root)"
                    );
                    tracing::warn!(table = %table, reason = %reason, "copying the table again");
                    let lsn = current_lsn(sql).await?;
                    if let Some(placed) = self
                        .shapes
                        .copy_again(sql, oid, &table, &reason, lsn)
                        .await?
                        && let (Some(record), Some(control)) = (placed.record, placed.control)
                    {
                        self.publish(&record, control).await?;
                    }
                    self.state
                        .record_partition_layout(sql, &table, &layout, true)
                        .await?;
                }
                None => {
                    self.state
                        .record_partition_layout(sql, &table, &layout, false)
                        .await?
                }
            }
        }
        Ok(())
    }
}

async fn current_lsn(sql: &Client) -> Result<Lsn> {
    let text: String = sql
        .query_one("SELECT pg_catalog.pg_current_wal_lsn()::text", &[])
        .await
        .map_err(CaptureError::postgres("reading the WAL position"))?
        .get(0);
    Lsn::parse(&text).map_err(|e| CaptureError::Decode(format!("the WAL position: {e}")))
}
