//! The staged merge strategy: rows go to a change table, and a MERGE folds the newest change per
//! key of the change table into the mirror table (see `merge/mirror_sql.rs`).
//!
//! The change table keeps every change, so the newest change per key is always known, whatever
//! order the changes arrived in: a late, older UPSERT never resurrects a deleted row, a duplicate
//! changes nothing, and a value PostgreSQL did not send (an unchanged TOAST value) is taken from
//! an older change of the key or from the mirror.

use super::merge::{MergeReport, MergeTarget, Merger};
use super::rows::{change_rows, stamp_appended_at, unchanged_columns};
use super::sink::RowSink;
use super::{WriteMode, Written};
use crate::error::Result;
use crate::mirror_layout::MirrorLayout;
use crate::row_layout::RowLayout;
use crate::shape::TableShape;
use crate::table_meta::{TableKind, TableMeta};
use crate::tables::{TableRegistry, TableSpec};
use futures::future::BoxFuture;
use pg2bq_bigquery::rest::TableOptions;
use pg2bq_core::wire::ChangeBatch;
use std::sync::Arc;

/// The staged merge strategy.
pub struct Staged {
    tables: Arc<TableRegistry>,
    sink: RowSink,
    merger: Arc<Merger>,
    soft_deletes: bool,
    layout: Arc<MirrorLayout>,
}

impl Staged {
    /// Writes through `sink` into tables made sure of by `tables`; `merger` folds them. With
    /// `soft_deletes`, the mirror tables it makes keep deleted rows, marked; they are laid out as
    /// `layout` says.
    pub fn new(
        tables: Arc<TableRegistry>,
        sink: RowSink,
        merger: Arc<Merger>,
        soft_deletes: bool,
        layout: Arc<MirrorLayout>,
    ) -> Self {
        Staged {
            tables,
            sink,
            merger,
            soft_deletes,
            layout,
        }
    }

    /// The mirror table and the change table of `shape`. The mirror table declares its primary
    /// key (`NOT ENFORCED`) and is laid out as the layout says for its source; the change table
    /// carries the table's metadata (`meta`).
    fn tables_of(&self, shape: &TableShape, meta: &TableMeta) -> Result<[TableSpec; 2]> {
        let (partitioning, clustering) = self.layout.of(&meta.source, shape)?;
        Ok([
            TableSpec {
                table: shape.target.clone(),
                fields: self
                    .tables
                    .fields(&shape.staged_target_fields(meta.soft_deletes)),
                options: TableOptions {
                    clustering,
                    primary_key: shape.key_names(),
                    partitioning,
                    ..TableOptions::default()
                },
            },
            TableSpec {
                table: shape.target.change_table(),
                fields: self.tables.fields(&shape.change_fields()),
                options: shape.staging_options(meta.to_description()),
            },
        ])
    }
}

/// The metadata of a table written in `kind`.
pub fn meta_of(batch: &ChangeBatch, shape: &TableShape, kind: TableKind) -> TableMeta {
    TableMeta {
        kind,
        source: batch.source.to_string(),
        keys: shape.key_names(),
        unchanged: unchanged_columns(batch, shape),
        soft_deletes: false,
    }
}

impl WriteMode for Staged {
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move {
            let written = async {
                let mut rows = change_rows(batch, shape);
                let wanted = TableMeta {
                    soft_deletes: self.soft_deletes,
                    ..meta_of(batch, shape, TableKind::Mirror)
                };
                if batch.changes.is_empty() {
                    // A table announced without rows (an empty table copied): it exists in
                    // BigQuery too.
                    self.tables.ensure(self.tables_of(shape, &wanted)?).await?;
                }
                if rows.rows.is_empty() {
                    return Ok(Written::nothing(rows.quarantined));
                }
                let change_table = shape.target.change_table();
                let [_, change_columns] =
                    self.tables.ensure(self.tables_of(shape, &wanted)?).await?;
                // The metadata names the columns that arrive unchanged before such rows are appended:
                // a MERGE that reads them knows how to resolve them.
                let meta = self.tables.ensure_meta(&change_table, &wanted).await?;
                let layout = RowLayout::new(&change_columns, &shape.change_fields())?;
                stamp_appended_at(&mut rows.rows);
                let appended = self.sink.append(&change_table, &layout, &rows.rows).await?;
                rows.set_aside(appended.refused);
                self.merger
                    .mark(MergeTarget::of(
                        shape.target.clone(),
                        &meta,
                        &change_columns,
                    ))
                    .await;
                Ok(Written {
                    rows: appended.written.rows,
                    bytes: appended.written.bytes,
                    quarantined: rows.quarantined,
                })
            }
            .await;
            if written.is_err() {
                // A table may have been deleted or changed behind this writer's back.
                self.tables.forget_target(&shape.target).await;
            }
            written
        })
    }

    /// Merges every target table of the layout's datasets (see [`Merger::merge_all`]).
    fn merge_round(&self) -> BoxFuture<'_, Result<MergeReport>> {
        Box::pin(self.merger.merge_all())
    }
}
